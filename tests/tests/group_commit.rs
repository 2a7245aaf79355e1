//! Group commit (issue 13): many runs share each commit, one run's events
//! keep their order inside a batch (also the same row twice, which one
//! PostgreSQL statement refuses), and an event acknowledged as stored
//! survives the process being killed. On a SQLite file, in-memory SQLite
//! and PostgreSQL.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::EntityTrait;
use tasktrail::{Event, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::find_run as row;
use tasktrail_tests::{Backend, backends, connect};

/// 1,000 spawned runs at once, each reporting progress twice: every row is
/// exact, and the writes took far fewer commits than there were writes.
async fn concurrent_runs_share_commits(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(
        db.clone(),
        TrackerOptions {
            // Every progress call is its own write.
            progress_interval: Duration::ZERO,
            // Heartbeats all the time: none may re-create a released lease.
            heartbeat_interval: Duration::from_millis(5),
            lease_ttl: Duration::from_secs(60),
            ..TrackerOptions::default()
        },
    );
    let before = tracker.stats();
    let mut spawned = Vec::new();
    for i in 0..1_000_u32 {
        let run = tracker
            .spawn("bulk", &i, move |ctx| async move {
                ctx.progress(30.0);
                tokio::task::yield_now().await;
                ctx.progress(60.0);
                tokio::task::yield_now().await;
                Ok::<_, String>(i * 2)
            })
            .await
            .unwrap();
        spawned.push(run);
    }
    let mut keys = Vec::new();
    for run in spawned {
        keys.push(run.key().to_owned());
        run.await.unwrap();
    }
    let after = tracker.stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    // create, lease, start, complete, release, and the progress writes
    // (what the recorder did not merge into the ending).
    assert!(writes >= 5_000 + after.progress_writes, "{after:?}");
    assert!(
        commits * 5 < writes,
        "{commits} commits for {writes} writes: {after:?}"
    );
    assert_eq!(after.refused + after.dropped + after.queued, 0, "{after:?}");
    for (i, key) in keys.iter().enumerate() {
        let r = row(&db, key).await.expect("every run has its row");
        assert_eq!(r.status, "success", "{key}");
        assert_eq!(r.percent, Some(100.0), "{key}");
        assert_eq!(r.task_args, Some(serde_json::json!(i)), "{key}");
        assert_eq!(r.result_payload, Some(serde_json::json!(i * 2)), "{key}");
        assert!(r.started_at.is_some() && r.completed_at.is_some(), "{key}");
    }
    // Leases are gone with their runs.
    let leases = tasktrail::run::store::lease::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert!(leases.is_empty(), "{} leases left", leases.len());
}

/// One run's whole life handed over at once: one commit, applied in order —
/// the same row written four times in one batch, twice with the same
/// statement shape (one PostgreSQL statement cannot touch a row twice).
async fn one_runs_events_in_one_batch_apply_in_order(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let before = tracker.stats();
    let answers = tracker
        .lifecycle_all([
            Event::create("one").name("import").args(&"a.csv"),
            Event::create("two").name("export"),
            Event::start("one"),
            Event::progress("one", 20.0),
            Event::progress("one", 70.0),
            Event::start("two"),
            Event::complete("one").result(&"done"),
            // Late: a create and a progress after the end change nothing.
            Event::create("one").name("other"),
            Event::progress("one", 5.0),
        ])
        .await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Written::Stored))),
        "{answers:?}"
    );
    let after = tracker.stats();
    // On PostgreSQL the two runs may go to two connections.
    let shards = if backend == Backend::Postgres { 2 } else { 1 };
    assert!(after.commits - before.commits <= shards, "{after:?}");
    assert_eq!(after.writes - before.writes, 9);

    let one = row(&db, "one").await.unwrap();
    assert_eq!(one.status, "success");
    assert_eq!(one.task_name, "import");
    assert_eq!(one.percent, Some(70.0));
    assert_eq!(one.result_payload, Some(serde_json::json!("done")));
    assert!(one.started_at.is_some() && one.completed_at.is_some());
    let two = row(&db, "two").await.unwrap();
    assert_eq!(two.status, "in_progress");
}

