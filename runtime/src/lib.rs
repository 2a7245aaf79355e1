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

#![forbid(unsafe_code)]

pub mod config;
pub mod fields;
pub mod hooks;
pub mod lifecycle;
pub mod run;
pub mod schema;

pub use config::{ColumnKind, FieldInfo, Role, TrackingConfig, TrackingOptions};
pub use fields::TrackedStatus;
pub use hooks::{Actor, FormatHooks, PayloadKind, TrackedObject};
pub use lifecycle::{
    Event, EventKind, Progress, RunBuilder, RunError, RunHandle, Status, TrackError, Tracker,
    TrackerOptions, TrackerStats, Written,
};
pub use run::{
    CancelOutcome, CancelReason, Cancelled, Finished, LockConflict, PurgeReport, RecoveryReport,
    Retention, RetentionError, RetryError, ShutdownReport, SpawnError, Spawned, Task, TaskContext,
};

/// Derives [`TrackingConfig`], [`FormatHooks`] (unless `hooks = custom`) and
/// the `Tracker` type alias for a sea-orm `Model`. See the field-mapping
/// reference in the guide.
pub use tasktrail_macros::TrackingConfig;

/// What generated code uses. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{
        Binding, Encode, FieldInfo, Role, TrackingConfig, TrackingOptions, bind,
    };
    pub use crate::fields::{
        FlagField, KeyField, PayloadField, ProgressField, StatusField, TextField, TimestampField,
    };
    pub use crate::hooks::FormatHooks;
    pub use crate::hooks::{Actor, PayloadKind, TrackedObject};
    pub use crate::lifecycle::Tracker;
    pub use ::core::option::Option;
    pub use ::std::string::String;
    pub use serde_json::Value as JsonValue;

    /// The default payload cap, for the derive.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize =
        crate::config::TrackingOptions::DEFAULT_MAX_PAYLOAD_BYTES;
}
