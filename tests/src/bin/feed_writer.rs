//! Instance B of the change feed's multi-process test: connects to the
//! database given as its first argument, as the instance named by the
//! second, with its clock shifted by the third (ms, negative: behind); then
//! `writers` tasks (fourth) each record `runs` runs (fifth) whose keys
//! start with the sixth argument: create, start, two progress writes,
//! complete. Prints `DONE` once every event is stored.

use tasktrail::{Clock, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, instance, offset, writers, runs, prefix] = args.as_slice() else {
        panic!(
            "usage: feed_writer <url> <instance> <clock offset ms> <writers> <runs> <key prefix>"
        );
    };
    let db = if url.starts_with("sqlite:") {
        tasktrail::sqlite::connect(url).await.expect("connect")
    } else {
        sea_orm::Database::connect(url.as_str())
            .await
            .expect("connect")
    };
    let offset: i64 = offset.parse().expect("an offset in ms");
    let tracker = task_run::Tracker::with_options(
        db,
        TrackerOptions {
            clock: Clock::offset(chrono::TimeDelta::milliseconds(offset)),
            instance: Some(instance.clone()),
            ..TrackerOptions::default()
        },
    );
    let writers: usize = writers.parse().expect("a number of writers");
    let runs: usize = runs.parse().expect("a number of runs");
    let mut tasks = Vec::new();
    for w in 0..writers {
        let tracker = tracker.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..runs {
                let key = format!("{prefix}-{w}-{r}");
                for event in tasktrail_tests::run_events(&key) {
                    let written = tracker.lifecycle(event).await.expect("written");
                    assert_eq!(written, Written::Stored);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer");
    }
    println!("DONE");
}
