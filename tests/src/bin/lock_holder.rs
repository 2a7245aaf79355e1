//! A second process for the cross-process lock tests: connects to the
//! database given as its argument, spawns a run that locks `book:1` and
//! `book:2`, prints `HOLDING <run key>` and keeps the run going until it is
//! killed (or for 120 s at most).

use std::io::Write;
use std::time::Duration;

use tasktrail::TrackerOptions;
use tasktrail_tests::entities::task_run;

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: lock_holder <database url>");
    let db = sea_orm::Database::connect(url).await.expect("connect");
    let tracker = task_run::Tracker::with_options(
        db,
        TrackerOptions {
            heartbeat_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(600),
            ..TrackerOptions::default()
        },
    );
    let run = tracker
        .begin("holder")
        .objects(["book:1", "book:2"])
        .spawn(|ctx| async move {
            tokio::select! {
                stop = ctx.cancelled() => Err(stop.to_string()),
                () = tokio::time::sleep(Duration::from_secs(120)) => Ok(()),
            }
        })
        .await
        .expect("the locks are free");
    println!("HOLDING {}", run.key());
    std::io::stdout().flush().expect("stdout");
    let _ = run.await;
}
