//! Cross-instance cancel latency: instance B spawns a run that waits for
//! its cancellation; instance A (another pool, as another process would
//! have) calls `tracker.cancel(key)`; the figure is the time from that call
//! to B's run having ended (its future resolved).
//!
//! Set-ups, both with `TrackerOptions::default()` and connected the way the
//! docs show (`sea_orm::Database::connect`):
//! - `postgres` (the test harness's throwaway server): the cancel reaches B
//!   through `NOTIFY`;
//! - `sqlite` (a file, `tasktrail::sqlite::connect`): no notifications, B
//!   checks its running runs against the table every 200 ms.
//!
//! ```sh
//! cargo bench -p tasktrail --bench cancel
//! ```
//! Environment: `TASKTRAIL_BENCH_CANCELS` (runs cancelled on PostgreSQL,
//! default 200; SQLite does a tenth, at least 5).

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tasktrail::{CancelOutcome, RunError, TrackerOptions};
use tasktrail_tests::entities::task_run;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let cancels: usize = std::env::var("TASKTRAIL_BENCH_CANCELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("| set-up | cancels | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    let (owner, other) = tasktrail_tests::two_pools_postgres().await;
    measure("postgres (NOTIFY)", owner, other, cancels).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let (owner, other) = tasktrail_tests::two_pools_sqlite(&dir.path().join("cancel.sqlite")).await;
    measure(
        "sqlite file (200 ms check)",
        owner,
        other,
        (cancels / 10).max(5),
    )
    .await;
}

async fn measure(name: &str, owner: DatabaseConnection, other: DatabaseConnection, n: usize) {
    tasktrail::schema::create::<task_run::Model>(&owner)
        .await
        .expect("the schema");
    let b = task_run::Tracker::with_options(owner.clone(), TrackerOptions::default());
    let a = task_run::Tracker::with_options(other, TrackerOptions::default());
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let run = b
            .spawn("long", &(), |ctx| async move {
                Err::<(), _>(ctx.cancelled().await)
            })
            .await
            .expect("spawn");
        let key = run.key().to_owned();
        // Until the run is recorded as running (A cancels what it sees).
        let started = Instant::now();
        loop {
            if status_of(&owner, &key)
                .await
                .is_some_and(|s| s == "in_progress")
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let asked = Instant::now();
        let outcome = a.cancel(&key, None).await.expect("cancel");
        assert_eq!(outcome, CancelOutcome::Recorded);
        let ended = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("B stops the run");
        latencies.push(asked.elapsed());
        assert!(matches!(ended, Err(RunError::Cancelled(_))), "{ended:?}");
    }
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "| {name} | {n} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(*latencies.last().expect("measured"))
    );
    b.shutdown(Duration::from_secs(5)).await;
    a.shutdown(Duration::from_secs(5)).await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The run's status, if it has a row.
async fn status_of(db: &DatabaseConnection, key: &str) -> Option<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .expect("read the run")
        .map(|row| row.status)
}
