//! Logs: the tracing layer attributes every line to its run (50 runs
//! logging at once), captures only what it is asked to, never captures the
//! database writer's own events; the ring buffer keeps the newest lines
//! with exact stats; every filter on both storages; the database storage
//! round-trips every part of a line on a SQLite file, in-memory SQLite and
//! PostgreSQL, loses in a flood only what its stats call dropped, and
//! forgets old lines.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tasktrail::logs::{
    Capture, DbLogOptions, DbLogStorage, LogLevel, LogQuery, LogRecord, LogStorage,
    MemoryLogStorage, TaskLogLayer,
};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect};

/// A subscriber with only the log layer, as the thread's default (the
/// tests run on a current-thread runtime, so spawned runs see it too).
fn capture(
    storage: Arc<dyn LogStorage>,
    configure: impl FnOnce(TaskLogLayer) -> TaskLogLayer,
) -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(tasktrail_tests::thread_subscriber(configure(
        TaskLogLayer::new(storage),
    )))
}

#[tokio::test(flavor = "current_thread")]
async fn fifty_runs_logging_at_once_each_get_their_own_lines() {
    let logs = Arc::new(MemoryLogStorage::new(100_000));
    let _guard = capture(logs.clone(), |l| l);
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let mut runs = Vec::new();
    for n in 0..50 {
        let run = tracker
            .spawn("chatty", &n, move |ctx| async move {
                let key = ctx.key().to_owned();
                for line in 0..20 {
                    tracing::info!(line, run = n, "run {key} line {line}");
                    // Nested spans inside the run belong to it too.
                    let step = tracing::debug_span!("step", line);
                    let _entered = step.enter();
                    tracing::warn!("inner {key}");
                    drop(_entered);
                    tokio::task::yield_now().await;
                }
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        runs.push(run);
    }
    let keys: Vec<String> = runs.iter().map(|r| r.key().to_owned()).collect();
    for run in runs {
        run.await.unwrap();
    }
    tracing::info!("outside any run: not captured");

    let lines = logs.select(&LogQuery::new().limit(5_000));
    assert_eq!(lines.len(), 50 * 20 * 2, "every line, nothing else");
    for line in &lines {
        let key = line.run_key.as_deref().expect("every line has its run");
        assert!(
            line.message.ends_with(&format!(" {key}"))
                || line.message.starts_with(&format!("run {key} ")),
            "{line:?}"
        );
    }
    // The lines interleaved: each run writes two lines then yields, so
    // the run changes between most pairs of lines (at most 1,999 times).
    let switches = lines
        .windows(2)
        .filter(|w| w[0].run_key != w[1].run_key)
        .count();
    assert!(switches > 500, "{switches} switches");
    // Per run: all 40, in order, with the event's fields.
    for key in &keys {
        let mine = logs.select(&LogQuery::new().run(key.as_str()).limit(100));
        assert_eq!(mine.len(), 40, "{key}");
        let info: Vec<&LogRecord> = mine.iter().filter(|l| l.level == LogLevel::Info).collect();
        assert_eq!(info[0].message, format!("run {key} line 19"));
        assert_eq!(info[0].fields[0].0, "line");
        assert_eq!(info[0].fields[0].1, 19);
        assert!(info[0].target.starts_with("logs"), "{}", info[0].target);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn what_is_captured() {
    // Runs only, INFO and up.
    let logs = Arc::new(MemoryLogStorage::new(100));
    {
        let _guard = capture(logs.clone(), |l| l.min_level(LogLevel::Info));
        let run = tracing::info_span!("task", task_key = "r1");
        run.in_scope(|| {
            tracing::debug!("too low");
            tracing::info!("kept");
            tracing::error!(error = %std::io::Error::other("disk full"), code = 7_u64, ok = false, ratio = 0.5, "failed");
        });
        tracing::warn!("outside");
        // A key recorded after the span was created.
        let late = tracing::info_span!("task", task_key = tracing::field::Empty);
        late.record("task_key", "r2");
        late.in_scope(|| tracing::info!("late key"));
    }
    let lines = logs.select(&LogQuery::new());
    let seen: Vec<(&str, Option<&str>)> = lines
        .iter()
        .rev()
        .map(|l| (l.message.as_str(), l.run_key.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("kept", Some("r1")),
            ("failed", Some("r1")),
            ("late key", Some("r2"))
        ]
    );
    let failed = &lines[1];
    assert_eq!(failed.level, LogLevel::Error);
    assert_eq!(
        failed.fields_json(),
        serde_json::json!({ "error": "disk full", "code": 7, "ok": false, "ratio": 0.5 })
    );

    // Everything, when asked.
    let all = Arc::new(MemoryLogStorage::new(100));
    {
        let _guard = capture(all.clone(), |l| l.capture(Capture::All));
        tracing::trace!("outside, captured");
    }
    let lines = all.select(&LogQuery::new());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].run_key, None);
    assert_eq!(lines[0].level, LogLevel::Trace);
}

#[test]
fn the_ring_keeps_the_newest_lines() {
    let logs = MemoryLogStorage::new(100);
    for n in 0..250 {
        logs.append(LogRecord::new(LogLevel::Info, format!("line {n}")));
    }
    let stats = logs.stats();
    assert_eq!(
        (stats.stored, stats.appended, stats.dropped),
        (Some(100), 250, 150)
    );
    let lines = logs.select(&LogQuery::new().limit(1_000));
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[0].message, "line 249");
    assert_eq!(lines[99].message, "line 150");
    assert!(lines.windows(2).all(|w| w[0].id == w[1].id + 1));
}

/// Lines for the filter tests: two runs, every level, one hour apart.
fn sample(base: chrono::DateTime<Utc>) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for (i, level) in LogLevel::ALL.into_iter().enumerate() {
        for run in ["alpha", "beta"] {
            out.push(
                LogRecord::new(level, format!("{run}: {level} Timeout_{i} 100%"))
                    .in_run(run)
                    .target("app::jobs")
                    .field("i", i as u64)
                    .at(base + TimeDelta::hours(i as i64)),
            );
        }
    }
    out.push(LogRecord::new(LogLevel::Info, "no run, ünïcödé ✓").at(base));
    out
}

