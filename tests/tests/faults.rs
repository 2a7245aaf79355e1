//! Faults injected under load (issue 17), each on the set-up the docs show
//! a user (default tracker options, the connection string as given):
//!
//! | fault | what is asserted |
//! |---|---|
//! | PostgreSQL restarted twice during load | every acknowledged event (stored or queued) is in the table afterwards; no write returns an error |
//! | a SQLite file locked by another process for 5 s | the same; the writes made during the lock wait or queue, none fails |
//! | disk full (`PRAGMA max_page_count` on the SQLite file) | the tracker reports it (`write_errors`, `queued`), writes return at once as queued, the events land once space returns |
//! | SIGKILL at random moments, ten times | after each restart the dead process's runs are `interrupted`, their locks are free, and every event acknowledged as stored is in the table |
//! | PostgreSQL down under the dashboard | every page and API route answers 503 with a message and `Retry-After` (the metrics and a task kind's page may answer from their cached numbers) within the dashboard's `answer_within` (5 s by default, 1 s here; the pool alone would wait 30 s); 200 again once it is back |
//! | PostgreSQL down for 6 s | no write waits for it: every `lifecycle` call answers within `connection_wait` (1 s) and the write itself, under 2 s (queued) |
//!
//! Each test prints a line `FAULT <name>: acknowledged …, checked …, lost
//! 0`; BENCHMARKS.md's fault table is made of them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
};
use tasktrail::{Dashboard, Event, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, DedicatedServer, connect};
use tower::ServiceExt;

/// The steps each load worker records for each of its runs, in order.
const STEPS: [&str; 4] = ["create", "start", "progress", "complete"];

fn step_event(step: usize, key: &str, i: i64) -> Event {
    match step {
        0 => Event::create(key).name("load"),
        1 => Event::start(key),
        2 => Event::progress(key, 50.0),
        _ => Event::complete(key).result(&i),
    }
}

/// What a load worker saw: per run key, how many of its steps were
/// acknowledged (in order), and the answers' counts.
#[derive(Default)]
struct Acks {
    steps: HashMap<String, usize>,
    stored: u64,
    queued: u64,
    errors: Vec<String>,
    /// The longest a write took to answer.
    slowest: Duration,
}

impl Acks {
    fn merge(&mut self, other: Acks) {
        self.steps.extend(other.steps);
        self.stored += other.stored;
        self.queued += other.queued;
        self.errors.extend(other.errors);
        self.slowest = self.slowest.max(other.slowest);
    }

    fn acknowledged(&self) -> u64 {
        self.stored + self.queued
    }
}

/// `workers` tasks recording runs `{prefix}-w{w}-{i}` through `tracker`
/// until `stop`; a queued answer slows a worker down (the retry queue is
/// bounded: a worker that kept going at full speed through an outage would
/// fill it, which `retry_queue_overflow_is_counted` covers).
fn load(
    tracker: &task_run::Tracker,
    prefix: &str,
    workers: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Acks>> {
    (0..workers)
        .map(|w| {
            let tracker = tracker.clone();
            let stop = stop.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut acks = Acks::default();
                let mut i = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}-w{w}-{i}");
                    for (step, name) in STEPS.iter().enumerate() {
                        let sent = Instant::now();
                        let answer = tracker.lifecycle(step_event(step, &key, i)).await;
                        acks.slowest = acks.slowest.max(sent.elapsed());
                        match answer {
                            Ok(Written::Stored) => acks.stored += 1,
                            Ok(Written::Queued) => {
                                acks.queued += 1;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            other => {
                                acks.errors.push(format!("{key} {name}: {other:?}"));
                                break;
                            }
                        }
                        acks.steps.insert(key.clone(), step + 1);
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                acks
            })
        })
        .collect()
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Acks>>) -> Acks {
    let mut all = Acks::default();
    for task in tasks {
        all.merge(task.await.expect("a load worker"));
    }
    all
}

