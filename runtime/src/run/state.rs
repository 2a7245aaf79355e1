//! What a tracker keeps for its spawned runs: [`Runs`] (the live runs, the
//! concurrency limits, completion hooks, task kinds, the lease and release
//! statements) and [`Control`], the shared state of one live run.
//!
//! The tracker is lifecycle's and lifecycle does not import this module: the
//! state lives in the tracker's run-state slot, made here at its first use
//! ([`Runs::of`]), and lifecycle reads only its counters ([`RunState`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sea_orm::DbBackend;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TrackingConfig;
use crate::lifecycle::state::{Inner, RunState};
use crate::lifecycle::{Tracker, TrackerStats};
use crate::run::{BULK_RETRY_CONCURRENCY, CancelReason, hooks, registry, store};

/// The shared state of one local run.
pub(crate) struct Control {
    pub name: String,
    /// Fired to ask the task to stop (it sees it through its context).
    pub cancel: CancellationToken,
    /// Fired to drop the task's future at its next await point.
    pub kill: CancellationToken,
    pub reason: Mutex<Option<CancelReason>>,
    /// When the run was spawned, by this process's monotonic clock (its
    /// lease's times are the database's: see [`store`]).
    pub started: std::time::Instant,
    /// The run's maximum duration, if any.
    pub max_duration: Option<std::time::Duration>,
    /// Whether the run holds object locks.
    pub locked: bool,
    /// Where the run's lease row stands: [`LEASE_PENDING`] while its first
    /// write is in flight, [`LEASE_WRITTEN`] once written (or queued for an
    /// unreachable database), [`LEASE_MISSING`] if that write failed — the
    /// only state in which the heartbeat inserts it (inserting while the
    /// first write is in flight could re-create a lease the run's release
    /// has just deleted).
    pub lease: std::sync::atomic::AtomicU8,
    /// Set when the run's lease vanished while it ran (another instance's
    /// sweep took it, or the run was deleted): the run is stopped and
    /// writes no more events, so none can bring a deleted row back.
    pub orphaned: std::sync::atomic::AtomicBool,
}

/// See [`Control::lease`].
pub const LEASE_PENDING: u8 = 0;
/// See [`Control::lease`].
pub const LEASE_WRITTEN: u8 = 1;
/// See [`Control::lease`].
pub const LEASE_MISSING: u8 = 2;

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
    /// Kinds whose runs execute on a job queue's workers: a retry enqueues.
    pub remote: RwLock<HashMap<String, Arc<dyn registry::Enqueue>>>,
    /// Runs whose locks and lease could not be released (database down).
    pub unreleased: Mutex<Vec<String>>,
    pub completion_hook_errors: AtomicU64,
    pub progress_writes: AtomicU64,
    /// The multi-row statements of the runs' writes (leases, releases).
    pub store: store::Templates,
}

impl Runs {
    pub fn new(instance: &str, max_concurrent: Option<usize>, backend: DbBackend) -> Self {
        Runs {
            instance: instance.to_owned(),
            active: Mutex::new(HashMap::new()),
            semaphore: max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            bulk_gate: Arc::new(Semaphore::new(BULK_RETRY_CONCURRENCY)),
            tasks: TaskTracker::new(),
            closing: AtomicBool::new(false),
            maintenance_started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            hooks: RwLock::new(hooks::Hooks::default()),
            registry: RwLock::new(HashMap::new()),
            remote: RwLock::new(HashMap::new()),
            unreleased: Mutex::new(Vec::new()),
            completion_hook_errors: AtomicU64::new(0),
            progress_writes: AtomicU64::new(0),
            store: store::Templates::new(backend),
        }
    }

    pub fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Control>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn active_keys(&self) -> Vec<String> {
        self.active().keys().cloned().collect()
    }

    /// The runs' state of the tracker `inner`, made at its first use.
    pub fn of(inner: &Inner) -> &Runs {
        inner.run_state(|inner| {
            Runs::new(
                &inner.instance,
                inner.options.max_concurrent,
                inner.db().get_database_backend(),
            )
        })
    }
}

impl RunState for Runs {
    fn stats(&self, stats: &mut TrackerStats) {
        stats.completion_hook_errors = self.completion_hook_errors.load(Ordering::Relaxed);
        stats.progress_writes = self.progress_writes.load(Ordering::Relaxed);
        stats.running = self.active().len() as u64;
    }
}

impl<M: TrackingConfig> Tracker<M> {
    /// The state of this tracker's spawned runs.
    pub(crate) fn runs(&self) -> &Runs {
        Runs::of(self.inner())
    }
}
