//! Soak (issue 17): ten minutes of the user's set-up under steady load,
//! watching the process's resident memory for growth and checking that
//! nothing was lost or failed.
//!
//! The set-up is the docs': a SQLite file opened with
//! `tasktrail::sqlite::connect`, `TrackerOptions::default()`, the log
//! capture into `DbLogStorage` on the same pool, the dashboard served by
//! `axum::serve` on a loopback port. On it, at full scale: 1,000 spawned
//! runs in flight at all times (each logs four lines through `tracing`,
//! reports progress three times, sleeps about 20 s in all, and succeeds or,
//! one in ten, fails; an ended run is replaced at once), a load generator
//! requesting the runs list (HTML and JSON) and run pages (HTML and JSON),
//! 200 clients on the live streams (150 on the runs' stream, 50 on the log
//! tail). `soak/driver.rs` (shared with `tests/tests/soak.rs`) says what
//! each part does and checks.
//!
//! Every 10 s it samples `VmRSS`; at the end it prints the memory table,
//! the least-squares slope after the warm-up (the first 20 %), the errors
//! and the exact counts (runs, rows, log lines stored against emitted,
//! requests, stream events), and exits non-zero if any check failed.
//!
//! ```sh
//! cargo bench -p tasktrail --bench soak
//! ```
//!
//! Environment:
//! `TASKTRAIL_SOAK_SECS` (600),
//! `TASKTRAIL_SOAK_SCALE` (1.0: multiplies the runs in flight, the stream
//! clients and the request rate),
//! `TASKTRAIL_SOAK_IN_FLIGHT` (1,000 × scale),
//! `TASKTRAIL_SOAK_SSE` (200 × scale stream clients),
//! `TASKTRAIL_SOAK_LOG_TAILS` (the part of them on the log tail, 0.25),
//! `TASKTRAIL_SOAK_RPS` (requests a second per route, 20 × scale; 0: back
//! to back),
//! `TASKTRAIL_SOAK_RUN_MS` (a run's mean length, 20,000),
//! `TASKTRAIL_SOAK_RAMP_SECS` (10: the slots start one after another over
//! this time; 0 starts all 1,000 runs at once),
//! `TASKTRAIL_SOAK_SAMPLE_SECS` (10),
//! `TASKTRAIL_SOAK_BACKEND` (`sqlite`, or `postgres`: the test harness's
//! throwaway server, or `TASKTRAIL_TEST_PG_URL`, as the throughput bench),
//! `TASKTRAIL_SOAK_DB` (the SQLite file to use, kept afterwards; default: a
//! temporary one),
//! `RUST_LOG` (the capture's filter, as `tasktrail::logs::install` reads it).

#![allow(missing_docs)]

#[path = "soak/driver.rs"]
mod soak_driver;

use std::time::Duration;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: `{v}` is not a number")),
        Err(_) => default,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failed = runtime.block_on(run());
    if failed {
        std::process::exit(1);
    }
}

async fn run() -> bool {
    let scale: f64 = env("TASKTRAIL_SOAK_SCALE", 1.0);
    let scaled = |n: f64| ((n * scale).round() as usize).max(1);
    let sse: usize = env("TASKTRAIL_SOAK_SSE", scaled(200.0));
    let log_share: f64 = env("TASKTRAIL_SOAK_LOG_TAILS", 0.25);
    let sse_logs = ((sse as f64) * log_share).round() as usize;
    let config = soak_driver::Config {
        duration: Duration::from_secs(env("TASKTRAIL_SOAK_SECS", 600)),
        in_flight: env("TASKTRAIL_SOAK_IN_FLIGHT", scaled(1_000.0)),
        ramp: Duration::from_secs(env("TASKTRAIL_SOAK_RAMP_SECS", 10)),
        run_ms: env("TASKTRAIL_SOAK_RUN_MS", 20_000),
        fail_every: 10,
        sse_runs: sse - sse_logs,
        sse_logs,
        rps: env("TASKTRAIL_SOAK_RPS", 20.0 * scale),
        sample_every: Duration::from_secs(env("TASKTRAIL_SOAK_SAMPLE_SECS", 10)),
        warm_up: 0.2,
        drain: Duration::from_secs(120),
    };
    let backend = std::env::var("TASKTRAIL_SOAK_BACKEND").unwrap_or_else(|_| "sqlite".into());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, setup) = match backend.as_str() {
        "sqlite" => {
            let path = std::env::var_os("TASKTRAIL_SOAK_DB")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| dir.path().join("soak.sqlite"));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let db = tasktrail::sqlite::connect(&url)
                .await
                .expect("open the SQLite file");
            (
                db,
                "a SQLite file (`tasktrail::sqlite::connect`: WAL, FULL, 4 connections)".to_owned(),
            )
        }
        "postgres" => {
            let url = tasktrail_tests::pg::fresh_database().await;
            let db = sea_orm::Database::connect(&url)
                .await
                .expect("connect to PostgreSQL");
            (db, "PostgreSQL (`sea_orm::Database::connect`)".to_owned())
        }
        other => panic!("TASKTRAIL_SOAK_BACKEND: `{other}` is neither `sqlite` nor `postgres`"),
    };
    println!(
        "soak: {} s on {setup}; {} runs in flight, {} stream clients; a sample every {} s",
        config.duration.as_secs(),
        config.in_flight,
        config.sse_clients(),
        config.sample_every.as_secs()
    );
    let report = soak_driver::soak(db, &setup, config).await;
    println!("\n{}", report.markdown());
    let failures = report.failures();
    if failures.is_empty() {
        println!("All checks passed.");
        false
    } else {
        println!("FAILED:");
        for f in &failures {
            println!("- {f}");
        }
        true
    }
}
