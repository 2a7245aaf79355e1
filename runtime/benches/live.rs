//! Live updates across instances: how long a write of instance B takes to
//! reach an SSE client of instance A's dashboard, and what 1,000 open
//! streams cost A.
//!
//! A serves its dashboard over TCP (`axum::serve`, as the docs show); its
//! clients are plain TCP connections reading `GET {prefix}/api/events`.
//! B is another pool in the same process, as another process would be.
//! Both use `TrackerOptions::default()` and connect as the docs show.
//!
//! 1. Latency, one client: B records a progress event, waits until A's
//!    client received it, pauses 20 ms, and again. The figure runs from
//!    B's call (its commit included) to the client's read. Set-ups:
//!    PostgreSQL with `NOTIFY` (A's one listener wakes its feed reader),
//!    PostgreSQL polling only (`TrackerOptions::listen = false`, as behind
//!    PgBouncer's transaction mode), a SQLite file (polling).
//! 2. 1,000 clients on A (PostgreSQL, `NOTIFY`): B writes 20 events a
//!    second for 10 s; the figures are the queries A's pool ran per second
//!    (counted by sea-orm's metric callback: the feed reader and the
//!    dashboard's follower; the listener's connection sends none), the time
//!    until the first and until the last of the 1,000 clients had each
//!    event, and the process's resident memory (clients included).
//!
//! ```sh
//! cargo bench -p tasktrail --bench live
//! ```
//! Environment: `TASKTRAIL_BENCH_EVENTS` (events of part 1, default 200),
//! `TASKTRAIL_BENCH_CLIENTS` (default 1,000).

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tasktrail::{Dashboard, Event, TrackerOptions};
use tasktrail_tests::entities::task_run;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run() {
    let events = env("TASKTRAIL_BENCH_EVENTS", 200);
    let clients = env("TASKTRAIL_BENCH_CLIENTS", 1_000);

    println!("Commit to SSE client, one client:\n");
    println!("| set-up | events | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for listen in [true, false] {
        let (a, b) = tasktrail_tests::two_pools_postgres().await;
        let name = if listen {
            "PostgreSQL, NOTIFY"
        } else {
            "PostgreSQL, polling only (`listen: false`)"
        };
        latency(name, a, b, listen, events).await;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (a, b) = tasktrail_tests::two_pools_sqlite(&dir.path().join("live.sqlite")).await;
    latency("SQLite file, polling", a, b, true, events / 2).await;

    let (a, b) = tasktrail_tests::two_pools_postgres().await;
    many(a, b, clients).await;
}

/// A's dashboard on a free loopback port.
async fn serve(tracker: task_run::Tracker) -> SocketAddr {
    let app = Dashboard::new(Ops::default(), tracker).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

/// A client of the stream: reports the number of each message `m<n>` it
/// reads.
async fn client(
    addr: SocketAddr,
    seen: impl Fn(u64) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"GET /ops/api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .expect("the request");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut text = String::new();
        const MARK: &str = "\"message\":\"m";
        loop {
            let Ok(n) = stream.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let mut done = 0;
            while let Some(at) = text[done..].find(MARK) {
                let start = done + at + MARK.len();
                let end = text[start..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map(|e| start + e);
                let Some(end) = end else { break };
                if let Ok(value) = text[start..end].parse::<u64>() {
                    seen(value);
                }
                done = end;
            }
            text.drain(..done);
        }
    })
}

fn percentiles(mut v: Vec<Duration>) -> [Duration; 4] {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.5), at(0.9), at(0.99), *v.last().expect("samples")]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

