//! Group commit: the one place tasktrail writes through.
//!
//! Every write — a run's lifecycle event, its lease, the release of its
//! locks, a heartbeat, a log line, an audit row — is an [`Op`] handed to a
//! [`Writer`]. The writer's task takes everything queued (up to a cap),
//! writes it in **one transaction**, commits once, and only then answers
//! each op: an answer of [`Outcome::Done`] means the op is durable. A lone
//! op is written at once, with no timer; batches form by themselves while
//! the previous commit is in flight.
//!
//! Inside a batch:
//! * ops of one **lane** (a run's key) keep their order: the batch is cut
//!   into rounds, where round *r* holds the *r*-th op of each lane, and
//!   rounds run in order;
//! * within a round every lane appears once, so ops of the same
//!   [`Template`] become multi-row statements (`INSERT … VALUES (…), (…)`):
//!   one statement never touches a row twice, which PostgreSQL's
//!   `ON CONFLICT DO UPDATE` refuses;
//! * multi-row statements hold a power of two of rows, so each template
//!   renders a handful of SQL texts, each prepared once per connection.
//!
//! When a batch fails:
//! * the database is unreachable or busy ([`crate::db_error`]): ops that
//!   may wait ([`OnTransient::Retry`]) go to a bounded retry queue in
//!   order and are answered [`Outcome::Queued`], so a task never waits for
//!   an outage; the others are answered [`Outcome::Unavailable`]. The queue
//!   is written, in order and in batches, with backoff, once the database
//!   answers; ops that arrive meanwhile queue behind it. When it is full an
//!   op is dropped, counted and answered [`Outcome::Dropped`];
//! * the database refused something: the batch is rolled back and halved
//!   until the refused op is alone; it is answered [`Outcome::Refused`]
//!   (counted), the others are written. One bad op never holds back the
//!   rest.
//!
//! The intake is bounded: when it is full, [`Writer::write`] waits
//! (backpressure, never loss).
//!
//! # Layers
//!
//! This module is the floor lifecycle and run stand on; it imports neither
//! (nor anything else that writes through it):
//!
//! 1. `writer` — group commit, as above. The database log storage
//!    (`logs/db.rs`) and the audit trail (`auth/audit.rs`) write through it
//!    too.
//! 2. `lifecycle` — events, statuses, their mapping onto the entity's
//!    columns, and the `Tracker`, whose state (`lifecycle/state.rs`) holds
//!    the connection, the options and the writer.
//! 3. `run` — spawned runs: context, leases and locks (`run/store.rs`),
//!    heartbeats, hooks, recovery, retention. It uses lifecycle's API and
//!    the writer; lifecycle never imports it: the tracker keeps the runs'
//!    state in a slot `run` fills at first use (`run/state.rs`).
//!
//! The tests in `src/layers.rs` fail when a module names one above it.

mod batch;
pub(crate) mod feed;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait, Value};
use tokio::sync::{Notify, mpsc, oneshot};

/// What a writer is tuned by.
#[derive(Clone)]
pub(crate) struct WriterOptions {
    /// Ops taken into one transaction at most.
    pub batch_cap: usize,
    /// Ops that may wait in the intake before `write` waits.
    pub intake: usize,
    /// Ops that may wait for an unreachable database.
    pub queue_capacity: usize,
    /// The first retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// How long a write waits for a pool connection before the database
    /// is taken for unreachable (its ops queue).
    pub connection_wait: Duration,
    /// How many writer tasks (each with its own connection); lanes are
    /// spread over them by hash, so a lane keeps its order.
    pub shards: usize,
    /// The time of a write, for the `updated_at` an op stamps
    /// ([`feed::Stamp`]); the system clock when `None`.
    pub clock: Option<Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>>,
    /// A statement every write starts with, in the same transaction (the
    /// log table's commit-order lock on PostgreSQL).
    pub preamble: Option<sea_orm::Statement>,
}

impl std::fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("batch_cap", &self.batch_cap)
            .field("intake", &self.intake)
            .field("queue_capacity", &self.queue_capacity)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_cap: 1_024,
            intake: 8_192,
            queue_capacity: 10_000,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            connection_wait: Duration::from_secs(1),
            shards: 1,
            clock: None,
            preamble: None,
        }
    }
}

/// What became of an op.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Committed. The number is the rows the statement affected (1 for a
    /// row written by a multi-row statement).
    Done(u64),
    /// The database is unreachable: the op waits in the retry queue and
    /// will be written in order when it is back.
    Queued,
    /// The database is unreachable and the op could not wait (or the retry
    /// queue was full): nothing was written.
    Unavailable(DbErr),
    /// The retry queue was full: the op was dropped.
    Dropped,
    /// The database refused the op: it will never be written.
    Refused(DbErr),
}

/// What an op does when the database is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnTransient {
    /// Waits in the retry queue.
    Retry,
    /// Is answered [`Outcome::Unavailable`] at once.
    Fail,
}

