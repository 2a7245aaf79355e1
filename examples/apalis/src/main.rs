//! tasktrail with apalis 1.0 workers: one command starts two worker
//! processes and a web process on one SQLite file (apalis' queue in a file
//! beside it). The web process enqueues a job every couple of seconds and
//! serves the dashboard, which shows every worker's runs live: each attempt
//! of each job is a run (`<job id>-<attempt>`), retries are linked by
//! `retry_of`, the run's History names the worker, *Cancel* stops the job
//! on its worker at once, *Retry* enqueues it again through apalis.
//!
//! ```text
//! cargo run -p apalis-demo               # writes ./tasktrail-apalis/ afresh; prints the URL
//! cargo run -p apalis-demo -- --once     # a fixed set of jobs, checked, then exit
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{
    Attempt, BackendExt, BoxDynError, TaskBuilder, TaskId, TaskSink, WorkerBuilder, WorkerContext,
};
use apalis_sqlite::{Config, SqlitePool, SqliteStorage};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use tasktrail::TaskContext;
use tasktrail::logs::DbLogStorage;

/// The entity: one row per run (here: per attempt of an apalis job).
mod task_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        #[tracking(progress)]
        pub percent: Option<f32>,
        pub task_args: Option<Json>,
        pub result_payload: Option<Json>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failed_at: Option<DateTimeUtc>,
        pub retry_of: Option<String>,
        /// The apalis attempt (1, 2, …), filled by TrackLayer.
        #[tracking(extra = "attempt")]
        pub attempt: Option<i32>,
        /// The worker that ran it, filled by TrackLayer.
        #[tracking(extra = "worker")]
        pub worker: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

tasktrail::dashboard! {
    /// The demo's dashboard.
    struct Dashboard<task_run::Entity> {
        title: "tasktrail + apalis",
        description: "Two apalis worker processes and this web process on one SQLite file.",
        url_prefix: "/tasks",
        columns: [task_key, status, attempt, worker, percent, message, retry_of, created_at],
        filters: [status, worker],
        search: [task_key, message],
        sort: created_at desc,
        page_size: 25,
        actions: [cancel, retry, delete],
    }
}

/// apalis' queue (the runs' name).
const QUEUE: &str = "media";

/// The jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Job {
    /// Works through `steps` steps.
    Resize { image: String, steps: u32 },
    /// Fails on its first `fail_times` attempts (apalis runs it again).
    Flaky { fail_times: usize },
    /// Panics.
    Explode,
    /// Takes `secs` seconds: long enough to cancel from the dashboard.
    Transcode { video: String, secs: u64 },
}

