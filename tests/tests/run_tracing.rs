//! Every tracing event inside a spawned run carries its key, through the
//! `task` span — on a SQLite file, in-memory SQLite and PostgreSQL.
//!
//! A binary of its own with one test: tracing caches each callsite's
//! interest process-wide, and a test that sets a scoped subscriber while
//! other tests' threads register the same callsites under the global no-op
//! one could see the run's span cached as disabled (a flake seen on CI).
//! Here the subscriber is the global default, set before any span exists,
//! and nothing else runs in the process.

use std::time::Duration;

use tasktrail::TrackerOptions;
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, LogBuffer, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_events_carry_the_run_key() {
    use tracing_subscriber::layer::SubscriberExt;
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(buffer.clone())
            .with_ansi(false),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    for backend in [
        Backend::SqliteFile,
        Backend::SqliteMemory,
        Backend::Postgres,
        Backend::MariaDb,
    ] {
        let (db, _g) = connect(backend).await;
        tasktrail::schema::create::<task_run::Model>(&db)
            .await
            .unwrap();
        let tracker = task_run::Tracker::with_options(
            db,
            TrackerOptions {
                heartbeat_interval: Duration::from_millis(100),
                ..TrackerOptions::default()
            },
        );
        let start = buffer.text().len();
        let mut keys = Vec::new();
        for i in 0..3 {
            let run = tracker
                .spawn("logging", &(), move |ctx| async move {
                    tracing::info!(step = i, "inside the run");
                    tokio::task::yield_now().await;
                    tracing::warn!("still inside, key {}", ctx.key());
                    Ok::<_, String>(())
                })
                .await
                .unwrap();
            keys.push(run.key().to_owned());
            run.await.unwrap();
        }
        tracing::info!(?backend, "outside any run");
        // This backend's lines only.
        let text = buffer.text()[start..].to_owned();
        let inside: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("inside the run") || l.contains("still inside, key"))
            .collect();
        assert_eq!(inside.len(), 6, "{backend:?}: {text}");
        for line in inside {
            let key = keys
                .iter()
                .find(|k| line.contains(&format!("task_key={k}")))
                .unwrap_or_else(|| panic!("{backend:?}: no run key in {line}"));
            assert!(line.contains("task{"), "{line}");
            assert!(
                !line.contains("still inside") || line.ends_with(key.as_str()),
                "{line}"
            );
        }
        let outside = text
            .lines()
            .find(|l| l.contains("outside any run"))
            .unwrap();
        assert!(!outside.contains("task_key"), "{outside}");
    }
}
