//! # tasktrail
//!
//! Turn a sea-orm entity into a background-task tracker.
//!
//! Put `#[derive(TrackingConfig)]` on the `Model` of the entity that holds one
//! row per task run. The derive maps fields to roles (key, status, message,
//! progress, timestamps, payloads, …) by their conventional names or by
//! `#[tracking(ROLE)]`, checks their types at compile time, and generates
//! `Tracker`, the lifecycle manager for the entity, in the entity's module.
//!
//! ```
//! mod task_run {
//!     use sea_orm::entity::prelude::*;
//!
//!     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
//!     #[sea_orm(table_name = "task_runs")]
//!     pub struct Model {
//!         #[sea_orm(primary_key)]
//!         pub id: i64,
//!         #[sea_orm(unique)]
//!         pub task_key: String,
//!         pub task_name: String,
//!         pub status: String,
//!         pub message: Option<String>,
//!         pub created_at: DateTimeUtc,
//!         pub updated_at: DateTimeUtc,
//!     }
//!
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let db = sea_orm::Database::connect("sqlite::memory:").await?;
//! tasktrail::schema::create::<task_run::Model>(&db).await?;
//! let tracker = task_run::Tracker::new(db);
//! let result = tracker
//!     .begin("import_books")
//!     .actor(&"ada")
//!     .args(&["dune.csv"])
//!     .run(|run| async move {
//!         run.progress(50.0).await;
//!         Ok::<_, std::io::Error>(42)
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The guide lives in `docs/`: getting started, the field-mapping reference,
//! formatter hooks and the lifecycle rules.
//!
//! ## Cargo features
//!
//! Additive, in sea-orm's style. The defaults (`sqlite`, `dashboard`,
//! `auth`, `openapi`) serve the quickstart.
//!
//! | Feature | What it adds |
//! |---|---|
//! | `sqlite` | SQLite through sqlx (the bundled C library), and the set-up helpers of [`sqlite`] |
//! | `postgres` | PostgreSQL through sqlx; LISTEN/NOTIFY for the live stream and cross-instance cancel |
//! | `mysql` | MySQL / MariaDB through sqlx (tested on MariaDB 10.11; `docs/mysql.md`) |
//! | `runtime-tokio-rustls` | TLS to the database with rustls (sea-orm's feature of that name) |
//! | `runtime-tokio-native-tls` | TLS with the platform's library, OpenSSL on Linux (sea-orm's feature of that name) |
//! | `runtime-tokio` | sqlx on tokio without TLS: always on, named for sea-orm parity |
//! | `dashboard` | [`Dashboard`], [`dashboard!`], pages, JSON API, live stream, log viewer, audit trail (axum, askama); answers loopback clients only |
//! | `auth` | who may use the dashboard beyond loopback: login form with argon2 hashes and an encrypted session cookie, proxy headers, your own [`auth::AuthBackend`] (implies `dashboard`) |
//! | `openapi` | the dashboard's OpenAPI document at `{prefix}/api/openapi.json` (utoipa; implies `dashboard`) |
//! | `apalis` | track apalis 1.0 workers' tasks as runs (the module `tasktrail::apalis`; `docs/scaling-out.md`) |
//!
//! At least one backend is needed. A service that only records runs on
//! PostgreSQL takes
//! `tasktrail = { version = "0.1", default-features = false, features = ["postgres"] }`:
//! its build has no SQLite, axum, askama or argon2 (`docs/tracker-only.md`,
//! `examples/tracker-only`). The tracker, spawned runs, locks, leases,
//! recovery, retention, the change feed and log capture
//! ([`logs`]) are in every build.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!(
    "tasktrail needs a database backend: enable the feature `sqlite`, `postgres` or `mysql` \
     (`default-features = false` turned the default `sqlite` off)"
);

// The README's examples (crates.io's page) compile with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "apalis")]
#[cfg_attr(docsrs, doc(cfg(feature = "apalis")))]
pub mod apalis;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod auth;
pub mod config;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
mod db_error;
mod feed;
pub mod fields;
pub mod hooks;
#[cfg(test)]
mod layers;
pub mod lifecycle;
mod limits;
pub mod logs;
pub mod run;
pub mod schema;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
mod storable;
mod writer;