/// Checks every acknowledged step against the stored rows; returns how
/// many events were checked and the ones missing.
async fn lost_events(db: &DatabaseConnection, prefix: &str, acks: &Acks) -> (u64, Vec<String>) {
    let rows: HashMap<String, task_run::Model> = task_run::Entity::find()
        .filter(task_run::Column::TaskKey.starts_with(format!("{prefix}-")))
        .all(db)
        .await
        .expect("read the rows")
        .into_iter()
        .map(|r| (r.task_key.clone(), r))
        .collect();
    let mut checked = 0;
    let mut lost = Vec::new();
    for (key, &steps) in &acks.steps {
        let i: i64 = key.rsplit('-').next().unwrap().parse().unwrap();
        let row = rows.get(key);
        for (step, name) in STEPS.iter().enumerate().take(steps) {
            checked += 1;
            let present = row.is_some_and(|r| match step {
                0 => r.task_name == "load",
                1 => r.started_at.is_some(),
                2 => r.percent == Some(50.0),
                _ => r.status == "success" && r.result_payload == Some(serde_json::json!(i)),
            });
            if !present {
                lost.push(format!("{key} {name}: {row:?}"));
            }
        }
    }
    (checked, lost)
}

fn report(fault: &str, acks: &Acks, checked: u64, lost: &[String]) {
    eprintln!(
        "FAULT {fault}: acknowledged {} (stored {}, queued {}), checked {checked}, lost {}, errors {}, slowest answer {:?}",
        acks.acknowledged(),
        acks.stored,
        acks.queued,
        lost.len(),
        acks.errors.len(),
        acks.slowest
    );
    assert!(
        acks.errors.is_empty(),
        "{fault}: {} writes failed, e.g. {:?}",
        acks.errors.len(),
        &acks.errors[..acks.errors.len().min(3)]
    );
    assert!(
        lost.is_empty(),
        "{fault}: {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert_eq!(
        checked,
        acks.acknowledged(),
        "{fault}: every acknowledged event checked"
    );
}

/// PostgreSQL stops and starts twice while 8 workers record runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_twice_under_load() {
    let pg = PgUnderLoad::start("pg", 8).await;
    let server = &pg.server;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        tokio::task::block_in_place(|| server.stop());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        tokio::task::block_in_place(|| server.start());
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.stop("postgres restarted twice").await;
}

/// PostgreSQL on a server of its own (so the test can stop it), connected
/// as the docs show (the URL as given, default options), with `workers`
/// load workers recording runs `{prefix}-…`.
struct PgUnderLoad {
    server: DedicatedServer,
    db: DatabaseConnection,
    tracker: task_run::Tracker,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Acks>>,
}

/// A PostgreSQL server of the test's own, a fresh database on it with the
/// runs table, and a tracker on a pool connected as the docs show.
async fn pg_tracker() -> (DedicatedServer, DatabaseConnection, task_run::Tracker) {
    let server = DedicatedServer::launch(Backend::Postgres);
    let url = server.fresh_database().await;
    let db = Database::connect(&url).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    (server, db, tracker)
}

impl PgUnderLoad {
    async fn start(prefix: &'static str, workers: usize) -> PgUnderLoad {
        let (server, db, tracker) = pg_tracker().await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&tracker, prefix, workers, &stop);
        PgUnderLoad {
            server,
            db,
            tracker,
            prefix,
            stop,
            workers,
        }
    }

    /// Stops the load, waits for every queued event, checks every
    /// acknowledged one (the outage seen, nothing dropped, nothing lost)
    /// and reports them as `fault`.
    async fn stop(self, fault: &str) -> Acks {
        self.stop.store(true, Ordering::Relaxed);
        let acks = join(self.workers).await;
        assert!(
            self.tracker.flush(Duration::from_secs(60)).await,
            "{:?}",
            self.tracker.stats()
        );
        let stats = self.tracker.stats();
        assert!(
            stats.write_errors > 0,
            "{fault}: the outage was seen: {stats:?}"
        );
        assert_eq!(stats.dropped, 0, "{stats:?}");
        let (checked, lost) = lost_events(&self.db, self.prefix, &acks).await;
        report(fault, &acks, checked, &lost);
        acks
    }
}

