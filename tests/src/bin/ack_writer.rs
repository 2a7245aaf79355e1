//! A process for the crash test of group commit: connects to the database
//! given as its argument, then 64 tasks record runs as fast as they can and
//! print `ACK <event> <key>` once each event's future has resolved as
//! stored. The test kills it with SIGKILL mid-flight and checks that every
//! acknowledged event is in the table.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tasktrail::{Event, Written};
use tasktrail_tests::entities::task_run;

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: ack_writer <database url>");
    let db = if url.starts_with("sqlite:") {
        tasktrail::sqlite::connect(&url).await.expect("connect")
    } else {
        sea_orm::Database::connect(url).await.expect("connect")
    };
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .expect("the schema");
    let tracker = task_run::Tracker::new(db);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let ack = move |what: &str, key: &str| {
        let mut out = out.lock().unwrap();
        writeln!(out, "ACK {what} {key}").unwrap();
        out.flush().unwrap();
    };
    println!("READY");
    let mut tasks = Vec::new();
    for task in 0..64 {
        let tracker = tracker.clone();
        let ack = ack.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("t{task}-{i}");
                let created = tracker.lifecycle(Event::create(&key).name("crash")).await;
                if created.unwrap() == Written::Stored {
                    ack("create", &key);
                }
                let done = tracker.lifecycle(Event::complete(&key).result(&i)).await;
                if done.unwrap() == Written::Stored {
                    ack("complete", &key);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
