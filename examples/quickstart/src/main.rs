//! tasktrail quickstart: a SQLite file, a tracked entity, a few spawned demo
//! runs (one succeeds, one fails and is retried, one is cancelled, one is
//! refused by a lock), and the rows they leave behind.
//!
//! Then it serves the dashboard on 127.0.0.1 (port 8080, or `$PORT`), with a
//! new demo run every few seconds, and prints its URL.
//!
//! ```text
//! cargo run -p quickstart            # writes ./tasktrail-quickstart.sqlite afresh
//! cargo run -p quickstart -- my.db   # or a file of your choice
//! cargo run -p quickstart -- --once  # the demo runs only, no dashboard
//! ```

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{EntityTrait, QueryOrder};
use serde::Serialize;
use tasktrail::logs::DbLogStorage;
use tasktrail::{Event, Progress, SpawnError, Task, TaskContext};

/// The entity: one row per task run.
mod task_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(redact = ["password"])]
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
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
        pub result_payload: Option<Json>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failed_at: Option<DateTimeUtc>,
        pub retry_of: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Who starts runs.
struct User(&'static str);

impl tasktrail::Actor for User {
    fn label(&self) -> String {
        self.0.to_owned()
    }
}

#[derive(Serialize)]
struct ImportArgs {
    file: &'static str,
    password: &'static str,
}

/// A task kind, registered so that its failed runs can be retried from their
/// stored arguments.
struct SendNewsletter {
    attempts: std::sync::atomic::AtomicUsize,
}

#[derive(Serialize, serde::Deserialize)]
struct Issue {
    number: u32,
}

impl Task for SendNewsletter {
    const NAME: &'static str = "send_newsletter";
    type Args = Issue;
    type Output = String;
    type Error = ImportError;

    async fn run(&self, ctx: TaskContext, issue: Issue) -> Result<String, ImportError> {
        ctx.message(format!("sending issue {}", issue.number));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let attempt = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if attempt == 0 {
            return Err(ImportError("SMTP server refused the login".into()));
        }
        Ok(format!("issue {} sent to 1,204 readers", issue.number))
    }
}

#[derive(Debug)]
struct ImportError(String);

impl std::error::Error for ImportError {}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let path = match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(path) => path,
        None => {
            // The demo's own file starts afresh on every run.
            let path = "tasktrail-quickstart.sqlite";
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            path.to_owned()
        }
    };
    // The recommended SQLite set-up: WAL, a busy timeout, a pool beside
    // the tracker's writer (see tasktrail::sqlite).
    let db = tasktrail::sqlite::connect(&format!("sqlite://{path}?mode=rwc")).await?;
    tasktrail::schema::create::<task_run::Model>(&db).await?;
    // What runs log (through tracing) goes to the `tasktrail_logs` table of
    // the same file, and to stderr.
    let logs = Arc::new(DbLogStorage::new(db.clone()).await?);
    tasktrail::logs::install(logs.clone())?;
    let tracker = task_run::Tracker::new(db.clone());
    let ada = User("ada@example.com");

    tracker.register(SendNewsletter {
        attempts: Default::default(),
    });

    // 1. A spawned run that succeeds, with progress along the way. It locks
    //    the shelf it touches while it runs.
    let import = tracker
        .begin("import_books")
        .actor(&ada)
        .objects(["shelf:fiction"])
        .args(&ImportArgs {
            file: "books.csv",
            password: "s3cret",
        })
        .spawn(|ctx| async move {
            for done in 1..=4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ctx.progress_with_message(Progress::ratio(done, 4), format!("{done} of 4 batches"));
            }
            Ok::<_, ImportError>(serde_json::json!({ "books": 120 }))
        })
        .await?;

    // 2. Another run on the same shelf is refused while the import holds it.
    match tracker
        .begin("reshelve")
        .objects(["shelf:fiction"])
        .spawn(|_ctx| async { Ok::<_, ImportError>(()) })
        .await
    {
        Err(SpawnError::Conflict(conflicts)) => {
            println!("reshelve refused: {}", SpawnError::Conflict(conflicts))
        }
        other => println!("reshelve: unexpected {other:?}"),
    }
    println!("import finished: {}", import.await?);

    // 3. A registered task kind that fails, then is retried from its stored
    //    arguments.
    let newsletter = tracker
        .begin(SendNewsletter::NAME)
        .actor(&ada)
        .submit::<SendNewsletter>(Issue { number: 42 })
        .await?;
    let first_key = newsletter.key().to_owned();
    println!("newsletter: {}", newsletter.await.unwrap_err());
    let retried = tracker.retry(&first_key).await?;
    println!("newsletter retried: {}", retried.await?);

    // 4. A long run, cancelled from outside; it sees the request through its
    //    context and stops at its next check.
    let report = tracker
        .spawn("build_report", &["q3"], |ctx| async move {
            for step in 1..=100 {
                ctx.check()?;
                ctx.progress(f64::from(step));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, tasktrail::Cancelled>("report.pdf")
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tracker
        .cancel(report.key(), Some("the operator stopped it".into()))
        .await?;
    println!("report: {}", report.await.unwrap_err());

    // 5. The low-level API: events in any order; status never regresses.
    tracker
        .lifecycle(Event::progress("nightly-2026-11-23", 60.0))
        .await?;
    tracker
        .lifecycle(Event::create("nightly-2026-11-23").name("nightly_cleanup"))
        .await?;

    tracker.shutdown(Duration::from_secs(5)).await;
    println!(
        "\n{:<22} {:<16} {:<12} {:>6}  {:<16} message",
        "task", "user", "status", "pct", "key"
    );
    let rows = task_run::Entity::find()
        .order_by_asc(task_run::Column::Id)
        .all(&db)
        .await?;
    for r in rows {
        println!(
            "{:<22} {:<16} {:<12} {:>6}  {:<16} {}",
            r.task_name,
            r.user_label.unwrap_or_default(),
            r.status,
            r.percent.map(|p| format!("{p:.0}%")).unwrap_or_default(),
            r.task_key.chars().take(16).collect::<String>(),
            r.message.unwrap_or_default(),
        );
    }
    println!("\nrows are in {path}; stored args of the import (password redacted):");
    let first = task_run::Entity::find()
        .order_by_asc(task_run::Column::Id)
        .one(&db)
        .await?;
    if let Some(first) = first {
        println!("{}", first.task_args.unwrap_or_default());
    }
    if once {
        logs.flush(Duration::from_secs(5)).await;
        return Ok(());
    }

    // The dashboard, on loopback only, with a demo run every few seconds.
    let tracker = task_run::Tracker::new(db.clone());
    tokio::spawn(demo_runs(tracker.clone()));
    let port: Option<u16> = std::env::var("PORT").ok().and_then(|p| p.parse().ok());
    let config = Dashboard::default();
    let prefix = config.url_prefix.clone();
    let app = tasktrail::Dashboard::new(config, tracker)
        .log_storage(logs)
        .router();
    let listener = match port {
        Some(port) => tokio::net::TcpListener::bind(("127.0.0.1", port)).await?,
        // 8080, or any free port if it is taken.
        None => match tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await {
            Ok(listener) => listener,
            Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?,
        },
    };
    println!(
        "\nthe dashboard: http://{}{prefix}/  (Ctrl-C to stop)",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}

tasktrail::dashboard! {
    /// The quickstart's dashboard.
    struct Dashboard<task_run::Entity> {
        title: "tasktrail quickstart",
        description: "Demo runs on a SQLite file; a new one every few seconds.",
        url_prefix: "/tasks",
        columns: [task_name, status, percent, user_label, message, created_at],
        filters: [status, task_name],
        search: [task_name, message, user_label],
        sort: created_at desc,
        page_size: 25,
        actions: [cancel, retry, delete],
    }
}

/// A run every 3 seconds that progresses for a while, then succeeds, fails
/// or is cancelled.
async fn demo_runs(tracker: task_run::Tracker) {
    let names = ["import_books", "build_report", "send_newsletter", "reindex"];
    for n in 0_u64.. {
        let name = names[(n % 4) as usize];
        let run = tracker
            .begin(name)
            .actor(&User("demo@example.com"))
            .args(&serde_json::json!({ "batch": n }))
            .spawn(move |ctx| async move {
                tracing::info!(batch = n, "starting {name}");
                for step in 1..=10 {
                    ctx.check()?;
                    ctx.progress_with_message(f64::from(step) * 10.0, format!("step {step} of 10"));
                    if step % 3 == 0 {
                        tracing::debug!(step, "checkpoint");
                        tracing::info!(step, rows = step * 120, "step {step} of 10 done");
                    }
                    tokio::time::sleep(Duration::from_millis(800)).await;
                }
                if n % 3 == 1 {
                    tracing::error!(batch = n, "giving up: the demo fails this one on purpose");
                    return Err(tasktrail::Cancelled {
                        reason: "the demo failed this one on purpose".into(),
                    });
                }
                Ok(serde_json::json!({ "items": n * 7 }))
            })
            .await;
        if let Ok(run) = run
            && n % 5 == 2
        {
            let key = run.key().to_owned();
            let tracker = tracker.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let _ = tracker
                    .cancel(&key, Some("the demo cancels some runs".into()))
                    .await;
            });
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