/// Regression (found by the restart test): while PostgreSQL was down, the
/// writer's retry of its queue waited for a pool connection — up to the
/// pool's acquire timeout, 30 s by default — and callers' events waited
/// behind it instead of being queued at once. Down for 6 s here: no
/// `lifecycle` call may take longer than `connection_wait` (1 s) and the
/// write itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_at_once_through_a_long_outage() {
    let pg = PgUnderLoad::start("long", 4).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    tokio::task::block_in_place(|| pg.server.stop());
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::block_in_place(|| pg.server.start());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let acks = pg.stop("PostgreSQL down 6 s").await;
    assert!(acks.queued > 0, "the outage was seen");
    // At most `connection_wait` (1 s) and the write itself: the first
    // write after the stop waits that long when the pool has no live
    // connection left; every later one is queued at once.
    assert!(
        acks.slowest < Duration::from_secs(2),
        "a write waited {:?} for the outage",
        acks.slowest
    );
}

/// Runs `lock_holder --lock-file`: another process holds the file's write
/// lock for `hold`; returns once it holds it.
fn lock_file_for(url: &str, hold: Duration) -> (Child, std::thread::JoinHandle<Vec<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lock_holder"))
        .args(["--lock-file", url, &hold.as_millis().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lock_holder");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("stdout");
    assert_eq!(first, "LOCKED");
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (child, rest)
}

/// Another process holds the SQLite file's write lock for 5 s while 8
/// workers record runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_locked_5s_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("runs.sqlite").display()
    );
    let db = tasktrail::sqlite::connect(&url).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&tracker, "lock", 8, &stop);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let locked = Instant::now();
    let (mut child, rest) =
        tokio::task::block_in_place(|| lock_file_for(&url, Duration::from_secs(5)));
    let before = tracker.stats();
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success());
    assert_eq!(rest.join().unwrap(), ["RELEASED"]);
    assert!(locked.elapsed() >= Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let acks = join(workers).await;
    assert!(
        tracker.flush(Duration::from_secs(60)).await,
        "{:?}",
        tracker.stats()
    );
    let after = tracker.stats();
    assert!(
        after.writes > before.writes,
        "writes went on after the lock: {before:?} → {after:?}"
    );
    let (checked, lost) = lost_events(&db, "lock", &acks).await;
    report("SQLite file locked 5 s", &acks, checked, &lost);
}

/// The SQLite file may not grow (`PRAGMA max_page_count`): writes queue
/// and the tracker reports it; once the limit is lifted, every queued
/// event lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_then_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("runs.sqlite").display()
    );
    // `max_page_count` is a setting of one connection: one connection, so
    // the limit holds for every write and can be lifted again.
    let db = tasktrail::sqlite::SqliteSetup::new(&url)
        .connections(1)
        .connect()
        .await
        .unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&tracker, "full", 4, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pages = page_count(&db).await;
    db.execute_unprepared(&format!("PRAGMA max_page_count = {}", pages + 4))
        .await
        .unwrap();
    // Full: writes fail with SQLITE_FULL and queue, and the run goes on.
    let full = Instant::now();
    while tracker.stats().queued == 0 && full.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let during = tracker.stats();
    assert!(during.queued > 0 && during.write_errors > 0, "{during:?}");
    db.execute_unprepared("PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let acks = join(workers).await;
    assert!(
        tracker.flush(Duration::from_secs(60)).await,
        "{:?}",
        tracker.stats()
    );
    assert_eq!(tracker.stats().dropped, 0);
    assert!(acks.queued > 0, "writes were answered as queued while full");
    let (checked, lost) = lost_events(&db, "full", &acks).await;
    report("SQLite disk full", &acks, checked, &lost);
}

