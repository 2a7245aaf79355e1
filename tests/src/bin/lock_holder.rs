//! A second process for the cross-process lock tests: connects to the
//! database given as its argument, spawns a run that locks `book:1` and
//! `book:2`, prints `HOLDING <run key>` and keeps the run going until it is
//! killed (or for 120 s at most).
//!
//! `lock_holder --lock-file <sqlite url> <millis>` instead holds a SQLite
//! file's write lock (`BEGIN EXCLUSIVE`) for `millis` milliseconds, printing
//! `LOCKED` once it holds it and `RELEASED` after: the fault test's other
//! process that locks the file.

use std::io::Write;
use std::time::Duration;

use tasktrail::TrackerOptions;
use tasktrail_tests::entities::task_run;

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: lock_holder <database url>");
    if url == "--lock-file" {
        let mut args = std::env::args().skip(2);
        let (Some(url), Some(millis)) = (args.next(), args.next().and_then(|m| m.parse().ok()))
        else {
            panic!("usage: lock_holder --lock-file <sqlite url> <millis>");
        };
        return lock_file(&url, Duration::from_millis(millis)).await;
    }
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

/// Holds the SQLite file's write lock for `hold`, on a connection of its
/// own.
async fn lock_file(url: &str, hold: Duration) {
    use sea_orm::ConnectionTrait;
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.max_connections(1);
    let db = sea_orm::Database::connect(opts).await.expect("connect");
    db.execute_unprepared("PRAGMA busy_timeout = 10000")
        .await
        .expect("busy timeout");
    db.execute_unprepared("BEGIN EXCLUSIVE")
        .await
        .expect("the write lock");
    println!("LOCKED");
    std::io::stdout().flush().expect("stdout");
    tokio::time::sleep(hold).await;
    db.execute_unprepared("COMMIT").await.expect("release");
    println!("RELEASED");
    std::io::stdout().flush().expect("stdout");
}