/// A statement shape that takes any number of rows: `render(n)` is the SQL
/// for `n` rows, binding `params_per_row` values per row, row after row.
pub(crate) struct Template {
    backend: DbBackend,
    params_per_row: usize,
    render: Box<dyn Fn(usize) -> String + Send + Sync>,
    rendered: Mutex<HashMap<usize, Arc<str>>>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("params_per_row", &self.params_per_row)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// A template whose `render(n)` gives the SQL for `n` rows.
    pub fn new(
        backend: DbBackend,
        params_per_row: usize,
        render: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Template {
            backend,
            params_per_row,
            render: Box::new(render),
            rendered: Mutex::new(HashMap::new()),
        })
    }

    /// The most rows one statement may hold: a power of two, within the
    /// backend's limit on bound values (SQLite 32,766; PostgreSQL 65,535).
    pub fn max_rows(&self) -> usize {
        let limit = match self.backend {
            DbBackend::Postgres => 65_535,
            DbBackend::MySql => 65_535,
            _ => 32_766,
        };
        let fit = (limit / self.params_per_row.max(1)).clamp(1, 256);
        1 << fit.ilog2()
    }

    pub(crate) fn sql(&self, rows: usize) -> Arc<str> {
        let mut rendered = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        rendered
            .entry(rows)
            .or_insert_with(|| (self.render)(rows).into())
            .clone()
    }
}

/// The work of an op.
#[derive(Clone, Debug)]
pub(crate) enum Work {
    /// One row of a [`Template`]: rows of the same template in one round
    /// are written by one statement.
    Row {
        /// The statement shape.
        template: Arc<Template>,
        /// The row's values, `template.params_per_row` of them.
        values: Vec<Value>,
    },
    /// A statement of its own.
    Statement(sea_orm::Statement),
}

/// One write.
#[derive(Debug)]
pub(crate) struct Op {
    /// Ops of one lane keep their order; `None`: no order to keep.
    pub lane: Option<u64>,
    /// What to write.
    pub work: Work,
    /// What to do while the database is unreachable.
    pub on_transient: OnTransient,
    /// Where the outcome goes (`None`: nobody waits for it).
    pub ack: Option<oneshot::Sender<Outcome>>,
    /// The change the op records in the feed, in its transaction.
    pub change: Option<Box<feed::Change>>,
}

impl Op {
    /// An op on `lane`, answered through the returned receiver.
    pub fn new(
        lane: Option<u64>,
        work: Work,
        on_transient: OnTransient,
        change: Option<Box<feed::Change>>,
    ) -> (Op, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        (
            Op {
                lane,
                work,
                on_transient,
                ack: Some(tx),
                change,
            },
            rx,
        )
    }

    fn answer(&mut self, outcome: Outcome) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(outcome);
        }
    }
}

/// What a shard receives: one op, or ops submitted together (written in
/// one batch).
enum Msg {
    One(Op),
    Many(Vec<Op>),
    /// Answered once every op sent before it is written, refused or
    /// dropped (the retry queue included).
    Flush(oneshot::Sender<()>),
}

impl Msg {
    fn len(&self) -> usize {
        match self {
            Msg::One(_) => 1,
            Msg::Many(ops) => ops.len(),
            Msg::Flush(_) => 0,
        }
    }

    /// Adds the message's ops to `batch`, its flush to `flushes`.
    fn into_batch(self, batch: &mut Vec<Op>, flushes: &mut Vec<oneshot::Sender<()>>) {
        match self {
            Msg::One(op) => batch.push(op),
            Msg::Many(ops) => batch.extend(ops),
            Msg::Flush(done) => flushes.push(done),
        }
    }

    /// Answers every op: the writer is gone.
    fn abandon(self, shared: &Shared) {
        let mut ops = Vec::new();
        let n = self.len();
        self.into_batch(&mut ops, &mut Vec::new());
        for mut op in ops {
            op.answer(Outcome::Unavailable(DbErr::Custom(
                "the tasktrail writer has stopped (its runtime shut down)".into(),
            )));
        }
        shared.done(n);
    }
}

/// The outcome an op's receiver gets (`Unavailable` if the writer is gone).
async fn answered(rx: oneshot::Receiver<Outcome>) -> Outcome {
    rx.await.unwrap_or_else(|_| {
        Outcome::Unavailable(DbErr::Custom("the tasktrail writer has stopped".into()))
    })
}

