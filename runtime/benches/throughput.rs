//! Throughput of group commit (issue 13): many runs at once, every state
//! persisted, against the same statements written by hand with sqlx.
//!
//! Run with `cargo bench -p tasktrail --bench throughput`; the figures and
//! what they mean are in `BENCHMARKS.md` ("Throughput: group commit").
//!
//! **Workload.** `TASKTRAIL_BENCH_RUNS` runs (default 10,000), at most N in
//! flight at once (a client-side `tokio::sync::Semaphore`; N = 64 and
//! 1,000), each run a `tokio::spawn`ed client task. Two variants:
//!
//! * `spawn` (A): `tracker.spawn(..)`; the task calls `ctx.progress` twice
//!   with a short await between. A spawned run also writes its lease and
//!   releases it. `progress_interval` is zero, but `ctx.progress` only hands
//!   the value to the run's recorder, so a progress value still pending
//!   when the task ends is merged into the terminal event: the bench
//!   reports how many progress writes were persisted.
//! * `begin` (B): `tracker.begin(..).args(..).run(..)` where the task awaits
//!   `run.progress(30.0)` and `run.progress(60.0)`: exactly create, start,
//!   two progress and complete, each acknowledged once committed.
//!
//! **Sides**, each on its own table (same schema) and its own pool built
//! by the same sea-orm options:
//!
//! * `tracked`: tasktrail (`bench_runs`);
//! * `batched` (baseline): the same statements batched by hand
//!   (`bench_runs_batch`): writer tasks (1 on SQLite, 4 on PostgreSQL,
//!   runs spread by key, as tasktrail does) fed by a bounded mpsc channel,
//!   each client awaiting a oneshot ack; a writer takes everything queued
//!   (up to 1,024), cuts it into rounds that keep each run's order, writes
//!   each statement kind of a round as multi-row statements (power-of-two
//!   row counts up to 256, as tasktrail), all in one transaction, commits,
//!   then acks;
//! * `per_statement` (baseline): the same statements, each its own
//!   autocommit statement, awaited in turn (`bench_runs_sqlx`).
//!
//! Statements per run: create, start, progress ×2, complete; plus, for
//! `spawn`, the lease (beside create, as tasktrail writes it) and its
//! release. Before measuring, [`verify`] checks on each set-up that the
//! hand-written SQL is byte for byte what tasktrail sends — for one row and
//! for every multi-row statement tasktrail sent under load — with as many
//! binds, and that every side leaves the same rows. After each measurement
//! every run is read back (count, status, progress, result, args,
//! timestamps) and the write counters are checked; any difference panics.
//!
//! **Set-ups**: `docs` (`sea_orm::Database::connect("sqlite://…?mode=rwc")`:
//! rollback journal, `synchronous = FULL`, a pool of 1), `wal_full`
//! (`tasktrail::sqlite::connect`: WAL, FULL, pool of 4), `wal_normal`
//! (`SqliteSetup::synchronous(Normal)`), `postgres` (the test harness's
//! throwaway server, or `TASKTRAIL_TEST_PG_URL`).
//!
//! Environment: `TASKTRAIL_BENCH_RUNS` (10,000), `TASKTRAIL_BENCH_PER_STATEMENT_RUNS`
//! (runs of the per-statement baseline; default: the same, but at most
//! 2,000 on `docs` and 5,000 on `wal_full`, where it is slowest), `TASKTRAIL_BENCH_REPS` (5: tracked and batched alternate this
//! many times, the order flipping), `TASKTRAIL_BENCH_SETUPS`
//! (`docs,wal_full,wal_normal,postgres`), `TASKTRAIL_BENCH_IN_FLIGHT`
//! (`64,1000`), `TASKTRAIL_BENCH_VARIANTS` (`spawn,begin`),
//! `TASKTRAIL_BENCH_SIDES` (`tracked,batched,per_statement`),
//! `TASKTRAIL_BENCH_SQL=1` prints the statements.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{PgPool, SqlitePool};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, sqlx};
use serde_json::{Value as Json, json};
use tasktrail::TrackerOptions;
use tasktrail::sqlite::{SqliteSetup, Synchronous};
use tokio::sync::{Semaphore, mpsc, oneshot};

macro_rules! bench_entity {
    ($module:ident, $table:tt) => {
        // The hand-written sides' entities only create their tables.
        #[allow(dead_code)]
        mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key)]
                pub id: i64,
                #[sea_orm(unique)]
                pub task_key: String,
                pub task_name: String,
                pub status: String,
                pub message: Option<String>,
                pub progress_payload: Option<f64>,
                pub user_label: Option<String>,
                pub task_args: Option<Json>,
                pub result_payload: Option<Json>,
                pub created_at: DateTimeUtc,
                pub updated_at: DateTimeUtc,
                pub started_at: Option<DateTimeUtc>,
                pub completed_at: Option<DateTimeUtc>,
                pub failed_at: Option<DateTimeUtc>,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

// tasktrail's table, and the two hand-written sides' (same schema; only
// their tables are created from these).
bench_entity!(bench_run, "bench_runs");
bench_entity!(bench_run_sqlx, "bench_runs_sqlx");
bench_entity!(bench_run_batch, "bench_runs_batch");

const TRACKED_TABLE: &str = "bench_runs";
const PER_STATEMENT_TABLE: &str = "bench_runs_sqlx";
const BATCHED_TABLE: &str = "bench_runs_batch";

/// A run's arguments, the same on every side.
const ARGS: (&str, u32) = ("books.csv", 500);

fn args_json() -> Json {
    json!(ARGS)
}

/// The statuses a move to `pending` is blocked from, then those a move to
/// any other status is blocked from (`Status::blocked_from`).
const NOT_PENDING: [&str; 5] = [
    "in_progress",
    "success",
    "failed",
    "cancelled",
    "interrupted",
];
const TERMINAL: [&str; 4] = ["success", "failed", "cancelled", "interrupted"];

// ---------------------------------------------------------------------------
// The hand-written SQL
// ---------------------------------------------------------------------------

/// A statement kind: one row of it per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Lease,
    Create,
    Start,
    Progress,
    Complete,
    Release,
    /// Rows of the change feed, one per lifecycle event, written after the
    /// batch's own statements (`writer/feed.rs`).
    Change,
    /// The same, on PostgreSQL the batch's last one: with the `NOTIFY`.
    ChangeNotify,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Lease,
        Kind::Create,
        Kind::Start,
        Kind::Progress,
        Kind::Complete,
        Kind::Release,
        Kind::Change,
        Kind::ChangeNotify,
    ];

    /// Values bound by a statement of `rows` rows.
    fn binds(self, rows: usize) -> usize {
        self.params() * rows + if self == Kind::ChangeNotify { 2 } else { 0 }
    }

    /// The event's name in the change feed.
    fn event(self) -> Option<&'static str> {
        match self {
            Kind::Create => Some("create"),
            Kind::Start => Some("start"),
            Kind::Progress => Some("progress"),
            Kind::Complete => Some("complete"),
            _ => None,
        }
    }

    /// Values bound per row.
    fn params(self) -> usize {
        match self {
            Kind::Lease => 7,
            Kind::Create => 7,
            Kind::Start | Kind::Progress => 6,
            Kind::Complete => 8,
            Kind::Release => 2,
            Kind::Change | Kind::ChangeNotify => 5,
        }
    }
}

/// Rows per statement: powers of two up to this (tasktrail's cap for these
/// shapes on SQLite and PostgreSQL: `Template::max_rows`).
const MAX_ROWS: usize = 256;
const SIZES: usize = 9; // 1, 2, 4, …, 256

/// The hand-written statements of one table, for every row count: the SQL
/// tasktrail generates for this entity (see `lifecycle/write.rs` and
/// `run/store.rs`), written out once.
struct Sql {
    texts: [[&'static str; SIZES]; 8],
    pg: bool,
}

impl Sql {
    fn new(table: &str, backend: DbBackend) -> &'static Sql {
        let texts = Kind::ALL.map(|kind| {
            std::array::from_fn(|size| {
                let sql = render(table, backend, kind, 1 << size);
                &*Box::leak(sql.into_boxed_str())
            })
        });
        Box::leak(Box::new(Sql {
            texts,
            pg: backend == DbBackend::Postgres,
        }))
    }

    /// The statement for `rows` rows (a power of two, at most [`MAX_ROWS`]).
    fn text(&self, kind: Kind, rows: usize) -> &'static str {
        assert!(rows.is_power_of_two() && rows <= MAX_ROWS, "{rows} rows");
        self.texts[kind as usize][rows.ilog2() as usize]
    }

