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

mod context;
mod hooks;
mod maintenance;
mod recorder;
mod registry;
mod retention;
mod spawn;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use context::{Cancelled, TaskContext};
pub use hooks::Finished;
pub use maintenance::{CancelOutcome, RecoveryReport, ShutdownReport};
pub use registry::{RetryError, Task};
pub use crate::lifecycle::options::Retention;
pub use retention::{PurgeReport, RetentionError};
pub use spawn::{LockConflict, SpawnError, Spawned};

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
        }
    }
}

/// The shared state of one local run.
pub(crate) struct Control {
    pub name: String,
    /// Fired to ask the task to stop (it sees it through its context).
    pub cancel: CancellationToken,
    /// Fired to drop the task's future at its next await point.
    pub kill: CancellationToken,
    pub reason: Mutex<Option<CancelReason>>,
    pub started_ms: i64,
    pub deadline_ms: Option<i64>,
    /// Whether the run holds object locks.
    pub locked: bool,
    /// Whether the run's lease row has been written.
    pub lease_written: std::sync::atomic::AtomicBool,
}

impl Control {
    /// Asks the run to stop; the first reason wins.
    pub fn request_cancel(&self, reason: CancelReason) -> bool {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        let first = slot.is_none();
        if first {
            *slot = Some(reason);
        }
        drop(slot);
        self.cancel.cancel();
        first
    }

    pub fn reason(&self) -> Option<CancelReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a tracker keeps for its spawned runs.
pub(crate) struct Runs {
    /// This tracker's identity in the lease and lock tables.
    pub instance: String,
    pub active: Mutex<HashMap<String, Arc<Control>>>,
    pub semaphore: Option<Arc<Semaphore>>,
    /// The limit of bulk retries in a tracker without `max_concurrent`.
    pub bulk_gate: Arc<Semaphore>,
    pub tasks: TaskTracker,
    pub closing: AtomicBool,
    pub maintenance_started: AtomicBool,
    pub stop: CancellationToken,
    pub hooks: RwLock<hooks::Hooks>,
    pub registry: RwLock<HashMap<String, Arc<dyn registry::ErasedTask>>>,
    /// Runs whose locks and lease could not be released (database down).
    pub unreleased: Mutex<Vec<String>>,
    pub completion_hook_errors: AtomicU64,
    pub progress_writes: AtomicU64,
}

impl Runs {
    pub fn new(max_concurrent: Option<usize>) -> Self {
        Runs {
            instance: uuid::Uuid::now_v7().to_string(),
            active: Mutex::new(HashMap::new()),
            semaphore: max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            bulk_gate: Arc::new(Semaphore::new(BULK_RETRY_CONCURRENCY)),
            tasks: TaskTracker::new(),
            closing: AtomicBool::new(false),
            maintenance_started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            hooks: RwLock::new(hooks::Hooks::default()),
            registry: RwLock::new(HashMap::new()),
            unreleased: Mutex::new(Vec::new()),
            completion_hook_errors: AtomicU64::new(0),
            progress_writes: AtomicU64::new(0),
        }
    }

    pub fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Control>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn active_keys(&self) -> Vec<String> {
        self.active().keys().cloned().collect()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