/// Every filter, alone and together, on any storage holding [`sample`].
async fn check_filters(storage: &dyn LogStorage, base: chrono::DateTime<Utc>) {
    let messages =
        |lines: Vec<LogRecord>| -> Vec<String> { lines.into_iter().map(|l| l.message).collect() };
    let all = storage.query(LogQuery::new()).await.unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let beta = storage.query(LogQuery::new().run("beta")).await.unwrap();
    assert_eq!(beta.len(), 5);
    assert!(beta.iter().all(|l| l.run_key.as_deref() == Some("beta")));
    let warn = storage
        .query(LogQuery::new().min_level(LogLevel::Warn))
        .await
        .unwrap();
    assert_eq!(
        messages(warn),
        [
            "beta: ERROR Timeout_4 100%",
            "alpha: ERROR Timeout_4 100%",
            "beta: WARN Timeout_3 100%",
            "alpha: WARN Timeout_3 100%",
        ]
    );
    // Case-insensitive; `_` and `%` are literal, not wildcards.
    let text = storage
        .query(LogQuery::new().contains("TIMEOUT_2 100%"))
        .await
        .unwrap();
    assert_eq!(text.len(), 2);
    assert!(
        storage
            .query(LogQuery::new().contains("timeout%2"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .query(LogQuery::new().contains("timeout_ "))
            .await
            .unwrap()
            .is_empty()
    );
    let unicode = storage
        .query(LogQuery::new().contains("ünïcödé"))
        .await
        .unwrap();
    assert_eq!(messages(unicode), ["no run, ünïcödé ✓"]);
    let window = storage
        .query(
            LogQuery::new()
                .since(base + TimeDelta::hours(1))
                .until(base + TimeDelta::hours(3)),
        )
        .await
        .unwrap();
    assert_eq!(window.len(), 4, "hours 1 and 2, both runs");
    let limited = storage.query(LogQuery::new().limit(3)).await.unwrap();
    assert_eq!(limited.len(), 3);
    let after = storage
        .query(LogQuery::new().after(limited[1].id))
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|l| l.id).collect::<Vec<_>>(),
        [limited[0].id]
    );
    let together = storage
        .query(
            LogQuery::new()
                .run("alpha")
                .min_level(LogLevel::Info)
                .contains("timeout")
                .since(base)
                .limit(2),
        )
        .await
        .unwrap();
    assert_eq!(
        messages(together),
        ["alpha: ERROR Timeout_4 100%", "alpha: WARN Timeout_3 100%"]
    );
}

