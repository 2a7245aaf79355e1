//! tasktrail without the dashboard: a worker that records its runs and
//! nothing else. By default it takes tasktrail with `default-features =
//! false, features = ["postgres"]`: no SQLite, no axum, no askama, no argon2
//! in the build (`cargo tree -p tracker-only -e features` shows it); built
//! with `--no-default-features --features sqlite` it is the same on SQLite
//! alone.
//!
//! ```text
//! DATABASE_URL=postgres://me@localhost/app cargo run -p tracker-only
//! DATABASE_URL='sqlite://runs.db?mode=rwc' \
//!     cargo run -p tracker-only --no-default-features --features sqlite
//! DATABASE_URL=mysql://me@localhost/app \
//!     cargo run -p tracker-only --no-default-features --features mysql
//! ```
//!
//! It creates the table (if missing), records three runs of an invoice
//! import (one succeeds, one fails, one reports progress by hand and is
//! cancelled), waits until every event is committed, and prints the rows.

use std::time::Duration;

use sea_orm::{EntityTrait, QueryOrder};
use serde::Serialize;
use tasktrail::RunError;

/// The entity: one row per run of a background task.
mod task_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "invoice_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        #[tracking(progress)]
        pub progress: Option<f32>,
        pub user_label: Option<String>,
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

#[derive(Serialize)]
struct Import {
    file: &'static str,
}

#[derive(Serialize)]
struct Imported {
    invoices: u32,
}

/// The worker's job: "imports" the invoices of a file.
async fn import(
    file: &str,
    run: &tasktrail::RunHandle<task_run::Model>,
) -> Result<Imported, String> {
    if file.ends_with(".pdf") {
        return Err(format!("{file}: not a CSV file"));
    }
    for done in [25.0, 50.0, 75.0] {
        run.progress(done).await;
    }
    Ok(Imported { invoices: 42 })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(
        |_| "set DATABASE_URL, e.g. postgres://me@localhost/app or sqlite://runs.db?mode=rwc",
    )?;
    let db = sea_orm::Database::connect(&url).await?;
    tasktrail::schema::create::<task_run::Model>(&db).await?;
    let tracker = task_run::Tracker::new(db.clone());

    // A run recorded around a future: create, start, then complete with its
    // result or fail with its error.
    for file in ["january.csv", "february.pdf"] {
        let outcome = tracker
            .begin("import_invoices")
            .actor(&"nightly-cron")
            .args(&Import { file })
            .run(|run| async move { import(file, &run).await })
            .await;
        match outcome {
            Ok(done) => println!("imported {} invoices from {file}", done.invoices),
            Err(RunError::Failed(why)) => println!("failed: {why}"),
            Err(other) => println!("ended otherwise: {other}"),
        }
    }

    // The same by hand: events on a handle, for code that is not one future.
    let run = tracker
        .begin("import_invoices")
        .args(&Import { file: "march.csv" })
        .start()
        .await;
    run.progress_with_message(10.0, "reading march.csv").await;
    run.cancel_with("the operator stopped the import").await;

    // Events are written in the background (batched); wait for them.
    assert!(
        tracker.flush(Duration::from_secs(10)).await,
        "the events were not committed"
    );
    for row in task_run::Entity::find()
        .order_by_asc(task_run::Column::Id)
        .all(&db)
        .await?
    {
        println!(
            "{} {} {} progress={:?} message={:?}",
            row.task_name,
            row.task_key,
            row.status,
            row.progress,
            row.message.unwrap_or_default()
        );
    }
    Ok(())
}