/// The lane of a run key: ops of one run keep their order.
pub(crate) fn lane_of(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A writer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WriterStats {
    /// Transactions committed (a lone op written without one counts too).
    pub commits: u64,
    /// Ops written.
    pub written: u64,
    /// Statements run (a multi-row statement counts once).
    pub statements: u64,
    /// Ops that went to the retry queue.
    pub queued: u64,
    /// Ops waiting in the retry queue now.
    pub queue_len: u64,
    /// Ops dropped because the retry queue was full.
    pub dropped: u64,
    /// Ops the database refused.
    pub refused: u64,
    /// Failed attempts (each retry counts).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    written: AtomicU64,
    statements: AtomicU64,
    queued: AtomicU64,
    queue_len: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    db: DatabaseConnection,
    options: WriterOptions,
    counters: Counters,
    /// Ops submitted and not yet answered or written.
    pending: AtomicUsize,
    /// Woken whenever `pending` reaches zero.
    idle: Notify,
    /// Woken after every commit that recorded changes (the feed's reader).
    committed: Arc<Notify>,
    /// The change feed's inserts.
    feed: feed::Inserts,
    /// Whether the feed's table is there (made at the first change):
    /// `false` if it could not be made (logged; changes are then skipped).
    feed_ready: tokio::sync::OnceCell<bool>,
    /// A write found the database unreachable and none has succeeded
    /// since: every shard queues what arrives instead of trying it (a try
    /// waits up to `connection_wait`), and no caller writes alone.
    outage: AtomicBool,
}

/// What a shard's task and the callers' idle fast path share: the shard
/// holds `busy` while it writes a batch; a caller that takes it while the
/// shard's intake is empty and nothing waits for an outage writes its lone
/// op itself (no hop to the writer's task and back), in the same order.
#[derive(Default)]
struct Gate {
    busy: Arc<tokio::sync::Mutex<()>>,
    /// Ops wait in the shard's retry queue (the database is unreachable).
    degraded: AtomicBool,
}

/// The write of the idle fast path ([`Writer::alone`]). If the caller
/// drops it mid-write, the write finishes on a task of its own (as an op
/// handed to a shard is written whether or not its caller still waits):
/// a statement cut off half-way would leave the op's fate unknown, and
/// sqlx closes a connection whose statement was cancelled (an in-memory
/// SQLite database goes with its connection).
struct Alone(Option<Waiting<'static>>);

impl Future for Alone {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(write) = self.0.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let done = write.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        if let Some(write) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(write);
        }
    }
}

/// Writes `op` alone, holding its shard's gate; see [`Writer::alone`].
async fn write_alone(
    shared: Arc<Shared>,
    sender: mpsc::Sender<Msg>,
    busy: tokio::sync::OwnedMutexGuard<()>,
    op: Op,
) {
    // Dropped without a runtime to finish on: the op is no longer pending.
    struct Pending<'a>(Option<&'a Shared>);
    impl Drop for Pending<'_> {
        fn drop(&mut self) {
            if let Some(shared) = self.0.take() {
                shared.done(1);
            }
        }
    }
    let mut pending = Pending(Some(&shared));
    let mut ops = [op];
    match commit(&shared, &mut ops).await {
        Ok(()) => {
            drop(pending);
            drop(busy);
        }
        Err(err) => {
            bump(&shared.counters.errors, 1);
            tracing::debug!(error = %err, "tasktrail: a lone write failed; the writer takes it over");
            if crate::db_error::is_unreachable(&err) {
                shared.outage.store(true, Ordering::Release);
            }
            // Still pending: the shard answers it.
            pending.0 = None;
            let [op] = ops;
            match sender.try_send(Msg::One(op)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    if let Err(mpsc::error::SendError(msg)) = sender.send(msg).await {
                        msg.abandon(&shared);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(msg)) => msg.abandon(&shared),
            }
            drop(busy);
        }
    }
}