async fn latency(
    name: &str,
    a_db: DatabaseConnection,
    b_db: DatabaseConnection,
    listen: bool,
    n: usize,
) {
    tasktrail::schema::create::<task_run::Model>(&a_db)
        .await
        .expect("the schema");
    let a = task_run::Tracker::with_options(
        a_db,
        TrackerOptions {
            listen,
            ..TrackerOptions::default()
        },
    );
    let b = task_run::Tracker::new(b_db);
    let addr = serve(a).await;
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let seen = last.clone();
    let reader = client(addr, move |v| seen.store(v, Ordering::Release)).await;
    b.lifecycle(Event::start("live").name("bench"))
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::with_capacity(n);
    for i in 1..=n as u64 {
        let sent = Instant::now();
        b.lifecycle(Event::progress("live", 50.0).message(format!("m{i}")))
            .await
            .expect("progress");
        while last.load(Ordering::Acquire) != i {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "event {i} never came"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    let [p50, p90, p99, max] = percentiles(samples);
    println!(
        "| {name} | {n} | {} | {} | {} | {} |",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn many(mut a_db: DatabaseConnection, b_db: DatabaseConnection, clients: usize) {
    tasktrail::schema::create::<task_run::Model>(&a_db)
        .await
        .expect("the schema");
    let queries = Arc::new(AtomicU64::new(0));
    let count = queries.clone();
    a_db.set_metric_callback(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let a = task_run::Tracker::new(a_db);
    let b = task_run::Tracker::new(b_db);
    let addr = serve(a).await;
    let rss_before = rss_mb();

    const EVENTS: usize = 200;
    let got: Arc<Vec<AtomicUsize>> = Arc::new((0..=EVENTS).map(|_| AtomicUsize::new(0)).collect());
    let first: Arc<Vec<AtomicU64>> = Arc::new((0..=EVENTS).map(|_| AtomicU64::new(0)).collect());
    let all: Arc<Vec<AtomicU64>> = Arc::new((0..=EVENTS).map(|_| AtomicU64::new(0)).collect());
    let origin = Instant::now();
    let mut readers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (got, first, all) = (got.clone(), first.clone(), all.clone());
        readers.push(
            client(addr, move |v| {
                let i = v as usize;
                if i == 0 || i > EVENTS {
                    return;
                }
                let now = origin.elapsed().as_micros() as u64;
                let n = got[i].fetch_add(1, Ordering::AcqRel) + 1;
                if n == 1 {
                    first[i].store(now, Ordering::Release);
                }
                if n == clients {
                    all[i].store(now, Ordering::Release);
                }
            })
            .await,
        );
    }
    b.lifecycle(Event::start("many").name("bench"))
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let q0 = queries.load(Ordering::Relaxed);
    let window = Instant::now();
    let mut sent = vec![0u64; EVENTS + 1];
    let mut rss_peak = rss_mb();
    for (i, at) in sent.iter_mut().enumerate().skip(1) {
        *at = origin.elapsed().as_micros() as u64;
        b.lifecycle(Event::progress("many", 50.0).message(format!("m{i}")))
            .await
            .expect("progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
        rss_peak = rss_peak.max(rss_mb());
    }
    let elapsed = window.elapsed();
    let per_second = (queries.load(Ordering::Relaxed) - q0) as f64 / elapsed.as_secs_f64();
    // The last events' stragglers.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut to_first = Vec::new();
    let mut to_all = Vec::new();
    let mut incomplete = 0;
    for i in 1..=EVENTS {
        let (f, a) = (
            first[i].load(Ordering::Acquire),
            all[i].load(Ordering::Acquire),
        );
        if a == 0 {
            incomplete += 1;
            continue;
        }
        to_first.push(Duration::from_micros(f - sent[i]));
        to_all.push(Duration::from_micros(a - sent[i]));
    }
    for reader in readers {
        reader.abort();
    }
    let [f50, _, f99, _] = percentiles(to_first);
    let [a50, _, a99, amax] = percentiles(to_all);
    println!(
        "\n{clients} clients on A (PostgreSQL, NOTIFY), B writing 20 events/s for {:.1} s:\n",
        elapsed.as_secs_f64()
    );
    println!(
        "| queries/s by A | first client p50 / p99 | all clients p50 / p99 / max | events not at every client | RSS before clients → peak |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {per_second:.1} | {} / {} | {} / {} / {} | {incomplete} | {rss_before:.0} MB → {rss_peak:.0} MB |",
        ms(f50),
        ms(f99),
        ms(a50),
        ms(a99),
        ms(amax)
    );
}
