//! Spawned runs: the whole life recorded, cancellation, bounded concurrency,
//! progress coalescing, locks, heartbeat and recovery, retention, completion
//! hooks, retry and shutdown — on a SQLite file, in-memory SQLite and
//! PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tasktrail::run::store::{lease, lock};
use tasktrail::{
    CancelOutcome, Cancelled, Clock, Event, LockConflict, Retention, RetentionError, RetryError,
    RunError, SpawnError, Spawned, Status, Task, TaskContext, TrackerOptions,
};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::find_run as try_row;
use tasktrail_tests::{Backend, TestDb, backends, connect, second_pool};
use tokio::sync::Notify;

type Tracker = task_run::Tracker;

/// Short intervals so that heartbeats and sweeps happen within a test.
fn quick() -> TrackerOptions {
    TrackerOptions {
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(600),
        sweep_interval: Duration::from_millis(200),
        cancel_grace: Duration::from_millis(200),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..TrackerOptions::default()
    }
}

async fn setup(backend: Backend, options: TrackerOptions) -> (Tracker, TestDb) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .expect("create the schema");
    (Tracker::with_options(db, options), guard)
}

async fn row(db: &DatabaseConnection, key: &str) -> task_run::Model {
    try_row(db, key)
        .await
        .unwrap_or_else(|| panic!("no row for {key}"))
}

async fn rows_named(db: &DatabaseConnection, name: &str) -> Vec<task_run::Model> {
    task_run::Entity::find()
        .filter(task_run::Column::TaskName.eq(name))
        .all(db)
        .await
        .expect("query")
}

async fn locks_of(db: &DatabaseConnection, key: &str) -> Vec<lock::Model> {
    lock::Entity::find()
        .filter(lock::Column::RunKey.eq(key))
        .all(db)
        .await
        .expect("query")
}

/// Waits until `check` holds, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

