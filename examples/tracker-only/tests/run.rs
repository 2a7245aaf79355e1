//! Runs the example against a real database and checks what it recorded,
//! in a build with one backend feature of tasktrail only: PostgreSQL (the
//! test suite's throwaway server) by default, SQLite with
//! `--no-default-features --features sqlite`, MariaDB (the harness's own)
//! with `--no-default-features --features mysql`.

use std::process::Command;

use sea_orm::{ConnectionTrait, Database, Statement};

/// Runs the example on `url`, checks its output and returns the rows:
/// status, progress, message, result, args and user label.
async fn run_example(url: &str) -> Vec<Row> {
    let out = Command::new(env!("CARGO_BIN_EXE_tracker-only"))
        .env("DATABASE_URL", url)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 42 invoices from january.csv"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed: february.pdf: not a CSV file"),
        "{stdout}"
    );
    // The rows, read back with plain SQL.
    let db = Database::connect(url).await.unwrap();
    let text = |column: &str| match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("{column}::text AS {column}"),
        sea_orm::DbBackend::MySql => format!("CAST({column} AS CHAR) AS {column}"),
        _ => format!("CAST({column} AS TEXT) AS {column}"),
    };
    let sql = format!(
        "SELECT status, progress, message, {}, {}, user_label FROM invoice_runs ORDER BY id",
        text("result_payload"),
        text("task_args")
    );
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| Row {
            status: r.try_get("", "status").unwrap(),
            progress: r.try_get("", "progress").unwrap(),
            message: r.try_get("", "message").unwrap(),
            result: r.try_get("", "result_payload").unwrap(),
            args: r.try_get("", "task_args").unwrap(),
            user: r.try_get("", "user_label").unwrap(),
        })
        .collect()
}

#[derive(Debug)]
struct Row {
    status: String,
    progress: Option<f32>,
    message: Option<String>,
    result: Option<String>,
    args: Option<String>,
    user: Option<String>,
}

/// JSON text as a value (PostgreSQL's jsonb and SQLite's text space it
/// differently).
fn json(text: Option<&str>) -> serde_json::Value {
    serde_json::from_str(text.expect("a JSON value")).unwrap()
}

fn check(rows: &[Row]) {
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ok = &rows[0];
    assert_eq!(ok.status, "success");
    assert_eq!(ok.progress, Some(100.0), "complete sets 100");
    assert_eq!(
        json(ok.result.as_deref()),
        serde_json::json!({"invoices": 42})
    );
    assert_eq!(
        json(ok.args.as_deref()),
        serde_json::json!({"file": "january.csv"})
    );
    assert_eq!(ok.user.as_deref(), Some("nightly-cron"));
    let failed = &rows[1];
    assert_eq!(failed.status, "failed");
    assert_eq!(
        failed.message.as_deref(),
        Some("february.pdf: not a CSV file")
    );
    assert_eq!(failed.progress, None, "failed before any progress");
    let cancelled = &rows[2];
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(
        cancelled.progress,
        Some(10.0),
        "cancel keeps the last progress"
    );
    assert_eq!(
        cancelled.message.as_deref(),
        Some("the operator stopped the import")
    );
    assert_eq!(
        cancelled.user.as_deref(),
        Some("anonymous"),
        "no actor given"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn records_runs_on_postgres_alone() {
    let url = tasktrail_harness::pg::fresh_database().await;
    check(&run_example(&url).await);
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn records_runs_on_mariadb_alone() {
    let url = tasktrail_harness::mysql::fresh_database().await;
    check(&run_example(&url).await);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn records_runs_on_sqlite_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("runs.db").display());
    check(&run_example(&url).await);
}
