//! The guide's pages as doctests: every Rust block in `docs/` is compiled
//! (and run, unless marked otherwise) by `cargo test --doc`.

#![allow(missing_docs)]

#[doc = include_str!("../../docs/README.md")]
pub struct Readme;

#[doc = include_str!("../../docs/getting-started.md")]
pub struct GettingStarted;

#[doc = include_str!("../../docs/field-mapping.md")]
pub struct FieldMapping;

#[doc = include_str!("../../docs/formatter-hooks.md")]
pub struct FormatterHooks;

#[doc = include_str!("../../docs/lifecycle.md")]
pub struct Lifecycle;

#[doc = include_str!("../../docs/running-tasks.md")]
pub struct RunningTasks;

#[doc = include_str!("../../docs/dashboard.md")]
pub struct DashboardPage;

#[doc = include_str!("../../docs/logs.md")]
pub struct Logs;

#[doc = include_str!("../../docs/authentication.md")]
pub struct Authentication;

#[doc = include_str!("../../docs/scaling-out.md")]
pub struct ScalingOut;

#[doc = include_str!("../../docs/mysql.md")]
pub struct Mysql;

#[doc = include_str!("../../docs/tracker-only.md")]
pub struct TrackerOnly;

#[doc = include_str!("../../docs/migrating.md")]
pub struct Migrating;