/// On an idle tracker a lone event is written by its caller (the idle fast
/// path), holding the shard's gate. A caller that gives up mid-write (its
/// future dropped after the first poll) must leave the gate open: `flush`
/// (which the shard answers only after taking the gate) still answers, and
/// the tracker's next events are written as usual, in order. And the
/// dropped writes still land, as a queued op does whether or not its
/// caller waits: the last one is what the row shows (cutting a statement
/// off half-way also made sqlx close the connection, which took an
/// in-memory database with it).
async fn a_dropped_lone_write_leaves_nothing_pending(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let run = tracker.begin("lone").start().await;
    let key = run.key().to_owned();
    for i in 0..20 {
        let write = run.progress(f64::from(i));
        let mut write = std::pin::pin!(write);
        // One poll starts the statement; then the caller walks away.
        let _ = futures::poll!(&mut write);
    }
    assert!(
        tracker.flush(Duration::from_secs(5)).await,
        "a dropped write left the writer pending: {:?}",
        tracker.stats()
    );
    let stored = row(&db, &key).await.expect("the run");
    assert_eq!(
        stored.percent,
        Some(19.0),
        "the dropped writes did not land"
    );
    run.progress(77.0).await;
    run.complete(&"done").await;
    let stored = row(&db, &key).await.expect("the run");
    assert_eq!(stored.status, "success");
    assert_eq!(stored.percent, Some(100.0));
    assert_eq!(stored.result_payload, Some(serde_json::json!("done")));
    assert!(tracker.flush(Duration::from_secs(1)).await);
}

backends!(
    concurrent_runs_share_commits,
    one_runs_events_in_one_batch_apply_in_order,
    a_dropped_lone_write_leaves_nothing_pending,
);

/// `ack_writer` records runs as fast as it can and prints each event once
/// its future resolved as stored; it is killed with SIGKILL mid-flight;
/// every event it acknowledged is in the table.
async fn acknowledged_events_survive_a_kill(backend: Backend) {
    let (db, guard) = connect(backend).await;
    for round in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ack_writer"))
            .arg(&guard.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ack_writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    acked.push(rest.to_owned());
                }
            }
            acked
        });
        // Let it write under load for a while, then kill it mid-flight.
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(1_500 + 500 * round)).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(
            acked.len() > 100,
            "only {} events acknowledged in {:?}",
            acked.len(),
            started.elapsed()
        );
        let rows = task_run::Entity::find().all(&db).await.unwrap();
        let present: HashSet<&str> = rows.iter().map(|r| r.task_key.as_str()).collect();
        let done: HashSet<&str> = rows
            .iter()
            .filter(|r| r.status == "success")
            .map(|r| r.task_key.as_str())
            .collect();
        for ack in &acked {
            let (what, key) = ack.split_once(' ').unwrap();
            match what {
                "create" => assert!(present.contains(key), "{key} was acknowledged, not stored"),
                "complete" => assert!(done.contains(key), "{key} was acknowledged complete"),
                other => panic!("{other}"),
            }
        }
        // Keys are reused by the next round: start from an empty table.
        task_run::Entity::delete_many().exec(&db).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_kill_sqlite_file() {
    acknowledged_events_survive_a_kill(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_kill_postgres() {
    acknowledged_events_survive_a_kill(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_kill_mariadb() {
    acknowledged_events_survive_a_kill(Backend::MariaDb).await;
}

/// A transaction PostgreSQL aborts to resolve a deadlock (40P01) or a
/// serialization failure (40001) is tried again at once: the database
/// answers, so the events are stored, not sent to the outage queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlocked_batch_is_tried_again_at_once_postgres() {
    use sea_orm::ConnectionTrait;
    let (db, _g) = connect(Backend::Postgres).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    // The first two writes of `conflict-*` runs fail as PostgreSQL's
    // deadlock detection would fail them (a sequence is not rolled back).
    db.execute_unprepared(
        "CREATE SEQUENCE tt_conflicts;
         CREATE FUNCTION tt_conflict() RETURNS trigger AS $$
         BEGIN
           IF NEW.task_key LIKE 'conflict-%' AND nextval('tt_conflicts') <= 2 THEN
             RAISE EXCEPTION 'deadlock detected (by the test)' USING ERRCODE = '40P01';
           END IF;
           RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER tt_conflict BEFORE INSERT OR UPDATE ON task_runs
           FOR EACH ROW EXECUTE FUNCTION tt_conflict();",
    )
    .await
    .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let answers = tracker
        .lifecycle_all([
            Event::create("conflict-1").name("import"),
            Event::complete("conflict-1").result(&1),
        ])
        .await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Written::Stored))),
        "{answers:?}"
    );
    let stats = tracker.stats();
    assert_eq!((stats.queued, stats.refused), (0, 0), "{stats:?}");
    assert!(stats.write_errors >= 2, "{stats:?}");
    assert_eq!(row(&db, "conflict-1").await.unwrap().status, "success");
}
