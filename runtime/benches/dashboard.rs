//! A load script for the dashboard over a SQLite table of 1,000,000 runs:
//! the latency of the runs list (first and deep pages, HTML and JSON,
//! unfiltered, filtered by status, searched) and of the overview, measured
//! over HTTP against the real router on a real socket.
//!
//! Run with `cargo bench -p tasktrail --bench dashboard`; the figures and
//! what they mean are in `BENCHMARKS.md` at the workspace root.
//!
//! * **The table.** `bench_runs` (the entity below, the columns of the
//!   lifecycle bench) is filled once with [`Env::rows`] runs: raw multi-row
//!   `INSERT`s in one transaction, a fixed pseudo-random mix of task names,
//!   statuses, users, messages and progress, `created_at` spread over 30
//!   days (5 % of the runs in bursts of 20 that share one `created_at`, so
//!   the key has to break ties), keys as UUIDv7 like tasktrail's own. The
//!   file is kept in the target directory (`dashboard-<rows>.sqlite`) and
//!   reused while its stamp matches [`FILL_VERSION`]; when the indexes that
//!   `tasktrail::schema::indexes` asks for change, the old indexes are
//!   dropped and the new ones built, the rows kept.
//! * **The server.** `tasktrail::Dashboard::new(Ops::default(), tracker)
//!   .router()` served with `axum::serve` on `127.0.0.1:0`, on a 2-worker
//!   tokio runtime, next to the same dashboard under `/ops/uncached` with
//!   `stats_max_age(0)` (the overview's numbers, the status counts among
//!   them, computed for every request). The client (hyper-util's pooled
//!   HTTP/1.1 client, one keep-alive connection) sends the requests one at
//!   a time, so each latency is one request alone: from sending it to the
//!   last byte of the body.
//! * **The baseline.** For every URL, the statements the dashboard sent
//!   for one warm request (the fewest of three, so that a background stats
//!   refresh is left out) are recorded (sea-orm's metric callback) and
//!   served again by a hand-written axum handler on the same server,
//!   `/bench/sql/<case>`: the identical SQL text and bound values through
//!   sqlx on a second pool of the same settings, every row decoded into a
//!   struct, a tiny body. Each measured request alternates with one to the
//!   baseline (the order flips every pair), so both see the same machine;
//!   the ratios are dashboard / baseline. A trivial handler
//!   (`/bench/floor`) shows the transport floor, and the status-count
//!   statement the uncached list page sends is also timed alone, with
//!   sqlx and without HTTP.
//! * **Where the time goes.** The metric callback also sums, per request,
//!   the time the dashboard's statements took: those with `COUNT` (the
//!   status counts) and the others.
//!
//! Environment:
//! `TASKTRAIL_BENCH_QUICK=1` (20,000 rows, 60 requests per URL: a smoke
//! run), `TASKTRAIL_BENCH_ROWS=n`, `TASKTRAIL_BENCH_REQUESTS=n`,
//! `TASKTRAIL_BENCH_SQL=1` (print every statement and its query plan),
//! `TASKTRAIL_BENCH_ONLY=name,…` (only these cases),
//! `TASKTRAIL_BENCH_QUIET_SECS=n` (before each case, wait up to `n` s,
//! default 120, for other processes to leave the CPU idle; 0: do not wait).
//! Every case reports how much CPU other processes used while it ran.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sea_orm::sea_query::SqliteQueryBuilder;
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sea_orm::sqlx::types::Json;
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{DatabaseConnection, Value};
use serde_json::Value as JsonValue;

/// The tracked entity: the lifecycle bench's columns.
mod bench_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "bench_runs")]
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

// The dashboard with its defaults (50 runs per page, newest first, filters
// `status` and `task_name`, search in key, name and message) under a prefix.
tasktrail::dashboard! {
    struct Ops<bench_run::Entity> {
        url_prefix: "/ops/tasks",
    }
}

// The same dashboard computing the overview's numbers (the counts per
// status among them) on every request: `stats_max_age(0)`.
tasktrail::dashboard! {
    struct Uncached<bench_run::Entity> {
        url_prefix: "/ops/uncached",
    }
}

// The same dashboard, first used once the text index is installed (a
// dashboard notices the index when it plans its first search).
tasktrail::dashboard! {
    struct Indexed<bench_run::Entity> {
        url_prefix: "/ops/indexed",
    }
}

const PREFIX: &str = "/ops/tasks";
const INDEXED: &str = "/ops/indexed";
const UNCACHED: &str = "/ops/uncached";
const PAGE_SIZE: u64 = 50;

/// Changes when the generated rows change: a file with another stamp is
/// filled again.
const FILL_VERSION: &str = "fill-v1";

/// What the environment asks for.
struct Env {
    rows: u64,
    requests: usize,
    warm_up: usize,
    print_sql: bool,
    only: Option<Vec<String>>,
    quiet_wait: Duration,
}

impl Env {
    fn read() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str| {
            var(name).map(|v| {
                v.replace('_', "")
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a whole number"))
            })
        };
        let quick = var("TASKTRAIL_BENCH_QUICK").is_some_and(|v| v != "0");
        let rows = number("TASKTRAIL_BENCH_ROWS").unwrap_or(if quick { 20_000 } else { 1_000_000 });
        let requests = number("TASKTRAIL_BENCH_REQUESTS").unwrap_or(if quick { 60 } else { 1_000 });
        assert!(rows >= 10 * PAGE_SIZE, "at least {} rows", 10 * PAGE_SIZE);
        assert!(requests >= 10, "at least 10 requests per URL");
        Env {
            rows,
            requests: requests as usize,
            warm_up: (requests as usize / 10).clamp(5, 50),
            print_sql: var("TASKTRAIL_BENCH_SQL").is_some(),
            quiet_wait: Duration::from_secs(number("TASKTRAIL_BENCH_QUIET_SECS").unwrap_or(120)),
            only: var("TASKTRAIL_BENCH_ONLY")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }
}

/// The target directory this bench was built in
/// (`<target>/release/deps/dashboard-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the bench's path");
    exe.ancestors()
        .nth(3)
        .expect("the bench runs from <target>/<profile>/deps")
        .to_owned()
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// SplitMix64: a fixed, fast pseudo-random sequence per row.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Task names, the first ones more frequent.
const TASK_NAMES: [&str; 12] = [
    "import_books",
    "send_newsletter",
    "export_report",
    "sync_inventory",
    "resize_images",
    "generate_invoices",
    "reindex_search",
    "cleanup_sessions",
    "backup_database",
    "send_reminders",
    "compute_statistics",
    "import_users",
];
const USERS: [&str; 6] = ["cron", "alice", "bob", "carol", "api", "anonymous"];
const FAILURES: [&str; 5] = [
    "TimeoutError: the upstream API did not answer within 30s",
    "ValueError: row {n}: invalid ISBN",
    "ConnectionResetError: connection reset by peer",
    "PermissionError: access to bucket `exports` denied",
    "IntegrityError: duplicate key value violates unique constraint",
];

