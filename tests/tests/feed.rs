//! The change feed: what instance A's live stream shows of instance B's
//! writes. B is another process (`feed_writer`) or another pool in this
//! one; its clock runs 5 s behind; its events wait out an outage; many
//! writers commit concurrently; a transaction that took its sequence value
//! first commits last; A's listener connection is killed. The stream shows
//! every change, once, in order per run.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use serde_json::Value;
use tasktrail::{Clock, Dashboard, Event, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, SseCollector, connect, pg};
use tokio::io::AsyncBufReadExt;
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
    }
}

const RUN: [&str; 5] = ["create", "start", "progress", "progress", "complete"];

fn options(instance: &str, clock_ms: i64) -> TrackerOptions {
    TrackerOptions {
        instance: Some(instance.into()),
        clock: Clock::offset(chrono::TimeDelta::milliseconds(clock_ms)),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..TrackerOptions::default()
    }
}

/// A's live stream, read as it comes.
async fn stream(tracker: &task_run::Tracker) -> SseCollector {
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let mut request = Request::get("/ops/api/events").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collector = SseCollector::start(response.into_body());
    // The stream starts from now: let it take its place first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    collector
}

/// One streamed change: `(id, key, kind, instance)`.
fn parse(events: &[(String, String)]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .map(|(id, data)| {
            let run: Value = serde_json::from_str(data).unwrap();
            let change = &run["__change"];
            assert_eq!(change["id"].as_str(), Some(id.as_str()), "{data}");
            (
                id.clone(),
                run["task_key"].as_str().unwrap().to_owned(),
                change["kind"].as_str().unwrap().to_owned(),
                change["instance"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// An id's place in the feed: `(txid, seq)`.
fn place(id: &str) -> (u64, u64) {
    match id.split_once('-') {
        Some((txid, seq)) => (txid.parse().unwrap(), seq.parse().unwrap()),
        None => (0, id.parse().unwrap()),
    }
}

/// Every change came once, in the feed's order, and each run's changes in
/// the order they were written.
fn assert_complete(changes: &[(String, String, String, String)], runs: &BTreeMap<String, String>) {
    let ids: HashSet<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids.len(), changes.len(), "no change twice");
    assert!(
        changes.windows(2).all(|w| place(&w[0].0) < place(&w[1].0)),
        "in the feed's order"
    );
    let mut per_run: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, key, kind, instance) in changes {
        if let Some(expected) = runs.get(key) {
            assert_eq!(instance, expected, "{key}: written by {expected}");
            per_run.entry(key).or_default().push(kind);
        }
    }
    let missing: Vec<(&String, Option<&Vec<&str>>)> = runs
        .keys()
        .filter(|k| per_run.get(k.as_str()).map(Vec::len) != Some(RUN.len()))
        .map(|k| (k, per_run.get(k.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} runs miss changes ({} changes streamed), e.g. {:?}",
        missing.len(),
        runs.len(),
        changes.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    for (key, kinds) in per_run {
        assert_eq!(kinds, RUN, "{key}: in order");
    }
}

/// Writes `runs` runs from each of `writers` tasks, as `feed_writer` does.
async fn write_runs(tracker: &task_run::Tracker, prefix: &str, writers: usize, runs: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let tracker = tracker.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for r in 0..runs {
                let key = format!("{prefix}-{w}-{r}");
                for event in tasktrail_tests::run_events(&key) {
                    tracker.lifecycle(event).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn keys(prefix: &str, instance: &str, writers: usize, runs: usize) -> Vec<(String, String)> {
    (0..writers)
        .flat_map(|w| (0..runs).map(move |r| (format!("{prefix}-{w}-{r}"), instance.to_owned())))
        .collect()
}

/// A and B, two processes on one database, write at once (8 writers each,
/// B's clock 5 s behind): A's stream shows all 2,000 changes.
async fn another_process(backend: Backend) {
    let (db, test) = connect(backend).await;
    // Each process connects as the docs show (a SQLite file in WAL mode).
    let db = match backend {
        Backend::SqliteFile => tasktrail::sqlite::connect(&test.url).await.unwrap(),
        _ => db,
    };
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let a = task_run::Tracker::with_options(db, options("A", 0));
    let live = stream(&a).await;

    let mut b = tokio::process::Command::new(env!("CARGO_BIN_EXE_feed_writer"))
        .args([&test.url, "B", "-5000", "8", "25", "b"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the feed_writer process");
    write_runs(&a, "a", 8, 25).await;
    let mut out = tokio::io::BufReader::new(b.stdout.take().unwrap()).lines();
    let done = tokio::time::timeout(Duration::from_secs(60), out.next_line())
        .await
        .expect("B finishes");
    assert_eq!(done.unwrap().as_deref(), Some("DONE"));
    assert!(b.wait().await.unwrap().success());

    let runs: BTreeMap<String, String> = keys("a", "A", 8, 25)
        .into_iter()
        .chain(keys("b", "B", 8, 25))
        .collect();
    let events = live.wait_for(2_000, Duration::from_secs(30)).await;
    let changes = parse(&events);
    assert_complete(&changes, &runs);
    assert_eq!(changes.len(), 2_000, "nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_postgres() {
    another_process(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_mariadb() {
    another_process(Backend::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sqlite_file() {
    another_process(Backend::SqliteFile).await;
}

/// A transaction that took its sequence value first and commits last:
/// the stream holds the later change back until it can tell the earlier
/// one's fate, then sends both, in the feed's order (PostgreSQL: SQLite
/// commits in the order it numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_commits_late_is_not_skipped() {
    let (db, _test) = connect(Backend::Postgres).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let a = task_run::Tracker::with_options(db.clone(), options("A", 0));
    let live = stream(&a).await;

    // 6: a transaction writes a run and its change, and stays open.
    let slow = db.begin().await.unwrap();
    slow.execute_unprepared(
        "INSERT INTO task_runs (task_key, task_name, status, created_at, updated_at, cleaned_up) \
         VALUES ('slow', 'feed', 'in_progress', now(), now(), false)",
    )
    .await
    .unwrap();
    slow.execute_unprepared(
        "INSERT INTO tasktrail_changes (scope, run_key, kind, instance) \
         VALUES ('task_runs', 'slow', 'start', 'manual')",
    )
    .await
    .unwrap();
    // 7: the tracker writes and commits meanwhile.
    assert_eq!(
        a.lifecycle(Event::start("fast").name("feed"))
            .await
            .unwrap(),
        Written::Stored
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        live.events().is_empty(),
        "7 waits while 6 may still commit: {:?}",
        live.events()
    );
    slow.commit().await.unwrap();
    let changes = parse(&live.wait_for(2, Duration::from_secs(10)).await);
    let order: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.1.as_str(), c.3.as_str()))
        .collect();
    assert_eq!(order, [("slow", "manual"), ("fast", "A")]);

    // A transaction that rolls back leaves nothing to wait for.
    let gone = db.begin().await.unwrap();
    gone.execute_unprepared(
        "INSERT INTO tasktrail_changes (scope, run_key, kind, instance) \
         VALUES ('task_runs', 'never', 'start', 'manual')",
    )
    .await
    .unwrap();
    a.lifecycle(Event::start("after").name("feed"))
        .await
        .unwrap();
    gone.rollback().await.unwrap();
    let changes = parse(&live.wait_for(3, Duration::from_secs(10)).await);
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].1, "after");
}

/// B's clock runs 5 s behind and its events wait out an outage of the
/// database; A's listener connection is killed meanwhile: A's stream shows
/// every change of B's, in order, once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_and_a_killed_listener_lose_nothing() {
    let instance = pg::Instance::launch().expect("a dedicated PostgreSQL");
    let url = pg::create_database(&instance.admin_url()).await;
    let pool = |n: u32| {
        let mut opts = sea_orm::ConnectOptions::new(url.clone());
        opts.max_connections(n)
            .acquire_timeout(Duration::from_millis(500));
        Database::connect(opts)
    };
    let db_a = pool(4).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db_a)
        .await
        .unwrap();
    let a = task_run::Tracker::with_options(db_a.clone(), options("A", 0));
    let b = task_run::Tracker::with_options(pool(4).await.unwrap(), options("B", -5_000));
    let live = stream(&a).await;

    // Before the outage: the listener is up; kill its connection.
    write_runs(&b, "before", 2, 5).await;
    live.wait_for(50, Duration::from_secs(10)).await;
    let killed = kill_listener(&db_a).await;
    assert_eq!(killed, 1, "one listener in the process");
    write_runs(&b, "between", 2, 5).await;

    // The outage: B's events wait in its queue.
    instance.stop().unwrap();
    let mut written = Vec::new();
    for i in 0..10 {
        let key = format!("queued-{i}");
        for event in tasktrail_tests::run_events(&key) {
            written.push(b.lifecycle(event).await.unwrap());
        }
    }
    assert!(written.iter().all(|w| *w == Written::Queued), "{written:?}");
    instance.start().unwrap();
    assert!(b.flush(Duration::from_secs(30)).await, "{:?}", b.stats());

    let runs: BTreeMap<String, String> = keys("before", "B", 2, 5)
        .into_iter()
        .chain(keys("between", "B", 2, 5))
        .chain((0..10).map(|i| (format!("queued-{i}"), "B".to_owned())))
        .collect();
    let changes = parse(&live.wait_for(150, Duration::from_secs(30)).await);
    assert_complete(&changes, &runs);
    assert_eq!(changes.len(), 150);
    // The listener came back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while listeners(&db_a).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener reconnects"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The connections listening for the feed's notifications.
async fn listeners(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE query ILIKE 'LISTEN%tasktrail_changes%' AND datname = current_database()",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Terminates the listener's connection; returns how many were.
async fn kill_listener(db: &DatabaseConnection) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while listeners(db).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE query ILIKE 'LISTEN%tasktrail_changes%' AND datname = current_database()",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// The run page shows the run's history from the feed: each event, the
/// status it left (an event after the end is marked as kept), when, from
/// which instance, by whom.
async fn history_on_the_run_page(backend: Backend) {
    let (db, _test) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let a = task_run::Tracker::with_options(db.clone(), options("worker-a", 0));
    let b = task_run::Tracker::with_options(db, options("web-b", 0));
    for event in [
        Event::create("h1").name("feed"),
        Event::start("h1"),
        Event::progress("h1", 50.0),
    ] {
        a.lifecycle(event).await.unwrap();
    }
    b.cancel("h1", Some("enough".into())).await.unwrap();
    // The owner's late completion: the rules keep `cancelled`.
    a.lifecycle(Event::complete("h1")).await.unwrap();

    let app = Dashboard::new(Ops::default(), b.clone()).router();
    let mut request = Request::get("/ops/runs/h1").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8_lossy(&bytes);
    let section = &html[html.find("<section class=\"history\">").expect("a history")..];
    let section = &section[..section.find("</section>").unwrap()];
    let rows: Vec<Vec<String>> = section
        .split("<tr")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap()].to_owned()
                })
                .collect()
        })
        .collect();
    let shown: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("create", "pending", "worker-a"),
            ("start", "in_progress", "worker-a"),
            ("progress", "in_progress", "worker-a"),
            ("cancel", "cancelled", "web-b"),
            (
                "complete",
                "cancelled (kept: the run had ended)",
                "worker-a"
            ),
        ],
        "{section}"
    );
    // Times by the database's clock, oldest first.
    assert!(rows.windows(2).all(|w| w[0][0] <= w[1][0]), "{rows:?}");
}

tasktrail_tests::backends!(history_on_the_run_page);