async fn page_count(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA page_count",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// What a killed worker printed.
#[derive(Default)]
struct WorkerOutput {
    acked: Vec<(String, String)>,
    queued: usize,
    errors: Vec<String>,
    /// Its long runs: key and locked object.
    runs: Vec<(String, String)>,
}

fn start_worker(url: &str, generation: u32) -> (Child, std::thread::JoinHandle<WorkerOutput>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kill_worker"))
        .args([url, &generation.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kill_worker");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("stdout");
    assert_eq!(first, "READY");
    let reader = std::thread::spawn(move || {
        let mut out = WorkerOutput::default();
        for line in lines.map_while(Result::ok) {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("ACK"), Some(what), Some(key)) => out.acked.push((what.into(), key.into())),
                (Some("QUEUED"), ..) => out.queued += 1,
                (Some("RUN"), Some(key), Some(object)) => {
                    out.runs.push((key.into(), object.into()))
                }
                _ => out.errors.push(line),
            }
        }
        out
    });
    (child, reader)
}

/// A small deterministic generator for the kill moments (seeded from the
/// clock; the seed is printed, `TASKTRAIL_FAULT_SEED` replays one).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

async fn killed_ten_times(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let mut seed: u64 = std::env::var("TASKTRAIL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{backend:?}: TASKTRAIL_FAULT_SEED={seed}");
    // The test's own tracker takes the dead runs' locks to prove them free;
    // its sweep never runs (the workers' do).
    let tracker = task_run::Tracker::with_options(
        db.clone(),
        TrackerOptions {
            sweep_interval: Duration::from_secs(3600),
            ..TrackerOptions::default()
        },
    );
    let mut worker = tokio::task::block_in_place(|| start_worker(&guard.url, 0));
    let (mut acked, mut interrupted, mut freed) = (0_usize, 0_usize, 0_usize);
    for generation in 0..10_u32 {
        let wait = 300 + next(&mut seed) % 1_500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let (mut child, reader) = worker;
        child.kill().expect("SIGKILL");
        tokio::task::block_in_place(|| child.wait()).unwrap();
        let out = reader.join().unwrap();
        // Restart: the next generation's sweep recovers this one's runs.
        worker = tokio::task::block_in_place(|| start_worker(&guard.url, generation + 1));

        assert!(
            out.errors.is_empty(),
            "worker {generation}: {:?}",
            out.errors
        );
        assert_eq!(
            out.queued, 0,
            "worker {generation}: writes queued with the database up"
        );
        assert_eq!(
            out.runs.len(),
            8,
            "worker {generation} spawned its runs before {wait} ms"
        );
        // Every event acknowledged as stored is there.
        let rows: HashMap<String, task_run::Model> = task_run::Entity::find()
            .filter(task_run::Column::TaskKey.starts_with(format!("g{generation}-")))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.task_key.clone(), r))
            .collect();
        for (what, key) in &out.acked {
            let row = rows.get(key);
            let present = row.is_some_and(|r| match what.as_str() {
                "create" => r.task_name == "kill",
                "start" => r.started_at.is_some(),
                "progress" => r.percent == Some(50.0) || r.status == "success",
                "complete" => r.status == "success",
                other => panic!("{other}"),
            });
            assert!(
                present,
                "worker {generation}: {what} {key} acknowledged, not stored: {row:?}"
            );
        }
        acked += out.acked.len();
        // Recovery: its runs end `interrupted` within a few lease lengths.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (key, object) in &out.runs {
            loop {
                let row = task_run::Entity::find()
                    .filter(task_run::Column::TaskKey.eq(key))
                    .one(&db)
                    .await
                    .unwrap()
                    .expect("the run's row");
                if row.status == "interrupted" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "worker {generation}: {key} still {} 20 s after the kill",
                    row.status
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            interrupted += 1;
            // Its lock is free: a run of this process takes it.
            tracker
                .begin("taker")
                .key(format!("{key}-taker"))
                .objects([object.as_str()])
                .spawn(|_ctx| async move { Ok::<_, String>(()) })
                .await
                .unwrap_or_else(|e| panic!("worker {generation}: {object} still locked: {e}"))
                .await
                .unwrap();
            freed += 1;
        }
    }
    let (mut child, _reader) = worker;
    child.kill().unwrap();
    tokio::task::block_in_place(|| child.wait()).unwrap();
    eprintln!(
        "FAULT SIGKILL ×10 ({backend:?}): acknowledged {acked}, checked {acked}, lost 0, \
         runs interrupted {interrupted}, locks freed {freed}"
    );
    assert!(
        acked > 1_000,
        "only {acked} events acknowledged in ten lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_sqlite_file() {
    killed_ten_times(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_postgres() {
    killed_ten_times(Backend::Postgres).await;
}

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        filters: [status, task_name],
        search: [task_name, message],
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Option<String>, String, Duration) {
    let mut request = Request::get(uri).body(Body::empty()).unwrap();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let started = Instant::now();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

/// PostgreSQL stops under a dashboard connected as the docs show: every
/// route answers 503 with a message and `Retry-After`, quickly; once it is
/// back, 200 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_while_postgres_is_down() {
    let (server, _db, tracker) = pg_tracker().await;
    for i in 0..5 {
        tracker
            .write(&Event::create(format!("run-{i}")).name("import"))
            .await
            .unwrap();
    }
    // One dashboard on the defaults, one told to give up sooner.
    let default =
        axum::Router::new().merge(Dashboard::new(Ops::default(), tracker.clone()).router());
    let app = axum::Router::new().merge(
        Dashboard::new(Ops::default(), tracker)
            .answer_within(Duration::from_secs(1))
            .router(),
    );
    let routes = [
        "/ops/",
        "/ops/runs",
        "/ops/runs/run-1",
        "/ops/kinds/import",
        "/ops/api/runs",
        "/ops/api/runs/run-1",
        "/ops/api/metrics",
        "/ops/api/kinds",
    ];
    for uri in routes {
        let (status, ..) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri} with the database up");
    }
    tokio::task::block_in_place(|| server.stop());
    let stopped = chrono::Utc::now();
    // Numbers computed before the stop (the metrics, a task kind's) are
    // served as they were, stale while their refresh fails: those routes
    // answer 200 from them, saying when they were counted. Every other
    // route needs the database.
    let mut served_stale = 0;
    // The default: 5 s at most (the pool alone would wait 30 s).
    let (status, retry, body, took) = get(&default, "/ops/api/runs").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        retry.is_some() && took < Duration::from_millis(5_500),
        "{took:?}"
    );
    for round in 0..2 {
        for uri in routes {
            let (status, retry, body, took) = get(&app, uri).await;
            assert!(
                took < Duration::from_secs(2),
                "{uri} took {took:?} to answer"
            );
            if (uri.contains("/kinds") || uri.ends_with("/metrics")) && status == StatusCode::OK {
                // Numbers computed before: served stale while their
                // refresh fails, counted before the stop and as old.
                served_stale += 1;
                if uri.ends_with("/api/metrics") {
                    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let as_of: chrono::DateTime<chrono::Utc> =
                        json["as_of"].as_str().unwrap().parse().unwrap();
                    let age = json["age_seconds"].as_f64().unwrap();
                    let down = (chrono::Utc::now() - stopped).as_seconds_f64();
                    assert!(as_of < stopped, "counted at {as_of}, stopped at {stopped}");
                    assert!(age >= down - 0.05, "age {age} s, down for {down} s");
                }
                continue;
            }
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{uri} (round {round}): {body}"
            );
            assert!(retry.is_some(), "{uri}: no Retry-After");
            if uri.starts_with("/ops/api/") {
                let json: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{uri}: not JSON: {body}"));
                assert!(
                    json["error"]
                        .as_str()
                        .is_some_and(|m| m.contains("database")),
                    "{body}"
                );
            } else {
                assert!(body.contains("database"), "{uri}: {body}");
            }
        }
    }
    eprintln!(
        "FAULT dashboard, PostgreSQL down: 503 + Retry-After, {served_stale} answers from cached numbers"
    );
    tokio::task::block_in_place(|| server.start());
    let back = Instant::now();
    for uri in routes {
        loop {
            let (status, _, body, _) = get(&app, uri).await;
            if status == StatusCode::OK {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(30),
                "{uri} still {status} 30 s after the restart: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
