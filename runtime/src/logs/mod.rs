//! Logs of runs: a tracing layer that captures the events emitted inside
//! runs, storages that keep them, and (through the dashboard) a viewer.
//!
//! Every spawned run opens a `task` span with its `task_key`; the
//! [`TaskLogLayer`] hands every event inside it — and inside the spans
//! below it — to a [`LogStorage`] with the run's key:
//!
//! - [`MemoryLogStorage`]: a bounded ring buffer (the default), constant
//!   memory, for a live tail;
//! - [`DbLogStorage`]: the `tasktrail_logs` table, written in batches by a
//!   background task, durable and shared by every instance;
//! - your own: implement [`LogStorage`].
//!
//! ```
//! use std::sync::Arc;
//! use tasktrail::logs::{MemoryLogStorage, LogQuery};
//!
//! let logs = Arc::new(MemoryLogStorage::new(10_000));
//! // Most apps: `tasktrail::logs::install(logs.clone())` once at start-up
//! // (a fmt layer to stderr filtered by RUST_LOG, plus the run capture).
//! # let _ = &logs;
//! ```

mod db;
mod layer;
mod memory;
mod record;
mod span;

pub use db::{
    DbLogOptions, DbLogStorage, MAX_STORED_RUN_KEY, create_table, entry, span_entry, stored_run_key,
};
pub use layer::{Capture, DEFAULT_MAX_SPANS_PER_RUN, RUN_KEY_FIELD, TaskLogLayer};
pub use memory::MemoryLogStorage;
pub use record::{
    LogLevel, LogQuery, LogRecord, LogStats, LogStorage, LogStorageError, MAX_QUERY_LIMIT,
    ParseLevelError,
};
pub use span::{MAX_SPAN_FIELDS_BYTES, SPAN_FIELD, SpanRecord, Trace};

use std::sync::Arc;

/// Installs the common set-up as the global tracing subscriber: events
/// filtered by `RUST_LOG` (`info,sqlx=warn` when unset), written to stderr by
/// tracing-subscriber's `fmt` layer, and those inside runs captured into
/// `storage`.
///
/// For anything else, add a [`TaskLogLayer`] to your own subscriber.
///
/// # Errors
/// When a global subscriber is already installed.
pub fn install(storage: Arc<dyn LogStorage>) -> Result<(), tracing_subscriber::util::TryInitError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(TaskLogLayer::new(storage))
        .try_init()
}