/// Spawns a run that waits until it is cancelled, and returns it once its
/// row is `in_progress` and its lease is written.
async fn spawn_until_cancelled(tracker: &Tracker) -> (Spawned<(), Cancelled>, String) {
    let run = tracker
        .spawn("long", &(), |ctx| async move {
            Err::<(), _>(ctx.cancelled().await)
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    let db = tracker.db();
    assert!(
        eventually(Duration::from_secs(5), || async {
            try_row(db, &key)
                .await
                .is_some_and(|r| r.status == "in_progress")
                && !lease::Entity::find().all(db).await.unwrap().is_empty()
        })
        .await,
        "the run did not start"
    );
    (run, key)
}

// 1. spawn records create → start → complete and returns the typed result.
async fn spawn_records_the_whole_life(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let run = tracker
        .begin("import_books")
        .actor(&"ada")
        .args(&json!({"file": "dune.csv"}))
        .spawn(|ctx| async move {
            assert_eq!(ctx.name(), "import_books");
            assert_eq!(ctx.actor().map(|a| a.label.as_str()), Some("ada"));
            ctx.progress_with_message(50.0, "half way");
            Ok::<_, String>(ctx.key().len())
        })
        .await
        .expect("spawned");
    let key = run.key().to_owned();
    assert_eq!(run.await.expect("the run succeeds"), key.len());
    let r = row(tracker.db(), &key).await;
    assert_eq!(r.status, "success");
    assert_eq!(r.task_name, "import_books");
    assert_eq!(r.user_label.as_deref(), Some("ada"));
    assert_eq!(r.task_args, Some(json!({"file": "dune.csv"})));
    assert_eq!(r.result_payload, Some(json!(key.len())));
    assert_eq!(r.percent, Some(100.0));
    assert_eq!(r.message.as_deref(), Some("half way"));
    assert!(r.started_at.is_some() && r.completed_at.is_some());
    assert!(r.failed_at.is_none());
    // The run's lease and locks are gone.
    assert!(locks_of(tracker.db(), &key).await.is_empty());
    assert!(tracker.running().is_empty());
}

// 1. an Err is failed with its message; a panic is failed with the panic's.
async fn spawn_err_and_panic_are_failed(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let run = tracker
        .spawn(
            "import",
            &(),
            |_ctx| async move { Err::<(), _>("disk full") },
        )
        .await
        .unwrap();
    let key = run.key().to_owned();
    assert!(matches!(run.await, Err(RunError::Failed("disk full"))));
    let r = row(tracker.db(), &key).await;
    assert_eq!(
        (r.status.as_str(), r.message.as_deref()),
        ("failed", Some("disk full"))
    );
    assert!(r.failed_at.is_some() && r.completed_at.is_none());

    let run = tracker
        .spawn("import", &(), |ctx| async move {
            ctx.progress(30.0);
            tokio::task::yield_now().await;
            if ctx.key().is_empty() {
                return Ok(());
            }
            panic!("boom at row 7");
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    let outcome: Result<(), RunError<String>> = run.await;
    assert!(
        matches!(&outcome, Err(RunError::Panicked(m)) if m == "boom at row 7"),
        "{outcome:?}"
    );
    let r = row(tracker.db(), &key).await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.message.as_deref(), Some("panicked: boom at row 7"));
    assert_eq!(r.percent, Some(30.0), "the last progress is persisted");
}

// 1 + 2. cancel from another task: cancelled within 100 ms of the run's next
// cancellation check (the run checks every 10 ms).
async fn cancel_from_another_task(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let started = Arc::new(Notify::new());
    let started2 = started.clone();
    let seen_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen_at2 = seen_at.clone();
    let run = tracker
        .spawn("long", &(), move |ctx| async move {
            started2.notify_one();
            loop {
                if let Err(stop) = ctx.check() {
                    *seen_at2.lock().unwrap() = Some(Instant::now());
                    return Err(stop);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            #[allow(unreachable_code)]
            Ok::<(), Cancelled>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    started.notified().await;
    let canceller = {
        let tracker = tracker.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let at = Instant::now();
            let outcome = tracker
                .cancel(&key, Some("operator asked".into()))
                .await
                .unwrap();
            (at, outcome)
        })
    };
    let outcome = run.await;
    let recorded = Instant::now();
    let (asked, cancel_outcome) = canceller.await.unwrap();
    assert_eq!(cancel_outcome, CancelOutcome::Signalled);
    let seen = seen_at
        .lock()
        .unwrap()
        .expect("the task saw the cancellation");
    // The next check (every 10 ms) sees the request…
    assert!(
        seen - asked < Duration::from_millis(60),
        "the task saw the request after {:?}",
        seen - asked
    );
    // …and the run is recorded cancelled within 100 ms of that check.
    assert!(
        recorded - seen < Duration::from_millis(100),
        "recorded {:?} after the check",
        recorded - seen
    );
    assert!(
        matches!(&outcome, Err(RunError::Cancelled(m)) if m == "cancelled: operator asked"),
        "{outcome:?}"
    );
    let r = row(tracker.db(), &key).await;
    assert_eq!(r.status, "cancelled");
    assert_eq!(r.message.as_deref(), Some("cancelled: operator asked"));
    assert!(locks_of(tracker.db(), &key).await.is_empty());
    // Cancelling it again: it has ended.
    assert_eq!(
        tracker.cancel(&key, None).await.unwrap(),
        CancelOutcome::AlreadyEnded(Status::Cancelled)
    );
    assert_eq!(
        tracker.cancel("no-such-run", None).await.unwrap(),
        CancelOutcome::NotFound
    );
}

// 1. a task that ignores cancellation is dropped after the grace period.
async fn stubborn_task_is_dropped_after_grace(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let run = tracker
        .spawn("stubborn", &(), |_ctx| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let asked = Instant::now();
    run.cancel();
    let outcome = run.await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        matches!(&outcome, Err(RunError::Cancelled(m)) if m.contains("dropped")),
        "{outcome:?}"
    );
    assert_eq!(row(tracker.db(), &key).await.status, "cancelled");
}

// 1. max runs at once: the rest wait as pending; a pending run can be
// cancelled and never starts.
async fn bounded_concurrency(backend: Backend) {
    let (tracker, _g) = setup(
        backend,
        TrackerOptions {
            max_concurrent: Some(2),
            ..quick()
        },
    )
    .await;
    let gate = Arc::new(Notify::new());
    let running_now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut runs = Vec::new();
    for i in 0..5 {
        let gate = gate.clone();
        let running_now = running_now.clone();
        let most = most.clone();
        let run = tracker
            .begin("batch")
            .key(format!("batch-{i}"))
            .spawn(move |_ctx| async move {
                let n = running_now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                gate.notified().await;
                running_now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(i)
            })
            .await
            .unwrap();
        runs.push(run);
    }
    let db = tracker.db().clone();
    let statuses = || async {
        let mut s: Vec<String> = rows_named(&db, "batch")
            .await
            .into_iter()
            .map(|r| r.status)
            .collect();
        s.sort();
        s
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            statuses().await
                == [
                    "in_progress",
                    "in_progress",
                    "pending",
                    "pending",
                    "pending",
                ]
        })
        .await,
        "{:?}",
        statuses().await
    );
    // One that waits is cancelled.
    let pending = rows_named(&db, "batch")
        .await
        .into_iter()
        .find(|r| r.status == "pending")
        .unwrap();
    let at = runs
        .iter()
        .position(|r| r.key() == pending.task_key)
        .unwrap();
    let last = runs.remove(at);
    let last_key = last.key().to_owned();
    last.cancel();
    assert!(matches!(last.await, Err(RunError::Cancelled(m)) if m.contains("before it started")));
    let r = row(&db, &last_key).await;
    assert_eq!(r.status, "cancelled");
    assert!(
        r.started_at.is_none(),
        "a run cancelled while pending never starts"
    );

    // Let them all through, one at a time.
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move {
            loop {
                gate.notify_waiters();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    for run in runs {
        let key = run.key().to_owned();
        let i = run.await.unwrap();
        assert_eq!(key, format!("batch-{i}"));
    }
    waiter.abort();
    assert_eq!(most.load(Ordering::SeqCst), 2, "never more than 2 at once");
    assert_eq!(
        statuses().await,
        ["cancelled", "success", "success", "success", "success"]
    );
}

// 3. 10,000 progress calls in well under a second make a handful of writes;
// the latest value is the one persisted, also when the run fails.
async fn progress_is_coalesced(backend: Backend) {
    // Heartbeats are writes too: none during this test but the first.
    let options = TrackerOptions {
        heartbeat_interval: Duration::from_secs(60),
        lease_ttl: Duration::from_secs(180),
        ..quick()
    };
    let (tracker, _g) = setup(backend, options).await;
    let before = tracker.stats();
    let took = Arc::new(Mutex::new(Duration::ZERO));
    let took2 = took.clone();
    let run = tracker
        .spawn("chatty", &(), move |ctx| async move {
            let start = Instant::now();
            for i in 0..10_000_u32 {
                ctx.progress(f64::from(i % 97));
                if i % 1_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            *took2.lock().unwrap() = start.elapsed();
            Err::<(), _>("stopped")
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    assert!(matches!(run.await, Err(RunError::Failed("stopped"))));
    let took = *took.lock().unwrap();
    assert!(took < Duration::from_secs(1), "10,000 calls took {took:?}");
    let after = tracker.stats();
    let progress_writes = after.progress_writes - before.progress_writes;
    let writes = after.writes - before.writes;
    assert!(progress_writes <= 5, "{progress_writes} progress writes");
    // create, start, the progress writes, fail; the lease and its release;
    // the first heartbeat (its lease and lock statements).
    assert!(writes <= 7 + progress_writes, "{writes} writes");
    let r = row(tracker.db(), &key).await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.percent, Some((9_999 % 97) as f32), "the latest value");

    // Mid-run, the latest value reaches the table within the interval.
    let release = Arc::new(Notify::new());
    let release2 = release.clone();
    let run = tracker
        .spawn("steady", &(), move |ctx| async move {
            for p in 1..=40 {
                ctx.progress_with_message(f64::from(p), format!("{p} of 100"));
            }
            release2.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    let db = tracker.db().clone();
    assert!(
        eventually(Duration::from_secs(2), || async {
            try_row(&db, &key).await.is_some_and(|r| {
                r.percent == Some(40.0) && r.message.as_deref() == Some("40 of 100")
            })
        })
        .await,
        "{:?}",
        row(&db, &key).await
    );
    release.notify_one();
    run.await.unwrap();
}

// 2. every tracing event inside a run carries its key: tests/tests/run_tracing.rs
// (a binary of its own, so no other test races its subscriber).

// 4. locks: all or nothing, a typed conflict naming the holder, released on
// every ending, opt-out.
async fn locks_conflict_and_release(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let gate = Arc::new(Notify::new());
    let gate2 = gate.clone();
    let holder = tracker
        .begin("import")
        .objects(["book:1", "book:2"])
        .spawn(move |_ctx| async move {
            gate2.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let holder_key = holder.key().to_owned();
    assert_eq!(locks_of(tracker.db(), &holder_key).await.len(), 2);

    let err = tracker
        .begin("reindex")
        .objects(["book:3", "book:2"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect_err("book:2 is held");
    let SpawnError::Conflict(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflicts,
        &[LockConflict {
            object: "book:2".into(),
            run_key: holder_key.clone(),
            task_name: "import".into(),
        }]
    );
    assert!(err.to_string().contains(&holder_key), "{err}");
    assert!(
        rows_named(tracker.db(), "reindex").await.is_empty(),
        "a refused run records nothing"
    );
    // All or nothing: book:3 was not kept by the refused run.
    let other = tracker
        .begin("covers")
        .objects(["book:3"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect("book:3 is free");
    other.await.unwrap();
    // Opting out of locks.
    tracker
        .begin("report")
        .objects(["book:1"])
        .lock_objects(false)
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect("no lock asked")
        .await
        .unwrap();

    gate.notify_one();
    holder.await.unwrap();
    assert!(locks_of(tracker.db(), &holder_key).await.is_empty());

    // Released on every ending: success, Err, panic, cancel.
    for ending in ["ok", "err", "panic", "cancel"] {
        let run = tracker
            .begin(ending)
            .objects(["book:1"])
            .spawn(move |ctx| async move {
                match ending {
                    "ok" => Ok(()),
                    "err" => Err("no".to_owned()),
                    "panic" => panic!("no"),
                    _ => {
                        ctx.cancelled().await;
                        Err("stopped".to_owned())
                    }
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{ending}: {e}"));
        if ending == "cancel" {
            run.cancel();
        }
        let key = run.key().to_owned();
        let _ = run.await;
        assert!(locks_of(tracker.db(), &key).await.is_empty(), "{ending}");
    }
}

// 4. a lock whose holder stopped refreshing it lapses after its TTL.
async fn lapsed_lock_is_taken_over(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let now = chrono::Utc::now().timestamp_millis();
    for (object, expires) in [("book:1", now - 1_000), ("book:2", now + 60_000)] {
        lock::ActiveModel {
            scope: Set("task_runs".into()),
            object: Set(object.into()),
            run_key: Set(format!("ghost-{object}")),
            task_name: Set("ghost".into()),
            instance: Set("a-dead-process".into()),
            acquired_ms: Set(now - 120_000),
            expires_ms: Set(expires),
        }
        .insert(tracker.db())
        .await
        .unwrap();
    }
    let run = tracker
        .begin("import")
        .objects(["book:1"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect("the lapsed lock is taken over");
    run.await.unwrap();
    let err = tracker
        .begin("import")
        .objects(["book:2"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect_err("book:2's lock is still valid");
    assert!(matches!(err, SpawnError::Conflict(ref c) if c[0].run_key == "ghost-book:2"));
}

// 5. a run whose process died (its lease lapsed) is interrupted by the
// recovery sweep, and its locks are freed.
async fn recovery_interrupts_dead_runs(backend: Backend) {
    // Only the start-up sweep runs in the background; the test sweeps itself.
    let (tracker, _g) = setup(
        backend,
        TrackerOptions {
            sweep_interval: Duration::from_secs(3600),
            ..quick()
        },
    )
    .await;
    tracker.start_maintenance();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let db = tracker.db().clone();
    tracker
        .lifecycle(Event::create("ghost-run").name("import"))
        .await
        .unwrap();
    tracker.lifecycle(Event::start("ghost-run")).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    lease::ActiveModel {
        scope: Set("task_runs".into()),
        run_key: Set("ghost-run".into()),
        task_name: Set("import".into()),
        instance: Set("a-dead-process".into()),
        started_ms: Set(now - 60_000),
        heartbeat_ms: Set(now - 40_000),
        expires_ms: Set(now - 10_000),
        deadline_ms: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();
    lock::ActiveModel {
        scope: Set("task_runs".into()),
        object: Set("book:9".into()),
        run_key: Set("ghost-run".into()),
        task_name: Set("import".into()),
        instance: Set("a-dead-process".into()),
        acquired_ms: Set(now - 60_000),
        // Still valid by its own TTL: only the sweep frees it.
        expires_ms: Set(now + 60_000),
    }
    .insert(&db)
    .await
    .unwrap();
    let conflict = tracker
        .begin("reindex")
        .objects(["book:9"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await;
    assert!(matches!(conflict, Err(SpawnError::Conflict(_))));

    let report = tracker.recover().await.unwrap();
    assert_eq!(report.interrupted, ["ghost-run"]);
    assert_eq!(report.locks_freed, 1);
    let r = row(&db, "ghost-run").await;
    assert_eq!(r.status, "interrupted");
    assert!(
        r.message
            .as_deref()
            .is_some_and(|m| m.contains("stopped sending heartbeats")),
        "{:?}",
        r.message
    );
    tracker
        .begin("reindex")
        .objects(["book:9"])
        .spawn(|_ctx| async move { Ok::<_, String>(()) })
        .await
        .expect("the lock was freed")
        .await
        .unwrap();
    // A second sweep finds nothing.
    assert_eq!(tracker.recover().await.unwrap(), Default::default());
}

// 5. a live run keeps its lease fresh: another instance's sweep leaves it.
async fn heartbeat_keeps_live_runs(backend: Backend) {
    let (tracker, guard) = setup(backend, quick()).await;
    let release = Arc::new(Notify::new());
    let release2 = release.clone();
    let run = tracker
        .spawn("long", &(), move |_ctx| async move {
            release2.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    // Three lease lifetimes.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let other = Tracker::with_options(second_pool(&guard, 2).await, quick());
    let report = other.recover().await.unwrap();
    assert!(report.interrupted.is_empty(), "{report:?}");
    assert_eq!(row(tracker.db(), &key).await.status, "in_progress");
    let held: Vec<lease::Model> = lease::Entity::find().all(tracker.db()).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].expires_ms > chrono::Utc::now().timestamp_millis());
    release.notify_one();
    run.await.unwrap();
    assert!(
        lease::Entity::find()
            .all(tracker.db())
            .await
            .unwrap()
            .is_empty()
    );
}

// 5. max duration: the run is asked to stop and recorded interrupted; the
// sweep interrupts overlong runs of other instances.
async fn max_duration_interrupts(backend: Backend) {
    // Only the start-up sweep runs in the background; the test sweeps itself.
    let (tracker, _g) = setup(
        backend,
        TrackerOptions {
            sweep_interval: Duration::from_secs(3600),
            ..quick()
        },
    )
    .await;
    let run = tracker
        .begin("slow")
        .max_duration(Duration::from_millis(200))
        .spawn(|ctx| async move {
            let stop = ctx.cancelled().await;
            Err::<(), _>(stop)
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    let outcome = run.await;
    assert!(
        matches!(&outcome, Err(RunError::Interrupted(m)) if m.contains("maximum duration")),
        "{outcome:?}"
    );
    let r = row(tracker.db(), &key).await;
    assert_eq!(r.status, "interrupted");

    let now = chrono::Utc::now().timestamp_millis();
    tracker
        .lifecycle(Event::start("overlong").name("slow"))
        .await
        .unwrap();
    lease::ActiveModel {
        scope: Set("task_runs".into()),
        run_key: Set("overlong".into()),
        task_name: Set("slow".into()),
        instance: Set("another-process".into()),
        started_ms: Set(now - 10_000),
        heartbeat_ms: Set(now),
        expires_ms: Set(now + 60_000),
        deadline_ms: Set(Some(now - 5_000)),
    }
    .insert(tracker.db())
    .await
    .unwrap();
    let report = tracker.recover().await.unwrap();
    assert_eq!(report.overlong, ["overlong"]);
    assert_eq!(row(tracker.db(), "overlong").await.status, "interrupted");
}

// 6. retention deletes only ended runs older than the cut-off, in batches.
async fn retention_deletes_old_ended_runs(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    let fresh = chrono::Utc::now() - chrono::Duration::days(2);
    let cases = [
        ("old-success-1", old, Some(Event::complete("x"))),
        ("old-success-2", old, Some(Event::complete("x"))),
        ("old-failed", old, Some(Event::fail("x", "no"))),
        ("old-cancelled", old, Some(Event::cancel("x"))),
        ("old-interrupted", old, Some(Event::interrupt("x", "gone"))),
        ("old-running", old, None),
        ("new-success", fresh, Some(Event::complete("x"))),
    ];
    let seed = |tracker: Tracker| {
        let cases = cases.clone();
        async move {
            for (key, at, end) in cases {
                tracker
                    .lifecycle(Event::create(key).name("kept").at(at))
                    .await
                    .unwrap();
                tracker.lifecycle(Event::start(key).at(at)).await.unwrap();
                if let Some(mut end) = end {
                    end.key = key.to_owned();
                    tracker.lifecycle(end.at(at)).await.unwrap();
                }
                tasktrail_tests::backdate(tracker.db(), key, at).await;
            }
        }
    };
    seed(tracker.clone()).await;
    let keys = |db: DatabaseConnection| async move {
        let mut k: Vec<String> = task_run::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.task_key)
            .collect();
        k.sort();
        k
    };

    // Per status: keep failed runs.
    let report = tracker
        .purge(&Retention::days(30).keep(Status::Failed).batch_size(1))
        .await
        .unwrap();
    assert_eq!(report.deleted, 4);
    assert_eq!(report.count(Status::Success), 2);
    assert_eq!(report.count(Status::Cancelled), 1);
    assert_eq!(report.count(Status::Interrupted), 1);
    assert_eq!(report.count(Status::Failed), 0);
    assert_eq!(
        keys(tracker.db().clone()).await,
        ["new-success", "old-failed", "old-running"]
    );
    let report = tracker.purge(&Retention::days(30)).await.unwrap();
    assert_eq!((report.deleted, report.count(Status::Failed)), (1, 1));
    assert_eq!(
        keys(tracker.db().clone()).await,
        ["new-success", "old-running"]
    );
    assert!(matches!(
        tracker
            .purge(&Retention::days(1).status(Status::InProgress, Duration::ZERO))
            .await,
        Err(RetentionError::NotTerminal(Status::InProgress))
    ));

    // Periodic, by the tracker's maintenance.
    let periodic = Tracker::with_options(
        tracker.db().clone(),
        TrackerOptions {
            retention: Some(Retention::days(30)),
            retention_interval: Duration::from_millis(100),
            ..quick()
        },
    );
    seed(periodic.clone()).await;
    periodic.start_maintenance();
    let db = tracker.db().clone();
    assert!(
        eventually(Duration::from_secs(5), || async {
            keys(db.clone()).await == ["new-success", "old-running"]
        })
        .await,
        "{:?}",
        keys(db.clone()).await
    );
}

// 7. completion hooks run per ending; a hook that errors or panics is logged
// and counted, never seen by the run.
async fn completion_hooks(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    type Seen = Vec<(String, Status, Option<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for slot in 0..3 {
        let seen = seen.clone();
        let record = move |run: tasktrail::Finished| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((run.name, run.status, run.message));
                Ok::<_, String>(())
            }
        };
        match slot {
            0 => tracker.on_complete(record),
            1 => tracker.on_fail(record),
            _ => tracker.on_cancel(record),
        };
    }
    tracker.on_complete(|_run| async { Err::<(), _>("the mail server is down") });
    tracker.on_complete(|run| async move {
        if run.duration < Duration::from_secs(3600) {
            panic!("a hook panicked");
        }
        Ok::<_, String>(())
    });

    let ok = tracker
        .spawn("ok", &(), |_| async { Ok::<_, String>(1) })
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap(), 1, "hook errors never reach the run");
    let err = tracker
        .spawn("err", &(), |_| async { Err::<(), _>("bad input") })
        .await
        .unwrap();
    let _ = err.await;
    let started = Arc::new(Notify::new());
    let started2 = started.clone();
    let cancelled = tracker
        .spawn("cancelled", &(), move |ctx| async move {
            started2.notify_one();
            Err::<(), _>(ctx.cancelled().await)
        })
        .await
        .unwrap();
    started.notified().await;
    cancelled.cancel();
    let _ = cancelled.await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            seen.lock().unwrap().len() == 3
        })
        .await
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "cancelled".to_owned(),
                Status::Cancelled,
                Some("cancelled on request".to_owned())
            ),
            (
                "err".to_owned(),
                Status::Failed,
                Some("bad input".to_owned())
            ),
            ("ok".to_owned(), Status::Success, None),
        ]
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            tracker.stats().completion_hook_errors == 2
        })
        .await,
        "{:?}",
        tracker.stats()
    );
}

/// A registered kind: fails on its first attempt when asked to.
struct ImportBooks {
    attempts: Arc<AtomicUsize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ImportArgs {
    file: String,
    fail_first: bool,
}

impl Task for ImportBooks {
    const NAME: &'static str = "import_books";
    type Args = ImportArgs;
    type Output = String;
    type Error = String;

    fn objects(&self, args: &ImportArgs) -> Vec<tasktrail::hooks::ObjectInfo> {
        vec![tasktrail::hooks::ObjectInfo::of(&format!(
            "file:{}",
            args.file
        ))]
    }

    async fn run(&self, ctx: TaskContext, args: ImportArgs) -> Result<String, String> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        ctx.message(format!("attempt {attempt}"));
        if args.fail_first && attempt == 0 {
            return Err(format!("{} is locked", args.file));
        }
        Ok(format!("imported {}", args.file))
    }
}

// 8. retry re-runs a stored run from its stored args; unknown kinds and args
// that no longer fit change nothing.
async fn retry_reruns_with_stored_args(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let unregistered = tracker
        .submit::<ImportBooks>(ImportArgs {
            file: "a.csv".into(),
            fail_first: false,
        })
        .await;
    assert!(matches!(unregistered, Err(SpawnError::UnknownKind(ref k)) if k == "import_books"));
    tracker.register(ImportBooks {
        attempts: attempts.clone(),
    });

    let first = tracker
        .begin("ignored")
        .actor(&"ada")
        .submit::<ImportBooks>(ImportArgs {
            file: "dune.csv".into(),
            fail_first: true,
        })
        .await
        .unwrap();
    let first_key = first.key().to_owned();
    assert_eq!(
        first.await.unwrap_err().to_string(),
        "the task failed: dune.csv is locked"
    );
    let failed = row(tracker.db(), &first_key).await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.task_name, "import_books");
    assert_eq!(failed.affected_objects.as_deref(), Some("file:dune.csv"));

    let again = tracker.retry(&first_key).await.unwrap();
    let again_key = again.key().to_owned();
    assert_ne!(again_key, first_key);
    assert_eq!(again.await.unwrap(), json!("imported dune.csv"));
    let retried = row(tracker.db(), &again_key).await;
    assert_eq!(retried.status, "success");
    assert_eq!(retried.retry_of.as_deref(), Some(first_key.as_str()));
    assert_eq!(retried.task_args, failed.task_args);
    assert_eq!(retried.user_label.as_deref(), Some("ada"));
    assert_eq!(retried.message.as_deref(), Some("attempt 1"));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    let count = || async {
        task_run::Entity::find()
            .all(tracker.db())
            .await
            .unwrap()
            .len()
    };
    let before = count().await;
    tracker
        .lifecycle(Event::fail("mystery-run", "x").name("mystery"))
        .await
        .unwrap();
    tracker
        .lifecycle(
            Event::fail("stale-args", "x")
                .name("import_books")
                .args(&json!({"path": "old.csv"})),
        )
        .await
        .unwrap();
    let before = before + 2;
    let unknown = tracker.retry("mystery-run").await.unwrap_err();
    assert!(
        matches!(&unknown, RetryError::UnknownKind { name, .. } if name == "mystery"),
        "{unknown}"
    );
    let stale = tracker.retry("stale-args").await.unwrap_err();
    assert!(
        matches!(&stale, RetryError::BadArgs { message, .. } if message.contains("missing field `file`")),
        "{stale}"
    );
    assert!(matches!(
        tracker.retry("no-such-run").await,
        Err(RetryError::NotFound(_))
    ));
    // The entity redacts `password`: such args cannot be run again as stored.
    tracker
        .lifecycle(
            Event::fail("redacted-args", "x")
                .name("import_books")
                .args(&json!({"file": "a.csv", "fail_first": false, "password": "s3cret"})),
        )
        .await
        .unwrap();
    let redacted = tracker.retry("redacted-args").await.unwrap_err();
    assert!(
        matches!(&redacted, RetryError::BadArgs { message, .. } if message.contains("redacted")),
        "{redacted}"
    );
    let before = before + 1;
    assert_eq!(count().await, before, "a refused retry records nothing");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

// 10. shutdown: stop accepting, wait for the running, cancel the rest, flush.
async fn graceful_shutdown(backend: Backend) {
    let (tracker, _g) = setup(
        backend,
        TrackerOptions {
            cancel_grace: Duration::from_secs(60),
            ..quick()
        },
    )
    .await;
    let quick_run = tracker
        .spawn("quick", &(), |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, String>("done")
        })
        .await
        .unwrap();
    let stubborn = tracker
        .spawn("stubborn", &(), |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>("never")
        })
        .await
        .unwrap();
    let (quick_key, stubborn_key) = (quick_run.key().to_owned(), stubborn.key().to_owned());
    // Long enough for the quick run on a loaded machine; the stubborn one
    // never ends by itself.
    let report = tracker.shutdown(Duration::from_secs(3)).await;
    assert_eq!(report.running, 2);
    assert_eq!(report.cancelled, std::slice::from_ref(&stubborn_key));
    assert!(report.flushed);
    assert_eq!(quick_run.await.unwrap(), "done");
    assert!(matches!(stubborn.await, Err(RunError::Cancelled(m)) if m.contains("shut down")),);
    assert_eq!(row(tracker.db(), &quick_key).await.status, "success");
    assert_eq!(row(tracker.db(), &stubborn_key).await.status, "cancelled");
    let refused = tracker
        .spawn("late", &(), |_| async { Ok::<_, String>(()) })
        .await;
    assert!(matches!(refused, Err(SpawnError::ShuttingDown)));
}

// 2 + 5. cancelled from another instance: the owner's heartbeat stops it.
async fn cancel_from_another_instance(backend: Backend) {
    let (tracker, guard) = setup(backend, quick()).await;
    let (run, key) = spawn_until_cancelled(&tracker).await;
    let db = tracker.db().clone();
    let other = Tracker::with_options(second_pool(&guard, 2).await, quick());
    assert_eq!(
        other
            .cancel(&key, Some("from the other box".into()))
            .await
            .unwrap(),
        CancelOutcome::Recorded
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the owner stops the run at its next heartbeat");
    assert!(
        matches!(&outcome, Err(RunError::Cancelled(m)) if m.contains("another instance")),
        "{outcome:?}"
    );
    let r = row(&db, &key).await;
    assert_eq!(r.status, "cancelled");
    assert_eq!(r.message.as_deref(), Some("cancelled: from the other box"));
}

// Leases and locks are timed by the database's clock: an instance whose
// clock runs 40 s behind writes leases that are still valid, and an
// instance whose clock runs 40 s ahead neither interrupts another
// instance's live run nor takes its locks.
async fn skewed_clocks_take_no_live_run(backend: Backend) {
    let behind = TrackerOptions {
        clock: Clock::offset(chrono::TimeDelta::seconds(-40)),
        ..quick()
    };
    let (tracker, guard) = setup(backend, behind).await;
    let release = Arc::new(Notify::new());
    let release2 = release.clone();
    let run = tracker
        .begin("long")
        .objects(["book:7"])
        .spawn(move |_ctx| async move {
            release2.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    // Several lease lifetimes: the owner's heartbeats keep its lease.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ahead = TrackerOptions {
        clock: Clock::offset(chrono::TimeDelta::seconds(40)),
        ..quick()
    };
    let other = Tracker::with_options(second_pool(&guard, 2).await, ahead);
    for _ in 0..3 {
        let report = other.recover().await.unwrap();
        assert!(report.interrupted.is_empty(), "{report:?}");
        assert_eq!(report.locks_freed, 0, "{report:?}");
        let taken = other
            .begin("reindex")
            .objects(["book:7"])
            .spawn(|_ctx| async move { Ok::<_, String>(()) })
            .await;
        assert!(
            matches!(&taken, Err(SpawnError::Conflict(c)) if c[0].run_key == key),
            "the live run's lock was taken: {:?}",
            taken.map(|s| s.key().to_owned())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(row(tracker.db(), &key).await.status, "in_progress");
    assert_eq!(locks_of(tracker.db(), &key).await.len(), 1);
    release.notify_one();
    run.await.unwrap();
    assert_eq!(row(tracker.db(), &key).await.status, "success");
}

// A long purge (100,000 ended runs, 200 delete statements; set
// TASKTRAIL_PURGE_RUNS for more, e.g. 1000000) never delays the heartbeat:
// another instance sweeping all along finds the live run's lease fresh.
// The background purge goes in slices, and it finishes.
async fn a_long_purge_lets_no_lease_lapse(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    let backend_kind = db.get_database_backend();
    let count: u64 = std::env::var("TASKTRAIL_PURGE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let rows = match backend_kind {
        sea_orm::DbBackend::Postgres => {
            format!("SELECT i FROM generate_series(1, {count}) AS n(i)")
        }
        // MariaDB's sequence engine.
        sea_orm::DbBackend::MySql => format!("SELECT seq AS i FROM seq_1_to_{count}"),
        _ => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) SELECT i FROM n"
        ),
    };
    let key = if backend_kind == sea_orm::DbBackend::MySql {
        "CONCAT('old-', i)"
    } else {
        "'old-' || CAST(i AS TEXT)"
    };
    let marks = if backend_kind == sea_orm::DbBackend::Postgres {
        "$1, $2"
    } else {
        "?, ?"
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend_kind,
        format!(
            "INSERT INTO task_runs (task_key, task_name, status, cleaned_up, created_at, updated_at) \
             SELECT {key}, 'old', 'success', false, {marks} FROM ({rows}) AS seq"
        ),
        [old.into(), old.into()],
    ))
    .await
    .unwrap();
    let tracker = Tracker::with_options(
        db.clone(),
        TrackerOptions {
            retention: Some(Retention::days(1).batch_size(500)),
            ..quick()
        },
    );
    let release = Arc::new(Notify::new());
    let release2 = release.clone();
    // Spawning starts the maintenance, and with it the purge.
    let run = tracker
        .spawn("live", &(), move |_ctx| async move {
            release2.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    let other = Tracker::with_options(second_pool(&guard, 2).await, quick());
    let started = Instant::now();
    let mut sweeps = 0;
    loop {
        let report = other.recover().await.unwrap();
        sweeps += 1;
        assert!(
            report.interrupted.is_empty(),
            "a live run was interrupted during the purge: {report:?}"
        );
        let left = task_run::Entity::find()
            .filter(task_run::Column::TaskName.eq("old"))
            .count(&db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120 * count.div_ceil(100_000)),
            "the purge did not finish: {left} rows left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sweeps > 3, "the purge ended before it could be watched");
    assert_eq!(row(&db, &key).await.status, "in_progress");
    eprintln!(
        "purged {count} ended runs in {:.1} s while another instance swept {sweeps} times; the live run kept its lease",
        started.elapsed().as_secs_f64()
    );
    release.notify_one();
    run.await.unwrap();
    assert_eq!(row(&db, &key).await.status, "success");
}

// A run whose lease vanished while it ran (another instance's sweep took
// it, then the run was deleted) stops at its owner's next heartbeat and
// writes nothing more: no event brings the deleted row back.
async fn a_run_whose_lease_was_taken_stops_and_stays_deleted(backend: Backend) {
    let (tracker, _g) = setup(backend, quick()).await;
    let (run, key) = spawn_until_cancelled(&tracker).await;
    let db = tracker.db().clone();
    // What another instance's sweep and a delete leave behind.
    lease::Entity::delete_many().exec(&db).await.unwrap();
    task_run::Entity::delete_many()
        .filter(task_run::Column::TaskKey.eq(&key))
        .exec(&db)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run stops at the next heartbeat");
    assert!(
        matches!(&outcome, Err(RunError::Cancelled(m)) if m.contains("recovery sweep took over")),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        try_row(&db, &key).await.is_none(),
        "an event of the run brought its row back"
    );
}

// A cancel from another instance reaches the owner long before its next
// heartbeat (here 30 s away): through LISTEN / NOTIFY on PostgreSQL (also
// right after the owner's listening connection was killed: it reconnects
// and catches up with what it missed), through the owner's 200 ms check on
// a SQLite file.
async fn cancel_from_another_instance_is_prompt(backend: Backend) {
    let slow = || TrackerOptions {
        heartbeat_interval: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(120),
        ..TrackerOptions::default()
    };
    let (tracker, guard) = setup(backend, slow()).await;
    let other = Tracker::with_options(second_pool(&guard, 2).await, slow());
    let db = tracker.db().clone();
    let mut latencies = Vec::new();
    for round in 0..4 {
        let (run, key) = spawn_until_cancelled(&tracker).await;
        if round == 3 && backend == Backend::Postgres {
            // Kill the owner's listening connection first.
            let killed = db
                .execute_unprepared(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
                )
                .await
                .unwrap()
                .rows_affected();
            assert!(killed >= 1, "no listening connection found");
        } else {
            // Let the listener settle (it starts with the maintenance).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let asked = Instant::now();
        assert_eq!(
            other.cancel(&key, Some("from A".into())).await.unwrap(),
            CancelOutcome::Recorded
        );
        let outcome = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the owner stops the run well before its next heartbeat");
        latencies.push(asked.elapsed());
        assert!(
            matches!(&outcome, Err(RunError::Cancelled(m)) if m.contains("another instance")),
            "{outcome:?}"
        );
        assert_eq!(
            row(&db, &key).await.message.as_deref(),
            Some("cancelled: from A")
        );
    }
    println!("cross-instance cancel latencies (the last after a killed listener): {latencies:?}");
    for latency in &latencies[..3] {
        assert!(*latency < Duration::from_secs(1), "{latencies:?}");
    }
}

backends!(
    spawn_records_the_whole_life,
    spawn_err_and_panic_are_failed,
    cancel_from_another_task,
    stubborn_task_is_dropped_after_grace,
    bounded_concurrency,
    progress_is_coalesced,
    locks_conflict_and_release,
    lapsed_lock_is_taken_over,
    recovery_interrupts_dead_runs,
    max_duration_interrupts,
    retention_deletes_old_ended_runs,
    completion_hooks,
    retry_reruns_with_stored_args,
    graceful_shutdown,
    a_run_whose_lease_was_taken_stops_and_stays_deleted,
);

tasktrail_tests::shared_backends!(
    heartbeat_keeps_live_runs,
    cancel_from_another_instance,
    skewed_clocks_take_no_live_run,
    a_long_purge_lets_no_lease_lapse,
    cancel_from_another_instance_is_prompt,
);
