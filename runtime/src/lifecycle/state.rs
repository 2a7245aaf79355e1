//! What a tracker and its clones share: [`Inner`] — the connection, the
//! options, the writer, the counters, the event templates, and a slot for
//! the spawned runs' state.
//!
//! The slot is how a tracker carries the run machinery's state while
//! lifecycle stands below `run` and never imports it (the layers: see
//! [`crate::writer`]): `run` fills it with its own type at first use
//! ([`Inner::run_state`]); lifecycle reads back only the counters it
//! reports ([`RunState`]).

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sea_orm::DatabaseConnection;

use crate::lifecycle::write::Shapes;
use crate::lifecycle::{TrackerOptions, TrackerStats};
use crate::writer::{Template, Writer};

/// The state the layer above keeps in a tracker (the spawned runs'), as
/// lifecycle sees it: something that adds its counters to the tracker's.
pub(crate) trait RunState: Any + Send + Sync {
    /// Fills in the counters of `stats` that belong to spawned runs.
    fn stats(&self, stats: &mut TrackerStats);
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) refused: AtomicU64,
    pub(super) hook_errors: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Inner {
    pub(super) db: DatabaseConnection,
    pub(crate) options: TrackerOptions,
    pub(super) counters: Counters,
    /// Every write goes through it.
    pub(crate) writer: Writer,
    /// The multi-row upsert of each event shape.
    pub(super) templates: Mutex<Shapes<Arc<Template>>>,
    /// Whether the database's set-up was checked (once, at the first write).
    pub(super) setup_checked: AtomicBool,
    /// This tracker's instance ([`TrackerOptions::instance`]).
    pub(crate) instance: Arc<str>,
    /// The tracked table's name: the `scope` of its leases, locks and
    /// changes.
    pub(crate) scope: Arc<str>,
    /// The change feed of the tracker's database (one per process).
    pub(crate) feed: Arc<crate::feed::Hub>,
    /// The spawned runs' state: see [`Inner::run_state`].
    pub(super) runs: OnceLock<Box<dyn RunState>>,
}

impl Inner {
    /// The connection the tracker writes through.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The spawned runs' state, made by `make` at the first call. Every
    /// caller names the same type `T` (the `run` module's), so the state
    /// made first is the one asked for.
    pub(crate) fn run_state<T: RunState>(&self, make: impl FnOnce(&Inner) -> T) -> &T {
        let state: &dyn Any = &**self.runs.get_or_init(|| Box::new(make(self)));
        state
            .downcast_ref()
            .expect("a tracker's run state has one type: the run module's")
    }

    /// Adds the spawned runs' counters to `stats` (none before the first
    /// run: all zero).
    pub(super) fn run_stats(&self, stats: &mut TrackerStats) {
        if let Some(runs) = self.runs.get() {
            runs.stats(stats);
        }
    }
}
