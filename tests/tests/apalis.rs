//! apalis 1.0 workers tracked by tasktrail's `TrackLayer`, on a SQLite file
//! and on PostgreSQL: two workers (each its own tracker and pool, named as
//! the worker) take jobs from one apalis storage while a web process (a
//! third pool) serves the dashboard.
//!
//! - a job that fails twice and then succeeds is three runs linked by
//!   `retry_of`, with each attempt's error and the final result;
//! - a job that panics is one `failed` run (`panicked: …`), and apalis
//!   stores it `Killed` (it runs no more) — also on a worker with apalis'
//!   `catch_panic` inside the layer (worker-c, on a queue of its own);
//! - a job whose handler returns apalis' `AbortError` is one `cancelled`
//!   run, `Killed` in apalis;
//! - a job cancelled from the dashboard stops: its handler's future is
//!   dropped within moments (not at the end of its 60 s sleep), the run is
//!   `cancelled`, apalis stores `Killed`;
//! - the dashboard's *Retry* of that run enqueues a new apalis job: its run
//!   is recorded with `retry_of` and runs on a worker; a second *Retry*
//!   while it runs is refused (409); a cancel stops it too;
//! - every change of a run carries the instance of the worker that ran it
//!   (apalis' `lock_by`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use apalis::prelude::{
    AbortError, Attempt, BackendExt, BoxDynError, TaskBuilder, TaskId, TaskSink, WorkerBuilder,
    WorkerBuilderExt, WorkerContext,
};
use axum::http::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tasktrail::{Dashboard, Event, RetryError, TaskContext, TrackerOptions};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::find_run as row;
use tasktrail_tests::{Backend, call_api, connect, second_pool};

const MARK: (&str, &str) = ("x-requested-with", "tasktrail");

async fn call(app: &axum::Router, method: Method, uri: &str) -> (StatusCode, Value) {
    call_api(app, method, uri, &[MARK]).await
}

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

const QUEUE: &str = "jobs";
/// worker-c's queue: apalis' `catch_panic` inside the layer.
const CAUGHT: &str = "caught";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Job {
    /// Fails on attempts 1 to `fail_times`, then succeeds.
    Flaky {
        fail_times: usize,
    },
    Panic,
    /// Returns apalis' `AbortError`: never run it again.
    Abort,
    /// Sleeps; `probe` names what became of the handler.
    Sleep {
        secs: u64,
        probe: String,
    },
}

/// What became of each `Sleep` handler, by probe: "finished" or "dropped".
fn probes() -> &'static Mutex<HashMap<String, &'static str>> {
    static PROBES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    PROBES.get_or_init(Default::default)
}

struct Probe(String, bool);

impl Drop for Probe {
    fn drop(&mut self) {
        let what = if self.1 { "finished" } else { "dropped" };
        probes().lock().unwrap().insert(self.0.clone(), what);
    }
}

/// The handler: apalis' `Attempt` beside tasktrail's `TaskContext`.
async fn handle(job: Job, run: TaskContext, attempt: Attempt) -> Result<String, BoxDynError> {
    let attempt = attempt.current();
    match job {
        Job::Flaky { fail_times } => {
            run.progress(50.0);
            if attempt <= fail_times {
                Err(format!("failure on attempt {attempt}").into())
            } else {
                Ok(format!("ok on attempt {attempt}"))
            }
        }
        Job::Panic => panic!("boom on attempt {attempt}"),
        Job::Abort => Err(AbortError::new(std::io::Error::other("the input is corrupt")).into()),
        Job::Sleep { secs, probe } => {
            let mut probe = Probe(probe, false);
            run.message("sleeping");
            tokio::time::sleep(Duration::from_secs(secs)).await;
            probe.1 = true;
            Ok("slept".into())
        }
    }
}

/// The apalis storage of each backend, behind what the test needs.
#[derive(Clone)]
enum Storage {
    Sqlite(apalis_sqlite::SqliteStorage<Job>, apalis_sqlite::SqlitePool),
    Postgres(
        apalis_postgres::PostgresStorage<Job>,
        apalis_postgres::PgPool,
    ),
}

impl Storage {
    async fn open(backend: Backend, url: &str, dir: &tempfile::TempDir) -> Storage {
        match backend {
            Backend::Postgres => {
                let pool = apalis_postgres::PgPool::connect(url).await.unwrap();
                apalis_postgres::PostgresStorage::setup(&pool)
                    .await
                    .unwrap();
                let storage = apalis_postgres::PostgresStorage::<Job>::new(&pool)
                    .with_config(apalis_postgres::Config::default().queue(QUEUE));
                Storage::Postgres(storage, pool)
            }
            _ => {
                // apalis' own file: its setup sets pragmas of its own.
                let url = format!("sqlite://{}/apalis.sqlite?mode=rwc", dir.path().display());
                let pool = apalis_sqlite::SqlitePool::connect(&url).await.unwrap();
                apalis_sqlite::SqliteStorage::setup(&pool).await.unwrap();
                let storage = apalis_sqlite::SqliteStorage::<Job>::new(&pool)
                    .with_config(apalis_sqlite::Config::default().queue(QUEUE));
                Storage::Sqlite(storage, pool)
            }
        }
    }