/// The handler: apalis' extractors beside tasktrail's `TaskContext`.
async fn handle(job: Job, run: TaskContext, attempt: Attempt) -> Result<String, BoxDynError> {
    let attempt = attempt.current();
    match job {
        Job::Resize { image, steps } => {
            for step in 1..=steps {
                run.progress_with_message(
                    f64::from(step) * 100.0 / f64::from(steps),
                    format!("resizing {image}: step {step} of {steps}"),
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            tracing::info!(image = %image, "resized");
            Ok(format!("{image} resized"))
        }
        Job::Flaky { fail_times } => {
            if attempt <= fail_times {
                tracing::warn!(attempt, "the upstream is flaky");
                return Err(format!("upstream timed out (attempt {attempt})").into());
            }
            Ok(format!("succeeded on attempt {attempt}"))
        }
        Job::Explode => panic!("the demo explodes on purpose"),
        Job::Transcode { video, secs } => {
            for s in 1..=secs {
                run.progress_with_message(
                    s as f64 * 100.0 / secs as f64,
                    format!("transcoding {video}: {s} s of {secs}"),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(format!("{video} transcoded"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let name = args.get(2).ok_or("worker NAME DIR")?;
        let dir = args.get(3).ok_or("worker NAME DIR")?;
        return worker(name, Path::new(dir)).await;
    }
    let once = args.iter().any(|a| a == "--once");
    let dir = PathBuf::from("tasktrail-apalis");
    // The demo's files start afresh on every run.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    // The web process makes the tables, then starts the workers.
    let db = tasktrail::sqlite::connect(&tasktrail_url(&dir)).await?;
    tasktrail::schema::create::<task_run::Model>(&db).await?;
    let logs = Arc::new(DbLogStorage::new(db.clone()).await?);
    let pool = SqlitePool::connect(&apalis_url(&dir)).await?;
    SqliteStorage::setup(&pool).await?;
    let storage = SqliteStorage::<Job>::new(&pool).with_config(Config::default().queue(QUEUE));

    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for name in ["worker-1", "worker-2"] {
        workers.push(
            tokio::process::Command::new(&exe)
                .args(["worker", name])
                .arg(&dir)
                .kill_on_drop(true)
                .spawn()?,
        );
    }

    // The web process's tracker: the dashboard's, and retries go to apalis.
    let tracker = task_run::Tracker::with_options(
        db.clone(),
        tasktrail::TrackerOptions {
            instance: Some("web".into()),
            ..Default::default()
        },
    );
    tracker.enqueue_retries::<Job, _, _>(QUEUE, storage.clone(), |job| job.max_attempts(3));

    if once {
        let outcome = check_once(&db, &tracker, storage).await;
        for mut worker in workers {
            let _ = worker.kill().await;
        }
        return outcome;
    }

    tokio::spawn(produce(storage));
    let config = Dashboard::default();
    let prefix = config.url_prefix.clone();
    let app = tasktrail::Dashboard::new(config, tracker)
        .log_storage(logs)
        .router();
    let port: Option<u16> = std::env::var("PORT").ok().and_then(|p| p.parse().ok());
    let listener = match port {
        Some(port) => tokio::net::TcpListener::bind(("127.0.0.1", port)).await?,
        None => match tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await {
            Ok(listener) => listener,
            Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?,
        },
    };
    println!(
        "\nthe dashboard: http://{}{prefix}/  (two workers: worker-1, worker-2; Ctrl-C stops all three)",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(workers);
    Ok(())
}

fn tasktrail_url(dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.join("tasktrail.sqlite").display()
    )
}

fn apalis_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("apalis.sqlite").display())
}

/// A worker process: its own tracker, named as the worker, and its logs in
/// the shared table.
async fn worker(name: &str, dir: &Path) -> Result<(), BoxDynError> {
    let db = tasktrail::sqlite::connect(&tasktrail_url(dir)).await?;
    let logs = Arc::new(DbLogStorage::new(db.clone()).await?);
    tasktrail::logs::install(logs.clone())?;
    let tracker = task_run::Tracker::with_options(
        db,
        tasktrail::TrackerOptions {
            instance: Some(name.into()),
            ..Default::default()
        },
    );
    let pool = SqlitePool::connect(&apalis_url(dir)).await?;
    let storage = SqliteStorage::<Job>::new(&pool).with_config(Config::default().queue(QUEUE));
    let ctx = WorkerContext::new(name);
    let worker = WorkerBuilder::new(&ctx)
        .backend(storage.poll_with_interval(Duration::from_millis(200)))
        .layer(tasktrail::apalis::TrackLayer::new(tracker.clone()))
        .build(handle);
    let stop = ctx.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.stop();
    });
    worker.run().await?;
    tracker.shutdown(Duration::from_secs(5)).await;
    logs.flush(Duration::from_secs(5)).await;
    Ok(())
}

async fn push(storage: &SqliteStorage<Job>, job: Job) -> Result<TaskId, BoxDynError> {
    let id = TaskId::from_ulid(ulid::Ulid::generate());
    let task = TaskBuilder::new(job)
        .task_id(id.clone())
        .max_attempts(3)
        .build();
    storage.clone().push_task(task).await?;
    Ok(id)
}

/// A job every two seconds, of every kind.
async fn produce(storage: SqliteStorage<Job>) {
    for n in 0_u64.. {
        let job = match n % 6 {
            0 | 3 => Job::Resize {
                image: format!("photo-{n}.jpg"),
                steps: 8,
            },
            1 => Job::Flaky { fail_times: 2 },
            2 => Job::Transcode {
                video: format!("clip-{n}.mp4"),
                secs: 40,
            },
            4 => Job::Flaky { fail_times: 5 },
            _ => Job::Explode,
        };
        if let Err(err) = push(&storage, job).await {
            eprintln!("could not enqueue: {err}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `--once`: one job of each kind; waits for what each must become, cancels
/// and retries the long one, prints the runs; an error if anything is off.
async fn check_once(
    db: &DatabaseConnection,
    tracker: &task_run::Tracker,
    storage: SqliteStorage<Job>,
) -> Result<(), BoxDynError> {
    let resize = push(
        &storage,
        Job::Resize {
            image: "photo.jpg".into(),
            steps: 3,
        },
    )
    .await?;
    let flaky = push(&storage, Job::Flaky { fail_times: 2 }).await?;
    let explode = push(&storage, Job::Explode).await?;
    let transcode = push(
        &storage,
        Job::Transcode {
            video: "clip.mp4".into(),
            secs: 600,
        },
    )
    .await?;
    let key = |id: &TaskId, n: usize| format!("{id}-{n}");
    wait(db, &key(&resize, 1), "success").await?;
    wait(db, &key(&flaky, 3), "success").await?;
    wait(db, &key(&explode, 1), "failed").await?;
    wait(db, &key(&transcode, 1), "in_progress").await?;
    tracker.cancel(&key(&transcode, 1), None).await?;
    wait(db, &key(&transcode, 1), "cancelled").await?;
    let again = tracker.retry_or_enqueue(&key(&transcode, 1)).await?;
    wait(db, &again, "in_progress").await?;
    tracker.cancel(&again, None).await?;
    wait(db, &again, "cancelled").await?;

    let runs = task_run::Entity::find()
        .order_by_asc(task_run::Column::Id)
        .all(db)
        .await?;
    println!(
        "{:<30} {:<12} {:<8} {:<10} {:<30} message",
        "run", "status", "attempt", "worker", "retry_of"
    );
    for run in &runs {
        println!(
            "{:<30} {:<12} {:<8} {:<10} {:<30} {}",
            run.task_key,
            run.status,
            run.attempt.unwrap_or_default(),
            run.worker.as_deref().unwrap_or("-"),
            run.retry_of.as_deref().unwrap_or("-"),
            run.message.as_deref().unwrap_or("")
        );
    }
    // 1 + 3 + 1 + 1 + 1 runs, each with its attempt and worker.
    if runs.len() != 7 {
        return Err(format!("{} runs, expected 7", runs.len()).into());
    }
    for run in &runs {
        let attempt: i32 = run.task_key.rsplit('-').next().unwrap_or("").parse()?;
        let worker = run.worker.as_deref().unwrap_or("");
        if run.attempt != Some(attempt) || !["worker-1", "worker-2"].contains(&worker) {
            return Err(format!(
                "run {} has attempt {:?}, worker {worker:?}",
                run.task_key, run.attempt
            )
            .into());
        }
    }
    println!("ok: 7 runs on two workers");
    Ok(())
}

/// Waits (at most 60 s) until run `key` has `status`.
async fn wait(db: &DatabaseConnection, key: &str, status: &str) -> Result<(), BoxDynError> {
    for _ in 0..600 {
        let row = task_run::Entity::find()
            .filter(task_run::Column::TaskKey.eq(key))
            .one(db)
            .await?;
        if row.as_ref().is_some_and(|r| r.status == status) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("run {key} never became {status}").into())
}
