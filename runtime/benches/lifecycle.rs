//! Benchmarks of tasktrail's lifecycle writes against the same statements
//! written by hand with sqlx, on a SQLite file.
//!
//! Run with `cargo bench -p tasktrail --bench lifecycle`; the figures and
//! what they mean are in `BENCHMARKS.md` at the workspace root.
//!
//! * `full_run`: one run through the public API — `begin(..).create()`,
//!   `start`, ten `progress` and `complete`, each awaited: 13 upserts — against the 13
//!   identical upserts written with sqlx (`hand_written_sqlx`). After the
//!   two criterion measurements, `full_run/paired` alternates the two
//!   variants run by run and prints the ratios of back-to-back pairs, which
//!   a drifting `fsync` latency does not skew.
//! * `spawn_1000`: 1,000 runs spawned at once with `Tracker::spawn`, against
//!   1,000 tokio tasks writing create, start, progress and complete by hand
//!   (`hand_written_sqlx`) and, for reference, the same plus the lease and
//!   lock statements a spawned run also writes
//!   (`hand_written_sqlx_with_lease`).
//!
//! Each group runs twice: on a file with SQLite's defaults (WAL aside;
//! `synchronous = FULL`: every commit waits for an `fsync`), then, suffixed
//! `_sync_normal`, on a file with `synchronous = NORMAL` (the usual WAL
//! setting: commits do not wait for the disk, so CPU costs show).
//!
//! Both sides use their own pool built by [`sqlite_pool`] (one connection,
//! WAL, the same settings) on the same file, and their own table of the same
//! schema: `bench_runs` for tasktrail, `bench_runs_sqlx` for the hand-written
//! side. Before measuring, [`verify`] checks on an in-memory database that
//! the hand-written SQL is byte for byte the SQL tasktrail sends, with as
//! many binds, and that both leave the same row with the same storage
//! classes. Set `TASKTRAIL_BENCH_SQL=1` to print the statements.

#![allow(missing_docs)]

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, SamplingMode, Throughput};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::sqlx::types::Json;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sqlx};
use tasktrail::TrackerOptions;

/// The tracked entity (tasktrail's side).
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

/// The same schema under another name, for the hand-written side; tasktrail
/// only creates its table.
mod bench_run_sqlx {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "bench_runs_sqlx")]
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

/// A run's arguments and result, the same on both sides.
const ARGS: (&str, u32) = ("books.csv", 500);
const RESULT: (&str, u32) = ("imported", 500);

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

/// The pool both sides use: one connection, WAL, SQLite's other defaults
/// (`synchronous = FULL`), sqlx's statement cache.
async fn sqlite_pool(options: SqliteConnectOptions) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.journal_mode(SqliteJournalMode::Wal))
        .await
        .expect("open the SQLite database")
}

fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
}

