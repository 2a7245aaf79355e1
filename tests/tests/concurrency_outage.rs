//! Two pools writing the same keys at once; a database that goes away and
//! comes back.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use tasktrail::{Event, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, DedicatedServer, connect, second_pool};

/// 2 connection pools × 8 tasks emitting the whole lifecycle of the same 100
/// keys, shuffled per task → exactly 100 rows, no error, all terminal.
async fn two_pools_same_keys(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    if backend == Backend::SqliteFile {
        // Concurrent writers on one file: WAL, and wait for the lock.
        db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .unwrap();
    }
    let pools = [second_pool(&guard, 4).await, second_pool(&guard, 4).await];
    let mut tasks = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        let tracker = task_run::Tracker::new(pool.clone());
        for worker in 0..8_u64 {
            let tracker = tracker.clone();
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                for i in 0..100_u64 {
                    // A different order per worker so writes really collide.
                    let k = (i * 37 + worker * 13 + p as u64 * 7) % 100;
                    let key = format!("key-{k}");
                    let events = [
                        Event::create(&key).name("bulk").actor(&"ada"),
                        Event::start(&key),
                        Event::progress(&key, (worker * 10) as f64),
                        if k.is_multiple_of(3) {
                            Event::fail(&key, "boom")
                        } else {
                            Event::complete(&key)
                        },
                    ];
                    for ev in events {
                        match tracker.write(&ev).await {
                            Ok(Written::Stored) => {}
                            other => errors.push(format!("{key} {}: {other:?}", ev.kind)),
                        }
                    }
                }
                errors
            }));
        }
    }
    for task in tasks {
        let errors = task.await.unwrap();
        assert!(
            errors.is_empty(),
            "{} errors, e.g. {:?}",
            errors.len(),
            &errors[..errors.len().min(3)]
        );
    }
    let rows = task_run::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 100);
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *by_status.entry(r.status.clone()).or_default() += 1;
        assert_eq!(r.task_name, "bulk");
    }
    assert_eq!(by_status.get("failed"), Some(&34), "{by_status:?}");
    assert_eq!(by_status.get("success"), Some(&66), "{by_status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_same_keys_sqlite_file() {
    two_pools_same_keys(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_same_keys_postgres() {
    two_pools_same_keys(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_same_keys_mariadb() {
    two_pools_same_keys(Backend::MariaDb).await;
}

async fn status_of(db: &DatabaseConnection, key: &str) -> Option<task_run::Model> {
    use sea_orm::{ColumnTrait, QueryFilter};
    task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .unwrap()
}

/// Rule 7 on a database server: it stops mid-run; the run goes on and
/// finishes; the events wait in the queue and land, in order, once the
/// server is back.
async fn outage_loses_no_event(backend: Backend) {
    let instance = DedicatedServer::launch(backend);
    let url = instance.fresh_database().await;
    let mut opts = sea_orm::ConnectOptions::new(url.clone());
    opts.max_connections(2)
        .acquire_timeout(Duration::from_millis(500));
    let db = Database::connect(opts).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let run = tracker.begin("import").key("outage").start().await;
    instance.stop();
    for i in 1..=5 {
        run.progress(f64::from(i) * 10.0).await;
    }
    run.complete(&"imported 5").await;
    let stats = tracker.stats();
    assert!(stats.queued >= 6, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    instance.start();
    assert!(
        tracker.flush(Duration::from_secs(30)).await,
        "{:?}",
        tracker.stats()
    );
    let row = status_of(tracker.db(), "outage")
        .await
        .expect("the run's row");
    assert_eq!(row.status, "success");
    assert_eq!(row.percent, Some(100.0));
    assert_eq!(row.result_payload, Some(serde_json::json!("imported 5")));
    assert_eq!(tracker.stats().queue_len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_loses_no_event() {
    outage_loses_no_event(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_outage_loses_no_event() {
    outage_loses_no_event(Backend::MariaDb).await;
}

/// Rule 7 on SQLite: another connection holds the write lock; events queue
/// (the run is never blocked for long) and land once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_file_loses_no_event() {
    let (db, guard) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    db.close().await.unwrap();
    // A short busy timeout so the locked file is reported quickly.
    let mut opts = sea_orm::ConnectOptions::new(guard.url.clone());
    opts.max_connections(1);
    let db = Database::connect(opts).await.unwrap();
    db.execute_unprepared("PRAGMA busy_timeout = 100")
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let run = tracker.begin("import").key("locked").start().await;

    let locker = second_pool(&guard, 1).await;
    locker
        .execute_unprepared("PRAGMA busy_timeout = 100")
        .await
        .unwrap();
    let txn = sea_orm::TransactionTrait::begin(&locker).await.unwrap();
    txn.execute_unprepared("UPDATE task_runs SET message = 'locked' WHERE task_key = 'locked'")
        .await
        .unwrap();

    run.progress(40.0).await;
    run.complete(&7).await;
    assert!(tracker.stats().queued >= 1, "{:?}", tracker.stats());
    txn.rollback().await.unwrap();
    assert!(
        tracker.flush(Duration::from_secs(30)).await,
        "{:?}",
        tracker.stats()
    );
    let row = status_of(tracker.db(), "locked").await.unwrap();
    assert_eq!((row.status.as_str(), row.percent), ("success", Some(100.0)));
    assert_eq!(row.result_payload, Some(serde_json::json!(7)));
}

/// A run that sets progress 10, waits for `go`, then sets 20…50 and returns.
fn outage_task(
    go: std::sync::Arc<tokio::sync::Notify>,
) -> impl FnOnce(
    tasktrail::TaskContext,
) -> std::pin::Pin<Box<dyn Future<Output = Result<&'static str, String>> + Send>> {
    move |ctx| {
        Box::pin(async move {
            ctx.progress_with_message(10.0, "started");
            go.notified().await;
            for p in [20.0, 30.0, 40.0, 50.0] {
                ctx.progress_with_message(p, format!("{p}%"));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Ok("imported")
        })
    }
}

/// Issue 3, point 9 on PostgreSQL: the server stops while a spawned run is in
/// progress; the run is neither failed nor held up, and once the server is
/// back every event is in the table in the right final state.
async fn spawned_run_survives_an_outage(backend: Backend) {
    let instance = DedicatedServer::launch(backend);
    let url = instance.fresh_database().await;
    let mut opts = sea_orm::ConnectOptions::new(url.clone());
    opts.max_connections(2)
        .acquire_timeout(Duration::from_millis(500));
    let db = Database::connect(opts).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            progress_interval: Duration::from_millis(20),
            heartbeat_interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let run = tracker
        .begin("import")
        .key("spawned-outage")
        .objects(["book:1"])
        .spawn(outage_task(go.clone()))
        .await
        .unwrap();
    let db = tracker.db().clone();
    let started = std::time::Instant::now();
    while status_of(&db, "spawned-outage")
        .await
        .is_none_or(|r| r.percent != Some(10.0))
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    instance.stop();
    let down = std::time::Instant::now();
    go.notify_one();
    assert_eq!(run.await.unwrap(), "imported");
    assert!(
        down.elapsed() < Duration::from_secs(5),
        "the run was held up {:?} by the outage",
        down.elapsed()
    );
    let stats = tracker.stats();
    assert!(stats.queued >= 2, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    instance.start();
    assert!(
        tracker.flush(Duration::from_secs(30)).await,
        "{:?}",
        tracker.stats()
    );
    let row = status_of(&db, "spawned-outage").await.unwrap();
    assert_eq!(row.status, "success");
    assert_eq!(row.percent, Some(100.0));
    assert_eq!(row.message.as_deref(), Some("50%"));
    assert_eq!(row.result_payload, Some(serde_json::json!("imported")));
    assert!(row.completed_at.is_some());
    // The locks the run could not release while the server was down are
    // released by the heartbeat once it is back.
    let mut freed = false;
    for _ in 0..100 {
        let locks = tasktrail::run::store::lock::Entity::find()
            .all(&db)
            .await
            .unwrap();
        if locks.is_empty() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the run's lock was released after the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_run_survives_postgres_outage() {
    spawned_run_survives_an_outage(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_run_survives_mariadb_outage() {
    spawned_run_survives_an_outage(Backend::MariaDb).await;
}

/// Issue 3, point 9 on SQLite: another connection holds the write lock while
/// a spawned run progresses and completes; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_run_survives_locked_sqlite_file() {
    let (db, guard) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let mut opts = sea_orm::ConnectOptions::new(guard.url.clone());
    opts.max_connections(1);
    let db = Database::connect(opts).await.unwrap();
    db.execute_unprepared("PRAGMA busy_timeout = 100")
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            progress_interval: Duration::from_millis(20),
            ..Default::default()
        },
    );
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let run = tracker
        .begin("import")
        .key("spawned-locked")
        .spawn(outage_task(go.clone()))
        .await
        .unwrap();
    let db = tracker.db().clone();
    let started = std::time::Instant::now();
    while status_of(&db, "spawned-locked")
        .await
        .is_none_or(|r| r.percent != Some(10.0))
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let locker = second_pool(&guard, 1).await;
    locker
        .execute_unprepared("PRAGMA busy_timeout = 100")
        .await
        .unwrap();
    let txn = sea_orm::TransactionTrait::begin(&locker).await.unwrap();
    txn.execute_unprepared(
        "UPDATE task_runs SET message = 'locked' WHERE task_key = 'spawned-locked'",
    )
    .await
    .unwrap();
    go.notify_one();
    assert_eq!(run.await.unwrap(), "imported");
    assert!(tracker.stats().queued >= 1, "{:?}", tracker.stats());
    txn.rollback().await.unwrap();
    assert!(
        tracker.flush(Duration::from_secs(30)).await,
        "{:?}",
        tracker.stats()
    );
    let row = status_of(&db, "spawned-locked").await.unwrap();
    assert_eq!((row.status.as_str(), row.percent), ("success", Some(100.0)));
    assert_eq!(row.message.as_deref(), Some("50%"));
    assert_eq!(row.result_payload, Some(serde_json::json!("imported")));
    assert_eq!(tracker.stats().dropped, 0);
}

/// Issue 3, point 9: what overflows the retry queue is refused with an error,
/// counted and logged — never dropped silently — and what fits lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_queue_overflow_is_counted() {
    let (db, guard) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let mut opts = sea_orm::ConnectOptions::new(guard.url.clone());
    opts.max_connections(1);
    let db = Database::connect(opts).await.unwrap();
    db.execute_unprepared("PRAGMA busy_timeout = 50")
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            queue_capacity: 3,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            ..Default::default()
        },
    );
    tracker
        .lifecycle(Event::create("overflow").name("import"))
        .await
        .unwrap();
    let locker = second_pool(&guard, 1).await;
    let txn = sea_orm::TransactionTrait::begin(&locker).await.unwrap();
    txn.execute_unprepared("UPDATE task_runs SET message = 'locked'")
        .await
        .unwrap();

    let mut outcomes = Vec::new();
    for p in [10.0, 20.0, 30.0, 40.0, 50.0] {
        outcomes.push(tracker.lifecycle(Event::progress("overflow", p)).await);
    }
    let queued = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Written::Queued)))
        .count();
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(queued, 3, "{outcomes:?}");
    assert_eq!(refused.len(), 2, "{outcomes:?}");
    assert!(
        refused[0].contains("retry queue is full (3 events)"),
        "{refused:?}"
    );
    let stats = tracker.stats();
    assert_eq!((stats.queued, stats.dropped), (3, 2), "{stats:?}");

    txn.rollback().await.unwrap();
    assert!(tracker.flush(Duration::from_secs(30)).await);
    let row = status_of(tracker.db(), "overflow").await.unwrap();
    assert_eq!(
        row.percent,
        Some(30.0),
        "the queued events landed, in order"
    );
}
