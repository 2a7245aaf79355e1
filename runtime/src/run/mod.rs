//! Running tasks: spawn a future and let the tracker record its whole life.
//!
//! [`RunBuilder::spawn`](crate::RunBuilder::spawn) (or the shorthand
//! [`Tracker::spawn`](crate::Tracker::spawn)) runs a task on tokio and
//! records `create` → `start` → `complete` / `fail` / `cancel` by itself:
//!
//! - the task gets a [`TaskContext`]: progress and messages (coalesced to at
//!   most one write per run per `progress_interval`), cancellation, its key
//!   and actor; every tracing event inside it carries the run's key (a `task`
//!   span with the field `task_key`);
//! - the objects it touches are locked in the database, all or nothing, so
//!   two runs on the same object conflict even across processes
//!   ([`SpawnError::Conflict`]);
//! - a heartbeat keeps the run's lease and locks alive; the recovery sweep
//!   ([`Tracker::recover`](crate::Tracker::recover)) marks runs whose process
//!   died `interrupted` and frees their locks;
//! - completion hooks, a registry of task kinds for retries, retention and a
//!   graceful shutdown complete the picture.
//!
//! The run itself never waits for the database: its events go through a
//! per-run recorder that writes them in order beside the task, and the
//! tracker's retry queue keeps them while the database is unreachable.
//!
//! This module stands on lifecycle's API and on the group-commit writer
//! (the layers: see `src/writer/mod.rs`); what it keeps per tracker is in
//! `run/state.rs`.

mod context;
mod hooks;
mod maintenance;
mod notify;
mod recorder;
mod registry;
mod retention;
mod spawn;
mod state;
pub mod store;

pub use crate::lifecycle::options::Retention;
pub use context::{Cancelled, TaskContext};
pub use hooks::Finished;
pub use maintenance::{CancelOutcome, RecoveryReport, ShutdownReport};
#[cfg(all(test, feature = "dashboard"))]
pub(crate) use registry::RETRY_GUARD_TARGET_BYTES;
#[cfg(feature = "dashboard")]
pub(crate) use registry::StartError;
#[cfg(feature = "apalis")]
pub(crate) use registry::{Enqueue, EnqueueError};
pub use registry::{RetryError, Task};
pub use retention::{PurgeReport, RetentionError};
pub use spawn::{LockConflict, SpawnError, Spawned};
pub(crate) use state::{Control, LEASE_MISSING, LEASE_PENDING, LEASE_WRITTEN};

/// How many runs of bulk retries (the dashboard's "retry every matching
/// run") run at once in a tracker without `max_concurrent`; with it, its
/// limit applies.
pub(crate) const BULK_RETRY_CONCURRENCY: usize = 8;

/// Why a run was asked to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// [`Spawned::cancel`], [`Tracker::cancel`](crate::Tracker::cancel) or the
    /// dashboard, with an optional reason.
    Requested(Option<String>),
    /// [`Tracker::shutdown`](crate::Tracker::shutdown) ran out of time.
    Shutdown,
    /// The run outlived its maximum duration.
    Deadline(std::time::Duration),
    /// Another instance recorded a terminal status for the run (it cancelled
    /// it, or its recovery sweep interrupted it).
    Remote(crate::Status),
    /// The run's lease is gone while it runs: another instance's recovery
    /// sweep took it (this process had lost the database for longer than
    /// the lease TTL), and the run may have been deleted since. It stops,
    /// and writes no more events.
    LeaseLost,
}

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CancelReason::Requested(Some(reason)) => write!(f, "cancelled: {reason}"),
            CancelReason::Requested(None) => f.write_str("cancelled on request"),
            CancelReason::Shutdown => f.write_str("cancelled: the tracker shut down"),
            CancelReason::Deadline(d) => {
                write!(
                    f,
                    "interrupted: ran longer than its maximum duration of {d:?}"
                )
            }
            CancelReason::Remote(status) => {
                write!(f, "stopped: another instance recorded the run as {status}")
            }
            CancelReason::LeaseLost => f.write_str(
                "stopped: another instance's recovery sweep took over the run (its lease lapsed)",
            ),
        }
    }
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