pub use config::{ColumnKind, FieldInfo, Role, TrackingConfig, TrackingOptions};
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub use dashboard::{Dashboard, DashboardConfig, DashboardSettings};
pub use fields::TrackedStatus;
pub use hooks::{Actor, FormatHooks, PayloadKind, TrackedObject};
pub use lifecycle::{
    Clock, Event, EventKind, MAX_KEY_BYTES, Progress, RunBuilder, RunError, RunHandle, Status,
    TrackError, Tracker, TrackerOptions, TrackerStats, Written,
};
pub use run::{
    CancelOutcome, CancelReason, Cancelled, Finished, LockConflict, PurgeReport, RecoveryReport,
    Retention, RetentionError, RetryError, ShutdownReport, SpawnError, Spawned, Task, TaskContext,
};

/// Derives [`TrackingConfig`], [`FormatHooks`] (unless `hooks = custom`) and
/// the `Tracker` type alias for a sea-orm `Model`. See the field-mapping
/// reference in the guide.
pub use tasktrail_macros::TrackingConfig;

/// Declares a dashboard configuration for a tracked entity: a plain struct
/// with public fields, `Default` from the values given, serde so a settings
/// file can override it, and [`DashboardConfig`] tying it to the entity.
///
/// ```
/// mod task_run {
///     use sea_orm::entity::prelude::*;
///
///     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
///     #[sea_orm(table_name = "task_runs")]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i64,
///         #[sea_orm(unique)]
///         pub task_key: String,
///         pub task_name: String,
///         pub status: String,
///         pub message: Option<String>,
///         pub created_at: DateTimeUtc,
///     }
///
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// tasktrail::dashboard! {
///     /// The operations dashboard.
///     pub struct Ops<task_run::Entity> {
///         title: "Background tasks",
///         url_prefix: "/ops/tasks",
///         poll_interval: 10s,
///         columns: [task_name, status, created_at],
///         search: [task_name, message],
///         sort: created_at desc,
///         actions: [cancel, retry],
///     }
/// }
///
/// let ops = Ops::default();
/// assert_eq!(ops.title, "Background tasks");
/// assert_eq!(ops.header_title, "Background tasks");
/// assert_eq!(ops.poll_interval, std::time::Duration::from_secs(10));
/// // A settings file overrides what it names and keeps the rest.
/// let ops: Ops = serde_json::from_str(r#"{ "title": "Ops", "page_size": 20 }"#).unwrap();
/// assert_eq!((ops.title.as_str(), ops.page_size), ("Ops", 20));
/// assert_eq!(ops.url_prefix, "/ops/tasks");
/// ```
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
#[macro_export]
macro_rules! dashboard {
    ($($input:tt)*) => {
        $crate::__private::dashboard_impl! { $crate; $($input)* }
    };
}

/// What generated code uses. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{
        Binding, Encode, FieldInfo, FieldType, KnownType, OtherType, Role, TrackingConfig,
        TrackingOptions, TypeProbe, ValueClass, bind,
    };
    #[cfg(feature = "dashboard")]
    pub use crate::dashboard::{
        Actions, DashboardConfig, DashboardSettings, SortOrder, deserialize_config,
        serialize_config,
    };
    pub use crate::fields::{
        FlagField, KeyField, PayloadField, ProgressField, StatusField, TextField, TimestampField,
    };
    pub use crate::hooks::FormatHooks;
    pub use crate::hooks::{Actor, PayloadKind, TrackedObject};
    pub use crate::lifecycle::Tracker;
    pub use ::core::option::Option;
    pub use ::core::time::Duration;
    pub use ::std::string::String;
    pub use ::std::vec::Vec;
    pub use sea_orm::EntityTrait;
    pub use serde;
    #[cfg(feature = "dashboard")]
    pub use tasktrail_macros::dashboard as dashboard_impl;

    /// Fails to compile unless the field can be searched as text.
    #[cfg(feature = "dashboard")]
    pub fn searchable<T: crate::dashboard::SearchableField + ?Sized>(_field: &T) {}
    pub use serde_json::Value as JsonValue;

    /// The default payload cap, for the derive.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize =
        crate::config::TrackingOptions::DEFAULT_MAX_PAYLOAD_BYTES;
}
