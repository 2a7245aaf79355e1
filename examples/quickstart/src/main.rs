//! tasktrail quickstart: a SQLite file, a tracked entity, a few demo runs,
//! and the rows they leave behind.
//!
//! ```text
//! cargo run -p quickstart            # writes ./tasktrail-quickstart.sqlite
//! cargo run -p quickstart -- my.db   # or a file of your choice
//! ```

use std::time::Duration;

use sea_orm::{Database, EntityTrait, QueryOrder};
use serde::Serialize;
use tasktrail::{Event, Progress};

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
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tasktrail-quickstart.sqlite".into());
    let db = Database::connect(format!("sqlite://{path}?mode=rwc")).await?;
    tasktrail::schema::create::<task_run::Model>(&db).await?;
    let tracker = task_run::Tracker::new(db.clone());
    let ada = User("ada@example.com");

    // 1. A run that succeeds, with progress along the way.
    let imported = tracker
        .begin("import_books")
        .actor(&ada)
        .objects(["shelf:fiction"])
        .args(&ImportArgs {
            file: "books.csv",
            password: "s3cret",
        })
        .run(|run| async move {
            for done in 1..=4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                run.progress(Progress::ratio(done, 4).with_text(format!("{done} of 4 batches")))
                    .await;
            }
            Ok::<_, ImportError>(serde_json::json!({ "books": 120 }))
        })
        .await?;
    println!("import finished: {imported}");

    // 2. A run that fails with an error.
    let failed = tracker
        .begin("send_newsletter")
        .actor(&ada)
        .run(|_| async { Err::<(), _>(ImportError("SMTP server refused the login".into())) })
        .await;
    println!("newsletter: {}", failed.unwrap_err());

    // 3. A run that is cancelled through its handle.
    let report = tracker.begin("build_report").start().await;
    report.progress(30.0).await;
    report.cancel_with("cancelled by the operator").await;

    // 4. The low-level API: events in any order; status never regresses.
    tracker
        .lifecycle(Event::progress("nightly-2026-11-23", 60.0))
        .await?;
    tracker
        .lifecycle(Event::create("nightly-2026-11-23").name("nightly_cleanup"))
        .await?;

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
    Ok(())
}