#[tokio::test]
async fn every_filter_on_the_memory_storage() {
    let logs = MemoryLogStorage::new(1_000);
    let base = Utc::now() - TimeDelta::days(1);
    for line in sample(base) {
        logs.append(line);
    }
    check_filters(&logs, base).await;
}

async fn db_storage_round_trip_and_filters(backend: Backend) {
    let (db, _g) = connect(backend).await;
    let logs = DbLogStorage::new(db).await.unwrap();
    let base = Utc::now() - TimeDelta::days(1);
    let lines = sample(base);
    for line in lines.clone() {
        logs.append(line);
    }
    assert!(logs.flush(Duration::from_secs(30)).await);
    let stats = logs.stats();
    assert_eq!((stats.appended, stats.written, stats.dropped), (11, 11, 0));
    check_filters(&logs, base).await;
    // Every part of a line survives the table (times to the millisecond).
    let stored = logs
        .query(LogQuery::new().run("alpha").limit(1))
        .await
        .unwrap();
    let original = &lines[8];
    let back = &stored[0];
    assert_eq!(back.message, original.message);
    assert_eq!(back.level, original.level);
    assert_eq!(back.target, original.target);
    assert_eq!(back.run_key, original.run_key);
    assert_eq!(back.fields_json(), original.fields_json());
    assert_eq!(back.at.timestamp_millis(), original.at.timestamp_millis());
    assert!(back.id > 0);
}

async fn db_storage_flood(backend: Backend) {
    let (db, _g) = connect(backend).await;
    let logs =
        DbLogStorage::with_options(db, DbLogOptions::new().queue_capacity(50).batch_size(20))
            .await
            .unwrap();
    // Far more than the queue holds, faster than any database writes.
    for n in 0..5_000 {
        logs.append(LogRecord::new(LogLevel::Info, format!("flood {n}")).in_run("flood"));
    }
    assert!(logs.flush(Duration::from_secs(30)).await);
    let stats = logs.stats();
    assert_eq!(stats.appended, 5_000);
    assert!(stats.dropped > 0, "{stats:?}");
    let kept = logs
        .query(LogQuery::new().run("flood").limit(5_000))
        .await
        .unwrap();
    assert_eq!(
        kept.len() as u64,
        stats.appended - stats.dropped,
        "lost only what the stats report: {stats:?}"
    );
    assert_eq!(stats.written, kept.len() as u64);
    assert_eq!(stats.pending, 0);
    // The first lines got in; what was dropped was the overflow.
    assert_eq!(kept.last().unwrap().message, "flood 0");
}