/// One generated row, in the column order of [`COLUMNS`].
struct Generated {
    task_key: String,
    task_name: &'static str,
    status: &'static str,
    message: Option<String>,
    progress: Option<f64>,
    user_label: &'static str,
    task_args: String,
    result: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

const COLUMNS: [&str; 13] = [
    "task_key",
    "task_name",
    "status",
    "message",
    "progress_payload",
    "user_label",
    "task_args",
    "result_payload",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "failed_at",
];

/// Row `i` of `rows`, created over the 30 days before `end`.
fn generate(i: u64, rows: u64, end: DateTime<Utc>) -> Generated {
    const SPAN_NS: i64 = 30 * 24 * 3600 * 1_000_000_000;
    let mut rng = Rng::new(i);
    // Rows 0, 1, … in creation order, with jitter. 5 % of the rows come in
    // bursts of 20 sharing the burst's first `created_at` (a batch spawned
    // at once): their order is the key's.
    let burst_start = if (i / 20).is_multiple_of(20) {
        i - i % 20
    } else {
        i
    };
    let mut burst_rng = Rng::new(burst_start);
    let slot = SPAN_NS / rows as i64;
    let offset = burst_start as i64 * slot + (burst_rng.below(slot as u64)) as i64;
    let created_at = end - chrono::Duration::nanoseconds(SPAN_NS - offset);

    // Keys are UUIDv7 (creation millisecond, then random bits), as
    // tasktrail generates them.
    let ms = created_at.timestamp_millis() as u128;
    let random = (u128::from(rng.next()) << 64 | u128::from(rng.next())) & ((1 << 80) - 1);
    let uuid = (ms << 80) | random;
    let uuid = (uuid & !(0xF << 76)) | (0x7 << 76);
    let uuid = (uuid & !(0x3 << 62)) | (0x2 << 62);
    let task_key = uuid::Uuid::from_u128(uuid).to_string();

    // Skewed: the first names are the frequent ones.
    let name_index = {
        let a = rng.below(TASK_NAMES.len() as u64);
        let b = rng.below(TASK_NAMES.len() as u64);
        a.min(b) as usize
    };
    let task_name = TASK_NAMES[name_index];
    let user_label = rng.pick(&USERS);
    let n = 1 + rng.below(5_000);
    let task_args = format!(r#"{{"file":"{task_name}-{n}.csv","batch":500,"dry_run":false}}"#);
    // The newest 0.1 % have not ended.
    let status = if i >= rows - rows / 1000 {
        if rng.below(10) < 3 {
            "pending"
        } else {
            "in_progress"
        }
    } else {
        match rng.below(1000) {
            0..850 => "success",
            850..950 => "failed",
            950..980 => "cancelled",
            _ => "interrupted",
        }
    };
    let ms_later = |rng: &mut Rng, max: u64| chrono::Duration::milliseconds(rng.below(max) as i64);
    let started_at = (status != "pending").then(|| created_at + ms_later(&mut rng, 5_000));
    let ended_at = started_at.map(|s| s + ms_later(&mut rng, 600_000));
    let (message, progress, result, completed_at, failed_at) = match status {
        "pending" => (None, None, None, None, None),
        "in_progress" => {
            let p = rng.below(100) as f64;
            (
                Some(format!("step {} of 10", 1 + rng.below(10))),
                Some(p),
                None,
                None,
                None,
            )
        }
        "success" => (
            Some(format!("Imported {n} rows")),
            Some(100.0),
            Some(format!(r#"{{"imported":{n},"skipped":{}}}"#, rng.below(20))),
            ended_at,
            None,
        ),
        "failed" => (
            Some(rng.pick(&FAILURES).replace("{n}", &n.to_string())),
            Some(rng.below(100) as f64),
            None,
            None,
            ended_at,
        ),
        "cancelled" => (
            Some(format!("cancelled by {}", rng.pick(&USERS[1..4]))),
            Some(rng.below(100) as f64),
            None,
            ended_at,
            None,
        ),
        _ => (
            Some("the worker stopped before the run ended".to_owned()),
            Some(rng.below(100) as f64),
            None,
            ended_at,
            None,
        ),
    };
    Generated {
        task_key,
        task_name,
        status,
        message,
        progress,
        user_label,
        task_args,
        result,
        created_at,
        updated_at: ended_at.or(started_at).unwrap_or(created_at),
        started_at,
        completed_at,
        failed_at,
    }
}

fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
}

/// The pool both sides read through: WAL, `synchronous = NORMAL`, sqlx's
/// statement cache; 4 connections.
async fn read_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .connect_with(file_options(path))
        .await
        .expect("open the SQLite file")
}

/// Moves the WAL's pages into the file and empties the WAL.
async fn checkpoint(db: &DatabaseConnection) {
    use sea_orm::ConnectionTrait as _;
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .expect("checkpoint");
}

/// The index statements the dashboard wants, as SQLite SQL.
fn wanted_indexes() -> Vec<String> {
    tasktrail::schema::indexes::<bench_run::Model>()
        .iter()
        .map(|i| i.to_string(SqliteQueryBuilder))
        .collect()
}

/// Opens the cached file, filling it first if it is missing or stale, and
/// rebuilding its indexes if `tasktrail::schema::indexes` changed.
async fn open_table(env: &Env) -> PathBuf {
    let path = target_dir().join(format!("dashboard-{}.sqlite", env.rows));
    let stamp = format!("{FILL_VERSION} rows={}", env.rows);
    let current = if path.exists() {
        let pool = read_pool(&path).await;
        let found: Option<String> =
            sqlx::query_scalar("SELECT value FROM bench_meta WHERE name = 'fill'")
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        pool.close().await;
        found
    } else {
        None
    };
    if current.as_deref() != Some(stamp.as_str()) {
        fill(&path, env.rows, &stamp).await;
    }
    // The indexes: the current `schema::indexes`, and no others.
    let pool = read_pool(&path).await;
    let indexes = wanted_indexes().join(";\n");
    let built: Option<String> =
        sqlx::query_scalar("SELECT value FROM bench_meta WHERE name = 'indexes'")
            .fetch_optional(&pool)
            .await
            .expect("read the index stamp");
    if built.as_deref() != Some(indexes.as_str()) {
        let started = Instant::now();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bench_runs' AND sql IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .expect("list the indexes");
        for name in names {
            sqlx::query(sqlx::AssertSqlSafe(format!(r#"DROP INDEX "{name}""#)))
                .execute(&pool)
                .await
                .expect("drop an index");
        }
        let db = DatabaseConnection::from(pool.clone());
        tasktrail::schema::create::<bench_run::Model>(&db)
            .await
            .expect("create the indexes");
        sqlx::query("INSERT OR REPLACE INTO bench_meta (name, value) VALUES ('indexes', ?)")
            .bind(&indexes)
            .execute(&pool)
            .await
            .expect("stamp the indexes");
        println!(
            "built the indexes in {:.1} s:\n{indexes}\n",
            started.elapsed().as_secs_f64()
        );
    }
    checkpoint(&DatabaseConnection::from(pool.clone())).await;
    pool.close().await;
    path
}

/// Writes `rows` generated runs to a new file at `path`.
async fn fill(path: &Path, rows: u64, stamp: &str) {
    let started = Instant::now();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            file_options(path)
                .create_if_missing(true)
                .synchronous(SqliteSynchronous::Off),
        )
        .await
        .expect("create the SQLite file");
    let db = DatabaseConnection::from(pool.clone());
    tasktrail::schema::create::<bench_run::Model>(&db)
        .await
        .expect("create the table");
    // The secondary indexes are built after the rows (faster); the key's
    // unique index stays (UUIDv7 keys arrive almost in order).
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bench_runs' AND sql IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .expect("list the indexes");
    for name in names {
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"DROP INDEX "{name}""#)))
            .execute(&pool)
            .await
            .expect("drop an index");
    }
    sqlx::query("CREATE TABLE bench_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("create bench_meta");

    const BATCH: u64 = 500;
    let insert = |n: u64| {
        let marks = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
        let values = vec![marks; n as usize].join(", ");
        format!(
            "INSERT INTO bench_runs ({}) VALUES {values}",
            COLUMNS.join(", ")
        )
    };
    let full = insert(BATCH);
    let end = Utc::now().with_timezone(&Utc);
    let end = Utc
        .timestamp_opt(end.timestamp(), 0)
        .single()
        .expect("a time");
    let mut tx = pool.begin().await.expect("begin");
    let mut i = 0;
    while i < rows {
        let n = BATCH.min(rows - i);
        let sql = if n == BATCH { full.clone() } else { insert(n) };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for j in i..i + n {
            let g = generate(j, rows, end);
            query = query
                .bind(g.task_key)
                .bind(g.task_name)
                .bind(g.status)
                .bind(g.message)
                .bind(g.progress)
                .bind(g.user_label)
                .bind(g.task_args)
                .bind(g.result)
                .bind(g.created_at)
                .bind(g.updated_at)
                .bind(g.started_at)
                .bind(g.completed_at)
                .bind(g.failed_at);
        }
        query.execute(&mut *tx).await.expect("insert runs");
        i += n;
    }
    sqlx::query("INSERT INTO bench_meta (name, value) VALUES ('fill', ?)")
        .bind(stamp)
        .execute(&mut *tx)
        .await
        .expect("stamp the file");
    tx.commit().await.expect("commit");
    pool.close().await;
    println!(
        "filled {} with {rows} runs in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Recording what the dashboard sends
// ---------------------------------------------------------------------------

/// One statement as the dashboard sent it.
#[derive(Clone, Debug)]
struct Recorded {
    sql: String,
    values: Vec<Value>,
}

impl Recorded {
    fn is_count(&self) -> bool {
        self.sql.contains("COUNT(")
    }
}

/// Fed by sea-orm's metric callback on the dashboard's connection.
#[derive(Default)]
struct Probe {
    recording: AtomicBool,
    recorded: Mutex<Vec<Recorded>>,
    /// Time in `COUNT` statements and in the others since the last reset.
    count_ns: AtomicU64,
    other_ns: AtomicU64,
    statements: AtomicU64,
}

impl Probe {
    fn reset(&self) {
        self.count_ns.store(0, Ordering::Relaxed);
        self.other_ns.store(0, Ordering::Relaxed);
        self.statements.store(0, Ordering::Relaxed);
    }
}

fn install_probe(db: &mut DatabaseConnection) -> Arc<Probe> {
    let probe = Arc::new(Probe::default());
    let sink = probe.clone();
    db.set_metric_callback(move |info| {
        let ns = info.elapsed.as_nanos() as u64;
        let sql = &info.statement.sql;
        if sql.contains("COUNT(") {
            sink.count_ns.fetch_add(ns, Ordering::Relaxed);
        } else {
            sink.other_ns.fetch_add(ns, Ordering::Relaxed);
        }
        sink.statements.fetch_add(1, Ordering::Relaxed);
        if sink.recording.load(Ordering::Relaxed) {
            sink.recorded.lock().expect("lock").push(Recorded {
                sql: sql.clone(),
                values: info
                    .statement
                    .values
                    .as_ref()
                    .map(|v| v.0.clone())
                    .unwrap_or_default(),
            });
        }
    });
    probe
}

// ---------------------------------------------------------------------------
// The hand-written baseline
// ---------------------------------------------------------------------------

/// Binds `values` to `sql` as sea-query-sqlx does for SQLite.
fn hand_query(
    sql: &str,
    values: &[Value],
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for value in values {
        query = match value {
            Value::String(s) => query.bind(s.clone()),
            Value::ChronoDateTimeUtc(t) => query.bind(*t),
            Value::BigInt(n) => query.bind(*n),
            Value::Int(n) => query.bind(*n),
            Value::BigUnsigned(n) => query.bind(n.map(|n| i64::try_from(n).expect("an i64"))),
            Value::Unsigned(n) => query.bind(*n),
            Value::Double(x) => query.bind(*x),
            Value::Bool(b) => query.bind(*b),
            other => panic!("the baseline does not bind {other:?}"),
        };
    }
    query
}

/// A run as a hand-written handler would read it.
#[allow(dead_code)]
struct HandRow {
    id: i64,
    task_key: String,
    task_name: String,
    status: String,
    message: Option<String>,
    progress_payload: Option<f64>,
    user_label: Option<String>,
    task_args: Option<JsonValue>,
    result_payload: Option<JsonValue>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

fn hand_row(row: &SqliteRow) -> HandRow {
    let json = |i: usize| {
        row.try_get::<Option<Json<JsonValue>>, _>(i)
            .expect("a JSON column")
            .map(|j| j.0)
    };
    HandRow {
        id: row.try_get(0).expect("id"),
        task_key: row.try_get(1).expect("task_key"),
        task_name: row.try_get(2).expect("task_name"),
        status: row.try_get(3).expect("status"),
        message: row.try_get(4).expect("message"),
        progress_payload: row.try_get(5).expect("progress"),
        user_label: row.try_get(6).expect("user_label"),
        task_args: json(7),
        result_payload: json(8),
        created_at: row.try_get(9).expect("created_at"),
        updated_at: row.try_get(10).expect("updated_at"),
        started_at: row.try_get(11).expect("started_at"),
        completed_at: row.try_get(12).expect("completed_at"),
        failed_at: row.try_get(13).expect("failed_at"),
    }
}

/// A row of another shape (the overview's statements), each value decoded
/// by its storage class, text that looks like a timestamp as one.
fn hand_values(row: &SqliteRow) -> Vec<JsonValue> {
    use sqlx::{TypeInfo as _, ValueRef as _};
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i).expect("a value");
            if raw.is_null() {
                return JsonValue::Null;
            }
            match raw.type_info().name() {
                "INTEGER" => JsonValue::from(row.try_get::<i64, _>(i).expect("an integer")),
                "REAL" => JsonValue::from(row.try_get::<f64, _>(i).expect("a real")),
                _ => {
                    let text: String = row.try_get(i).expect("text");
                    if text.len() >= 19 && text.as_bytes()[4] == b'-' {
                        let t: DateTime<Utc> = row.try_get(i).expect("a timestamp");
                        JsonValue::from(t.timestamp_micros())
                    } else {
                        JsonValue::from(text)
                    }
                }
            }
        })
        .collect()
}

/// Runs the statements recorded for one URL: runs decoded into
/// [`HandRow`]s, other rows (counts, the overview's numbers) value by value.
/// Returns how many rows.
async fn run_recorded(pool: &SqlitePool, statements: &[Recorded]) -> usize {
    let mut rows = 0;
    for s in statements {
        let fetched = hand_query(&s.sql, &s.values)
            .fetch_all(pool)
            .await
            .expect("rows");
        rows += fetched
            .iter()
            .map(|row| {
                if row.columns().len() == 14 {
                    std::hint::black_box(hand_row(row));
                } else {
                    std::hint::black_box(hand_values(row));
                }
            })
            .count();
    }
    rows
}

#[derive(Clone)]
struct Baseline {
    pool: SqlitePool,
    cases: Arc<Mutex<HashMap<String, Arc<Vec<Recorded>>>>>,
}

async fn baseline_handler(
    State(baseline): State<Baseline>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> (StatusCode, String) {
    let statements = baseline.cases.lock().expect("lock").get(&name).cloned();
    let Some(statements) = statements else {
        return (StatusCode::NOT_FOUND, format!("no case `{name}`"));
    };
    let rows = run_recorded(&baseline.pool, &statements).await;
    (StatusCode::OK, format!("{rows} rows"))
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// GETs `url`; the status, the body and the time to the last byte.
async fn get(client: &HttpClient, addr: SocketAddr, url: &str) -> (StatusCode, String, Duration) {
    let uri: Uri = format!("http://{addr}{url}").parse().expect("a URI");
    let started = Instant::now();
    let response = client.get(uri).await.expect("a response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    let elapsed = started.elapsed();
    (status, String::from_utf8_lossy(&body).into_owned(), elapsed)
}

/// Percentiles of a sample, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Summary {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn summary(samples: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    // Nearest rank.
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Summary {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: ms[ms.len() - 1],
    }
}

/// A check of a response body: what is wrong with it, if anything.
type Check = Box<dyn Fn(&str) -> Result<(), String>>;

/// One URL to measure.
struct Case {
    name: &'static str,
    what: String,
    url: String,
    /// A check of the body the URL answers with.
    check: Check,
    /// Fewer requests for a case that scans the table.
    divide: usize,
    /// Measured once the text index is installed.
    indexed: bool,
}

struct Measured {
    name: &'static str,
    what: String,
    url: String,
    n: usize,
    page: Summary,
    baseline: Summary,
    /// Medians per request of the dashboard's statement time.
    db_list_ms: f64,
    db_counts_ms: f64,
    /// The fewest and the most statements a request sent.
    statements: (u64, u64),
    /// CPU other processes used while the case ran, in cores.
    others: f64,
}

struct Bench {
    client: HttpClient,
    addr: SocketAddr,
    probe: Arc<Probe>,
    baseline: Baseline,
    env: Env,
}

impl Bench {
    /// The time a GET of `url` takes; it must answer 200.
    async fn timed(&self, url: &str) -> Duration {
        let (status, body, took) = get(&self.client, self.addr, url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        took
    }

    async fn measure(&self, case: &Case) -> Measured {
        // Check the answer, warm up, then record the statements of one
        // request (a warm one: caches filled).
        let (status, body, _) = get(&self.client, self.addr, &case.url).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: {}\n{body}",
            case.name,
            case.url
        );
        if let Err(message) = (case.check)(&body) {
            panic!("{}: {}: {message}", case.name, case.url);
        }
        let n = (self.env.requests / case.divide).max(10);
        let warm_up = (self.env.warm_up / case.divide).max(2);
        for _ in 0..warm_up {
            self.timed(&case.url).await;
        }
        // The statement callback also sees the dashboard's background work
        // (the stats refresh): of three requests, the one that recorded
        // the fewest statements is the request alone.
        let mut recorded: Option<Vec<Recorded>> = None;
        for _ in 0..3 {
            self.probe.recorded.lock().expect("lock").clear();
            self.probe.recording.store(true, Ordering::SeqCst);
            self.timed(&case.url).await;
            self.probe.recording.store(false, Ordering::SeqCst);
            let this = std::mem::take(&mut *self.probe.recorded.lock().expect("lock"));
            if recorded.as_ref().is_none_or(|r| this.len() < r.len()) {
                recorded = Some(this);
            }
        }
        // No statement: the page is served from a cache (the kind pages,
        // kept 30 s); its baseline is then the transport alone.
        let recorded = recorded.expect("recorded");
        if self.env.print_sql {
            println!("-- {} ({})", case.name, case.url);
            for s in &recorded {
                println!("{}\n   binds: {:?}", s.sql, s.values);
                if !s.is_count() {
                    for line in plan(&self.baseline.pool, s).await {
                        println!("   plan: {line}");
                    }
                }
            }
            println!();
        }
        self.baseline
            .cases
            .lock()
            .expect("lock")
            .insert(case.name.to_owned(), Arc::new(recorded));
        let baseline_url = format!("/bench/sql/{}", case.name);
        for _ in 0..warm_up {
            self.timed(&baseline_url).await;
        }

        wait_for_quiet(self.env.quiet_wait).await;
        let load = Load::start();
        let mut page = Vec::with_capacity(n);
        let mut base = Vec::with_capacity(n);
        let mut list_ns = Vec::with_capacity(n);
        let mut count_ns = Vec::with_capacity(n);
        let mut statements = (u64::MAX, 0);
        for i in 0..n {
            if i % 2 == 1 {
                base.push(self.timed(&baseline_url).await);
            }
            self.probe.reset();
            page.push(self.timed(&case.url).await);
            list_ns.push(self.probe.other_ns.load(Ordering::Relaxed));
            count_ns.push(self.probe.count_ns.load(Ordering::Relaxed));
            let k = self.probe.statements.load(Ordering::Relaxed);
            statements = (statements.0.min(k), statements.1.max(k));
            if i % 2 == 0 {
                base.push(self.timed(&baseline_url).await);
            }
        }
        let others = load.others();
        // The nearest-rank median, as in `summary`.
        let median_ms = |v: &mut Vec<u64>| {
            v.sort_unstable();
            v[v.len().div_ceil(2) - 1] as f64 / 1e6
        };
        Measured {
            name: case.name,
            what: case.what.clone(),
            url: case.url.clone(),
            n,
            page: summary(&page),
            baseline: summary(&base),
            db_list_ms: median_ms(&mut list_ns),
            db_counts_ms: median_ms(&mut count_ns),
            statements,
            others,
        }
    }
}

/// CPU time in clock ticks: all processes' (busy, not idle or waiting for
/// I/O) and this process's own.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let all: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = all.get(..8)?;
    let busy = busy[0] + busy[1] + busy[2] + busy[5] + busy[6] + busy[7];
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields; `fields` starts at the 3rd.
    let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((busy, own))
}

/// How much CPU other processes use over a stretch of time.
struct Load {
    at: Instant,
    ticks: Option<(u64, u64)>,
}

impl Load {
    fn start() -> Load {
        Load {
            at: Instant::now(),
            ticks: cpu_ticks(),
        }
    }

    /// Other processes' CPU since `start`, in cores (`NaN` without
    /// `/proc`). Clock ticks are 1/100 s.
    fn others(&self) -> f64 {
        match (self.ticks, cpu_ticks()) {
            (Some((busy0, own0)), Some((busy1, own1))) => {
                let others = (busy1 - busy0).saturating_sub(own1 - own0) as f64 / 100.0;
                others / self.at.elapsed().as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}

/// Waits, up to `max`, until other processes have used less than 0.2 of a
/// core for two seconds in a row.
async fn wait_for_quiet(max: Duration) {
    if max.is_zero() || cpu_ticks().is_none() {
        return;
    }
    let started = Instant::now();
    let mut quiet = 0;
    while quiet < 2 {
        if started.elapsed() > max {
            println!("(the machine is busy: measuring anyway)");
            return;
        }
        let load = Load::start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        quiet = if load.others() < 0.2 { quiet + 1 } else { 0 };
    }
}

/// `EXPLAIN QUERY PLAN` of a recorded statement.
async fn plan(pool: &SqlitePool, s: &Recorded) -> Vec<String> {
    hand_query(&format!("EXPLAIN QUERY PLAN {}", s.sql), &s.values)
        .fetch_all(pool)
        .await
        .expect("a query plan")
        .iter()
        .map(|r| r.try_get::<String, _>(3).expect("the plan's detail"))
        .collect()
}

/// The list's cursor for a row, as `dashboard::query::Cursor` encodes it
/// (checked against the API's own `next` before use).
fn cursor(created_at: &str, key: &str) -> String {
    let text = serde_json::to_string(&("tu", created_at, key)).expect("JSON");
    URL_SAFE_NO_PAD.encode(text)
}

/// The row at `offset` in the list's order (newest first), among the rows
/// with `status` if given: its `created_at` as the API shows it and its key.
async fn row_at(pool: &SqlitePool, status: Option<&str>, offset: u64) -> (String, String) {
    let filter = if status.is_some() {
        "WHERE status = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT created_at, task_key FROM bench_runs {filter} ORDER BY created_at DESC, task_key DESC LIMIT 1 OFFSET ?"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(status) = status {
        query = query.bind(status);
    }
    let row = query
        .bind(offset as i64)
        .fetch_one(pool)
        .await
        .expect("a row at an offset");
    let created: DateTime<Utc> = row.try_get(0).expect("created_at");
    (created.to_rfc3339(), row.try_get(1).expect("task_key"))
}

fn json_keys(body: &str) -> Result<Vec<String>, String> {
    let json: JsonValue = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(json["runs"]
        .as_array()
        .ok_or("no `runs`")?
        .iter()
        .map(|r| r["task_key"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// Checks a JSON page: `PAGE_SIZE` runs, the first one `first` if given,
/// every one `status` if given, a `next` cursor.
fn json_page(first: Option<String>, status: Option<&'static str>) -> Check {
    Box::new(move |body| {
        let keys = json_keys(body)?;
        let json: JsonValue = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if keys.len() as u64 != PAGE_SIZE {
            return Err(format!("{} runs, not {PAGE_SIZE}", keys.len()));
        }
        if let Some(first) = &first
            && &keys[0] != first
        {
            return Err(format!("starts at {}, not {first}", keys[0]));
        }
        if let Some(status) = status
            && let Some(run) = json["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["status"] != status)
        {
            return Err(format!("a run that is not {status}: {run}"));
        }
        if json["next"].as_str().is_none() {
            return Err("no next page".into());
        }
        Ok(())
    })
}

/// Checks an HTML list page: it shows the runs `keys` (the JSON API's page
/// for the same query, checked on its own), no other run of the table
/// (`not`: the run after them), and links to the next page. Independent of
/// the markup.
fn html_page(keys: Vec<String>, not: String) -> Check {
    Box::new(move |body| {
        if let Some(missing) = keys.iter().find(|k| !body.contains(k.as_str())) {
            return Err(format!("run {missing} is not on the page"));
        }
        if body.contains(not.as_str()) {
            return Err(format!("run {not} is on the page, but belongs to the next"));
        }
        if !body.contains("after=") {
            return Err("no link to the next page".into());
        }
        Ok(())
    })
}

fn html_contains(text: &'static str) -> Check {
    Box::new(move |body| {
        if body.contains(text) {
            Ok(())
        } else {
            Err(format!("`{text}` is not on the page"))
        }
    })
}

async fn cases(pool: &SqlitePool, client: &HttpClient, addr: SocketAddr, rows: u64) -> Vec<Case> {
    // The cursor format, checked against the API's own `next`.
    let (status, body, _) = get(client, addr, &format!("{PREFIX}/api/runs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: JsonValue = serde_json::from_str(&body).expect("JSON");
    let last = &first["runs"][PAGE_SIZE as usize - 1];
    let expected = cursor(
        last["created_at"].as_str().expect("created_at"),
        last["task_key"].as_str().expect("task_key"),
    );
    assert_eq!(
        first["next"].as_str(),
        Some(expected.as_str()),
        "the bench's cursor encoding is not the dashboard's"
    );

    // The deep pages start in the middle of the list: page rows / 2 / 50 + 1
    // (page 10,001 of 20,000 at 1,000,000 runs).
    let middle = rows / 2;
    let (created, key) = row_at(pool, None, middle - 1).await;
    let (_, first_deep) = row_at(pool, None, middle).await;
    // Base64url: nothing to escape in a URL.
    let deep = cursor(&created, &key);
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bench_runs WHERE status = 'failed'")
        .fetch_one(pool)
        .await
        .expect("count failed");
    let failed_middle = failed as u64 / 2;
    let (created, key) = row_at(pool, Some("failed"), failed_middle - 1).await;
    let (_, first_failed_deep) = row_at(pool, Some("failed"), failed_middle).await;
    let failed_deep = cursor(&created, &key);
    // A key to search for: the newest failed run's (one match, so the whole
    // table is searched).
    let (_, needle) = row_at(pool, Some("failed"), 0).await;
    let needle_part = needle[needle.len() - 12..].to_owned();

    // What each HTML page must show: the JSON API's page for its query,
    // and not the first run of the page after.
    let page_of = async |query: &str| -> (Vec<String>, String) {
        let sep = if query.is_empty() { "" } else { "&" };
        let url = format!("{PREFIX}/api/runs?limit={}{sep}{query}", PAGE_SIZE + 1);
        let (status, body, _) = get(client, addr, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let mut keys = json_keys(&body).expect("a JSON page");
        assert_eq!(keys.len() as u64, PAGE_SIZE + 1, "{url}");
        let not = keys.pop().expect("a key");
        (keys, not)
    };
    let (first_keys, first_not) = page_of("").await;
    let (deep_keys, deep_not) = page_of(&format!("after={deep}")).await;
    let (failed_keys, failed_not) = page_of("status=failed").await;
    let (failed_deep_keys, failed_deep_not) =
        page_of(&format!("status=failed&after={failed_deep}")).await;
    let (search_keys, search_not) = page_of("q=reindex").await;
    assert_eq!(
        deep_keys[0], first_deep,
        "the deep page starts at the wrong run"
    );
    assert_eq!(
        failed_deep_keys[0], first_failed_deep,
        "the deep failed page starts at the wrong run"
    );

    let pages = |n: u64| n.div_ceil(PAGE_SIZE);
    let deep_what = format!(
        "page {} of {} (row {})",
        middle / PAGE_SIZE + 1,
        pages(rows),
        middle + 1
    );
    let failed_what = format!(
        "page {} of {} of the {failed} failed runs",
        failed_middle / PAGE_SIZE + 1,
        pages(failed as u64)
    );
    let one = |name: &str| -> Check {
        let name = name.to_owned();
        Box::new(move |body| {
            let keys = json_keys(body)?;
            if keys == [name.clone()] {
                Ok(())
            } else {
                Err(format!("found {keys:?}, not just {name}"))
            }
        })
    };
    let mut cases = vec![
        Case {
            name: "overview",
            what: "the overview (counts per status)".into(),
            url: format!("{PREFIX}/"),
            check: html_contains("</html>"),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "overview_uncached",
            what: "the overview, its numbers computed for the request".into(),
            url: format!("{UNCACHED}/"),
            check: html_contains("</html>"),
            divide: 5,
            indexed: false,
        },
        Case {
            name: "html_first",
            what: "list, first page".into(),
            url: format!("{PREFIX}/runs"),
            check: html_page(first_keys.clone(), first_not.clone()),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "html_first_uncached",
            what: "list, first page, the counts computed for the request".into(),
            url: format!("{UNCACHED}/runs"),
            check: html_page(first_keys, first_not),
            divide: 5,
            indexed: false,
        },
        Case {
            name: "html_deep",
            what: format!("list, {deep_what}"),
            url: format!("{PREFIX}/runs?sort=-created_at&after={deep}"),
            check: html_page(deep_keys, deep_not),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_first",
            what: "list, first page".into(),
            url: format!("{PREFIX}/api/runs"),
            check: json_page(None, None),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_deep",
            what: format!("list, {deep_what}"),
            url: format!("{PREFIX}/api/runs?after={deep}"),
            check: json_page(Some(first_deep), None),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "html_failed_first",
            what: "`status=failed`, first page".into(),
            url: format!("{PREFIX}/runs?status=failed"),
            check: html_page(failed_keys, failed_not),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "html_failed_deep",
            what: format!("`status=failed`, {failed_what}"),
            url: format!("{PREFIX}/runs?status=failed&sort=-created_at&after={failed_deep}"),
            check: html_page(failed_deep_keys, failed_deep_not),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_failed_first",
            what: "`status=failed`, first page".into(),
            url: format!("{PREFIX}/api/runs?status=failed"),
            check: json_page(None, Some("failed")),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_failed_deep",
            what: format!("`status=failed`, {failed_what}"),
            url: format!("{PREFIX}/api/runs?status=failed&after={failed_deep}"),
            check: json_page(Some(first_failed_deep), Some("failed")),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "html_search",
            what: "search `q=reindex` (a task name, ~9 % of runs), first page".into(),
            url: format!("{PREFIX}/runs?q=reindex"),
            check: html_page(search_keys, search_not),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_search",
            what: "search `q=reindex`, first page".into(),
            url: format!("{PREFIX}/api/runs?q=reindex"),
            check: json_page(None, None),
            divide: 1,
            indexed: false,
        },
        Case {
            name: "json_search_key",
            what: "search for 12 characters of one run's key (1 match)".into(),
            url: format!("{PREFIX}/api/runs?q={needle_part}"),
            check: one(&needle),
            divide: 1,
            indexed: false,
        },
    ];
    cases.extend(search_cases(pool, &needle).await);
    cases
}

/// The keys, newest first, of the runs `condition` selects (SQL over
/// `bench_runs`), at most `limit`.
async fn keys_where(pool: &SqlitePool, condition: &str, limit: u64) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT task_key FROM bench_runs WHERE {condition} \
         ORDER BY created_at DESC, task_key DESC LIMIT {limit}"
    )))
    .fetch_all(pool)
    .await
    .expect("select keys")
}

/// A JSON page that must hold exactly `keys` (a whole result).
fn exactly(keys: Vec<String>) -> Check {
    Box::new(move |body| {
        let found = json_keys(body)?;
        if found == keys {
            Ok(())
        } else {
            Err(format!(
                "found {} runs, not the {} expected",
                found.len(),
                keys.len()
            ))
        }
    })
}

/// The search and time-range cases (issue 16): each route of the search,
/// without the text index and with it, and the time filters.
async fn search_cases(pool: &SqlitePool, needle: &str) -> Vec<Case> {
    let page = PAGE_SIZE;
    // A key prefix: the creation millisecond's first 10 hex digits (a
    // window of ~4 s, a few runs).
    let prefix = needle[..11].to_owned();
    let prefix_keys = keys_where(
        pool,
        &format!("task_key >= '{prefix}' AND task_key < '{prefix}~'"),
        page,
    )
    .await;
    // A rare phrase of the messages: a handful of runs.
    let rare = "row 1234: invalid";
    let rare_keys = keys_where(pool, &format!("lower(message) LIKE '%{rare}%'"), 1_000).await;
    assert!(
        !rare_keys.is_empty() && rare_keys.len() < 50,
        "{rare}: {} runs",
        rare_keys.len()
    );
    // A common word (85 % of runs), and a word in ~2 % of them.
    let common_keys = keys_where(pool, "lower(message) LIKE '%imported%'", page).await;
    let bucket_keys = keys_where(pool, "lower(message) LIKE '%bucket%'", page).await;
    let in_window = |keys: &Vec<String>| -> Check {
        let keys = keys.clone();
        Box::new(move |body| {
            let found = json_keys(body)?;
            if found.iter().all(|k| keys.contains(k)) {
                Ok(())
            } else {
                Err(format!("{found:?} holds runs the search should not find"))
            }
        })
    };
    // The time filters: the last 7 days, and two days in the middle of
    // the 30.
    let week_keys = keys_where(pool, "created_at >= datetime('now', '-7 days')", page).await;
    let (from, to): (String, String) = sqlx::query_as(
        "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', datetime(MAX(created_at), '-16 days')), \
                strftime('%Y-%m-%dT%H:%M:%SZ', datetime(MAX(created_at), '-14 days')) FROM bench_runs",
    )
    .fetch_one(pool)
    .await
    .expect("a range");
    let range_keys = keys_where(
        pool,
        &format!(
            "created_at >= '{}' AND created_at < '{}'",
            from.replace('T', " ").replace('Z', ""),
            to.replace('T', " ").replace('Z', "")
        ),
        page,
    )
    .await;
    let _ = range_keys;
    let q = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let case =
        |name: &'static str, what: String, url: String, check: Check, divide, indexed| Case {
            name,
            what,
            url,
            check,
            divide,
            indexed,
        };
    vec![
        case(
            "search_key_exact",
            "search: a whole run key (key index)".into(),
            format!("{PREFIX}/api/runs?q={needle}"),
            exactly(vec![needle.to_owned()]),
            1,
            false,
        ),
        case(
            "search_key_prefix",
            format!(
                "search: a key's first 11 characters, {} runs (key index)",
                prefix_keys.len()
            ),
            format!("{PREFIX}/api/runs?q={prefix}"),
            exactly(prefix_keys),
            1,
            false,
        ),
        case(
            "search_name_html",
            "search: part of a task name, `reindex` (names)".into(),
            format!("{PREFIX}/runs?q=reindex"),
            html_contains("reindex_search"),
            1,
            false,
        ),
        case(
            "search_rare_window",
            format!(
                "search: a rare phrase, `{rare}`, no text index (**bounded by the window** of 100,000 runs)"
            ),
            format!("{PREFIX}/api/runs?q={}", q(rare)),
            in_window(&rare_keys),
            20,
            false,
        ),
        case(
            "search_common_window",
            "search: a common word, `imported` (85 %), no text index (window)".into(),
            format!("{PREFIX}/api/runs?q=imported"),
            exactly(common_keys.clone()),
            1,
            false,
        ),
        case(
            "search_short_window",
            "search: 2 characters, `zq` (no run has them; **bounded by the window**)".into(),
            format!("{PREFIX}/api/runs?q=zq"),
            exactly(Vec::new()),
            20,
            false,
        ),
        case(
            "time_7d",
            "time range: `since=7d`, first page".into(),
            format!("{PREFIX}/api/runs?since=7d"),
            exactly(week_keys),
            1,
            false,
        ),
        case(
            "time_custom",
            "time range: two days, 16 to 14 days before the newest run".into(),
            format!("{PREFIX}/api/runs?from={from}&to={to}"),
            json_page(None, None),
            1,
            false,
        ),
        case(
            "time_7d_failed_search",
            "`since=7d&status=failed&q=timeout` (names, then the window)".into(),
            format!("{PREFIX}/api/runs?since=7d&status=failed&q=timeout"),
            Box::new(|body| json_keys(body).map(|_| ())),
            1,
            false,
        ),
        case(
            "search_rare_indexed",
            format!(
                "search: the rare phrase, {} runs, text index",
                rare_keys.len()
            ),
            format!("{INDEXED}/api/runs?q={}", q(rare)),
            exactly(rare_keys),
            1,
            true,
        ),
        case(
            "search_bucket_indexed",
            "search: `bucket` (~2 % of runs), text index".into(),
            format!("{INDEXED}/api/runs?q=bucket"),
            exactly(bucket_keys),
            1,
            true,
        ),
        case(
            "search_common_indexed",
            "search: `imported` (85 %), text index".into(),
            format!("{INDEXED}/api/runs?q=imported"),
            exactly(common_keys),
            1,
            true,
        ),
        case(
            "kind_page",
            "the task-kind page of `reindex_search` (numbers, SVG of 24 h)".into(),
            format!("{PREFIX}/kinds/reindex_search"),
            html_contains("</svg>"),
            1,
            false,
        ),
        case(
            "kind_api",
            "the same kind as JSON".into(),
            format!("{PREFIX}/api/kinds/reindex_search"),
            Box::new(|body| {
                if body.contains("\"p99_ms\"") {
                    Ok(())
                } else {
                    Err(body.chars().take(200).collect())
                }
            }),
            1,
            false,
        ),
        case(
            "search_short_indexed",
            "search: `zq`, text index installed (**bounded by the window**: 2 characters)".into(),
            format!("{INDEXED}/api/runs?q=zq"),
            exactly(Vec::new()),
            20,
            true,
        ),
    ]
}

fn main() {
    let env = Env::read();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run(env));
}

/// The process's peak resident memory (VmHWM) in MiB; reset first with
/// `reset`.
fn peak_rss_mib(reset: bool) -> f64 {
    if reset {
        // "5" resets the peak to the current size.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The export of the newest 100,000 runs (a time range), as CSV and as
/// JSON lines: read as a stream, its runs counted; the time, the rate and
/// the process's peak resident memory (server and client share it).
async fn measure_exports(bench: &Bench, rows: u64) -> Vec<String> {
    let want = 100_000.min(rows);
    let (from,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', created_at) FROM bench_runs \
         ORDER BY created_at DESC, task_key DESC LIMIT 1 OFFSET {}",
        want - 1
    )))
    .fetch_one(&bench.baseline.pool)
    .await
    .expect("the 100,000th newest run");
    let expected: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM bench_runs WHERE created_at >= (SELECT created_at FROM bench_runs \
         ORDER BY created_at DESC, task_key DESC LIMIT 1 OFFSET {})",
        want - 1
    )))
    .fetch_one(&bench.baseline.pool)
    .await
    .expect("count");
    let mut out = Vec::new();
    for format in ["csv", "jsonl"] {
        wait_for_quiet(bench.env.quiet_wait).await;
        let url = format!("{PREFIX}/api/runs/export.{format}?from={from}");
        let before = peak_rss_mib(true);
        let uri: Uri = format!("http://{}{url}", bench.addr)
            .parse()
            .expect("a URI");
        let started = Instant::now();
        let response = bench.client.get(uri).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let mut body = response.into_body();
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("a frame").into_data() {
                bytes += data.len();
                lines += data.iter().filter(|b| **b == b'\n').count();
            }
        }
        let took = started.elapsed().as_secs_f64();
        let during = peak_rss_mib(false);
        // CSV has a header line.
        let runs = if format == "csv" { lines - 1 } else { lines };
        // `from` is the 100,000th newest run's time cut to the millisecond:
        // that run and those newer, plus any of the same millisecond.
        assert!(
            runs as i64 >= expected && runs as i64 <= expected + 50,
            "{url}: {runs} runs for {expected}"
        );
        out.push(format!(
            "| `{format}` | {runs} | {bytes} | {took:.2} | {:.0} | {:.1} | {before:.0} → {during:.0} |",
            runs as f64 / took,
            bytes as f64 / took / 1e6
        ));
        println!("{}", out.last().expect("a line"));
    }
    out
}

/// `TASKTRAIL_BENCH_SERVE=127.0.0.1:PORT`: the dashboard alone, as a user
/// mounts it (its own pool, no statement probe, no baseline routes), on
/// that address, for a load generator (`runtime/benches/load.sh` runs wrk
/// against it). Prints `serving` and the URLs to load, then serves until
/// killed.
async fn serve_only(env: &Env, addr: &str) {
    let path = open_table(env).await;
    let pool = read_pool(&path).await;
    let (_, key): (String, String) = sqlx::query_as(
        "SELECT created_at, task_key FROM bench_runs WHERE status = 'failed' \
         ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a failed run");
    pool.close().await;
    let db = DatabaseConnection::from(read_pool(&path).await);
    let tracker = bench_run::Tracker::new(db);
    let app =
        axum::Router::new().merge(tasktrail::Dashboard::new(Ops::default(), tracker).router());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the address");
    println!("url html_list {PREFIX}/runs");
    println!("url json_list {PREFIX}/api/runs");
    println!("url overview {PREFIX}/");
    println!("url run_page {PREFIX}/runs/{key}");
    println!("url json_run {PREFIX}/api/runs/{key}");
    println!("serving on {addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("serve");
}

async fn run(env: Env) {
    if let Ok(addr) = std::env::var("TASKTRAIL_BENCH_SERVE") {
        return serve_only(&env, &addr).await;
    }
    let path = open_table(&env).await;
    let rows: i64 = {
        let pool = read_pool(&path).await;
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM bench_runs")
            .fetch_one(&pool)
            .await
            .expect("count the runs");
        pool.close().await;
        n
    };
    assert_eq!(rows as u64, env.rows, "{} has other rows", path.display());
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "table: {} runs in {} ({:.0} MiB); indexes:\n  {}",
        rows,
        path.display(),
        size as f64 / (1 << 20) as f64,
        wanted_indexes().join("\n  ")
    );

    // The dashboard on its own pool, with the probe.
    let mut db = DatabaseConnection::from(read_pool(&path).await);
    let index_db = DatabaseConnection::from(
        SqlitePool::connect_with(file_options(&path))
            .await
            .expect("a writer"),
    );
    let probe = install_probe(&mut db);
    let tracker = bench_run::Tracker::new(db);
    let baseline = Baseline {
        pool: read_pool(&path).await,
        cases: Arc::default(),
    };
    let app = axum::Router::new()
        .merge(tasktrail::Dashboard::new(Ops::default(), tracker.clone()).router())
        .merge(tasktrail::Dashboard::new(Indexed::default(), tracker.clone()).router())
        .merge(
            tasktrail::Dashboard::new(Uncached::default(), tracker)
                .stats_max_age(Duration::ZERO)
                .router(),
        )
        .route("/bench/floor", axum::routing::get(|| async { "ok" }))
        .merge(
            axum::Router::new()
                .route("/bench/sql/{name}", axum::routing::get(baseline_handler))
                .with_state(baseline.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("the address");
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let bench = Bench {
        client,
        addr,
        probe,
        baseline,
        env,
    };
    // Searches without the text index first: drop one a previous run made.
    tasktrail::schema::drop_search_index::<bench_run::Model>(&index_db)
        .await
        .expect("drop the search index");
    // Dropping (and below, making) the index writes hundreds of MiB to the
    // WAL; a reader then looks every page up in the WAL's index first. A
    // live database checkpoints as it goes: so does the bench, at once.
    checkpoint(&index_db).await;
    let all = cases(&bench.baseline.pool, &bench.client, addr, rows as u64).await;
    let started = Instant::now();
    let mut results = Vec::new();
    let mut index_made = false;
    for case in &all {
        if let Some(only) = &bench.env.only
            && !only.iter().any(|o| o == case.name)
        {
            continue;
        }
        if case.indexed && !index_made {
            let at = Instant::now();
            tasktrail::schema::create_search_index::<bench_run::Model>(&index_db)
                .await
                .expect("create the search index");
            checkpoint(&index_db).await;
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            println!(
                "search index made in {:.1} s; the file is now {:.0} MiB",
                at.elapsed().as_secs_f64(),
                size as f64 / (1 << 20) as f64
            );
            index_made = true;
        }
        let m = bench.measure(case).await;
        println!(
            "{:<18} p50 {:>8.2} ms  p95 {:>8.2}  p99 {:>8.2}  max {:>8.2}  | baseline p50 {:>8.2}  p99 {:>8.2} | ratio p50 {:.2} p99 {:.2} | SQL: COUNTs {:.2} ms, other {:.2} ms ({}–{} statements) | others' CPU {:.2}",
            m.name,
            m.page.p50,
            m.page.p95,
            m.page.p99,
            m.page.max,
            m.baseline.p50,
            m.baseline.p99,
            m.page.p50 / m.baseline.p50,
            m.page.p99 / m.baseline.p99,
            m.db_counts_ms,
            m.db_list_ms,
            m.statements.0,
            m.statements.1,
            m.others,
        );
        results.push(m);
    }

    // The transport floor, and the status counts alone.
    let n = bench.env.requests;
    wait_for_quiet(bench.env.quiet_wait).await;
    let mut floor = Vec::with_capacity(n);
    for _ in 0..bench.env.warm_up {
        get(&bench.client, addr, "/bench/floor").await;
    }
    for _ in 0..n {
        floor.push(get(&bench.client, addr, "/bench/floor").await.2);
    }
    let floor = summary(&floor);
    let counts: Option<Arc<Vec<Recorded>>> = bench
        .baseline
        .cases
        .lock()
        .expect("lock")
        .get("html_first_uncached")
        .map(|c| Arc::new(c.iter().filter(|s| s.is_count()).cloned().collect()))
        .filter(|c: &Arc<Vec<Recorded>>| !c.is_empty());
    let counts = match counts {
        Some(statements) => {
            // A table scan: as many times as the uncached pages.
            let n = (n / 5).max(10);
            let mut times = Vec::with_capacity(n);
            for i in 0..n + bench.env.warm_up {
                let at = Instant::now();
                run_recorded(&bench.baseline.pool, &statements).await;
                if i >= bench.env.warm_up {
                    times.push(at.elapsed());
                }
            }
            Some((statements.len(), n, summary(&times)))
        }
        None => None,
    };
    let exports = if bench.env.only.is_none()
        || bench
            .env
            .only
            .as_ref()
            .is_some_and(|o| o.iter().any(|n| n == "export"))
    {
        measure_exports(&bench, rows as u64).await
    } else {
        Vec::new()
    };
    println!("\nmeasured in {:.0} s\n", started.elapsed().as_secs_f64());

    // The table for BENCHMARKS.md.
    println!(
        "| case | URL | what | n | p50 | p95 | p99 | max | baseline p50 | baseline p99 | ratio p50 | ratio p99 | dashboard's SQL per request, median: COUNTs / other | other processes' CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in &results {
        let url = if m.url.len() > 60 {
            format!("{}…", &m.url[..m.url.find("after=").map_or(60, |i| i + 6)])
        } else {
            m.url.clone()
        };
        println!(
            "| `{}` | `{url}` | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} |",
            m.name,
            m.what,
            m.n,
            m.page.p50,
            m.page.p95,
            m.page.p99,
            m.page.max,
            m.baseline.p50,
            m.baseline.p99,
            m.page.p50 / m.baseline.p50,
            m.page.p99 / m.baseline.p99,
            m.db_counts_ms,
            m.db_list_ms,
            m.others,
        );
    }
    println!(
        "| `floor` | `/bench/floor` | a handler returning `ok` | {n} | {:.2} | {:.2} | {:.2} | {:.2} | | | | | | |",
        floor.p50, floor.p95, floor.p99, floor.max
    );
    if let Some((k, m, c)) = counts {
        println!(
            "| `status_counts` | (no HTTP) | the status counts ({k} statement(s) with `COUNT`), sqlx alone | {m} | {:.2} | {:.2} | {:.2} | {:.2} | | | | | | |",
            c.p50, c.p95, c.p99, c.max
        );
    }
    if !exports.is_empty() {
        println!(
            "\n| export | runs | bytes | seconds | runs/s | MB/s | peak RSS before → during (MiB) |"
        );
        println!("|---|---|---|---|---|---|---|");
        for e in &exports {
            println!("{e}");
        }
    }
    let target = 20.0;
    let over: Vec<&str> = results
        .iter()
        .filter(|m| m.name.contains("first") || m.name.contains("deep"))
        .filter(|m| m.page.p99 > target)
        .map(|m| m.name)
        .collect();
    if over.is_empty() {
        println!("\nevery list page (first and deep): p99 <= {target} ms");
    } else {
        println!("\nlist pages over the p99 target of {target} ms: {over:?}");
    }
    server.abort();
}