    /// The same storage, on queue `queue`.
    fn on_queue(&self, queue: &str) -> Storage {
        match self {
            Storage::Postgres(_, pool) => Storage::Postgres(
                apalis_postgres::PostgresStorage::<Job>::new(pool)
                    .with_config(apalis_postgres::Config::default().queue(queue)),
                pool.clone(),
            ),
            Storage::Sqlite(_, pool) => Storage::Sqlite(
                apalis_sqlite::SqliteStorage::<Job>::new(pool)
                    .with_config(apalis_sqlite::Config::default().queue(queue)),
                pool.clone(),
            ),
        }
    }

    async fn push(&self, job: Job, max_attempts: usize) -> TaskId {
        let id = TaskId::from_ulid(ulid::Ulid::generate());
        let task = TaskBuilder::new(job)
            .task_id(id.clone())
            .max_attempts(max_attempts)
            .build();
        match self.clone() {
            Storage::Sqlite(mut s, _) => s.push_task(task).await.unwrap(),
            Storage::Postgres(mut s, _) => s.push_task(task).await.unwrap(),
        }
        id
    }

    /// apalis' row of task `id`: status, attempts, the worker that locked it.
    async fn job(&self, id: &TaskId) -> (String, i64, String) {
        let (db, sql) = match self {
            Storage::Sqlite(_, pool) => (
                sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool.clone()),
                "SELECT status, CAST(attempts AS BIGINT) AS attempts, lock_by FROM Jobs WHERE id = $1",
            ),
            Storage::Postgres(_, pool) => (
                sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone()),
                "SELECT status, CAST(attempts AS BIGINT) AS attempts, lock_by FROM apalis.jobs WHERE id = $1",
            ),
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                [id.to_string().into()],
            ))
            .await
            .unwrap()
            .expect("apalis' row");
        (
            row.try_get("", "status").unwrap(),
            row.try_get("", "attempts").unwrap(),
            row.try_get::<Option<String>>("", "lock_by")
                .unwrap()
                .unwrap_or_default(),
        )
    }

    /// Waits (at most 5 s) until apalis' row of task `id` has `status`.
    async fn until_job(&self, id: &TaskId, status: &str) -> (String, i64, String) {
        for _ in 0..100 {
            let job = self.job(id).await;
            if job.0 == status {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.job(id).await
    }

    /// Starts worker `name` recording into `tracker`; with `catch_panic`,
    /// apalis' own panic layer sits inside tasktrail's (a panic reaches
    /// the layer as an `AbortError`), without it the layer catches it.
    fn start(
        &self,
        name: &str,
        tracker: task_run::Tracker,
        catch_panic: bool,
    ) -> (
        WorkerContext,
        tokio::task::JoinHandle<Result<(), apalis::prelude::WorkerError>>,
    ) {
        let ctx = WorkerContext::new(name);
        let layer = tasktrail::apalis::TrackLayer::new(tracker);
        let poll = Duration::from_millis(100);
        macro_rules! run {
            ($storage:expr) => {{
                let builder = WorkerBuilder::new(&ctx)
                    .backend($storage.poll_with_interval(poll))
                    .layer(layer);
                if catch_panic {
                    let worker = builder.catch_panic().build(handle);
                    tokio::spawn(worker.run())
                } else {
                    let worker = builder.build(handle);
                    tokio::spawn(worker.run())
                }
            }};
        }
        let handle = match self.clone() {
            Storage::Sqlite(s, _) => run!(s),
            Storage::Postgres(s, _) => run!(s),
        };
        (ctx, handle)
    }

    fn enqueue_retries_in(&self, tracker: &task_run::Tracker) {
        match self.clone() {
            Storage::Sqlite(s, _) => {
                tracker.enqueue_retries::<Job, _, _>(QUEUE, s, |t| t.max_attempts(1));
            }
            Storage::Postgres(s, _) => {
                tracker.enqueue_retries::<Job, _, _>(QUEUE, s, |t| t.max_attempts(1));
            }
        }
    }
}

/// Waits (at most 60 s: apalis-postgres may take a job only at its
/// worker's 30 s heartbeat, see above) until run `key` has status `status`.
async fn until_status(db: &DatabaseConnection, key: &str, status: &str) -> task_run::Model {
    for _ in 0..1200 {
        if let Some(row) = row(db, key).await
            && row.status == status
        {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {key} never became {status}: {:?}", row(db, key).await);
}

/// The instances run `key`'s changes were written by.
async fn instances(db: &DatabaseConnection, key: &str) -> Vec<String> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT DISTINCT instance FROM tasktrail_changes WHERE run_key = $1",
            [key.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            r.try_get::<Option<String>>("", "instance")
                .unwrap()
                .unwrap_or_default()
        })
        .collect()
}

async fn apalis_workers(backend: Backend) {
    let (db, test) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(backend, &test.url, &dir).await;
    let caught = storage.on_queue(CAUGHT);
    // Pushed before its worker starts: apalis-postgres 1.0 at times takes
    // a job pushed to an idle worker's queue only at the worker's next
    // heartbeat (30 s; seen in 3 of 11 runs).
    let caught_panic = caught.push(Job::Panic, 1).await;
    let nonce = uuid::Uuid::new_v4().to_string();

    // Two workers, each with its own tracker, pool and instance name.
    let worker_tracker = |name: &'static str| {
        let test = &test;
        async move {
            task_run::Tracker::with_options(
                second_pool(test, 4).await,
                TrackerOptions {
                    instance: Some(name.into()),
                    ..TrackerOptions::default()
                },
            )
        }
    };
    let workers = [
        storage.start("worker-a", worker_tracker("worker-a").await, false),
        storage.start("worker-b", worker_tracker("worker-b").await, false),
        // On a queue of its own, with apalis' catch_panic inside the layer.
        caught.start("worker-c", worker_tracker("worker-c").await, true),
    ];
    // The web process: its own tracker, retries through apalis.
    let web = task_run::Tracker::new(second_pool(&test, 4).await);
    storage.enqueue_retries_in(&web);
    let app = Dashboard::new(Ops::default(), web.clone()).router();

    let flaky = storage.push(Job::Flaky { fail_times: 2 }, 3).await;
    let panics = storage.push(Job::Panic, 1).await;
    let aborts = storage.push(Job::Abort, 3).await;
    let probe = format!("sleep-{nonce}");
    let sleep_args = Job::Sleep {
        secs: 60,
        probe: probe.clone(),
    };
    let sleeps = storage.push(sleep_args.clone(), 1).await;
    let key = |id: &TaskId, n: usize| format!("{id}-{n}");

    // Fails twice, then succeeds: three runs in a chain.
    let last = until_status(&db, &key(&flaky, 3), "success").await;
    for n in 1..=3 {
        let run = row(&db, &key(&flaky, n))
            .await
            .expect("every attempt's run");
        assert_eq!(run.task_name, QUEUE);
        assert_eq!(
            run.task_args,
            Some(json!({"kind": "flaky", "fail_times": 2})),
            "{run:?}"
        );
        assert_eq!(
            run.retry_of,
            (n > 1).then(|| key(&flaky, n - 1)),
            "attempt {n}"
        );
        if n < 3 {
            assert_eq!(run.status, "failed", "{run:?}");
            assert_eq!(
                run.message.as_deref(),
                Some(format!("failure on attempt {n}").as_str())
            );
            assert!(run.failed_at.is_some() && run.completed_at.is_none());
        }
        let by = instances(&db, &run.task_key).await;
        assert!(
            by.len() == 1 && ["worker-a", "worker-b"].contains(&by[0].as_str()),
            "{by:?}"
        );
    }
    assert_eq!(last.result_payload, Some(json!("ok on attempt 3")));
    assert_eq!(last.percent, Some(100.0));
    assert!(last.completed_at.is_some() && last.failed_at.is_none());
    let (status, attempts, lock_by) = storage.until_job(&flaky, "Done").await;
    assert_eq!((status.as_str(), attempts), ("Done", 3));
    assert_eq!(instances(&db, &key(&flaky, 3)).await, [lock_by]);

    // A panic: one failed run; apalis keeps it dead.
    let run = until_status(&db, &key(&panics, 1), "failed").await;
    assert_eq!(
        run.message.as_deref(),
        Some("panicked: boom on attempt 1"),
        "{run:?}"
    );
    assert_eq!(run.task_args, Some(json!({"kind": "panic"})));
    assert_eq!(run.retry_of, None);
    let (status, attempts, lock_by) = storage.until_job(&panics, "Killed").await;
    assert_eq!((status.as_str(), attempts), ("Killed", 1));
    assert_eq!(instances(&db, &run.task_key).await, [lock_by]);

    // The same panic under apalis' catch_panic (worker-c): the layer sees
    // an AbortError holding the panic, and records the panic.
    let run = until_status(&db, &key(&caught_panic, 1), "failed").await;
    assert_eq!(
        run.message.as_deref(),
        Some("panicked: boom on attempt 1"),
        "{run:?}"
    );
    assert_eq!(run.task_name, CAUGHT);
    let (status, attempts, lock_by) = caught.until_job(&caught_panic, "Killed").await;
    assert_eq!(
        (status.as_str(), attempts, lock_by.as_str()),
        ("Killed", 1, "worker-c")
    );
    assert_eq!(instances(&db, &run.task_key).await, ["worker-c"]);

    // apalis' AbortError: cancelled, and apalis runs it no more.
    let run = until_status(&db, &key(&aborts, 1), "cancelled").await;
    assert_eq!(
        run.message.as_deref(),
        Some("cancelled: the handler aborted: the input is corrupt"),
        "{run:?}"
    );
    let (status, attempts, _) = storage.until_job(&aborts, "Killed").await;
    assert_eq!((status.as_str(), attempts), ("Killed", 1));

    // Cancelled from the dashboard (the web process): the worker drops the
    // handler at once.
    let sleep_key = key(&sleeps, 1);
    until_status(&db, &sleep_key, "in_progress").await;
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{sleep_key}/cancel"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stopped = tokio::time::Instant::now();
    let mut what = None;
    while what.is_none() && stopped.elapsed() < Duration::from_secs(5) {
        what = probes().lock().unwrap().get(&probe).copied();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(what, Some("dropped"), "the handler's future was dropped");
    let run = until_status(&db, &sleep_key, "cancelled").await;
    assert_eq!(run.retry_of, None);
    let (status, attempts, lock_by) = storage.until_job(&sleeps, "Killed").await;
    assert_eq!((status.as_str(), attempts), ("Killed", 1));
    let mut by = instances(&db, &sleep_key).await;
    by.retain(|i| i != web.options().instance.as_deref().unwrap_or(""));
    assert!(by.contains(&lock_by), "{by:?} / {lock_by}");

    // Retry from the dashboard: a new apalis job, its run linked.
    probes().lock().unwrap().remove(&probe);
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{sleep_key}/retry"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["retry_of"], sleep_key.as_str());
    let new_key = body["key"].as_str().expect("the new run's key").to_owned();
    assert!(new_key.ends_with("-1"), "{new_key}");
    let queued = row(&db, &new_key).await.expect("recorded at once");
    assert_eq!(queued.retry_of.as_deref(), Some(sleep_key.as_str()));
    assert_eq!(queued.task_name, QUEUE);
    let running = until_status(&db, &new_key, "in_progress").await;
    assert_eq!(running.retry_of.as_deref(), Some(sleep_key.as_str()));
    assert_eq!(
        running.task_args,
        Some(serde_json::to_value(&sleep_args).unwrap())
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{sleep_key}/retry"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&new_key), "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{new_key}/cancel"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    until_status(&db, &new_key, "cancelled").await;
    let new_id: TaskId = new_key.trim_end_matches("-1").parse().unwrap();
    assert_eq!(storage.until_job(&new_id, "Killed").await.0, "Killed");
    assert_eq!(
        probes().lock().unwrap().get(&probe).copied(),
        Some("dropped")
    );

    // `retry` spawns kinds of this process; an apalis run is enqueued by
    // `retry_or_enqueue` (and the dashboard) only.
    let refused = web.retry(&sleep_key).await.map(|s| s.key().to_owned());
    assert!(
        matches!(&refused, Err(RetryError::Remote { name, .. }) if name == QUEUE),
        "{refused:?}"
    );
    // Stored args that no longer fit the job's type: 422, nothing enqueued.
    web.lifecycle(
        Event::create("old-shape")
            .name(QUEUE)
            .args(&json!({"kind": "resize", "image": "x.png"})),
    )
    .await
    .unwrap();
    web.lifecycle(Event::fail("old-shape", "gone"))
        .await
        .unwrap();
    let (status, body) = call(&app, Method::POST, "/ops/api/runs/old-shape/retry").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `resize`"),
        "{body}"
    );

    // Nothing ran more than asked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for extra in [
        key(&flaky, 4),
        key(&panics, 2),
        key(&aborts, 2),
        key(&sleeps, 2),
    ] {
        assert!(row(&db, &extra).await.is_none(), "{extra} ran");
    }
    for (ctx, handle) in workers {
        ctx.stop().unwrap();
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the worker stops")
            .unwrap()
            .unwrap();
    }
}

mod apalis_workers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_file() {
        super::apalis_workers(tasktrail_tests::Backend::SqliteFile).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::apalis_workers(tasktrail_tests::Backend::Postgres).await;
    }
}