async fn db_storage_retention(backend: Backend) {
    let (db, _g) = connect(backend).await;
    let logs = DbLogStorage::with_options(
        db,
        DbLogOptions::new().retention(Duration::from_secs(3_600), Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let now = Utc::now();
    logs.append(LogRecord::new(LogLevel::Info, "old").at(now - TimeDelta::hours(3)));
    logs.append(LogRecord::new(LogLevel::Info, "new").at(now));
    assert!(logs.flush(Duration::from_secs(30)).await);
    let mut left = Vec::new();
    for _ in 0..100 {
        left = logs.query(LogQuery::new()).await.unwrap();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        left.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["new"],
        "the periodic retention deleted the line older than an hour"
    );
    assert_eq!(
        logs.purge_before(now + TimeDelta::seconds(1))
            .await
            .unwrap(),
        1
    );
}

backends!(
    db_storage_round_trip_and_filters,
    db_storage_flood,
    db_storage_retention
);

/// With `Capture::All` and the database storage, the driver's own logging
/// of the writer's inserts is not captured (else every write would log a
/// line to write, for ever).
#[tokio::test(flavor = "current_thread")]
async fn the_writer_does_not_log_itself() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    let logs = Arc::new(DbLogStorage::new(db).await.unwrap());
    let _guard = capture(logs.clone(), |l| l.capture(Capture::All));
    tracing::info!("one line");
    assert!(logs.flush(Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(logs.flush(Duration::from_secs(30)).await);
    let lines = logs.query(LogQuery::new()).await.unwrap();
    let targets: Vec<&str> = lines.iter().map(|l| l.target.as_ref()).collect();
    assert_eq!(targets, ["logs"], "{lines:?}");
    assert_eq!(logs.stats().appended, 1);
}

/// Makes the log table refuse every line whose message holds `poison`: a
/// constraint of the database's own (a trigger on SQLite, a check on
/// PostgreSQL and MariaDB), for lines the database refuses whatever the writer does.
async fn poison_lines(db: &sea_orm::DatabaseConnection, backend: Backend) {
    use sea_orm::ConnectionTrait;
    let sql = match backend {
        Backend::Postgres | Backend::MariaDb => {
            "ALTER TABLE tasktrail_logs ADD CONSTRAINT no_poison CHECK (message NOT LIKE '%poison%')"
        }
        _ => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON tasktrail_logs \
             WHEN NEW.message LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned line'); END"
        }
    };
    db.execute_unprepared(sql).await.unwrap();
}

// 11. A batch with a NUL line, a 3 KB run key (over PostgreSQL's btree
// limit on the run-key index) and lines the database refuses, among good
// lines: the NUL line and the long key are stored (made storable, the key
// bounded), the refused lines are dropped and counted, every good line
// lands, and flush returns.
async fn db_storage_survives_refused_lines(backend: Backend) {
    let (db, _g) = connect(backend).await;
    let logs = DbLogStorage::with_options(db.clone(), DbLogOptions::new().batch_size(20))
        .await
        .unwrap();
    poison_lines(&db, backend).await;
    let long_key = format!("{}-tail", "k".repeat(3_000));
    let nul_key = "bad\0key";
    let poisoned = [33, 34, 71];
    for n in 0..100 {
        let line = if n == 17 {
            LogRecord::new(LogLevel::Warn, "nul \0 inside")
                .in_run(nul_key)
                .target(String::from("app::nul\0target"))
                .field("f\0", "v\0")
        } else if n == 42 {
            LogRecord::new(LogLevel::Info, "long key").in_run(&long_key)
        } else if poisoned.contains(&n) {
            LogRecord::new(LogLevel::Info, format!("poison {n}")).in_run("good")
        } else {
            LogRecord::new(LogLevel::Info, format!("good {n}")).in_run("good")
        };
        logs.append(line);
    }
    assert!(
        logs.flush(Duration::from_secs(60)).await,
        "flush returns once every line is written or refused"
    );
    let good = logs
        .query(LogQuery::new().run("good").limit(1_000))
        .await
        .unwrap();
    let mut messages: Vec<String> = good.into_iter().map(|l| l.message).collect();
    messages.sort_by_key(|m| m[5..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..100)
        .filter(|n| ![17, 42].contains(n) && !poisoned.contains(n))
        .map(|n| format!("good {n}"))
        .collect();
    assert_eq!(messages, expected, "every good line landed, once");

    let nul = logs.query(LogQuery::new().run(nul_key)).await.unwrap();
    assert_eq!(nul.len(), 1, "the NUL line is stored, and found by its key");
    assert_eq!(nul[0].message, "nul \u{FFFD} inside");
    assert_eq!(nul[0].target, "app::nul\u{FFFD}target");
    assert_eq!(
        nul[0].fields_json(),
        serde_json::json!({"f\u{FFFD}": "v\u{FFFD}"})
    );

    let long = logs
        .query(LogQuery::new().run(long_key.as_str()))
        .await
        .unwrap();
    assert_eq!(
        long.len(),
        1,
        "the long-keyed line is stored, found by its key"
    );
    let stored_key = long[0].run_key.as_deref().unwrap();
    assert!(stored_key.len() <= 1_024, "{} bytes", stored_key.len());
    assert!(stored_key.starts_with("kkkk"));
    // Another long key with the same first kilobyte is another run.
    let twin = format!("{}-twin", "k".repeat(3_000));
    assert!(
        logs.query(LogQuery::new().run(twin))
            .await
            .unwrap()
            .is_empty()
    );

    let stats = logs.stats();
    assert_eq!(stats.appended, 100);
    assert_eq!(stats.refused, 3, "{stats:?}");
    assert_eq!(stats.written, 97, "{stats:?}");
    assert_eq!((stats.dropped, stats.pending), (0, 0), "{stats:?}");

    // The writer carries on after the refusals.
    logs.append(LogRecord::new(LogLevel::Info, "good 100").in_run("good"));
    assert!(logs.flush(Duration::from_secs(30)).await);
    assert_eq!(logs.stats().written, 98);
}

backends!(db_storage_survives_refused_lines);

// 11. `flush` with a timeout never hangs: while the log table is locked by
// another connection it gives up after its timeout and says so; once the
// lock is gone it returns `true` with every line written.
async fn flush_gives_up_after_its_timeout(backend: Backend) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let (db, guard) = connect(backend).await;
    let logs = DbLogStorage::new(db.clone()).await.unwrap();
    let locker = tasktrail_tests::second_pool(&guard, 1).await;
    let txn = locker.begin().await.unwrap();
    match backend {
        Backend::Postgres => txn
            .execute_unprepared("LOCK TABLE tasktrail_logs IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap(),
        // A write lock on the whole file.
        _ => txn
            .execute_unprepared("DELETE FROM tasktrail_logs")
            .await
            .unwrap(),
    };
    for n in 0..10 {
        logs.append(LogRecord::new(LogLevel::Info, format!("line {n}")));
    }
    let started = std::time::Instant::now();
    assert!(
        !logs.flush(Duration::from_millis(300)).await,
        "nothing can be written while the table is locked"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "flush returned after its timeout: {:?}",
        started.elapsed()
    );
    txn.commit().await.unwrap();
    assert!(logs.flush(Duration::from_secs(60)).await);
    assert_eq!(logs.query(LogQuery::new()).await.unwrap().len(), 10);
    assert_eq!(logs.stats().written, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_gives_up_after_its_timeout_sqlite_file() {
    flush_gives_up_after_its_timeout(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_gives_up_after_its_timeout_postgres() {
    flush_gives_up_after_its_timeout(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_gives_up_after_its_timeout_mariadb() {
    flush_gives_up_after_its_timeout(Backend::MariaDb).await;
}

// 8. The log writer's settings at their extremes: a retention interval of
// zero or `Duration::MAX`, ages beyond chrono's range, a batch size or a
// queue of zero, a query limit of `usize::MAX` — lines are still written
// and read.
async fn db_storage_settings_at_their_extremes(backend: Backend) {
    let year = Duration::from_secs(365 * 86_400);
    let mut zero_batch = DbLogOptions::new();
    zero_batch.batch_size = 0;
    let mut zero_queue = DbLogOptions::new();
    zero_queue.queue_capacity = 0;
    let cases = [
        (
            "retention interval zero",
            DbLogOptions::new().retention(year, Duration::ZERO),
        ),
        (
            "retention MAX, MAX",
            DbLogOptions::new().retention(Duration::MAX, Duration::MAX),
        ),
        (
            "age beyond chrono",
            DbLogOptions::new().retention(year * 300_000, Duration::from_millis(1)),
        ),
        ("batch size zero", zero_batch),
        ("queue zero", zero_queue),
    ];
    for (what, options) in cases {
        let (db, _g) = connect(backend).await;
        let logs = DbLogStorage::with_options(db, options).await.unwrap();
        for n in 0..3 {
            logs.append(LogRecord::new(LogLevel::Info, format!("line {n}")));
        }
        // Let a retention tick or two pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(logs.flush(Duration::from_secs(30)).await, "{what}");
        let mut query = LogQuery::new();
        query.limit = usize::MAX;
        let lines = logs
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stats = logs.stats();
        assert_eq!(lines.len() as u64, stats.written, "{what}");
        if what == "queue zero" {
            // A queue of one line: what did not fit is dropped, and counted.
            assert!(stats.written >= 1, "{what}: {stats:?}");
            assert_eq!(stats.written + stats.dropped, 3, "{what}: {stats:?}");
        } else {
            assert_eq!(lines.len(), 3, "{what}");
        }
    }
}

backends!(db_storage_settings_at_their_extremes);

// 13. A query over a large ring (non-ASCII text: every line is lowercased)
// does not hold up the threads that append: appends keep starting and
// completing while a query scans. Asserted on the order of events, not on
// how long anything takes: each query's start and end, and each append's
// start and end, are stamped; an append counts for a query when it began in
// the second half of the query and ended before the query did. With the
// scan under the ring's lock, the lock is held over the whole end of every
// query (unless the querying thread was descheduled for half of it before
// taking the lock), so no append can count; without it, every append of
// that stretch does. The appender pauses between appends so that the
// query takes the lock at once.
#[test]
fn appends_do_not_wait_for_a_query() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let logs = Arc::new(MemoryLogStorage::new(100_000));
    for n in 0..100_000 {
        logs.append(LogRecord::new(
            LogLevel::Info,
            format!("Ligne {n} : ÉCHEC de la tâche « Übersicht » — ünïcödé"),
        ));
    }
    let done = Arc::new(AtomicBool::new(false));
    let appender = {
        let (logs, done) = (logs.clone(), done.clone());
        std::thread::spawn(move || {
            let mut appends = Vec::new();
            while !done.load(Ordering::Acquire) {
                let began = Instant::now();
                logs.append(LogRecord::new(LogLevel::Info, "ÉCHEC ünïcödé"));
                appends.push((began, Instant::now()));
                std::thread::sleep(Duration::from_micros(50));
            }
            appends
        })
    };
    let mut queries = Vec::new();
    for _ in 0..10 {
        let began = Instant::now();
        let found = logs.select(&LogQuery::new().contains("жжж").limit(10));
        queries.push((began, Instant::now()));
        assert!(found.is_empty());
    }
    done.store(true, Ordering::Release);
    let appends = appender.join().unwrap();
    let inside: Vec<usize> = queries
        .iter()
        .map(|(began, ended)| {
            let middle = *began + (*ended - *began) / 2;
            appends
                .iter()
                .filter(|(a, b)| *a >= middle && b < ended)
                .count()
        })
        .collect();
    assert!(
        inside.iter().any(|n| *n >= 20),
        "appends that began and ended in the second half of each query: {inside:?} \
         ({} appends in all)",
        appends.len()
    );
}
