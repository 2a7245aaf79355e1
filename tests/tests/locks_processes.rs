//! Locks hold across processes: the test runs `lock_holder` (this package's
//! binary) as a second process on the same database, sees its locks conflict,
//! kills it, and sees the recovery sweep interrupt its run and free its locks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use tasktrail::{SpawnError, TrackerOptions};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, connect};

fn quick() -> TrackerOptions {
    TrackerOptions {
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(600),
        sweep_interval: Duration::from_secs(3600),
        ..TrackerOptions::default()
    }
}

async fn across_processes(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    if backend == Backend::SqliteFile {
        db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_lock_holder"))
        .arg(&guard.url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holder process");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(60), line)
        .await
        .expect("the holder reports its run")
        .unwrap();
    let holder_key = line
        .trim()
        .strip_prefix("HOLDING ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_owned();

    let tracker = task_run::Tracker::with_options(db.clone(), quick());
    let try_spawn = || {
        tracker
            .begin("reindex")
            .objects(["book:2", "book:3"])
            .spawn(|_ctx| async move { Ok::<_, String>(()) })
    };
    // Held, and still held after several lock lifetimes: the other process's
    // heartbeat refreshes its locks.
    for _ in 0..3 {
        let err = try_spawn()
            .await
            .expect_err("book:2 is held by the other process");
        let SpawnError::Conflict(conflicts) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].object, "book:2");
        assert_eq!(conflicts[0].run_key, holder_key);
        assert_eq!(conflicts[0].task_name, "holder");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = tracker.recover().await.unwrap();
    assert!(report.interrupted.is_empty(), "{report:?}");

    child.kill().expect("kill the holder");
    child.wait().unwrap();
    let killed = Instant::now();

    // The sweep interrupts the dead process's run once its lease lapses.
    let mut report = tracker.recover().await.unwrap();
    while report.interrupted.is_empty() && killed.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = tracker.recover().await.unwrap();
    }
    assert_eq!(report.interrupted, std::slice::from_ref(&holder_key));
    assert_eq!(report.locks_freed, 2);
    let row = task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(&holder_key))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "interrupted");
    assert!(
        row.message
            .as_deref()
            .is_some_and(|m| m.contains("stopped sending heartbeats")),
        "{:?}",
        row.message
    );
    try_spawn()
        .await
        .expect("the dead process's locks are free")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_across_processes_postgres() {
    across_processes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_across_processes_mariadb() {
    across_processes(Backend::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_across_processes_sqlite_file() {
    across_processes(Backend::SqliteFile).await;
}
