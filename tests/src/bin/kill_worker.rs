//! A worker process for the SIGKILL fault test (`tests/tests/faults.rs`):
//! `kill_worker <database url> <generation>`.
//!
//! It connects as the docs show (`tasktrail::sqlite::connect` for a SQLite
//! file), with quick heartbeats and a short lease, then
//!
//! - spawns 8 long runs `g<gen>-held-<i>`, each locking `obj:<gen>-<i>`,
//!   and prints `RUN <key> <object>` once each holds its lock;
//! - has 16 tasks record runs `g<gen>-t<task>-<i>` as fast as they can —
//!   create, start, progress 50, complete with result `i` — printing
//!   `ACK <event> <key>` once an event's future resolved as stored
//!   (`QUEUED <event> <key>` if it went to the retry queue instead).
//!
//! The test kills it with SIGKILL at a random moment, starts the next
//! generation (whose maintenance sweep recovers the dead runs: marks them
//! `interrupted` and frees their locks), and checks every acknowledged
//! event.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasktrail::{Event, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: kill_worker <database url> <generation>");
    let generation: u32 = args
        .next()
        .and_then(|g| g.parse().ok())
        .expect("usage: kill_worker <database url> <generation>");
    let db = if url.starts_with("sqlite:") {
        tasktrail::sqlite::connect(&url).await.expect("connect")
    } else {
        sea_orm::Database::connect(url).await.expect("connect")
    };
    let tracker = task_run::Tracker::with_options(
        db,
        TrackerOptions {
            instance: Some(format!("worker-{generation}")),
            heartbeat_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(600),
            sweep_interval: Duration::from_millis(200),
            ..TrackerOptions::default()
        },
    );
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = move |line: String| {
        let mut out = out.lock().unwrap();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    say("READY".to_owned());

    let mut held = Vec::new();
    for i in 0..8 {
        let key = format!("g{generation}-held-{i}");
        let object = format!("obj:{generation}-{i}");
        let run = tracker
            .begin("held")
            .key(&key)
            .objects([object.as_str()])
            .spawn(|ctx| async move {
                for step in 0_u32.. {
                    ctx.progress(f64::from(step % 100));
                    tokio::select! {
                        stop = ctx.cancelled() => return Err(stop.to_string()),
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                Ok(())
            })
            .await
            .expect("the worker's own objects are free");
        say(format!("RUN {} {object}", run.key()));
        held.push(run);
    }

    let mut tasks = Vec::new();
    for task in 0..16 {
        let tracker = tracker.clone();
        let say = say.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0_i64.. {
                let key = format!("g{generation}-t{task}-{i}");
                let events = [
                    ("create", Event::create(&key).name("kill")),
                    ("start", Event::start(&key)),
                    ("progress", Event::progress(&key, 50.0)),
                    ("complete", Event::complete(&key).result(&i)),
                ];
                for (what, event) in events {
                    match tracker.lifecycle(event).await {
                        Ok(Written::Stored) => say(format!("ACK {what} {key}")),
                        Ok(Written::Queued) => say(format!("QUEUED {what} {key}")),
                        other => say(format!("ERROR {what} {key} {other:?}")),
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