/// The hand-written statements for one table: the SQL tasktrail generates
/// for this entity (see `lifecycle/write.rs`), written out once.
struct Sql {
    create: &'static str,
    start: &'static str,
    progress: &'static str,
    complete: &'static str,
    lease: &'static str,
    lock_refresh: &'static str,
    lock_release: &'static str,
    lease_release: &'static str,
    /// The change feed's row, written with each event in its transaction.
    change: &'static str,
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Sql {
    fn for_table(t: &str) -> &'static Sql {
        // The status guard: the move is allowed unless the stored status
        // blocks it.
        let guard = |col: &str, blocked: usize, then: &str| {
            let list: &[&str] = if blocked == 5 {
                &NOT_PENDING
            } else {
                &TERMINAL
            };
            let literals: Vec<String> = list.iter().map(|s| format!("'{s}'")).collect();
            format!(
                r#"(CASE WHEN ("{t}"."status" IS NULL OR "{t}"."status" NOT IN ({})) THEN {then} ELSE "{t}"."{col}" END)"#,
                literals.join(", ")
            )
        };
        let status = |blocked| guard("status", blocked, r#""excluded"."status""#);
        let state = |col: &str| guard(col, 4, &format!(r#""excluded"."{col}""#));
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
        let insert = |cols: &[&str], set: &[String]| {
            let names: Vec<String> = cols.iter().map(|c| format!(r#""{c}""#)).collect();
            format!(
                r#"INSERT INTO "{t}" ({}) VALUES ({}) ON CONFLICT ("task_key") DO UPDATE SET {}"#,
                names.join(", "),
                marks(cols.len()),
                set.join(", ")
            )
        };
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let sql = Sql {
            create: leak(insert(
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
                    format!(r#""status" = {}"#, status(5)),
                    r#""updated_at" = "excluded"."updated_at""#.to_owned(),
                    format!(r#""task_name" = {}"#, fill_text("task_name")),
                    format!(r#""user_label" = {}"#, fill_text("user_label")),
                    format!(r#""task_args" = {}"#, fill("task_args")),
                ],
            )),
            start: leak(insert(
                &[
                    "task_key",
                    "status",
                    "updated_at",
                    "created_at",
                    "started_at",
                    "task_name",
                ],
                &[
                    format!(r#""status" = {}"#, status(4)),
                    r#""updated_at" = "excluded"."updated_at""#.to_owned(),
                    format!(
                        r#""started_at" = {}"#,
                        guard(
                            "started_at",
                            4,
                            &format!(r#"IFNULL("{t}"."started_at", "excluded"."started_at")"#)
                        )
                    ),
                ],
            )),
            progress: leak(insert(
                &[
                    "task_key",
                    "status",
                    "updated_at",
                    "created_at",
                    "progress_payload",
                    "task_name",
                ],
                &[
                    format!(r#""status" = {}"#, status(4)),
                    r#""updated_at" = "excluded"."updated_at""#.to_owned(),
                    format!(r#""progress_payload" = {}"#, state("progress_payload")),
                ],
            )),
            complete: leak(insert(
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
                    format!(r#""status" = {}"#, status(4)),
                    r#""updated_at" = "excluded"."updated_at""#.to_owned(),
                    format!(r#""completed_at" = {}"#, state("completed_at")),
                    format!(r#""result_payload" = {}"#, state("result_payload")),
                    format!(r#""progress_payload" = {}"#, state("progress_payload")),
                ],
            )),
            // Timed by the database's clock: started = now − elapsed,
            // heartbeat = now, expires = now + TTL, deadline = now +
            // remaining.
            lease: leak({
                let now = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
                format!(
                    concat!(
                        r#"INSERT INTO "tasktrail_leases" ("scope", "run_key", "task_name", "instance", "started_ms", "heartbeat_ms", "expires_ms", "deadline_ms") "#,
                        r#"VALUES (?, ?, ?, ?, ({now}) - ?, {now}, ({now}) + ?, ({now}) + ?) ON CONFLICT ("scope", "run_key") DO UPDATE SET "#,
                        r#""instance" = "excluded"."instance", "heartbeat_ms" = "excluded"."heartbeat_ms", "expires_ms" = "excluded"."expires_ms""#
                    ),
                    now = now
                )
            }),
            lock_refresh: r#"UPDATE "tasktrail_locks" SET "expires_ms" = ? WHERE "scope" = ? AND "run_key" IN (?)"#,
            // Since group commit the releases are one-row forms of the
            // writer's multi-row deletes.
            lock_release: r#"DELETE FROM "tasktrail_locks" WHERE ("scope", "run_key") IN ((?, ?))"#,
            lease_release: r#"DELETE FROM "tasktrail_leases" WHERE ("scope", "run_key") IN ((?, ?))"#,
            change: "INSERT INTO tasktrail_changes (scope, run_key, kind, instance, actor) VALUES (?, ?, ?, ?, ?)",
        };
        Box::leak(Box::new(sql))
    }
}

/// The hand-written run: the statements tasktrail sends, with the same
/// values bound in the same order.
struct Hand {
    pool: SqlitePool,
    sql: &'static Sql,
    scope: &'static str,
}

type SqlxResult = Result<(), sqlx::Error>;

/// Which lock statements a spawned run without objects sends besides its
/// lease: the hand-written `with_lease` variant sends the same.
#[derive(Clone, Copy, Debug)]
struct LeaseShape {
    lock_refresh: bool,
    lock_release: bool,
}

impl Hand {
    /// An event's statement and its change in the feed, in one transaction
    /// (as tasktrail writes a lone event).
    async fn event<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>,
        key: &str,
        kind: &str,
        actor: Option<&str>,
    ) -> SqlxResult {
        let mut tx = self.pool.begin().await?;
        q.execute(&mut *tx).await?;
        sqlx::query(self.sql.change)
            .bind(self.scope)
            .bind(key)
            .bind(kind)
            .bind("bench-instance")
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    async fn create(&self, key: &str, name: &str) -> SqlxResult {
        let now = Utc::now();
        let q = sqlx::query(self.sql.create)
            .bind(key)
            .bind("pending")
            .bind(now)
            .bind(now)
            .bind(name)
            .bind("anonymous")
            .bind(Json(&ARGS));
        self.event(q, key, "create", Some("anonymous")).await
    }

    async fn start(&self, key: &str) -> SqlxResult {
        let now = Utc::now();
        let q = sqlx::query(self.sql.start)
            .bind(key)
            .bind("in_progress")
            .bind(now)
            .bind(now)
            .bind(now)
            .bind("");
        self.event(q, key, "start", None).await
    }

    async fn progress(&self, key: &str, percent: f64) -> SqlxResult {
        let now = Utc::now();
        let q = sqlx::query(self.sql.progress)
            .bind(key)
            .bind("in_progress")
            .bind(now)
            .bind(now)
            .bind(percent)
            .bind("");
        self.event(q, key, "progress", None).await
    }

    async fn complete<T: serde::Serialize + Sync>(&self, key: &str, result: &T) -> SqlxResult {
        let now = Utc::now();
        let q = sqlx::query(self.sql.complete)
            .bind(key)
            .bind("success")
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(Json(result))
            .bind(100.0_f64)
            .bind("");
        self.event(q, key, "complete", None).await
    }

    /// `full_run`: create, start, 10 progress, complete.
    async fn full_run(&self, key: &str) -> SqlxResult {
        self.create(key, "bench_full").await?;
        self.start(key).await?;
        for i in 1..=10 {
            self.progress(key, f64::from(i) * 9.0).await?;
        }
        self.complete(key, &RESULT).await
    }

    /// `spawn_1000`'s baseline: create, start, progress, complete.
    async fn short_run(&self, key: &str) -> SqlxResult {
        self.create(key, "bench_spawn").await?;
        self.start(key).await?;
        self.progress(key, 50.0).await?;
        self.complete(key, &1).await
    }

    /// The short run plus what a spawned run writes besides its lifecycle
    /// events (as [`verify`] saw them): its lease (and the refresh of its
    /// locks) first, the release of its locks and lease last.
    async fn short_run_with_lease(&self, key: &str, shape: LeaseShape) -> SqlxResult {
        let now = Utc::now().timestamp_millis();
        let ttl = 30_000;
        // Elapsed 0, the TTL, no maximum duration.
        sqlx::query(self.sql.lease)
            .bind(self.scope)
            .bind(key)
            .bind("bench_spawn")
            .bind("bench-instance")
            .bind(0_i64)
            .bind(ttl)
            .bind(None::<i64>)
            .execute(&self.pool)
            .await?;
        if shape.lock_refresh {
            sqlx::query(self.sql.lock_refresh)
                .bind(now + ttl)
                .bind(self.scope)
                .bind(key)
                .execute(&self.pool)
                .await?;
        }
        self.short_run(key).await?;
        if shape.lock_release {
            sqlx::query(self.sql.lock_release)
                .bind(self.scope)
                .bind(key)
                .execute(&self.pool)
                .await?;
        }
        sqlx::query(self.sql.lease_release)
            .bind(self.scope)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A stored row with what differs between two runs (id, key, times) left
/// out; timestamps as whether they are set.
type Comparable = (
    String,
    String,
    Option<String>,
    Option<f64>,
    Option<String>,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    [bool; 3],
);

fn comparable(m: bench_run::Model) -> Comparable {
    (
        m.task_name,
        m.status,
        m.message,
        m.progress_payload,
        m.user_label,
        m.task_args,
        m.result_payload,
        [
            m.started_at.is_some(),
            m.completed_at.is_some(),
            m.failed_at.is_some(),
        ],
    )
}

async fn row(db: &DatabaseConnection, key: &str) -> bench_run::Model {
    bench_run::Entity::find()
        .filter(bench_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .expect("read a row")
        .unwrap_or_else(|| panic!("no row for `{key}`"))
}

/// The SQLite storage class of each column, to check both sides bind the
/// same types.
async fn storage(pool: &SqlitePool, key: &str) -> Vec<String> {
    let sql = r#"SELECT typeof(task_name) || ',' || typeof(status) || ',' || typeof(progress_payload)
        || ',' || typeof(user_label) || ',' || typeof(task_args) || ',' || typeof(result_payload)
        || ',' || typeof(created_at) || ',' || typeof(updated_at) || ',' || typeof(started_at)
        || ',' || typeof(completed_at)
        FROM bench_runs WHERE task_key = ?"#;
    let types: String = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(pool)
        .await
        .expect("read storage classes");
    types.split(',').map(str::to_owned).collect()
}

type Captured = Arc<Mutex<Vec<(String, usize)>>>;

/// Checks, on an in-memory database, that the hand-written statements are
/// the ones tasktrail sends and leave the same rows.
async fn verify() -> LeaseShape {
    let pool = sqlite_pool(SqliteConnectOptions::from_str("sqlite::memory:").expect("url")).await;
    let mut db = DatabaseConnection::from(pool.clone());
    let captured: Captured = Arc::default();
    let sink = captured.clone();
    db.set_metric_callback(move |info| {
        let binds = info.statement.values.as_ref().map_or(0, |v| v.0.len());
        sink.lock()
            .expect("lock")
            .push((info.statement.sql.clone(), binds));
    });
    // The writer's batches go to sqlx directly: traced, not metered.
    tasktrail_tests::sql_capture::start(captured.clone());
    tasktrail::schema::create::<bench_run::Model>(&db)
        .await
        .expect("create the table");
    let sql = Sql::for_table("bench_runs");
    let hand = Hand {
        pool: pool.clone(),
        sql,
        scope: "bench_runs",
    };
    let print = std::env::var_os("TASKTRAIL_BENCH_SQL").is_some();
    // The tracker's one-off check of the SQLite set-up (`PRAGMA
    // journal_mode`, from a task of its own) is not one of the run's
    // statements.
    let take = || {
        let mut statements = std::mem::take(&mut *captured.lock().expect("lock"));
        // Nor is the writer's look for the change feed's table (once).
        statements
            .retain(|(sql, _)| !sql.starts_with("PRAGMA") && !sql.contains("FROM sqlite_master"));
        statements
    };
    let check = |what: &str, got: &(String, usize), want: &str| {
        assert_eq!(
            got.0, want,
            "the hand-written `{what}` is not the SQL tasktrail sends"
        );
        assert_eq!(got.1, want.matches('?').count(), "`{what}`: bind count");
        if print {
            println!("-- {what} ({} binds)\n{}\n", got.1, got.0);
        }
    };

    // A full run through the API.
    take();
    let tracker = bench_run::Tracker::new(db.clone());
    let run = tracker
        .begin("bench_full")
        .key("verify-tracked")
        .args(&ARGS)
        .start()
        .await;
    run.progress(9.0).await;
    run.complete(&RESULT).await;
    let statements = take();
    // Each event, then its change in the feed; `start()` hands over the
    // create and the start together: their changes are one statement.
    assert_eq!(statements.len(), 7, "{statements:#?}");
    check("create", &statements[0], sql.create);
    check("start", &statements[1], sql.start);
    let two = format!("{}, (?, ?, ?, ?, ?)", sql.change);
    check("change ×2", &statements[2], &two);
    check("progress", &statements[3], sql.progress);
    check("change", &statements[4], sql.change);
    check("complete", &statements[5], sql.complete);
    check("change", &statements[6], sql.change);

    let key = "verify-hand";
    hand.create(key, "bench_full").await.expect("create");
    hand.start(key).await.expect("start");
    hand.progress(key, 9.0).await.expect("progress");
    hand.complete(key, &RESULT).await.expect("complete");
    assert_eq!(
        comparable(row(&db, "verify-tracked").await),
        comparable(row(&db, key).await),
        "the hand-written run leaves another row"
    );
    assert_eq!(
        storage(&pool, "verify-tracked").await,
        storage(&pool, key).await,
        "the hand-written run binds other types"
    );

    // A spawned run.
    let tracker = bench_run::Tracker::with_options(db.clone(), spawn_options());
    take();
    let spawned = tracker
        .spawn("bench_spawn", &ARGS, |ctx| async move {
            ctx.progress(50.0);
            Ok::<_, String>(1)
        })
        .await
        .expect("spawn");
    let spawned_key = spawned.key().to_owned();
    assert_eq!(spawned.await.expect("the spawned run"), 1);
    tracker.shutdown(Duration::from_secs(5)).await;
    let statements = take();
    let mut seen = Vec::new();
    for statement in &statements {
        let text = statement.0.as_str();
        let known = [
            ("create", sql.create),
            ("start", sql.start),
            ("progress", sql.progress),
            ("complete", sql.complete),
            ("lease", sql.lease),
            ("lock refresh", sql.lock_refresh),
            ("lock release", sql.lock_release),
            ("lease release", sql.lease_release),
            ("change", sql.change),
        ]
        .into_iter()
        .find(|(_, want)| *want == text);
        match known {
            Some((what, want)) => {
                assert_eq!(
                    statement.1,
                    want.matches('?').count(),
                    "`{what}`: bind count"
                );
                seen.push(what);
            }
            None if text.starts_with("SELECT") => seen.push("select (maintenance)"),
            None if text.contains("tasktrail_l") => {
                // The maintenance's first sweep.
                seen.push("sweep (maintenance)");
            }
            None => panic!("a spawned run sent an unexpected statement:\n{text}"),
        }
        if print && known.is_none() {
            println!("-- maintenance ({} binds)\n{text}\n", statement.1);
        }
    }
    if print {
        println!("-- statements of one spawned run, in order: {seen:?}\n");
        println!("-- lease\n{}\n", sql.lease);
        println!("-- lock refresh\n{}\n", sql.lock_refresh);
        println!("-- lock release\n{}\n", sql.lock_release);
        println!("-- lease release\n{}\n", sql.lease_release);
    }
    for what in ["create", "start", "complete", "lease", "lease release"] {
        assert!(
            seen.contains(&what),
            "a spawned run did not send `{what}`: {seen:?}"
        );
    }

    let shape = LeaseShape {
        lock_refresh: seen.contains(&"lock refresh"),
        lock_release: seen.contains(&"lock release"),
    };
    if print {
        println!("-- the hand-written `with_lease` run sends: {shape:?}\n");
    }
    let key = "verify-hand-spawn";
    hand.short_run_with_lease(key, shape)
        .await
        .expect("the hand-written short run");
    assert_eq!(
        comparable(row(&db, &spawned_key).await),
        comparable(row(&db, key).await),
        "the hand-written short run leaves another row"
    );
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasktrail_leases")
        .fetch_one(&pool)
        .await
        .expect("count leases");
    assert_eq!(leases, 0, "a lease was left behind");
    tasktrail_tests::sql_capture::stop();
    pool.close().await;
    shape
}

fn spawn_options() -> TrackerOptions {
    TrackerOptions {
        progress_interval: Duration::from_millis(250),
        ..Default::default()
    }
}

/// Counts the rows of `table` that ended `success` for the task `name`.
async fn successes(pool: &SqlitePool, table: &str, name: &str) -> u64 {
    let sql =
        format!(r#"SELECT COUNT(*) FROM "{table}" WHERE task_name = ? AND status = 'success'"#);
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("count rows");
    u64::try_from(n).expect("a count")
}

/// One SQLite file with both sides' tables and pools.
struct Side {
    /// `""` for SQLite's defaults, `"_sync_normal"` for `synchronous = NORMAL`.
    suffix: &'static str,
    /// The pool behind tasktrail's connection (for the checks).
    tracked_pool: SqlitePool,
    db: DatabaseConnection,
    hand: Arc<Hand>,
    lease_shape: LeaseShape,
}

async fn side(
    dir: &Path,
    suffix: &'static str,
    synchronous: Option<SqliteSynchronous>,
    lease_shape: LeaseShape,
) -> Side {
    let path = dir.join(format!("bench{suffix}.sqlite"));
    let options = || {
        let options = file_options(&path);
        match synchronous {
            Some(mode) => options.synchronous(mode),
            None => options,
        }
    };
    let tracked_pool = sqlite_pool(options()).await;
    let db = DatabaseConnection::from(tracked_pool.clone());
    tasktrail::schema::create::<bench_run::Model>(&db)
        .await
        .expect("create bench_runs");
    tasktrail::schema::create::<bench_run_sqlx::Model>(&db)
        .await
        .expect("create bench_runs_sqlx");
    let hand = Arc::new(Hand {
        pool: sqlite_pool(options()).await,
        sql: Sql::for_table("bench_runs_sqlx"),
        scope: "bench_runs_sqlx",
    });
    Side {
        suffix,
        tracked_pool,
        db,
        hand,
        lease_shape,
    }
}

/// `full_run` through tasktrail's public API, event by event: `create`
/// and `start` awaited one after the other (`.start()` would hand both to
/// the writer at once, one commit instead of two: not what the hand-written
/// side does).
async fn tracked_full_run(tracker: &bench_run::Tracker, key: String) {
    let run = tracker
        .begin("bench_full")
        .key(key)
        .args(&ARGS)
        .create()
        .await;
    run.start().await;
    for i in 1..=10 {
        run.progress(f64::from(i) * 9.0).await;
    }
    run.complete(&RESULT).await;
}

fn full_run(c: &mut Criterion, rt: &tokio::runtime::Runtime, s: &Side) {
    let name = format!("full_run{}", s.suffix);
    let mut group = c.benchmark_group(&name);
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let tracker = bench_run::Tracker::new(s.db.clone());
    let iterations = AtomicU64::new(0);
    {
        let (tracker, iterations) = (&tracker, &iterations);
        group.bench_function("tracked", |b| {
            b.to_async(rt).iter(move || async move {
                let n = iterations.fetch_add(1, Ordering::Relaxed);
                tracked_full_run(tracker, format!("full-{n}")).await;
            });
        });
    }
    let n = iterations.load(Ordering::Relaxed);
    let stats = tracker.stats();
    if stats.writes != 13 * n || stats.write_errors != 0 {
        panic!(
            "{name}/tracked: {n} runs should make {} writes and no errors: {stats:?}",
            13 * n
        );
    }
    let stored = rt.block_on(successes(&s.tracked_pool, "bench_runs", "bench_full"));
    assert_eq!(stored, n, "{name}/tracked: runs stored as success");
    println!(
        "{name}/tracked: {n} runs, {} writes, no errors",
        stats.writes
    );

    let iterations = AtomicU64::new(0);
    {
        let (hand, iterations) = (&s.hand, &iterations);
        group.bench_function("hand_written_sqlx", |b| {
            b.to_async(rt).iter(move || async move {
                let n = iterations.fetch_add(1, Ordering::Relaxed);
                hand.full_run(&format!("full-{n}"))
                    .await
                    .expect("the hand-written run");
            });
        });
    }
    let hand_n = iterations.load(Ordering::Relaxed);
    let stored = rt.block_on(successes(&s.hand.pool, "bench_runs_sqlx", "bench_full"));
    assert_eq!(
        stored, hand_n,
        "{name}/hand_written_sqlx: runs stored as success"
    );
    println!("{name}/hand_written_sqlx: {hand_n} runs");
    group.finish();

    // Only when both were measured (not filtered out, not one of them under
    // `--profile-time`).
    if n > 0 && hand_n > 0 {
        paired(rt, &name, &tracker, &s.hand);
    }
}

/// The runs of [`paired`].
const PAIRS: usize = 300;

/// Alternates one tracked and one hand-written run, [`PAIRS`] times (the
/// order flips every pair), and prints the ratios of the pairs: on a disk
/// whose `fsync` latency drifts, back-to-back pairs compare like with like.
///
/// `paired` runs the pairs in `block_on` on the bench's main thread, as
/// criterion runs its iterations; `paired_in_task` runs them inside a
/// `tokio::spawn`ed task on a worker thread, as a request handler or a job
/// would. Since group commit a tracked event goes through the tracker's
/// writer task: from `block_on` that is two more thread wake-ups per event
/// than a statement sent straight to sqlx's SQLite thread.
fn paired(
    rt: &tokio::runtime::Runtime,
    name: &str,
    tracker: &bench_run::Tracker,
    hand: &Arc<Hand>,
) {
    let (tracked, written) = rt.block_on(pairs(tracker.clone(), hand.clone(), "paired"));
    report_pairs(name, "paired", tracked, written);
    let (tracked, written) = rt.block_on(async {
        tokio::spawn(pairs(tracker.clone(), hand.clone(), "paired-in-task"))
            .await
            .expect("the pairs' task")
    });
    report_pairs(name, "paired_in_task", tracked, written);
}

async fn pairs(tracker: bench_run::Tracker, hand: Arc<Hand>, prefix: &str) -> (Vec<f64>, Vec<f64>) {
    let mut tracked = Vec::with_capacity(PAIRS);
    let mut written = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let key = format!("{prefix}-{i}");
        let time_tracked = async {
            let at = std::time::Instant::now();
            tracked_full_run(&tracker, key.clone()).await;
            at.elapsed().as_secs_f64()
        };
        let time_hand = async {
            let at = std::time::Instant::now();
            hand.full_run(&key).await.expect("the hand-written run");
            at.elapsed().as_secs_f64()
        };
        if i % 2 == 0 {
            tracked.push(time_tracked.await);
            written.push(time_hand.await);
        } else {
            written.push(time_hand.await);
            tracked.push(time_tracked.await);
        }
    }
    (tracked, written)
}

fn report_pairs(name: &str, what: &str, mut tracked: Vec<f64>, mut written: Vec<f64>) {
    let mut ratios: Vec<f64> = tracked.iter().zip(&written).map(|(t, h)| t / h).collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let quartiles = |v: &Vec<f64>| (v[v.len() / 4], v[v.len() * 3 / 4]);
    let total = tracked.iter().sum::<f64>() / written.iter().sum::<f64>();
    let ratio = median(&mut ratios);
    let (q1, q3) = quartiles(&ratios);
    println!(
        "{name}/{what}: {PAIRS} pairs, median tracked {:.3} ms, median hand_written_sqlx {:.3} ms; \
         per-pair ratio tracked/hand_written: median {ratio:.3} (quartiles {q1:.3}–{q3:.3}); ratio of totals {total:.3}\n",
        median(&mut tracked) * 1e3,
        median(&mut written) * 1e3,
    );
}

const SPAWNED: u64 = 1000;

fn spawn_1000(c: &mut Criterion, rt: &tokio::runtime::Runtime, s: &Side) {
    let name = format!("spawn_1000{}", s.suffix);
    let mut group = c.benchmark_group(&name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if s.suffix.is_empty() {
            20
        } else {
            12
        }))
        .throughput(Throughput::Elements(SPAWNED));

    let tracker = bench_run::Tracker::with_options(s.db.clone(), spawn_options());
    let iterations = AtomicU64::new(0);
    {
        let (tracker, iterations) = (&tracker, &iterations);
        group.bench_function("tracked", |b| {
            b.to_async(rt).iter(move || async move {
                iterations.fetch_add(1, Ordering::Relaxed);
                let mut runs = Vec::with_capacity(SPAWNED as usize);
                for _ in 0..SPAWNED {
                    let run = tracker
                        .spawn("bench_spawn", &ARGS, |ctx| async move {
                            ctx.progress(50.0);
                            Ok::<_, String>(1)
                        })
                        .await
                        .expect("spawn");
                    runs.push(run);
                }
                for run in runs {
                    assert_eq!(run.await.expect("a spawned run"), 1);
                }
            });
        });
    }
    let report = rt.block_on(tracker.shutdown(Duration::from_secs(10)));
    let n = iterations.load(Ordering::Relaxed) * SPAWNED;
    let stats = tracker.stats();
    if stats.write_errors != 0 || stats.refused != 0 || stats.queued != 0 || !report.flushed {
        panic!("{name}/tracked: errors: {stats:?} {report:?}");
    }
    let stored = rt.block_on(successes(&s.tracked_pool, "bench_runs", "bench_spawn"));
    assert_eq!(stored, n, "{name}/tracked: runs stored as success");
    if n > 0 {
        println!(
            "{name}/tracked: {n} runs, {:.2} lifecycle writes per run ({:.2} of them separate progress writes)",
            stats.writes as f64 / n as f64,
            stats.progress_writes as f64 / n as f64,
        );
    }

    let iterations = AtomicU64::new(0);
    for (id, with_lease) in [
        ("hand_written_sqlx", false),
        ("hand_written_sqlx_with_lease", true),
    ] {
        let (hand, iterations, shape) = (&s.hand, &iterations, s.lease_shape);
        group.bench_function(id, |b| {
            b.to_async(rt).iter(move || async move {
                let n = iterations.fetch_add(1, Ordering::Relaxed);
                let mut tasks = Vec::with_capacity(SPAWNED as usize);
                for i in 0..SPAWNED {
                    let hand = hand.clone();
                    tasks.push(tokio::spawn(async move {
                        let key = format!("spawn-{n}-{i}");
                        if with_lease {
                            hand.short_run_with_lease(&key, shape).await
                        } else {
                            hand.short_run(&key).await
                        }
                    }));
                }
                for task in tasks {
                    task.await
                        .expect("a hand-written task")
                        .expect("the hand-written run");
                }
            });
        });
    }
    let n = iterations.load(Ordering::Relaxed) * SPAWNED;
    let stored = rt.block_on(successes(&s.hand.pool, "bench_runs_sqlx", "bench_spawn"));
    assert_eq!(
        stored, n,
        "{name}/hand_written_sqlx: runs stored as success"
    );
    group.finish();
}

fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(tasktrail_tests::sql_capture::Layer),
    )
    .expect("one global subscriber");
    let rt = runtime();
    let shape = rt.block_on(verify());
    let dir = tempfile::tempdir().expect("a temporary directory");
    // SQLite's defaults (WAL aside): every commit waits for an fsync.
    let defaults = rt.block_on(side(dir.path(), "", None, shape));
    // The usual WAL setting: commits do not wait for an fsync, so the
    // figures show the CPU cost of each side.
    let normal = rt.block_on(side(
        dir.path(),
        "_sync_normal",
        Some(SqliteSynchronous::Normal),
        shape,
    ));
    let mut c = Criterion::default().configure_from_args();
    full_run(&mut c, &rt, &defaults);
    full_run(&mut c, &rt, &normal);
    spawn_1000(&mut c, &rt, &defaults);
    spawn_1000(&mut c, &rt, &normal);
    c.final_summary();
}