    /// The kind and row count of `sql`, if it is one of these statements.
    fn classify(&self, sql: &str) -> Option<(Kind, usize)> {
        for kind in Kind::ALL {
            for size in 0..SIZES {
                if self.texts[kind as usize][size] == sql {
                    return Some((kind, 1 << size));
                }
            }
        }
        None
    }
}

fn render(t: &str, backend: DbBackend, kind: Kind, rows: usize) -> String {
    let pg = backend == DbBackend::Postgres;
    let mut next = 0;
    let mut values = Vec::with_capacity(rows);
    // The database's clock in milliseconds (leases are timed by it).
    let now = if pg {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"
    } else {
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    };
    for _ in 0..rows {
        let marks: Vec<String> = (0..kind.params())
            .map(|_| {
                next += 1;
                if pg { format!("${next}") } else { "?".into() }
            })
            .collect();
        if kind == Kind::Lease {
            // scope, run_key, task_name, instance; started = now − elapsed,
            // heartbeat = now, expires = now + TTL, deadline = now + remaining.
            values.push(format!(
                "({}, {}, {}, {}, ({now}) - {}, {now}, ({now}) + {}, ({now}) + {})",
                marks[0], marks[1], marks[2], marks[3], marks[4], marks[5], marks[6]
            ));
        } else {
            values.push(format!("({})", marks.join(", ")));
        }
    }
    let values = values.join(", ");
    let ifnull = if pg { "COALESCE" } else { "IFNULL" };

    // The status guard: the move is allowed unless the stored status blocks
    // it.
    let guard = |col: &str, list: &[&str], then: &str| {
        let literals: Vec<String> = list.iter().map(|s| format!("'{s}'")).collect();
        format!(
            r#"(CASE WHEN ("{t}"."status" IS NULL OR "{t}"."status" NOT IN ({})) THEN {then} ELSE "{t}"."{col}" END)"#,
            literals.join(", ")
        )
    };
    let status = |list: &[&str]| guard("status", list, r#""excluded"."status""#);
    let state = |col: &str| guard(col, &TERMINAL, &format!(r#""excluded"."{col}""#));
    let fill_text = |col: &str| {
        format!(
            r#"(CASE WHEN ("{t}"."{col}" IS NULL OR "{t}"."{col}" = '') THEN "excluded"."{col}" ELSE "{t}"."{col}" END)"#
        )
    };
    let fill = |col: &str| {
        format!(
            r#"(CASE WHEN ("{t}"."{col}" IS NULL) THEN "excluded"."{col}" ELSE "{t}"."{col}" END)"#
        )
    };
    let upsert = |cols: &[&str], set: &[String]| {
        let names: Vec<String> = cols.iter().map(|c| format!(r#""{c}""#)).collect();
        format!(
            r#"INSERT INTO "{t}" ({}) VALUES {values} ON CONFLICT ("task_key") DO UPDATE SET {}"#,
            names.join(", "),
            set.join(", ")
        )
    };
    let updated_at = r#""updated_at" = "excluded"."updated_at""#.to_owned();
    match kind {
        Kind::Create => upsert(
            &[
                "task_key",
                "status",
                "updated_at",
                "created_at",
                "task_name",
                "user_label",
                "task_args",
            ],
            &[
                format!(r#""status" = {}"#, status(&NOT_PENDING)),
                updated_at,
                format!(r#""task_name" = {}"#, fill_text("task_name")),
                format!(r#""user_label" = {}"#, fill_text("user_label")),
                format!(r#""task_args" = {}"#, fill("task_args")),
            ],
        ),
        Kind::Start => upsert(
            &[
                "task_key",
                "status",
                "updated_at",
                "created_at",
                "started_at",
                "task_name",
            ],
            &[
                format!(r#""status" = {}"#, status(&TERMINAL)),
                updated_at,
                format!(
                    r#""started_at" = {}"#,
                    guard(
                        "started_at",
                        &TERMINAL,
                        &format!(r#"{ifnull}("{t}"."started_at", "excluded"."started_at")"#)
                    )
                ),
            ],
        ),
        Kind::Progress => upsert(
            &[
                "task_key",
                "status",
                "updated_at",
                "created_at",
                "progress_payload",
                "task_name",
            ],
            &[
                format!(r#""status" = {}"#, status(&TERMINAL)),
                updated_at,
                format!(r#""progress_payload" = {}"#, state("progress_payload")),
            ],
        ),
        Kind::Complete => upsert(
            &[
                "task_key",
                "status",
                "updated_at",
                "created_at",
                "completed_at",
                "result_payload",
                "progress_payload",
                "task_name",
            ],
            &[
                format!(r#""status" = {}"#, status(&TERMINAL)),
                updated_at,
                format!(r#""completed_at" = {}"#, state("completed_at")),
                format!(r#""result_payload" = {}"#, state("result_payload")),
                format!(r#""progress_payload" = {}"#, state("progress_payload")),
            ],
        ),
        Kind::Lease => format!(
            concat!(
                r#"INSERT INTO "tasktrail_leases" ("scope", "run_key", "task_name", "instance", "started_ms", "heartbeat_ms", "expires_ms", "deadline_ms") "#,
                r#"VALUES {} ON CONFLICT ("scope", "run_key") DO UPDATE SET "#,
                r#""instance" = "excluded"."instance", "heartbeat_ms" = "excluded"."heartbeat_ms", "expires_ms" = "excluded"."expires_ms""#
            ),
            values
        ),
        Kind::Release => {
            format!(r#"DELETE FROM "tasktrail_leases" WHERE ("scope", "run_key") IN ({values})"#)
        }
        Kind::Change => format!(
            "INSERT INTO tasktrail_changes (scope, run_key, kind, instance, actor) VALUES {values}"
        ),
        Kind::ChangeNotify => format!(
            "WITH c AS (INSERT INTO tasktrail_changes (scope, run_key, kind, instance, actor) VALUES {values}) SELECT pg_notify(${}, ${})",
            next + 1,
            next + 2
        ),
    }
}

/// The change feed's rows of a batch's events (in batch order): multi-row
/// inserts, the last one with the `NOTIFY` on PostgreSQL, whose payload is
/// `scope TAB key` per distinct run (only the scopes past 7,000 bytes).
fn change_statements(sql: &Sql, changes: Vec<(String, Vec<Val>)>) -> Vec<(&'static str, Vec<Val>)> {
    let mut payload = String::new();
    let mut scope = String::new();
    if sql.pg {
        let mut seen = std::collections::HashSet::new();
        for (key, vals) in &changes {
            if let Val::Text(s) = &vals[0] {
                scope.clone_from(s);
            }
            if seen.insert(key.clone()) {
                if !payload.is_empty() {
                    payload.push('\n');
                }
                payload.push_str(&scope);
                payload.push('\t');
                payload.push_str(key);
            }
        }
        if payload.len() > 7_000 {
            payload = scope;
        }
    }
    let sizes = chunks(changes.len(), MAX_ROWS);
    let last = sizes.len().saturating_sub(1);
    let mut rows = changes.into_iter();
    let mut out = Vec::with_capacity(sizes.len());
    for (n, size) in sizes.into_iter().enumerate() {
        let notify = sql.pg && n == last;
        let kind = if notify {
            Kind::ChangeNotify
        } else {
            Kind::Change
        };
        let mut vals = Vec::with_capacity(size * 5 + 2);
        for (_, mut v) in rows.by_ref().take(size) {
            vals.append(&mut v);
        }
        if notify {
            vals.push(text("tasktrail_changes"));
            vals.push(Val::Text(std::mem::take(&mut payload)));
        }
        out.push((sql.text(kind, size), vals));
    }
    out
}

/// The change feed's row of an event of `kind` on run `key`.
fn change_values(kind: Kind, key: &str, lease: &LeaseOf) -> Option<Vec<Val>> {
    let event = kind.event()?;
    Some(vec![
        text(lease.scope),
        text(key),
        text(event),
        text(&lease.instance),
        if kind == Kind::Create {
            text("anonymous")
        } else {
            Val::NoText
        },
    ])
}

// ---------------------------------------------------------------------------
// Values and pools of the hand-written sides
// ---------------------------------------------------------------------------

/// A bound value: the Rust types sea-orm binds for these columns.
enum Val {
    Text(String),
    Time(DateTime<Utc>),
    F64(f64),
    I64(i64),
    NoI64,
    NoText,
    Json(Json),
}

macro_rules! bind_vals {
    ($query:expr, $vals:expr) => {{
        let mut q = $query;
        for v in $vals {
            q = match v {
                Val::Text(s) => q.bind(s),
                Val::Time(t) => q.bind(t),
                Val::F64(f) => q.bind(f),
                Val::I64(i) => q.bind(i),
                Val::NoI64 => q.bind(None::<i64>),
                Val::NoText => q.bind(None::<String>),
                Val::Json(j) => q.bind(j),
            };
        }
        q
    }};
}

fn text(s: &str) -> Val {
    Val::Text(s.to_owned())
}

/// The values tasktrail binds for each event, in its column order.
fn values(kind: Kind, key: &str, name: &str, i: u64, lease: &LeaseOf) -> Vec<Val> {
    let now = Utc::now();
    match kind {
        Kind::Create => vec![
            text(key),
            text("pending"),
            Val::Time(now),
            Val::Time(now),
            text(name),
            text("anonymous"),
            Val::Json(args_json()),
        ],
        Kind::Start => vec![
            text(key),
            text("in_progress"),
            Val::Time(now),
            Val::Time(now),
            Val::Time(now),
            text(""),
        ],
        Kind::Progress => unreachable!("progress has its value: see `progress_values`"),
        Kind::Complete => vec![
            text(key),
            text("success"),
            Val::Time(now),
            Val::Time(now),
            Val::Time(now),
            Val::Json(json!(i)),
            Val::F64(100.0),
            text(""),
        ],
        Kind::Lease => vec![
            text(lease.scope),
            text(key),
            text(name),
            text(&lease.instance),
            Val::I64(0),
            Val::I64(30_000),
            Val::NoI64,
        ],
        Kind::Release => vec![text(lease.scope), text(key)],
        Kind::Change | Kind::ChangeNotify => unreachable!("see `change_values`"),
    }
}

fn progress_values(key: &str, percent: f64) -> Vec<Val> {
    let now = Utc::now();
    vec![
        text(key),
        text("in_progress"),
        Val::Time(now),
        Val::Time(now),
        Val::F64(percent),
        text(""),
    ]
}

/// What the hand-written sides write in the lease table: their own scope
/// (their table's name, as tasktrail's is) and an instance id.
struct LeaseOf {
    scope: &'static str,
    instance: String,
}

/// A sqlx pool of one of the backends.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Pool {
    /// One autocommit statement; returns the rows it affected.
    async fn execute(&self, sql: &'static str, vals: Vec<Val>) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => bind_vals!(sqlx::query::<sqlx::Sqlite>(sql), vals)
                .execute(p)
                .await?
                .rows_affected(),
            Pool::Pg(p) => bind_vals!(sqlx::query::<sqlx::Postgres>(sql), vals)
                .execute(p)
                .await?
                .rows_affected(),
        })
    }

    /// The statements in one transaction (a lone one in autocommit, as
    /// tasktrail does); returns the rows each affected.
    async fn commit(&self, stmts: Vec<(&'static str, Vec<Val>)>) -> Result<Vec<u64>, sqlx::Error> {
        let mut affected = Vec::with_capacity(stmts.len());
        if stmts.len() == 1 {
            let (sql, vals) = stmts.into_iter().next().expect("one statement");
            affected.push(self.execute(sql, vals).await?);
            return Ok(affected);
        }
        match self {
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for (sql, vals) in stmts {
                    let done = bind_vals!(sqlx::query::<sqlx::Sqlite>(sql), vals)
                        .execute(&mut *tx)
                        .await?;
                    affected.push(done.rows_affected());
                }
                tx.commit().await?;
            }
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                for (sql, vals) in stmts {
                    let done = bind_vals!(sqlx::query::<sqlx::Postgres>(sql), vals)
                        .execute(&mut *tx)
                        .await?;
                    affected.push(done.rows_affected());
                }
                tx.commit().await?;
            }
        }
        Ok(affected)
    }
}

// ---------------------------------------------------------------------------
// The hand-batched writer
// ---------------------------------------------------------------------------

/// Ops one transaction takes at most, and the intake's capacity: as
/// tasktrail's writer (`WriterOptions::default`).
const BATCH_CAP: usize = 1_024;
const INTAKE: usize = 8_192;

struct BatchOp {
    lane: u64,
    kind: Kind,
    vals: Vec<Val>,
    /// The op's row in the change feed (lifecycle events).
    change: Option<(String, Vec<Val>)>,
    ack: oneshot::Sender<Result<u64, String>>,
}

#[derive(Default)]
struct BatchCounters {
    written: AtomicU64,
    commits: AtomicU64,
    statements: AtomicU64,
}

/// The client side of the hand-batched writers.
#[derive(Clone)]
struct BatchClient {
    shards: Arc<[mpsc::Sender<BatchOp>]>,
    counters: Arc<BatchCounters>,
}

fn lane_of(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl BatchClient {
    fn start(pool: Pool, sql: &'static Sql, shards: usize) -> BatchClient {
        let counters = Arc::new(BatchCounters::default());
        let senders: Vec<_> = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(INTAKE);
                tokio::spawn(batch_writer(pool.clone(), sql, rx, counters.clone()));
                tx
            })
            .collect();
        BatchClient {
            shards: senders.into(),
            counters,
        }
    }

    /// Sends several ops of one run at once (in order), then waits for
    /// each: how tasktrail hands over a run's `create` and `start`.
    async fn write_all(&self, key: &str, ops: Vec<(Kind, Vec<Val>, Option<Vec<Val>>)>) -> Vec<u64> {
        let lane = lane_of(key);
        let shard = (lane % self.shards.len() as u64) as usize;
        let mut waiting = Vec::with_capacity(ops.len());
        for (kind, vals, change) in ops {
            let (ack, done) = oneshot::channel();
            let op = BatchOp {
                lane,
                kind,
                vals,
                change: change.map(|c| (key.to_owned(), c)),
                ack,
            };
            if self.shards[shard].send(op).await.is_err() {
                panic!("the hand-batched writer has stopped");
            }
            waiting.push(done);
        }
        let mut rows = Vec::with_capacity(waiting.len());
        for done in waiting {
            rows.push(match done.await {
                Ok(Ok(rows)) => rows,
                Ok(Err(err)) => panic!("the hand-batched writer failed: {err}"),
                Err(_) => panic!("the hand-batched writer dropped an op"),
            });
        }
        rows
    }

    async fn write(&self, key: &str, kind: Kind, vals: Vec<Val>, change: Option<Vec<Val>>) -> u64 {
        let lane = lane_of(key);
        let (ack, done) = oneshot::channel();
        let shard = (lane % self.shards.len() as u64) as usize;
        let op = BatchOp {
            lane,
            kind,
            vals,
            change: change.map(|c| (key.to_owned(), c)),
            ack,
        };
        if self.shards[shard].send(op).await.is_err() {
            panic!("the hand-batched writer has stopped");
        }
        match done.await {
            Ok(Ok(rows)) => rows,
            Ok(Err(err)) => panic!("the hand-batched writer failed: {err}"),
            Err(_) => panic!("the hand-batched writer dropped an op"),
        }
    }
}

/// Power-of-two chunks, largest first, none above `max`.
fn chunks(mut n: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n > 0 {
        let size = if n >= max { max } else { 1 << n.ilog2() };
        out.push(size);
        n -= size;
    }
    out
}

async fn batch_writer(
    pool: Pool,
    sql: &'static Sql,
    mut rx: mpsc::Receiver<BatchOp>,
    counters: Arc<BatchCounters>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_CAP {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // Round r holds the r-th op of each run, in batch order.
        let mut seen: HashMap<u64, usize> = HashMap::with_capacity(batch.len());
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        for (i, op) in batch.iter().enumerate() {
            let n = seen.entry(op.lane).or_insert(0);
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(i);
            *n += 1;
        }
        // Per round, one group per kind in order of first appearance, cut
        // into multi-row statements.
        let mut stmts: Vec<(&'static str, Vec<Val>)> = Vec::new();
        let mut rows_of: Vec<usize> = Vec::new();
        for round in rounds {
            let mut groups: Vec<(Kind, Vec<usize>)> = Vec::new();
            for i in round {
                let kind = batch[i].kind;
                match groups.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, rows)) => rows.push(i),
                    None => groups.push((kind, vec![i])),
                }
            }
            for (kind, rows) in groups {
                let mut rest = rows.as_slice();
                for size in chunks(rows.len(), MAX_ROWS) {
                    let (these, later) = rest.split_at(size);
                    rest = later;
                    let mut vals = Vec::with_capacity(size * kind.params());
                    for &i in these {
                        vals.append(&mut batch[i].vals);
                    }
                    stmts.push((sql.text(kind, size), vals));
                    rows_of.push(size);
                }
            }
        }
        // The change feed's rows, in batch order, in the same transaction.
        let changes: Vec<(String, Vec<Val>)> =
            batch.iter_mut().filter_map(|op| op.change.take()).collect();
        if !changes.is_empty() {
            for stmt in change_statements(sql, changes) {
                stmts.push(stmt);
                rows_of.push(0);
            }
        }
        let n_stmts = stmts.len() as u64;
        let result = pool.commit(stmts).await;
        match result {
            Ok(affected) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.statements.fetch_add(n_stmts, Ordering::Relaxed);
                // A lone op hears its own row count; a multi-row statement's
                // rows are one each (as tasktrail answers).
                let lone = batch.len() == 1;
                for op in batch {
                    let _ = op.ack.send(Ok(if lone { affected[0] } else { 1 }));
                }
                debug_assert_eq!(rows_of.len(), affected.len());
            }
            Err(err) => {
                let err = err.to_string();
                for op in batch {
                    let _ = op.ack.send(Err(err.clone()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The hand-written runs
// ---------------------------------------------------------------------------

/// A hand-written side: each statement on its own, or through the
/// hand-batched writer.
#[derive(Clone)]
enum Hand {
    PerStatement {
        pool: Pool,
        sql: &'static Sql,
        lease: Arc<LeaseOf>,
    },
    Batched {
        client: BatchClient,
        lease: Arc<LeaseOf>,
    },
}

impl Hand {
    fn lease(&self) -> &LeaseOf {
        match self {
            Hand::PerStatement { lease, .. } | Hand::Batched { lease, .. } => lease,
        }
    }

    async fn write(&self, key: &str, kind: Kind, vals: Vec<Val>) {
        let change = change_values(kind, key, self.lease());
        let rows = match self {
            // An event and its change in one transaction (as tasktrail
            // writes a lone event); a lease or a release alone.
            Hand::PerStatement { pool, sql, .. } => {
                let mut stmts = vec![(sql.text(kind, 1), vals)];
                if let Some(change) = change {
                    stmts.extend(change_statements(sql, vec![(key.to_owned(), change)]));
                }
                pool.commit(stmts)
                    .await
                    .unwrap_or_else(|e| panic!("the hand-written `{kind:?}` failed: {e}"))[0]
            }
            Hand::Batched { client, .. } => client.write(key, kind, vals, change).await,
        };
        assert_eq!(
            rows, 1,
            "the hand-written `{kind:?}` of `{key}` affected {rows} rows"
        );
    }

    async fn event(&self, kind: Kind, key: &str, name: &str, i: u64) {
        self.write(key, kind, values(kind, key, name, i, self.lease()))
            .await;
    }

    /// One run: (lease beside) create, start, progress 30 and 60, complete
    /// with `i`, (release).
    async fn run(&self, variant: Variant, key: &str, name: &str, i: u64) {
        let create = self.event(Kind::Create, key, name, i);
        match (variant, self) {
            (Variant::Spawn, _) => {
                // tasktrail writes the lease and the create event at once.
                tokio::join!(self.event(Kind::Lease, key, name, i), create);
                self.event(Kind::Start, key, name, i).await;
            }
            (Variant::Begin, Hand::Batched { client, lease }) => {
                // `begin(..).run(..)` hands `create` and `start` over
                // together; the baseline does the same.
                drop(create);
                let both = vec![
                    (
                        Kind::Create,
                        values(Kind::Create, key, name, i, lease),
                        change_values(Kind::Create, key, lease),
                    ),
                    (
                        Kind::Start,
                        values(Kind::Start, key, name, i, lease),
                        change_values(Kind::Start, key, lease),
                    ),
                ];
                let rows = client.write_all(key, both).await;
                assert_eq!(rows, [1, 1], "the hand-batched create and start of `{key}`");
            }
            (Variant::Begin, Hand::PerStatement { .. }) => {
                create.await;
                self.event(Kind::Start, key, name, i).await;
            }
        }
        self.write(key, Kind::Progress, progress_values(key, 30.0))
            .await;
        self.write(key, Kind::Progress, progress_values(key, 60.0))
            .await;
        self.event(Kind::Complete, key, name, i).await;
        if variant == Variant::Spawn {
            self.event(Kind::Release, key, name, i).await;
        }
    }
}

// ---------------------------------------------------------------------------
// Set-ups
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// A: `tracker.spawn`, `ctx.progress` twice.
    Spawn,
    /// B: `tracker.begin(..).run(..)`, `run.progress` twice.
    Begin,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Spawn => "spawn",
            Variant::Begin => "begin",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SideKind {
    Tracked,
    Batched,
    PerStatement,
}

impl SideKind {
    fn name(self) -> &'static str {
        match self {
            SideKind::Tracked => "tracked",
            SideKind::Batched => "batched",
            SideKind::PerStatement => "per_statement",
        }
    }

    fn table(self) -> &'static str {
        match self {
            SideKind::Tracked => TRACKED_TABLE,
            SideKind::Batched => BATCHED_TABLE,
            SideKind::PerStatement => PER_STATEMENT_TABLE,
        }
    }
}

#[derive(Clone, Debug)]
enum Open {
    /// `sea_orm::Database::connect(url)`, as the docs show.
    Docs(String),
    /// `tasktrail::sqlite`'s set-up.
    Helper(String, Synchronous),
    /// `sea_orm::Database::connect(url)` on PostgreSQL.
    Postgres(String),
}

impl Open {
    async fn connect(&self) -> DatabaseConnection {
        match self {
            Open::Docs(url) | Open::Postgres(url) => Database::connect(url.as_str()).await,
            Open::Helper(url, sync) => SqliteSetup::new(url).synchronous(*sync).connect().await,
        }
        .unwrap_or_else(|e| panic!("open {self:?}: {e}"))
    }

    /// A pool with the same settings, for a hand-written side.
    async fn pool(&self) -> Pool {
        let db = self.connect().await;
        match self {
            Open::Postgres(_) => Pool::Pg(db.get_postgres_connection_pool().clone()),
            _ => Pool::Sqlite(db.get_sqlite_connection_pool().clone()),
        }
    }
}

struct Setup {
    name: &'static str,
    open: Open,
    backend: DbBackend,
    db: DatabaseConnection,
    per_statement: Pool,
    batched: Pool,
    /// Writer tasks: tasktrail's shards on this backend.
    shards: usize,
    per_statement_runs: usize,
    _dir: Option<tempfile::TempDir>,
}

impl Setup {
    async fn new(name: &'static str, runs: usize) -> Setup {
        let (open, dir) = match name {
            "postgres" => (
                Open::Postgres(tasktrail_tests::pg::fresh_database().await),
                None,
            ),
            _ => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{name}.sqlite")).display()
                );
                let open = match name {
                    "docs" => Open::Docs(url),
                    "wal_full" => Open::Helper(url, Synchronous::Full),
                    "wal_normal" => Open::Helper(url, Synchronous::Normal),
                    other => panic!("unknown set-up `{other}`"),
                };
                (open, Some(dir))
            }
        };
        let db = open.connect().await;
        let backend = db.get_database_backend();
        tasktrail::schema::create::<bench_run::Model>(&db)
            .await
            .expect("create bench_runs");
        tasktrail::schema::create::<bench_run_sqlx::Model>(&db)
            .await
            .expect("create bench_runs_sqlx");
        tasktrail::schema::create::<bench_run_batch::Model>(&db)
            .await
            .expect("create bench_runs_batch");
        let per_statement_runs = env_usize(
            "TASKTRAIL_BENCH_PER_STATEMENT_RUNS",
            // The slowest baselines get fewer runs (a rate over ≥ 10 s).
            match name {
                "docs" => runs.min(2_000),
                "wal_full" => runs.min(5_000),
                _ => runs,
            },
        );
        Setup {
            name,
            backend,
            per_statement: open.pool().await,
            batched: open.pool().await,
            db,
            shards: if backend == DbBackend::Postgres { 4 } else { 1 },
            per_statement_runs,
            open,
            _dir: dir,
        }
    }

    fn hand(&self, side: SideKind) -> Hand {
        let lease = Arc::new(LeaseOf {
            scope: side.table(),
            instance: uuid::Uuid::now_v7().to_string(),
        });
        match side {
            SideKind::PerStatement => Hand::PerStatement {
                pool: self.per_statement.clone(),
                sql: Sql::new(side.table(), self.backend),
                lease,
            },
            SideKind::Batched => Hand::Batched {
                client: BatchClient::start(
                    self.batched.clone(),
                    Sql::new(side.table(), self.backend),
                    self.shards,
                ),
                lease,
            },
            SideKind::Tracked => unreachable!("the tracked side is tasktrail"),
        }
    }

    /// Pragmas, for the report.
    async fn describe(&self) -> String {
        if self.backend == DbBackend::Postgres {
            let mut out = Vec::new();
            for setting in [
                "server_version",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
            ] {
                let row = self
                    .db
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        format!("SHOW {setting}"),
                    ))
                    .await
                    .expect("SHOW")
                    .expect("a row");
                let v: String = row.try_get_by_index(0).expect("a setting");
                out.push(format!("{setting} = {v}"));
            }
            let pool = match &self.per_statement {
                Pool::Pg(p) => p.options().get_max_connections(),
                Pool::Sqlite(_) => unreachable!(),
            };
            return format!("{}, pool of {pool}", out.join(", "));
        }
        let mut out = Vec::new();
        for pragma in ["journal_mode", "synchronous", "busy_timeout"] {
            let row = self
                .db
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    format!("PRAGMA {pragma}"),
                ))
                .await
                .expect("PRAGMA")
                .expect("a row");
            let v = row
                .try_get_by_index::<i64>(0)
                .map(|v| v.to_string())
                .or_else(|_| row.try_get_by_index::<String>(0))
                .expect("a pragma");
            out.push(format!("{pragma} = {v}"));
        }
        let pool = match &self.per_statement {
            Pool::Sqlite(p) => p.options().get_max_connections(),
            Pool::Pg(_) => unreachable!(),
        };
        format!("{}, pool of {pool}", out.join(", "))
    }
}

fn tracker_options() -> TrackerOptions {
    TrackerOptions {
        progress_interval: Duration::ZERO,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Driving and checking
// ---------------------------------------------------------------------------

/// Runs `runs` client tasks, at most `in_flight` at once; each returns its
/// run's key. Returns the wall time and the keys with their index.
async fn drive<F, Fut>(in_flight: usize, runs: usize, body: F) -> (Duration, Vec<(String, u64)>)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = String> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut clients = Vec::with_capacity(runs);
    let began = Instant::now();
    for i in 0..runs as u64 {
        let permit = gate.clone().acquire_owned().await.expect("the gate");
        let run = body(i);
        clients.push(tokio::spawn(async move {
            let key = run.await;
            drop(permit);
            (key, i)
        }));
    }
    let mut keys = Vec::with_capacity(runs);
    for client in clients {
        keys.push(client.await.expect("a client task panicked"));
    }
    (began.elapsed(), keys)
}

/// The short await between the two `ctx.progress` calls of variant A.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// One measurement's figures.
#[derive(Clone, Debug, Default)]
struct Measured {
    runs: usize,
    secs: f64,
    writes: u64,
    commits: u64,
    statements: u64,
    progress_writes: u64,
    cpu: Usage,
    /// Failed commits (tasktrail's counter) and ops they sent to the
    /// retry queue.
    write_errors: u64,
    queued: u64,
    /// Runs whose lease was still there after the measurement.
    leases_left: usize,
}

impl Measured {
    fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.secs
    }
    /// CPU time of this process per run, in µs.
    fn cpu_per_run(&self) -> f64 {
        self.cpu.mine * self.secs / self.runs as f64 * 1e6
    }
    fn per_commit(&self) -> f64 {
        self.writes as f64 / self.commits.max(1) as f64
    }
}

static MEASUREMENT: AtomicU64 = AtomicU64::new(0);

async fn measure(
    setup: &Setup,
    side: SideKind,
    variant: Variant,
    in_flight: usize,
    runs: usize,
) -> Measured {
    let id = MEASUREMENT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}_{in_flight}_{id}", variant.name());
    let cpu = Cpu::now();
    let mut m = Measured {
        runs,
        ..Measured::default()
    };
    let keys = match side {
        SideKind::Tracked => {
            let tracker = bench_run::Tracker::with_options(setup.db.clone(), tracker_options());
            let (elapsed, keys) = match variant {
                Variant::Spawn => {
                    drive(in_flight, runs, |i| {
                        let (tracker, name) = (tracker.clone(), name.clone());
                        async move {
                            let run = tracker
                                .spawn(name, &ARGS, move |ctx| async move {
                                    ctx.progress(30.0);
                                    pause().await;
                                    ctx.progress(60.0);
                                    Ok::<u64, String>(i)
                                })
                                .await
                                .expect("spawn");
                            let key = run.key().to_owned();
                            assert_eq!(run.await.expect("a spawned run"), i);
                            key
                        }
                    })
                    .await
                }
                Variant::Begin => {
                    drive(in_flight, runs, |i| {
                        let (tracker, name) = (tracker.clone(), name.clone());
                        async move {
                            let run = tracker.begin(name).args(&ARGS);
                            let key = run.run_key().to_owned();
                            let out = run
                                .run(|run| async move {
                                    run.progress(30.0).await;
                                    run.progress(60.0).await;
                                    Ok::<u64, String>(i)
                                })
                                .await;
                            assert_eq!(out.expect("a tracked run"), i);
                            key
                        }
                    })
                    .await
                }
            };
            m.secs = elapsed.as_secs_f64();
            m.cpu = cpu.usage(elapsed);
            // Counted once everything is written (ops sent to the retry
            // queue by a failed commit are written after the runs ended).
            if variant == Variant::Spawn {
                let report = tracker.shutdown(Duration::from_secs(30)).await;
                assert!(report.flushed, "{name}: shutdown {report:?}");
            } else {
                assert!(
                    tracker.flush(Duration::from_secs(30)).await,
                    "{name}: flush"
                );
            }
            let stats = tracker.stats();
            // Nothing may be lost. A failed commit the writer took for an
            // outage (PostgreSQL's deadlock detection, for one) sends its
            // ops to the retry queue: they are written later, and counted
            // here; the read-back below checks they all landed.
            assert!(
                stats.refused == 0 && stats.dropped == 0,
                "{}/{name}: errors: {stats:?}",
                setup.name
            );
            m.write_errors = stats.write_errors;
            m.queued = stats.queued;
            // Each run: create, start, complete, and its progress writes;
            // a spawned run also its lease and release.
            let events = match variant {
                Variant::Spawn => 5 * runs as u64 + stats.progress_writes,
                Variant::Begin => 5 * runs as u64,
            };
            match variant {
                Variant::Begin => assert_eq!(stats.writes, events, "{name}: {stats:?}"),
                Variant::Spawn => assert!(stats.writes >= events, "{name}: {stats:?}"),
            }
            if stats.writes != events {
                println!("    ({} writes besides the runs')", stats.writes - events);
            }
            m.writes = stats.writes;
            m.commits = stats.commits;
            m.statements = stats.statements;
            m.progress_writes = match variant {
                Variant::Spawn => stats.progress_writes,
                Variant::Begin => 2 * runs as u64,
            };
            keys
        }
        SideKind::Batched | SideKind::PerStatement => {
            let hand = setup.hand(side);
            let (elapsed, keys) = drive(in_flight, runs, |i| {
                let (hand, name) = (hand.clone(), name.clone());
                async move {
                    let key = uuid::Uuid::now_v7().to_string();
                    hand.run(variant, &key, &name, i).await;
                    key
                }
            })
            .await;
            m.secs = elapsed.as_secs_f64();
            m.cpu = cpu.usage(elapsed);
            let events = match variant {
                Variant::Spawn => 7 * runs as u64,
                Variant::Begin => 5 * runs as u64,
            };
            m.progress_writes = 2 * runs as u64;
            match &hand {
                Hand::Batched { client, .. } => {
                    let c = &client.counters;
                    m.writes = c.written.load(Ordering::Relaxed);
                    m.commits = c.commits.load(Ordering::Relaxed);
                    m.statements = c.statements.load(Ordering::Relaxed);
                    assert_eq!(m.writes, events, "{name}: hand-batched ops written");
                }
                Hand::PerStatement { .. } => {
                    m.writes = events;
                    m.commits = events;
                    m.statements = events;
                }
            }
            keys
        }
    };
    m.leases_left = check(setup, side, variant, &name, &keys).await;
    m
}

/// One stored run, read back.
#[derive(Debug, PartialEq)]
struct Back {
    key: String,
    name: String,
    status: String,
    message: Option<String>,
    progress: Option<f64>,
    user: Option<String>,
    args: Option<Json>,
    result: Option<Json>,
    started: bool,
    completed: bool,
    failed: bool,
}

async fn read_back(db: &DatabaseConnection, table: &str, name: &str) -> Vec<Back> {
    let backend = db.get_database_backend();
    let mark = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let sql = format!(
        r#"SELECT "task_key", "task_name", "status", "message", "progress_payload", "user_label", "task_args", "result_payload", "started_at", "completed_at", "failed_at" FROM "{table}" WHERE "task_name" = {mark}"#
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [name.into()]))
        .await
        .expect("read the runs back");
    rows.into_iter()
        .map(|row| {
            let time = |col: &str| {
                row.try_get::<Option<DateTime<Utc>>>("", col)
                    .unwrap_or_else(|e| panic!("read {col}: {e}"))
                    .is_some()
            };
            Back {
                key: row.try_get("", "task_key").expect("task_key"),
                name: row.try_get("", "task_name").expect("task_name"),
                status: row.try_get("", "status").expect("status"),
                message: row.try_get("", "message").expect("message"),
                progress: row.try_get("", "progress_payload").expect("progress"),
                user: row.try_get("", "user_label").expect("user_label"),
                args: row.try_get("", "task_args").expect("task_args"),
                result: row.try_get("", "result_payload").expect("result"),
                started: time("started_at"),
                completed: time("completed_at"),
                failed: time("failed_at"),
            }
        })
        .collect()
}

async fn leases(db: &DatabaseConnection, scope: &str) -> i64 {
    let backend = db.get_database_backend();
    let mark = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(r#"SELECT COUNT(*) AS "n" FROM "tasktrail_leases" WHERE "scope" = {mark}"#),
            [scope.into()],
        ))
        .await
        .expect("count leases")
        .expect("a count");
    row.try_get("", "n").expect("a count")
}

/// Every run of the measurement is stored, and as it should be: one row
/// per key, `success`, progress 100, its result, its args, started and
/// completed; no lease left.
async fn check(
    setup: &Setup,
    side: SideKind,
    variant: Variant,
    name: &str,
    keys: &[(String, u64)],
) -> usize {
    let rows = read_back(&setup.db, side.table(), name).await;
    let what = format!("{}/{}/{name}", setup.name, side.name());
    assert_eq!(rows.len(), keys.len(), "{what}: rows stored");
    let want: HashMap<&str, u64> = keys.iter().map(|(k, i)| (k.as_str(), *i)).collect();
    assert_eq!(want.len(), keys.len(), "{what}: keys are unique");
    for row in &rows {
        let Some(&i) = want.get(row.key.as_str()) else {
            panic!("{what}: a row for an unknown key: {row:?}")
        };
        let expected = Back {
            key: row.key.clone(),
            name: name.to_owned(),
            status: "success".into(),
            message: None,
            progress: Some(100.0),
            user: Some("anonymous".into()),
            args: Some(args_json()),
            result: Some(json!(i)),
            started: true,
            completed: true,
            failed: false,
        };
        assert_eq!(row, &expected, "{what}: a run was stored otherwise");
    }
    if variant != Variant::Spawn {
        return 0;
    }
    // The runs' leases are gone: released by each run at its end. On
    // tasktrail's side a lease can come back: the heartbeat writes leases
    // outside the writer, so its insert of a lease that waited in the
    // retry queue can land after the run's release. Counted and reported
    // (after a moment for a heartbeat still in flight), not fatal.
    let mut left = leases_of(&setup.db, side.table(), &want).await;
    if left > 0 && side == SideKind::Tracked {
        tokio::time::sleep(Duration::from_secs(2)).await;
        left = leases_of(&setup.db, side.table(), &want).await;
    } else {
        assert_eq!(left, 0, "{what}: leases left behind");
    }
    left
}

/// How many of the runs in `keys` still have a lease.
async fn leases_of(db: &DatabaseConnection, scope: &str, keys: &HashMap<&str, u64>) -> usize {
    let backend = db.get_database_backend();
    let mark = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(r#"SELECT "run_key" FROM "tasktrail_leases" WHERE "scope" = {mark}"#),
            [scope.into()],
        ))
        .await
        .expect("read leases");
    rows.iter()
        .filter(|row| {
            let key: String = row.try_get("", "run_key").expect("run_key");
            keys.contains_key(key.as_str())
        })
        .count()
}

// ---------------------------------------------------------------------------
// Verification: the hand-written SQL is tasktrail's
// ---------------------------------------------------------------------------

type Captured = Arc<Mutex<Vec<(String, usize)>>>;

/// Statements a tracker sends besides the runs' own (maintenance, the
/// set-up check, the recovery sweep of lapsed locks and leases), which the
/// hand-written sides need not send.
fn maintenance(sql: &str) -> bool {
    sql.starts_with("SELECT")
        || sql.starts_with("PRAGMA")
        || sql.starts_with("SHOW")
        || sql.contains(r#""expires_ms" < "#)
}

/// The statements other than the change feed's, and the feed's rows.
fn without_changes(kinds: Vec<(Kind, usize)>) -> (Vec<(Kind, usize)>, usize) {
    let (changes, rest): (Vec<_>, Vec<_>) = kinds
        .into_iter()
        .partition(|(k, _)| matches!(k, Kind::Change | Kind::ChangeNotify));
    (rest, changes.iter().map(|(_, rows)| rows).sum())
}

/// Classifies captured statements: each must be one of the hand-written
/// statements (any row count) with as many binds, or maintenance.
fn classify(sql: &Sql, captured: Vec<(String, usize)>, print: bool) -> Vec<(Kind, usize)> {
    let mut out = Vec::new();
    for (text, binds) in captured {
        match sql.classify(&text) {
            Some((kind, rows)) => {
                assert_eq!(binds, kind.binds(rows), "`{kind:?}` × {rows}: bind count");
                out.push((kind, rows));
            }
            None if maintenance(&text) => {
                if print {
                    println!("-- maintenance ({binds} binds)\n{text}\n");
                }
            }
            None => panic!(
                "tasktrail sent a statement the hand-written sides do not have ({binds} binds):\n{text}"
            ),
        }
    }
    out
}

/// On `setup`'s database, through a second connection that records every
/// statement: checks that tasktrail sends exactly the hand-written SQL, for
/// one run at a time and under load (multi-row), and that the hand-written
/// sides store the same runs.
async fn verify(setup: &Setup) {
    let print = std::env::var_os("TASKTRAIL_BENCH_SQL").is_some();
    let mut db = setup.open.connect().await;
    let captured: Captured = Arc::default();
    let sink = captured.clone();
    db.set_metric_callback(move |info| {
        let binds = info.statement.values.as_ref().map_or(0, |v| v.0.len());
        sink.lock()
            .expect("lock")
            .push((info.statement.sql.clone(), binds));
    });
    tasktrail_tests::sql_capture::start(captured.clone());
    let take = || std::mem::take(&mut *captured.lock().expect("lock"));
    let sql = Sql::new(TRACKED_TABLE, setup.backend);
    let tracker = bench_run::Tracker::with_options(db.clone(), tracker_options());
    let n = |kinds: &[(Kind, usize)]| {
        let mut v: Vec<Kind> = kinds.iter().map(|k| k.0).collect();
        v.sort();
        v
    };

    // One `begin` run: exactly create, start, progress, progress, complete.
    take();
    let run = tracker.begin("verify_begin").args(&ARGS);
    let key_b = run.run_key().to_owned();
    let out = run
        .run(|run| async move {
            run.progress(30.0).await;
            run.progress(60.0).await;
            Ok::<u64, String>(7)
        })
        .await;
    assert_eq!(out.expect("the verify run"), 7);
    let (kinds, changes) = without_changes(classify(sql, take(), print));
    assert_eq!(changes, 5, "a change per event of the `begin` run");
    assert_eq!(
        kinds,
        [
            Kind::Create,
            Kind::Start,
            Kind::Progress,
            Kind::Progress,
            Kind::Complete
        ]
        .map(|k| (k, 1)),
        "the statements of one `begin` run"
    );

    // One spawned run, slow enough for both progress writes.
    let spawned = tracker
        .spawn("verify_spawn", &ARGS, |ctx| async move {
            ctx.progress(30.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.progress(60.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<u64, String>(7)
        })
        .await
        .expect("spawn");
    let key_a = spawned.key().to_owned();
    assert_eq!(spawned.await.expect("the verify spawn"), 7);
    let (mut kinds, changes) = without_changes(classify(sql, take(), print));
    assert_eq!(changes, 5, "a change per event of the spawned run");
    // The maintenance's heartbeat (its first tick comes at once) writes the
    // live runs' leases again, with the same statement.
    let leases_written = kinds.iter().filter(|k| k.0 == Kind::Lease).count();
    if leases_written > 1 {
        println!(
            "  (the heartbeat refreshed the verify run's lease {} times)",
            leases_written - 1
        );
        let mut first = true;
        kinds.retain(|k| k.0 != Kind::Lease || std::mem::take(&mut first));
    }
    assert_eq!(
        n(&kinds),
        [
            Kind::Lease,
            Kind::Create,
            Kind::Start,
            Kind::Progress,
            Kind::Progress,
            Kind::Complete,
            Kind::Release
        ],
        "the statements of one spawned run: {kinds:?}"
    );
    assert!(kinds.iter().all(|k| k.1 == 1), "{kinds:?}");
    if print {
        for kind in Kind::ALL {
            println!(
                "-- {kind:?} ({} binds per row), one row, {}:\n{}\n",
                kind.params(),
                setup.name,
                sql.text(kind, 1)
            );
        }
        println!("-- two rows:\n{}\n", sql.text(Kind::Release, 2));
    }

    // The hand-written sides store the same runs.
    let tracked_b = read_back(&db, TRACKED_TABLE, "verify_begin").await;
    let tracked_a = read_back(&db, TRACKED_TABLE, "verify_spawn").await;
    for side in [SideKind::PerStatement, SideKind::Batched] {
        let hand = setup.hand(side);
        for (variant, name, tracked) in [
            (Variant::Begin, "verify_begin", &tracked_b),
            (Variant::Spawn, "verify_spawn", &tracked_a),
        ] {
            let key = format!("verify-{}-{}", side.name(), variant.name());
            hand.run(variant, &key, name, 7).await;
            let mut stored = read_back(&db, side.table(), name).await;
            assert_eq!(stored.len(), 1);
            stored[0].key.clone_from(&tracked[0].key);
            assert_eq!(
                stored,
                *tracked,
                "{}/{}: the hand-written run is stored otherwise",
                setup.name,
                side.name()
            );
            if setup.backend == DbBackend::Sqlite {
                let tracked_key = if variant == Variant::Begin {
                    &key_b
                } else {
                    &key_a
                };
                assert_eq!(
                    storage(&db, TRACKED_TABLE, tracked_key).await,
                    storage(&db, side.table(), &key).await,
                    "{}: the hand-written side binds other types",
                    side.name()
                );
            }
        }
        assert_eq!(leases(&db, side.table()).await, 0);
    }

    // Under load: every multi-row statement tasktrail sends is the
    // hand-written one for that many rows.
    take();
    let mut sizes: HashMap<(Kind, usize), usize> = HashMap::new();
    for variant in [Variant::Begin, Variant::Spawn] {
        let name = format!("verify_load_{}", variant.name());
        let (_, keys) = drive(256, 512, |i| {
            let (tracker, name) = (tracker.clone(), name.clone());
            async move {
                match variant {
                    Variant::Begin => {
                        let run = tracker.begin(name).args(&ARGS);
                        let key = run.run_key().to_owned();
                        run.run(|run| async move {
                            run.progress(30.0).await;
                            run.progress(60.0).await;
                            Ok::<u64, String>(i)
                        })
                        .await
                        .expect("a run");
                        key
                    }
                    Variant::Spawn => {
                        let run = tracker
                            .spawn(name, &ARGS, move |ctx| async move {
                                ctx.progress(30.0);
                                pause().await;
                                ctx.progress(60.0);
                                Ok::<u64, String>(i)
                            })
                            .await
                            .expect("spawn");
                        let key = run.key().to_owned();
                        run.await.expect("a spawned run");
                        key
                    }
                }
            }
        })
        .await;
        let rows = read_back(&db, TRACKED_TABLE, &name).await;
        assert_eq!(rows.len(), keys.len());
        for (kind, rows) in classify(sql, take(), false) {
            *sizes.entry((kind, rows)).or_default() += 1;
        }
    }
    let multi: usize = sizes
        .iter()
        .filter(|((_, rows), _)| *rows > 1)
        .map(|(_, n)| n)
        .sum();
    assert!(
        multi > 0,
        "no multi-row statement was sent under load: {sizes:?}"
    );
    let mut seen: Vec<_> = sizes.into_iter().collect();
    seen.sort();
    println!(
        "  verified on {}: the hand-written SQL is tasktrail's for one run and for {} multi-row statements under load (kind × rows: count) {:?}",
        setup.name,
        multi,
        seen.iter()
            .map(|((k, r), n)| format!("{k:?}×{r}: {n}"))
            .collect::<Vec<_>>()
    );
    tracker.shutdown(Duration::from_secs(10)).await;
    tasktrail_tests::sql_capture::stop();
}

/// The SQLite storage class of each column of a run.
async fn storage(db: &DatabaseConnection, table: &str, key: &str) -> String {
    let sql = format!(
        r#"SELECT typeof(task_name) || ',' || typeof(status) || ',' || typeof(progress_payload)
        || ',' || typeof(user_label) || ',' || typeof(task_args) || ',' || typeof(result_payload)
        || ',' || typeof(created_at) || ',' || typeof(updated_at) || ',' || typeof(started_at)
        || ',' || typeof(completed_at) AS "t"
        FROM "{table}" WHERE task_key = ?"#
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [key.into()],
        ))
        .await
        .expect("read storage classes")
        .expect("the row");
    row.try_get("", "t").expect("storage classes")
}

// ---------------------------------------------------------------------------
// CPU of other processes
// ---------------------------------------------------------------------------

/// CPU ticks used so far: by the whole machine (user + system), by this
/// process, by kernel threads (the file system's journal and writeback
/// work for `fsync`s lands there) and by PostgreSQL's processes.
struct Cpu {
    busy: u64,
    steal: u64,
    mine: u64,
    kernel: u64,
    db: u64,
}

/// What each used over an interval, in cores.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    mine: f64,
    kernel: f64,
    db: f64,
    /// Everything else: other users' processes (builds, tests), including
    /// those that ended during the interval.
    others: f64,
    /// Time the hypervisor gave this VM's CPUs to someone else.
    steal: f64,
}

const TICKS_PER_S: f64 = 100.0;

/// `(comm, flags, utime + stime)` of a `/proc/<pid>/stat`.
fn proc_stat(path: &std::path::Path) -> Option<(String, u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    // `rest` starts at the state: state ppid pgrp session tty_nr tpgid
    // flags minflt cminflt majflt cmajflt utime stime … (tpgid may be -1).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((comm, num(6), num(11) + num(12)))
}

impl Cpu {
    fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal
        let f: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let busy = f.iter().take(3).sum();
        let steal = f.get(7).copied().unwrap_or(0);
        let mine = proc_stat(std::path::Path::new("/proc/self/stat"))
            .map(|(_, _, ticks)| ticks)
            .unwrap_or(0);
        let (mut kernel, mut db) = (0, 0);
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                if !entry
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    continue;
                }
                let Some((comm, flags, ticks)) = proc_stat(&entry.path().join("stat")) else {
                    continue;
                };
                const PF_KTHREAD: u64 = 0x0020_0000;
                if flags & PF_KTHREAD != 0 {
                    kernel += ticks;
                } else if comm == "postgres" {
                    db += ticks;
                }
            }
        }
        Cpu {
            busy,
            steal,
            mine,
            kernel,
            db,
        }
    }

    /// What each used since `self`.
    fn usage(&self, elapsed: Duration) -> Usage {
        let now = Cpu::now();
        let cores = |ticks: f64| (ticks / TICKS_PER_S / elapsed.as_secs_f64()).max(0.0);
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let (busy, mine, kernel, db) = (
            d(now.busy, self.busy),
            d(now.mine, self.mine),
            d(now.kernel, self.kernel),
            d(now.db, self.db),
        );
        Usage {
            mine: cores(mine),
            kernel: cores(kernel),
            db: cores(db),
            others: cores(busy - mine - kernel - db),
            steal: cores(d(now.steal, self.steal)),
        }
    }
}

/// Waits (at most 3 min) until other processes use less than a quarter of
/// a core for 3 s; returns what they used last.
async fn wait_quiet() -> f64 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let cpu = Cpu::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let others = cpu.usage(Duration::from_secs(3)).others;
        if others < 0.25 || Instant::now() > deadline {
            return others;
        }
        println!("  waiting for a quiet machine: others use {others:.2} cores");
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One case's results: tracked and batched alternating `reps` times, the
/// per-statement baseline once.
struct Case {
    setup: &'static str,
    in_flight: usize,
    variant: Variant,
    tracked: Vec<Measured>,
    batched: Vec<Measured>,
    per_statement: Option<Measured>,
}

impl Case {
    fn tracked_rps(&self) -> f64 {
        median(self.tracked.iter().map(Measured::runs_per_s).collect())
    }
    fn batched_rps(&self) -> f64 {
        median(self.batched.iter().map(Measured::runs_per_s).collect())
    }
    /// Median over the pairs of (batched runs/s ÷ tracked runs/s): the
    /// time a tracked run takes over a hand-batched one.
    fn vs_batched(&self) -> f64 {
        median(
            self.tracked
                .iter()
                .zip(&self.batched)
                .map(|(t, b)| b.runs_per_s() / t.runs_per_s())
                .collect(),
        )
    }
}

fn main() {
    // `TASKTRAIL_BENCH_LOG=warn` (an `EnvFilter`) shows what tasktrail logs.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;
    let fmt = std::env::var("TASKTRAIL_BENCH_LOG").ok().map(|filter| {
        tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::EnvFilter::new(filter))
    });
    let subscriber = tracing_subscriber::registry()
        .with(fmt)
        .with(tasktrail_tests::sql_capture::Layer);
    tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let runs = env_usize("TASKTRAIL_BENCH_RUNS", 10_000);
    let reps = env_usize("TASKTRAIL_BENCH_REPS", 5).max(1);
    let setups = env_list(
        "TASKTRAIL_BENCH_SETUPS",
        "docs,wal_full,wal_normal,postgres",
    );
    let in_flights: Vec<usize> = env_list("TASKTRAIL_BENCH_IN_FLIGHT", "64,1000")
        .iter()
        .map(|s| s.parse().expect("TASKTRAIL_BENCH_IN_FLIGHT: numbers"))
        .collect();
    let variants: Vec<Variant> = env_list("TASKTRAIL_BENCH_VARIANTS", "spawn,begin")
        .iter()
        .map(|s| match s.as_str() {
            "spawn" => Variant::Spawn,
            "begin" => Variant::Begin,
            other => panic!("unknown variant `{other}`"),
        })
        .collect();
    let sides: Vec<SideKind> = env_list("TASKTRAIL_BENCH_SIDES", "tracked,batched,per_statement")
        .iter()
        .map(|s| match s.as_str() {
            "tracked" => SideKind::Tracked,
            "batched" => SideKind::Batched,
            "per_statement" => SideKind::PerStatement,
            other => panic!("unknown side `{other}`"),
        })
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "throughput: {runs} runs per measurement, {reps} alternating repetitions of tracked and batched; load average at start: {}",
        load.trim()
    );
    let began = Instant::now();
    let mut cases: Vec<Case> = Vec::new();
    let mut described = Vec::new();
    for name in setups {
        let name: &'static str = Box::leak(name.into_boxed_str());
        let setup = Setup::new(name, runs).await;
        let description = setup.describe().await;
        println!("\n== {name}: {description}");
        described.push((name, description));
        verify(&setup).await;
        // Warm-up: every side and variant, not reported.
        for variant in &variants {
            for &side in &sides {
                measure(&setup, side, *variant, 64, 200.min(runs)).await;
            }
        }
        for &in_flight in &in_flights {
            for &variant in &variants {
                let quiet = wait_quiet().await;
                println!(
                    "-- {name}, {in_flight} in flight, {} (others used {quiet:.2} cores before)",
                    variant.name()
                );
                let mut case = Case {
                    setup: name,
                    in_flight,
                    variant,
                    tracked: Vec::new(),
                    batched: Vec::new(),
                    per_statement: None,
                };
                for rep in 0..reps {
                    let order = if rep % 2 == 0 {
                        [SideKind::Tracked, SideKind::Batched]
                    } else {
                        [SideKind::Batched, SideKind::Tracked]
                    };
                    for side in order.into_iter().filter(|s| sides.contains(s)) {
                        let m = measure(&setup, side, variant, in_flight, runs).await;
                        report_line(side, &m);
                        match side {
                            SideKind::Tracked => case.tracked.push(m),
                            _ => case.batched.push(m),
                        }
                    }
                }
                if sides.contains(&SideKind::PerStatement) {
                    let m = measure(
                        &setup,
                        SideKind::PerStatement,
                        variant,
                        in_flight,
                        setup.per_statement_runs,
                    )
                    .await;
                    report_line(SideKind::PerStatement, &m);
                    case.per_statement = Some(m);
                }
                println!(
                    "   => tracked {:.0} runs/s, batched {:.0} runs/s: tracked ÷ batched (time) {:.2}",
                    case.tracked_rps(),
                    case.batched_rps(),
                    case.vs_batched()
                );
                cases.push(case);
            }
        }
    }
    summary(&cases, &described);
    println!(
        "\ntotal time {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn report_line(side: SideKind, m: &Measured) {
    if m.leases_left > 0 {
        println!(
            "   !! {} runs' leases were left behind after the runs ended",
            m.leases_left
        );
    }
    if m.write_errors > 0 || m.queued > 0 {
        println!(
            "   !! {} failed commit(s): {} ops went to the retry queue (written later; all runs read back)",
            m.write_errors, m.queued
        );
    }
    println!(
        "   {:<14} {:>6} runs in {:>7.3} s = {:>7.0} runs/s; {:>6.1} writes/commit, {:>5.1} writes/statement, {:.2} progress writes/run; CPU: {:>4.0} µs/run here, kernel threads {:.2}, PostgreSQL {:.2} ({:.0} µs/run), others {:.2}, steal {:.2} cores",
        side.name(),
        m.runs,
        m.secs,
        m.runs_per_s(),
        m.per_commit(),
        m.writes as f64 / m.statements.max(1) as f64,
        m.progress_writes as f64 / m.runs as f64,
        m.cpu_per_run(),
        m.cpu.kernel,
        m.cpu.db,
        m.cpu.db * m.secs / m.runs as f64 * 1e6,
        m.cpu.others,
        m.cpu.steal,
    );
}

fn summary(cases: &[Case], described: &[(&str, String)]) {
    println!("\n## Summary\n");
    for (name, d) in described {
        println!("- `{name}`: {d}");
    }
    println!(
        "\n| set-up | in flight | variant | tracked runs/s | writes/commit | progress writes/run | CPU µs/run | hand-batched runs/s | writes/commit | CPU µs/run | **tracked ÷ hand-batched** (time) | per-statement runs/s | tracked ÷ per-statement (time) | others' CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in cases {
        let t = c.tracked_rps();
        let per_commit = median(c.tracked.iter().map(Measured::per_commit).collect());
        let progress = median(
            c.tracked
                .iter()
                .map(|m| m.progress_writes as f64 / m.runs as f64)
                .collect(),
        );
        let b_commit = median(c.batched.iter().map(Measured::per_commit).collect());
        let t_cpu = median(c.tracked.iter().map(Measured::cpu_per_run).collect());
        let b_cpu = median(c.batched.iter().map(Measured::cpu_per_run).collect());
        let (p, vs_p) = match &c.per_statement {
            Some(p) => (
                format!("{:.0}", p.runs_per_s()),
                format!("{:.2}", p.runs_per_s() / t),
            ),
            None => ("".into(), "".into()),
        };
        let others = c
            .tracked
            .iter()
            .chain(&c.batched)
            .chain(&c.per_statement)
            .map(|m| m.cpu.others)
            .fold(0.0, f64::max);
        println!(
            "| `{}` | {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | **{:.2}** | {} | {} | ≤ {:.2} |",
            c.setup,
            c.in_flight,
            c.variant.name(),
            t,
            per_commit,
            progress,
            t_cpu,
            c.batched_rps(),
            b_commit,
            b_cpu,
            c.vs_batched(),
            p,
            vs_p,
            others
        );
    }
    let troubled: Vec<String> = cases
        .iter()
        .filter(|c| {
            c.tracked
                .iter()
                .any(|m| m.write_errors > 0 || m.leases_left > 0)
        })
        .map(|c| {
            let errors: u64 = c.tracked.iter().map(|m| m.write_errors).sum();
            let queued: u64 = c.tracked.iter().map(|m| m.queued).sum();
            let left: usize = c.tracked.iter().map(|m| m.leases_left).sum();
            format!(
                "`{}` {} in flight {}: {errors} failed commit(s), {queued} ops retried, {left} leases left behind",
                c.setup,
                c.in_flight,
                c.variant.name()
            )
        })
        .collect();
    if !troubled.is_empty() {
        println!("\nFailed commits (tracked): {}", troubled.join("; "));
    }
    println!("\n## Targets\n");
    let target = |what: &str, setup: &str, in_flight: usize, at_least: f64| {
        for c in cases
            .iter()
            .filter(|c| c.setup == setup && c.in_flight == in_flight)
        {
            let t = c.tracked_rps();
            println!(
                "- {what} ({}): {t:.0} runs/s: {}",
                c.variant.name(),
                if t >= at_least { "met" } else { "MISSED" }
            );
        }
    };
    target(
        "≥ 12,000 runs/s, SQLite WAL FULL, 1,000 in flight",
        "wal_full",
        1000,
        12_000.0,
    );
    target(
        "≥ 5,000 runs/s, SQLite WAL FULL, 64 in flight",
        "wal_full",
        64,
        5_000.0,
    );
    target(
        "≥ 10,000 runs/s, PostgreSQL, 1,000 in flight",
        "postgres",
        1000,
        10_000.0,
    );
    target(
        "≥ 10,000 runs/s, PostgreSQL, 64 in flight",
        "postgres",
        64,
        10_000.0,
    );
    for c in cases {
        let r = c.vs_batched();
        println!(
            "- tracked ÷ hand-batched ≤ 1.15, `{}` {} in flight {}: {r:.2}: {}",
            c.setup,
            c.in_flight,
            c.variant.name(),
            if r <= 1.15 { "met" } else { "MISSED" }
        );
    }
}