/// A wait for the writer (room in an intake, or a write of the idle fast
/// path), boxed: the rare or the long path, kept out of callers' futures.
type Waiting<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Writes ops in batches; see the [module](self) docs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    shards: Arc<[mpsc::Sender<Msg>]>,
    gates: Arc<[Arc<Gate>]>,
    /// The shards' receivers until their tasks start: on the runtime of
    /// the first write, so that they run where the pool's connections
    /// live.
    idle_shards: Arc<Mutex<Option<Vec<mpsc::Receiver<Msg>>>>>,
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Writer {
    /// A writer on `db`; its tasks start on the tokio runtime of the first
    /// [`write`](Self::write).
    pub fn new(db: DatabaseConnection, options: WriterOptions, committed: Arc<Notify>) -> Self {
        let shards = options.shards.max(1);
        let intake = options.intake.max(1);
        let feed = feed::Inserts::new(db.get_database_backend());
        let shared = Arc::new(Shared {
            db,
            options,
            counters: Counters::default(),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            committed,
            feed,
            feed_ready: tokio::sync::OnceCell::new(),
            outage: AtomicBool::new(false),
        });
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| mpsc::channel(intake)).unzip();
        Writer {
            shared,
            shards: senders.into(),
            gates: (0..shards).map(|_| Arc::new(Gate::default())).collect(),
            idle_shards: Arc::new(Mutex::new(Some(receivers))),
            started: Arc::default(),
        }
    }

    /// Starts the shards' tasks, once, on the current runtime.
    fn start(&self) {
        self.start_on_current();
    }

    /// Starts the shards' tasks, once, if there is a current runtime (a
    /// non-async caller may have none yet: its ops wait in the intake).
    fn start_on_current(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut idle = self.idle_shards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(receivers) = idle.take() {
            for (rx, gate) in receivers.into_iter().zip(self.gates.iter()) {
                let shard = Shard {
                    shared: self.shared.clone(),
                    gate: gate.clone(),
                    rx,
                    retry: VecDeque::new(),
                    flushes: Vec::new(),
                };
                // What the writer (and sqlx under it) logs is never captured
                // as a run's log line: writing it would log again. A root
                // span: the writer starts at its first op, inside whatever
                // span the caller is in (a run's, a request's), and lives
                // as long as the writer: as that span's child it kept the
                // span open for good (a run's last span was never written).
                let span = tracing::error_span!(
                    target: "tasktrail::logs",
                    parent: None,
                    "tasktrail_log_writer"
                );
                let run = tracing::Instrument::instrument(shard.run(), span);
                if self.on_own_thread() {
                    // SQLite has one writer at a time and does its work on
                    // sqlx's own thread: the shard gets an OS thread of its
                    // own, so it never waits behind the callers' tasks for
                    // a worker between two statements (+20 % at 1,000 runs
                    // in flight on 2 cores, BENCHMARKS.md).
                    let spawned = std::thread::Builder::new()
                        .name("tasktrail-writer".into())
                        .spawn(move || {
                            match tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                            {
                                Ok(own) => own.block_on(run),
                                Err(err) => tracing::error!(error = %err,
                                    "tasktrail: the writer's runtime could not start"),
                            }
                        });
                    if let Err(err) = spawned {
                        tracing::error!(error = %err, "tasktrail: the writer's thread could not start");
                    }
                } else {
                    rt.spawn(run);
                }
            }
            self.started.store(true, Ordering::Release);
        }
    }

    /// Which shard (connection) writes the ops of `lane`.
    pub(crate) fn shard_of(&self, lane: Option<u64>) -> usize {
        match lane {
            Some(lane) => (lane % self.shards.len() as u64) as usize,
            None => 0,
        }
    }

    /// Hands `op` to the writer without waiting: gives it back when the
    /// intake is full (for callers that must never block, such as a
    /// tracing layer; they count it as dropped).
    pub fn try_submit(&self, op: Op) -> Result<(), Op> {
        self.start_on_current();
        let shard = self.shard_of(op.lane);
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        match self.shards[shard].try_send(Msg::One(op)) {
            Ok(()) => Ok(()),
            Err(
                mpsc::error::TrySendError::Full(Msg::One(op))
                | mpsc::error::TrySendError::Closed(Msg::One(op)),
            ) => {
                self.shared.done(1);
                Err(op)
            }
            Err(_) => unreachable!("one op was sent"),
        }
    }

    /// Without SQLite, the shards stay on the caller's runtime.
    #[cfg(not(feature = "sqlite"))]
    fn on_own_thread(&self) -> bool {
        false
    }

    /// Whether the shards run on OS threads of their own: for a SQLite
    /// file. An in-memory SQLite database lives only as long as its pool
    /// keeps a connection, so its writer stays on the caller's runtime with
    /// the rest of the pool's work.
    #[cfg(feature = "sqlite")]
    fn on_own_thread(&self) -> bool {
        if !matches!(
            self.shared.db.inner,
            sea_orm::DatabaseConnectionType::SqlxSqlitePoolConnection(_)
        ) {
            return false;
        }
        let pool = self.shared.db.get_sqlite_connection_pool();
        let options = pool.connect_options();
        let file = options.get_filename().to_string_lossy();
        !(file.starts_with("file:sqlx-in-memory-")
            || file.contains(":memory:")
            || file.contains("mode=memory"))
    }

    /// The backend written to.
    #[cfg(feature = "dashboard")]
    pub fn backend(&self) -> DbBackend {
        self.shared.db.get_database_backend()
    }

    /// Ops submitted and not yet written, refused or dropped.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Acquire) as u64
    }

    /// Submits `op` and waits for its outcome.
    ///
    /// The future stays small (callers' futures embed it, and every run's
    /// task is copied into its place once): across its await it holds the
    /// answer's receiver, and the op itself only while the intake is full.
    pub async fn write(&self, lane: Option<u64>, work: Work, on_transient: OnTransient) -> Outcome {
        self.record(lane, work, None, on_transient).await
    }

    /// [`write`](Self::write), recording `change` in the feed in the same
    /// transaction.
    pub async fn record(
        &self,
        lane: Option<u64>,
        work: Work,
        change: Option<Box<feed::Change>>,
        on_transient: OnTransient,
    ) -> Outcome {
        let (op, rx) = Op::new(lane, work, on_transient, change);
        let shard = self.shard_of(lane);
        let op = match self.alone(shard, op) {
            Ok(written) => {
                written.await;
                return answered(rx).await;
            }
            Err(op) => op,
        };
        if let Some(wait) = self.enqueue(shard, Msg::One(op)) {
            wait.await;
        }
        answered(rx).await
    }

    /// The idle fast path: when `shard` writes nothing, has nothing queued
    /// and no outage, the caller writes its lone op itself, holding the
    /// shard's gate (so the shard's next batch waits for it, and the op
    /// keeps its place in its lane). A single event then costs what the
    /// statement costs, without two hops between threads. Gives the op
    /// back when the shard is busy; on an error, hands it to the shard
    /// (which retries, refuses or queues it as usual) before letting go of
    /// the gate.
    ///
    /// The write is boxed: it holds sqlx's futures, which would otherwise
    /// grow every caller's future (see `run_futures_stay_small`).
    fn alone(&self, shard: usize, op: Op) -> Result<Alone, Op> {
        let gate = &self.gates[shard];
        let sender = &self.shards[shard];
        let Ok(busy) = gate.busy.clone().try_lock_owned() else {
            return Err(op);
        };
        if gate.degraded.load(Ordering::Acquire)
            || self.shared.outage.load(Ordering::Acquire)
            || sender.capacity() < sender.max_capacity()
        {
            return Err(op);
        }
        self.start();
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        Ok(Alone(Some(Box::pin(write_alone(
            self.shared.clone(),
            sender.clone(),
            busy,
            op,
        )))))
    }

    /// Hands `msg` to `shard` if its intake has room; otherwise returns the
    /// wait for room (boxed: the rare path, kept out of callers' futures).
    fn enqueue(&self, shard: usize, msg: Msg) -> Option<Waiting<'_>> {
        self.start();
        self.shared.pending.fetch_add(msg.len(), Ordering::AcqRel);
        match self.shards[shard].try_send(msg) {
            Ok(()) => None,
            // Backpressure: wait for room.
            Err(mpsc::error::TrySendError::Full(msg)) => Some(Box::pin(async move {
                if let Err(mpsc::error::SendError(msg)) = self.shards[shard].send(msg).await {
                    msg.abandon(&self.shared);
                }
            })),
            Err(mpsc::error::TrySendError::Closed(msg)) => {
                msg.abandon(&self.shared);
                None
            }
        }
    }

    /// Submits every op together, then waits for all their outcomes, in
    /// order. Ops of one shard (every op of one lane) are written in one
    /// batch: one transaction, unless a refusal splits it.
    ///
    /// The ops are built when this is called and handed to the writer when
    /// the future is first polled.
    pub fn write_all(
        &self,
        ops: impl IntoIterator<Item = (Option<u64>, Work, OnTransient, Option<Box<feed::Change>>)>,
    ) -> impl Future<Output = Vec<Outcome>> + Send + '_ {
        let mut waiting = Vec::new();
        let mut per_shard: Vec<Vec<Op>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for (lane, work, on_transient, change) in ops {
            let (op, rx) = Op::new(lane, work, on_transient, change);
            per_shard[self.shard_of(lane)].push(op);
            waiting.push(rx);
        }
        async move {
            for (shard, mut ops) in per_shard.into_iter().enumerate() {
                let wait = match ops.len() {
                    0 => continue,
                    // A lone op: the idle fast path, as for `write` (boxed
                    // once more, so that no op is held across an await
                    // here: the future stays small).
                    1 if waiting.len() == 1 => {
                        match self.alone(shard, ops.pop().expect("one op")) {
                            Ok(written) => Some(Box::pin(written) as Waiting<'_>),
                            Err(op) => self.enqueue(shard, Msg::One(op)),
                        }
                    }
                    1 => self.enqueue(shard, Msg::One(ops.pop().expect("one op"))),
                    _ => self.enqueue(shard, Msg::Many(ops)),
                };
                if let Some(wait) = wait {
                    wait.await;
                }
            }
            let mut outcomes = Vec::with_capacity(waiting.len());
            for rx in waiting {
                outcomes.push(answered(rx).await);
            }
            outcomes
        }
    }

    /// Waits until every op submitted before the call is written, refused
    /// or dropped (its shard's retry queue is empty), at most `timeout`;
    /// returns whether it is. Ops submitted meanwhile do not hold it back.
    pub async fn flush(&self, timeout: Duration) -> bool {
        if self.shared.pending.load(Ordering::Acquire) == 0 {
            return true;
        }
        let wait = async {
            self.start();
            let mut answers = Vec::with_capacity(self.shards.len());
            for shard in self.shards.iter() {
                let (done, answer) = oneshot::channel();
                if shard.send(Msg::Flush(done)).await.is_err() {
                    return false;
                }
                answers.push(answer);
            }
            for answer in answers {
                if answer.await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The counters.
    pub fn stats(&self) -> WriterStats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriterStats {
            commits: load(&c.commits),
            written: load(&c.written),
            statements: load(&c.statements),
            queued: load(&c.queued),
            queue_len: load(&c.queue_len),
            dropped: load(&c.dropped),
            refused: load(&c.refused),
            errors: load(&c.errors),
        }
    }
}

impl Shared {
    /// Whether changes can be recorded: makes the feed's table at the
    /// first change. An unreachable database is an error (the batch waits
    /// and tries again); a database that refuses to make it is logged once
    /// and the feed is left out.
    async fn feed_ready(&self) -> Result<bool, DbErr> {
        self.feed_ready
            .get_or_try_init(|| async {
                match feed::create_table(&self.db).await {
                    Ok(()) => Ok(true),
                    Err(err) if crate::db_error::is_transient(&err) => Err(err),
                    Err(err) => {
                        tracing::error!(error = %err,
                            "tasktrail: the change feed's table `{}` could not be made; \
                             live updates, cross-instance cancel and run timelines will not see \
                             this tracker's writes (create it with `tasktrail::schema::create`)",
                            feed::TABLE);
                        Ok(false)
                    }
                }
            })
            .await
            .copied()
    }

    /// `n` ops are finished.
    fn done(&self, n: usize) {
        if n > 0 && self.pending.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

/// A writer task: its intake, and its retry queue while the database is
/// unreachable.
struct Shard {
    shared: Arc<Shared>,
    gate: Arc<Gate>,
    rx: mpsc::Receiver<Msg>,
    retry: VecDeque<Op>,
    /// Flushes that wait for the retry queue to drain.
    flushes: Vec<oneshot::Sender<()>>,
}

/// How many times a batch that conflicted with another transaction is
/// tried again at once before it takes the outage path.
const CONFLICT_RETRIES: u32 = 3;

/// What became of a batch attempt.
enum Attempt {
    /// Everything was committed, refused ops answered.
    Written,
    /// The database is unreachable: these ops (in order) were not written.
    Unreachable(Vec<Op>, DbErr),
}

impl Shard {
    async fn run(mut self) {
        let cap = self.shared.options.batch_cap.max(1);
        let mut backoff = self.shared.options.min_backoff;
        let mut next_try = tokio::time::Instant::now();
        loop {
            if self.retry.is_empty() {
                let Some(first) = self.rx.recv().await else {
                    return;
                };
                // A caller may be writing a lone op itself: wait for it (it
                // came first).
                let gate = self.gate.clone();
                let _busy = gate.busy.lock().await;
                let mut batch = Vec::with_capacity(cap.min(64));
                let mut flushes = std::mem::take(&mut self.flushes);
                first.into_batch(&mut batch, &mut flushes);
                while batch.len() < cap {
                    match self.rx.try_recv() {
                        Ok(msg) => msg.into_batch(&mut batch, &mut flushes),
                        Err(_) => break,
                    }
                }
                self.flushes = flushes;
                if self.shared.outage.load(Ordering::Acquire) {
                    // Another shard found the database unreachable: queue
                    // behind it at once; the retry finds out when it is back.
                    for op in batch {
                        self.park(op, "the database is unreachable");
                    }
                    backoff = self.shared.options.min_backoff;
                    next_try = tokio::time::Instant::now() + backoff;
                } else if !batch.is_empty()
                    && let Attempt::Unreachable(left, err) = self.attempt(batch).await
                {
                    tracing::warn!(error = %err, ops = left.len(),
                        "tasktrail: database unreachable; writes wait in the retry queue");
                    let why = err.to_string();
                    for op in left {
                        self.park(op, &why);
                    }
                    backoff = self.shared.options.min_backoff;
                    next_try = tokio::time::Instant::now() + backoff;
                }
                self.gate
                    .degraded
                    .store(!self.retry.is_empty(), Ordering::Release);
                self.answer_flushes();
                continue;
            }
            // The database is unreachable: take what arrives into the queue
            // (answered at once), and try the queue's front at `next_try`,
            // however busy the intake.
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(next_try) => {
                    backoff = self.retry_front(cap, backoff).await;
                    next_try = tokio::time::Instant::now() + backoff;
                }
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.take_in(msg),
                    None => {
                        // Nobody can submit any more: keep trying the queue.
                        tokio::time::sleep_until(next_try).await;
                        backoff = self.retry_front(cap, backoff).await;
                        next_try = tokio::time::Instant::now() + backoff;
                    }
                },
            }
        }
    }

    /// Answers the waiting flushes once nothing waits in the retry queue.
    fn answer_flushes(&mut self) {
        if self.retry.is_empty() {
            for done in self.flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Writes up to `cap` ops from the front of the retry queue; returns
    /// the next backoff.
    async fn retry_front(&mut self, cap: usize, backoff: Duration) -> Duration {
        let n = self.retry.len().min(cap);
        let batch: Vec<Op> = self.retry.drain(..n).collect();
        // The attempt can wait long for the database (a pool waits for a
        // connection up to its acquire timeout, sqlx's default 30 s):
        // meanwhile what arrives is queued behind it and answered at once,
        // so that no caller waits for the outage.
        let shared = self.shared.clone();
        let attempt = attempt(&shared, batch);
        tokio::pin!(attempt);
        let mut open = true;
        let outcome = loop {
            tokio::select! {
                biased;
                outcome = &mut attempt => break outcome,
                msg = self.rx.recv(), if open => match msg {
                    Some(msg) => self.take_in(msg),
                    None => open = false,
                },
            }
        };
        match outcome {
            Attempt::Written => {
                self.shared
                    .counters
                    .queue_len
                    .store(self.retry.len() as u64, Ordering::Relaxed);
                if self.retry.is_empty() {
                    self.gate.degraded.store(false, Ordering::Release);
                }
                self.answer_flushes();
                self.shared.options.min_backoff
            }
            Attempt::Unreachable(left, err) => {
                tracing::debug!(error = %err, retry_in = ?backoff,
                    "tasktrail: database still unreachable");
                // Back to the front, in order.
                for op in left.into_iter().rev() {
                    self.retry.push_front(op);
                }
                self.shared
                    .counters
                    .queue_len
                    .store(self.retry.len() as u64, Ordering::Relaxed);
                (backoff * 2).min(self.shared.options.max_backoff)
            }
        }
    }

    /// Puts `op` behind the retry queue (answering it `Queued`), or answers
    /// it at once if it cannot wait or the queue is full.
    fn park(&mut self, mut op: Op, why: &str) {
        let shared = &self.shared;
        if op.on_transient == OnTransient::Fail {
            op.answer(Outcome::Unavailable(DbErr::Custom(format!(
                "the database is unreachable: {why}"
            ))));
            shared.done(1);
            return;
        }
        if self.retry.len() >= shared.options.queue_capacity {
            bump(&shared.counters.dropped, 1);
            tracing::error!(
                capacity = shared.options.queue_capacity,
                "tasktrail: the database is unreachable and the retry queue is full; a write was dropped"
            );
            op.answer(Outcome::Dropped);
            shared.done(1);
            return;
        }
        // Counted and in the queue before the caller hears `Queued`.
        let ack = op.ack.take();
        if ack.is_some() {
            bump(&shared.counters.queued, 1);
        }
        self.retry.push_back(op);
        shared
            .counters
            .queue_len
            .store(self.retry.len() as u64, Ordering::Relaxed);
        if let Some(ack) = ack {
            let _ = ack.send(Outcome::Queued);
        }
    }

    /// Writes `batch`, halving it around refused ops; answers every op it
    /// writes or refuses.
    async fn attempt(&self, batch: Vec<Op>) -> Attempt {
        attempt(&self.shared, batch).await
    }

    /// Takes what arrived while the database is unreachable into the retry
    /// queue, answering each op at once.
    fn take_in(&mut self, msg: Msg) {
        let mut ops = Vec::new();
        let mut flushes = std::mem::take(&mut self.flushes);
        msg.into_batch(&mut ops, &mut flushes);
        self.flushes = flushes;
        for op in ops {
            self.park(op, "the database is unreachable");
        }
    }
}

/// Writes `batch`, halving it around refused ops; answers every op it
/// writes or refuses.
async fn attempt(shared: &Shared, batch: Vec<Op>) -> Attempt {
    let mut todo: Vec<Vec<Op>> = vec![batch];
    let mut conflicts = 0;
    while let Some(mut part) = todo.pop() {
        match commit(shared, &mut part).await {
            Ok(()) => {
                let n = part.len();
                shared.done(n);
            }
            Err(err) if conflicts < CONFLICT_RETRIES && crate::db_error::is_conflict(&err) => {
                // A deadlock or serialization failure: the database
                // answers; try the same part again at once.
                conflicts += 1;
                bump(&shared.counters.errors, 1);
                tracing::debug!(error = %err, "tasktrail: a write conflicted with another transaction; trying again");
                todo.push(part);
            }
            // Unreachable: a transient error, or the database does not
            // answer a ping.
            Err(err) if crate::db_error::is_transient(&err) || shared.db.ping().await.is_err() => {
                bump(&shared.counters.errors, 1);
                // This part and every later one wait, in order.
                let mut left = part;
                while let Some(later) = todo.pop() {
                    left.extend(later);
                }
                // Every shard queues at once only when no connection can
                // be had (or none answers a ping): a busy database (a lock,
                // a full disk, a conflict) is this shard's to retry.
                if crate::db_error::is_unreachable(&err) || !crate::db_error::is_transient(&err) {
                    shared.outage.store(true, Ordering::Release);
                }
                return Attempt::Unreachable(left, err);
            }
            Err(err) if part.len() == 1 => {
                bump(&shared.counters.errors, 1);
                bump(&shared.counters.refused, 1);
                let op = &mut part[0];
                if op.ack.as_ref().is_some_and(|ack| !ack.is_closed()) {
                    // The caller logs it, with what it knows of the op.
                    op.answer(Outcome::Refused(err));
                } else {
                    // Answered `Queued` long ago: nobody else can say it.
                    tracing::error!(error = %err,
                        "tasktrail: a queued write was refused once the database answered; \
                         it was dropped so that later writes are not held back");
                }
                shared.done(1);
            }
            Err(_) => {
                bump(&shared.counters.errors, 1);
                // Halve: the first half is written first (lane order).
                let second = part.split_off(part.len() / 2);
                todo.push(second);
                todo.push(part);
            }
        }
    }
    shared.outage.store(false, Ordering::Release);
    Attempt::Written
}

/// Writes `ops` in one transaction (a lone op in autocommit) and, once
/// committed, answers each `Done`.
async fn commit(shared: &Shared, ops: &mut [Op]) -> Result<(), DbErr> {
    let counters = &shared.counters;
    let changes = ops.iter().any(|op| op.change.is_some());
    let feed = changes && shared.feed_ready().await?;
    let now = shared
        .options
        .clock
        .as_ref()
        .map_or_else(chrono::Utc::now, |clock| clock());
    let mut statements = batch::plan(ops, now);
    if let Some(preamble) = &shared.options.preamble {
        statements.insert(0, (preamble.clone(), Vec::new()));
    }
    if feed {
        let changes: Vec<&feed::Change> =
            ops.iter().filter_map(|op| op.change.as_deref()).collect();
        statements.extend(
            shared
                .feed
                .statements(&changes)
                .into_iter()
                .map(|stmt| (stmt, Vec::new())),
        );
    }
    let mut affected = vec![0u64; ops.len()];
    execute(
        &shared.db,
        shared.options.connection_wait,
        statements,
        &mut affected,
        &counters.statements,
    )
    .await?;
    bump(&counters.commits, 1);
    bump(&counters.written, ops.len() as u64);
    if feed {
        shared.committed.notify_one();
    }
    // Answer after the commit (and its counters): `Done` means durable.
    for (op, rows) in ops.iter_mut().zip(affected) {
        op.answer(Outcome::Done(rows));
    }
    Ok(())
}

/// [`execute`] on one sqlx pool type.
macro_rules! sqlx_batch {
    ($pool:expr, $wait:expr, $statements:expr, $affected:expr, $counter:expr) => {{
        // A connection within `$wait`: the pool alone keeps trying to
        // connect to a database that is down for its whole acquire timeout
        // (sqlx's default: 30 s), and every write behind would wait as long.
        let mut conn = match tokio::time::timeout($wait, $pool.acquire()).await {
            Ok(conn) => conn.map_err(conn_err)?,
            Err(_) => return Err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)),
        };
        let query = |stmt: sea_orm::Statement| {
            let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
            sea_orm::sqlx::query_with(
                sea_orm::sqlx::AssertSqlSafe(stmt.sql),
                sea_query_sqlx::SqlxValues(values),
            )
        };
        let statements = $statements;
        if statements.len() == 1 {
            let (stmt, rows) = statements.into_iter().next().expect("one statement");
            let result = query(stmt).execute(&mut *conn).await.map_err(exec_err)?;
            bump($counter, 1);
            record($affected, &rows, result.rows_affected());
            Ok(())
        } else {
            let mut txn = sea_orm::sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(conn_err)?;
            for (stmt, rows) in statements {
                // On an error the transaction rolls back when dropped.
                let result = query(stmt).execute(&mut *txn).await.map_err(exec_err)?;
                bump($counter, 1);
                record($affected, &rows, result.rows_affected());
            }
            txn.commit().await.map_err(exec_err)
        }
    }};
}

/// Runs `statements` in one transaction (a lone one in autocommit) and
/// records each op's rows in `affected`.
///
/// On a sqlx pool (every connection `Database::connect` opens) the
/// statements go to sqlx directly, their values moved into the arguments
/// (sea-orm's `execute_raw` copies every value once more; at a thousand
/// runs in flight that copy was 5–8 % of throughput, BENCHMARKS.md). The
/// binding is sea-orm's own (`sea-query-sqlx`), so the database receives the
/// same values either way; sea-orm's metric callback does not see these
/// statements (sqlx's statement log does, at its configured level).
async fn execute(
    db: &DatabaseConnection,
    wait: Duration,
    statements: Vec<(sea_orm::Statement, Vec<usize>)>,
    affected: &mut [u64],
    counter: &AtomicU64,
) -> Result<(), DbErr> {
    use sea_orm::DatabaseConnectionType as Inner;
    // Each statement, with how many values it binds, at TRACE on the
    // target `tasktrail::sql` (what the benches check the SQL by).
    if tracing::enabled!(target: "tasktrail::sql", tracing::Level::TRACE) {
        for (stmt, _) in &statements {
            let binds = stmt.values.as_ref().map_or(0, |v| v.0.len());
            tracing::trace!(target: "tasktrail::sql", sql = %stmt.sql, binds, "statement");
        }
    }
    match &db.inner {
        #[cfg(feature = "sqlite")]
        Inner::SqlxSqlitePoolConnection(_) => {
            sqlx_batch!(
                db.get_sqlite_connection_pool(),
                wait,
                statements,
                affected,
                counter
            )
        }
        #[cfg(feature = "postgres")]
        Inner::SqlxPostgresPoolConnection(_) => {
            sqlx_batch!(
                db.get_postgres_connection_pool(),
                wait,
                statements,
                affected,
                counter
            )
        }
        #[cfg(feature = "mysql")]
        Inner::SqlxMySqlPoolConnection(_) => {
            sqlx_batch!(
                db.get_mysql_connection_pool(),
                wait,
                statements,
                affected,
                counter
            )
        }
        #[allow(unreachable_patterns)]
        _ => {
            // Not a sqlx pool: the connection bounds its own waits.
            let _ = wait;
            if statements.len() == 1 {
                let (stmt, rows) = statements.into_iter().next().expect("one statement");
                let result = db.execute_raw(stmt).await?;
                bump(counter, 1);
                record(affected, &rows, result.rows_affected());
                return Ok(());
            }
            let txn = db.begin().await?;
            for (stmt, rows) in statements {
                match txn.execute_raw(stmt).await {
                    Ok(result) => {
                        bump(counter, 1);
                        record(affected, &rows, result.rows_affected());
                    }
                    Err(err) => {
                        let _ = txn.rollback().await;
                        return Err(err);
                    }
                }
            }
            txn.commit().await
        }
    }
}

/// A sqlx error as sea-orm reports one from a statement.
fn exec_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(Arc::new(err)))
}

/// A sqlx error as sea-orm reports one while getting a connection.
fn conn_err(err: sea_orm::sqlx::Error) -> DbErr {
    use sea_orm::sqlx::Error;
    match err {
        Error::PoolTimedOut => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        Error::PoolClosed => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(other))),
    }
}

/// A single-op statement reports its own rows; a multi-row one, one each.
fn record(affected: &mut [u64], rows: &[usize], total: u64) {
    if let [one] = rows {
        affected[*one] = total;
    } else {
        for &i in rows {
            affected[i] = 1;
        }
    }
}
