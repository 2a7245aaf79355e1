//! The soak's driver (issue 17), shared by the bench
//! (`runtime/benches/soak.rs`, 10 minutes at full scale) and the test
//! (`tests/tests/soak.rs`, 60 seconds, scaled down): both include this file
//! with `#[path = …] mod soak_driver;`.
//!
//! What runs, all in this process, for [`Config::duration`]:
//!
//! * **Runs.** [`Config::in_flight`] slots, each spawning one run at a time
//!   with `tracker.begin(name).args(…).spawn(…)` and spawning the next as
//!   soon as it has ended: that many runs in flight at all times. A run
//!   opens a `work` span, takes three steps (a log line through `tracing`,
//!   `ctx.progress_with_message`, a sleep of about a third of
//!   [`Config::run_ms`]), then logs its ending and succeeds, or, every
//!   [`Config::fail_every`]-th run, logs an error and fails. The tracker has
//!   `TrackerOptions::default()`.
//! * **Logs.** The docs' set-up: `DbLogStorage::new(db)` on the same pool,
//!   its `TaskLogLayer` in the global subscriber behind the filter
//!   `tasktrail::logs::install` uses (`info,sqlx=warn`, or `RUST_LOG`). The
//!   fmt layer `install` adds is left out (the runs' lines would flood
//!   stderr); in its place a layer counts the warnings and errors logged
//!   outside the runs and prints them.
//! * **The dashboard** (`Dashboard::new(…).log_storage(…).router()`) served
//!   by `axum::serve` on a loopback port, as the docs show.
//! * **Load.** One client task per route, each with its own keep-alive
//!   connection (hyper-util's client): the list page as HTML
//!   (`/ops/runs`) and JSON (`/ops/api/runs`), a recent run's page
//!   (`/ops/runs/{key}`) and its JSON (`/ops/api/runs/{key}`), each at
//!   [`Config::rps`] requests a second (`0`: back to back).
//! * **Live streams.** [`Config::sse_runs`] clients on the runs' stream
//!   (`/ops/api/events`) and [`Config::sse_logs`] on the log tail
//!   (`/ops/api/logs/events`), connected before the first run and read
//!   until the end; each checks that its event ids only grow.
//! * **Memory.** The process's resident memory (`VmRSS`) every
//!   [`Config::sample_every`].
//!
//! Then the slots stop spawning, the runs in flight end, the log writer is
//! flushed and the streams are given time to deliver the rest; then
//! [`Report::failures`] lists every check that failed: errors of any kind
//! (HTTP non-2xx, failed or dropped writes, dropped or refused log lines,
//! streams that ended, runs that did not end as planned, warnings logged by
//! tasktrail), row counts (one row per run, each in the status its run
//! planned), log lines (stored = emitted, every run's span stored) and
//! stream events (each runs' client got one event per change in the feed,
//! each log tail one per stored line).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tasktrail::logs::{DbLogStorage, LogStats, LogStorage, TaskLogLayer};
use tasktrail::{Dashboard, RunError, TaskContext, TrackerStats};
use tracing::Instrument as _;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::reload;

/// The tracked table: the README's entity.
pub mod soak_run {
    use sea_orm::entity::prelude::*;

    /// One run.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The run's key.
        #[sea_orm(unique)]
        pub task_key: String,
        /// Its task's name.
        pub task_name: String,
        /// Its status.
        pub status: String,
        /// The last message.
        pub message: Option<String>,
        /// Progress, 0–100.
        #[tracking(progress)]
        pub percent: Option<f32>,
        /// Who started it.
        pub user_label: Option<String>,
        /// Its arguments.
        pub task_args: Option<Json>,
        /// What it returned.
        pub result_payload: Option<Json>,
        /// Created.
        pub created_at: DateTimeUtc,
        /// Last written.
        pub updated_at: DateTimeUtc,
        /// Succeeded.
        pub completed_at: Option<DateTimeUtc>,
        /// Failed.
        pub failed_at: Option<DateTimeUtc>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

tasktrail::dashboard! {
    /// The soak's dashboard.
    pub struct Ops<soak_run::Entity> {
        url_prefix: "/ops",
    }
}

/// The target of the runs' own log lines.
const TARGET: &str = "soak";
/// Log lines a run emits: one per step and its ending.
const STEPS: u64 = 3;
/// Task names, in turn.
const NAMES: [&str; 3] = ["soak.import", "soak.report", "soak.sync"];

/// What to run and for how long.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long runs are spawned and the load runs.
    pub duration: Duration,
    /// Runs in flight at all times (after the ramp).
    pub in_flight: usize,
    /// The slots start one after another over this time, so that the
    /// runs' starts spread out instead of all coming at once.
    pub ramp: Duration,
    /// A run's mean length (its three sleeps), in ms.
    pub run_ms: u64,
    /// Every this many-th run fails.
    pub fail_every: u64,
    /// Clients of the runs' live stream.
    pub sse_runs: usize,
    /// Clients of the log tail.
    pub sse_logs: usize,
    /// Requests a second per route (`0`: back to back).
    pub rps: f64,
    /// How often the resident memory is sampled.
    pub sample_every: Duration,
    /// The part of the run left out of the memory slope, from the start.
    pub warm_up: f64,
    /// The longest wait for the streams' last events after the end.
    pub drain: Duration,
}

impl Config {
    /// The streams' clients in all.
    pub fn sse_clients(&self) -> usize {
        self.sse_runs + self.sse_logs
    }
}

/// One memory sample and the counters at that moment.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the first run was spawned.
    pub secs: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// …of it anonymous (the heap: `RssAnon`), MiB.
    pub anon_mib: f64,
    /// …of it mapped files (the binary, SQLite's shared memory:
    /// `RssFile` + `RssShmem`), MiB.
    pub file_mib: f64,
    /// The process's threads.
    pub threads: u64,
    /// Its open file descriptors (sockets, database files).
    pub fds: u64,
    /// The process's CPU time so far (user and system), seconds.
    pub cpu_secs: f64,
    /// Runs in flight (the tracker's count of spawned runs not ended).
    pub running: u64,
    /// Runs ended so far.
    pub runs_ended: u64,
    /// Log lines emitted so far.
    pub lines: u64,
    /// Log lines waiting in the storage's queue.
    pub lines_pending: u64,
    /// HTTP requests answered so far.
    pub requests: u64,
    /// Stream events received so far (all clients).
    pub sse_events: u64,
}

/// The routes the load hits.
const ROUTES: [Route; 4] = [
    Route::ListHtml,
    Route::ListJson,
    Route::RunHtml,
    Route::RunJson,
];

/// A route of the load.
#[derive(Clone, Copy, Debug)]
enum Route {
    ListHtml,
    ListJson,
    RunHtml,
    RunJson,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::ListHtml => "GET /ops/runs (HTML)",
            Route::ListJson => "GET /ops/api/runs (JSON)",
            Route::RunHtml => "GET /ops/runs/{key} (HTML)",
            Route::RunJson => "GET /ops/api/runs/{key} (JSON)",
        }
    }

    fn path(self, key: Option<&str>) -> String {
        match (self, key) {
            (Route::ListHtml, _) => "/ops/runs".to_owned(),
            (Route::ListJson, _) => "/ops/api/runs".to_owned(),
            (Route::RunHtml, Some(key)) => format!("/ops/runs/{key}"),
            (Route::RunJson, Some(key)) => format!("/ops/api/runs/{key}"),
            (_, None) => "/ops/runs".to_owned(),
        }
    }
}

/// Counters shared by every task of the soak.
#[derive(Default)]
struct Counters {
    spawned: AtomicU64,
    succeeded: AtomicU64,
    failed_as_planned: AtomicU64,
    failures_planned: AtomicU64,
    run_errors: AtomicU64,
    spawn_errors: AtomicU64,
    lines: AtomicU64,
    requests: [AtomicU64; 4],
    http_errors: [AtomicU64; 4],
    sse_runs_events: AtomicU64,
    sse_logs_events: AtomicU64,
    sse_ended: AtomicU64,
    sse_disorder: AtomicU64,
    /// The first problems seen, to print.
    notes: Mutex<Vec<String>>,
}

impl Counters {
    fn note(&self, what: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if notes.len() < 20 {
            notes.push(what);
        }
    }

    fn runs_ended(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
            + self.failed_as_planned.load(Ordering::Relaxed)
            + self.run_errors.load(Ordering::Relaxed)
    }

    fn requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn sse_events(&self) -> u64 {
        self.sse_runs_events.load(Ordering::Relaxed) + self.sse_logs_events.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Tracing: the capture (reloaded for each soak) and the warnings
// ---------------------------------------------------------------------------

/// Counts the warnings and errors logged outside the runs' own target.
#[derive(Default)]
struct Warnings {
    tasktrail: AtomicU64,
    /// The heartbeat's warning that a run's lease was taken by another
    /// instance's sweep: with one instance, logged for runs that had
    /// already ended (their lease freed, the run not yet out of the
    /// tracker's list of active runs when the heartbeat looked). Not
    /// counted as an error: had it stopped a live run, that run would
    /// have ended cancelled, which is one.
    lease_race: AtomicU64,
    other: AtomicU64,
    first: Mutex<Vec<String>>,
}

/// The layer that feeds [`Warnings`].
struct WarningLayer(Arc<Warnings>);

/// Collects an event's fields as text.
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarningLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN || meta.target() == TARGET {
            return;
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let line = format!("{} {}: {}", meta.level(), meta.target(), text.0.trim_end());
        eprintln!("soak: {line}");
        if meta.target().starts_with("tasktrail")
            && text
                .0
                .contains("lease was taken by another instance's recovery sweep")
        {
            self.0.lease_race.fetch_add(1, Ordering::Relaxed);
        } else if meta.target().starts_with("tasktrail") {
            self.0.tasktrail.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.other.fetch_add(1, Ordering::Relaxed);
        }
        let mut first = self.0.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 20 {
            first.push(line);
        }
    }
}

/// What the global subscriber's capture slot holds: the runs' log capture
/// during a soak; a test's own layers beside it.
pub type Capture = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The process's global subscriber, installed once: the capture slot (set
/// per soak), the docs' filter and the warning counter.
struct Tracing {
    capture: reload::Handle<Option<Capture>, Registry>,
    warnings: Arc<Warnings>,
}

fn tracing_setup() -> &'static Tracing {
    static TRACING: OnceLock<Tracing> = OnceLock::new();
    TRACING.get_or_init(|| {
        let (capture, handle) = reload::Layer::new(None::<Capture>);
        let warnings = Arc::new(Warnings::default());
        // As `tasktrail::logs::install` filters.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        let subscriber = tracing_subscriber::registry()
            .with(capture)
            .with(filter)
            .with(WarningLayer(warnings.clone()));
        tracing::subscriber::set_global_default(subscriber)
            .expect("the soak installs the one global subscriber");
        Tracing {
            capture: handle,
            warnings,
        }
    })
}

/// Puts `layer` in the global subscriber's capture slot (installing the
/// subscriber at the first call); `None` empties the slot. The global
/// subscriber, not a thread's default: spans close on whichever thread
/// drops them last (sqlx's SQLite worker threads hold the caller's span
/// while they run its statement), and
/// tracing-subscriber's registry lets go of a closed span's parent through
/// *that* thread's default subscriber, so under a thread-local default a
/// parent whose child closes elsewhere never closes.
pub fn capture(layer: Option<Capture>) {
    tracing_setup().capture.reload(layer).expect("the capture");
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

/// A small deterministic generator (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The newest run keys, for the run pages.
#[derive(Default)]
struct Recent(Mutex<VecDeque<String>>);

impl Recent {
    fn push(&self, key: &str) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() == 256 {
            keys.pop_front();
        }
        keys.push_back(key.to_owned());
    }

    fn pick(&self, n: u64) -> Option<String> {
        let keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.is_empty() {
            return None;
        }
        keys.get((mix(n) % keys.len() as u64) as usize).cloned()
    }
}

/// The body of run number `n`.
async fn run_body(
    ctx: TaskContext,
    n: u64,
    run_ms: u64,
    fail: bool,
    counters: Arc<Counters>,
) -> Result<serde_json::Value, String> {
    let span = tracing::info_span!(target: TARGET, "work", n);
    async move {
        for step in 1..=STEPS {
            counters.lines.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: TARGET, step, of = STEPS, "step {step} of {STEPS}");
            ctx.progress_with_message(
                (step * 100 / (STEPS + 1)) as f32,
                format!("step {step} of {STEPS}"),
            );
            // A third of the mean length, ×0.5 to ×1.5.
            let third = run_ms / STEPS;
            let ms = third / 2 + mix(n * 8 + step) % third.max(1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        counters.lines.fetch_add(1, Ordering::Relaxed);
        if fail {
            tracing::error!(target: TARGET, n, "run {n} gives up");
            Err(format!("run {n}: a planned failure"))
        } else {
            tracing::info!(target: TARGET, rows = n % 1_000, "run {n} done");
            Ok(serde_json::json!({ "rows": n % 1_000 }))
        }
    }
    .instrument(span)
    .await
}

/// One slot: from `start` on, a run at a time until `stop`.
async fn slot(
    start: Duration,
    tracker: soak_run::Tracker,
    config: Arc<Config>,
    counters: Arc<Counters>,
    recent: Arc<Recent>,
    stop: Arc<AtomicBool>,
) {
    tokio::time::sleep(start).await;
    while !stop.load(Ordering::Acquire) {
        let n = counters.spawned.fetch_add(1, Ordering::Relaxed);
        let fail = config.fail_every > 0 && n % config.fail_every == config.fail_every - 1;
        let body_counters = counters.clone();
        let run_ms = config.run_ms;
        let spawned = tracker
            .begin(NAMES[(n % NAMES.len() as u64) as usize])
            .args(&serde_json::json!({ "n": n, "file": format!("batch-{n}.csv") }))
            .spawn(move |ctx| run_body(ctx, n, run_ms, fail, body_counters))
            .await;
        let run = match spawned {
            Ok(run) => run,
            Err(err) => {
                counters.spawned.fetch_sub(1, Ordering::Relaxed);
                counters.spawn_errors.fetch_add(1, Ordering::Relaxed);
                counters.note(format!("spawn {n}: {err}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if fail {
            counters.failures_planned.fetch_add(1, Ordering::Relaxed);
        }
        let key = run.key().to_owned();
        let outcome = run.await;
        // Its row exists now (a key just spawned may not be written yet).
        recent.push(&key);
        match (outcome, fail) {
            (Ok(_), false) => {
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            (Err(RunError::Failed(_)), true) => {
                counters.failed_as_planned.fetch_add(1, Ordering::Relaxed);
            }
            (outcome, _) => {
                counters.run_errors.fetch_add(1, Ordering::Relaxed);
                let outcome = match outcome {
                    Ok(_) => "succeeded".to_owned(),
                    Err(err) => err.to_string(),
                };
                counters.note(format!(
                    "run {n} ({key}): planned to {}, {outcome}",
                    if fail { "fail" } else { "succeed" }
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP: the load and the streams
// ---------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Requests `route` at `config.rps` a second until `stop`.
async fn load(
    route: usize,
    addr: SocketAddr,
    config: Arc<Config>,
    counters: Arc<Counters>,
    recent: Arc<Recent>,
    stop: Arc<AtomicBool>,
) {
    let client = http_client();
    let mut ticks = (config.rps > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rps));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        n += 1;
        let key = recent.pick(n);
        let path = ROUTES[route].path(key.as_deref());
        let uri: axum::http::Uri = format!("http://{addr}{path}").parse().expect("a URI");
        let outcome = async {
            let response = client.get(uri).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status.is_success() {
                if let Route::ListJson = ROUTES[route] {
                    // The newest runs, for the run pages: keys that exist.
                    let list: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                    let runs = list["runs"].as_array().map_or(&[][..], Vec::as_slice);
                    for run in runs.iter().take(10) {
                        if let Some(key) = run["task_key"].as_str() {
                            recent.push(key);
                        }
                    }
                }
                Ok(())
            } else {
                Err(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))
            }
        }
        .await;
        counters.requests[route].fetch_add(1, Ordering::Relaxed);
        if let Err(why) = outcome {
            counters.http_errors[route].fetch_add(1, Ordering::Relaxed);
            counters.note(format!("GET {path}: {why}"));
        }
    }
}

/// The two streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Runs,
    Logs,
}

/// What one stream client received.
#[derive(Default)]
struct Received {
    events: AtomicU64,
    ended: AtomicBool,
}

/// An event id as a comparable place: the runs' stream sends `seq` or
/// `txid-seq`, the log tail a line id.
fn place(id: &str) -> Option<(u64, u64)> {
    match id.split_once('-') {
        Some((txid, seq)) => Some((txid.parse().ok()?, seq.parse().ok()?)),
        None => Some((0, id.parse().ok()?)),
    }
}

/// A client of `stream`: connects, then counts the events until the task
/// is aborted; an event id that does not grow, or the stream's end, is an
/// error.
async fn sse_client(
    stream: Stream,
    addr: SocketAddr,
    counters: Arc<Counters>,
    received: Arc<Received>,
    connected: tokio::sync::mpsc::Sender<()>,
) {
    let client = http_client();
    let path = match stream {
        Stream::Runs => "/ops/api/events",
        Stream::Logs => "/ops/api/logs/events",
    };
    let uri: axum::http::Uri = format!("http://{addr}{path}").parse().expect("a URI");
    let fail = |why: String| {
        received.ended.store(true, Ordering::Release);
        counters.sse_ended.fetch_add(1, Ordering::Relaxed);
        counters.note(format!("stream {path}: {why}"));
    };
    let response = match client.get(uri).await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return fail(format!("answered {}", response.status())),
        Err(err) => return fail(err.to_string()),
    };
    let _ = connected.send(()).await;
    drop(connected);
    let mut body = response.into_body();
    let mut text = String::new();
    let mut last: Option<(u64, u64)> = None;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Some(Err(err)) => return fail(err.to_string()),
            None => return fail("the server ended the stream".to_owned()),
        }
        let mut taken = 0;
        while let Some(end) = text[taken..].find("\n\n") {
            let block = &text[taken..taken + end];
            taken += end + 2;
            let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) else {
                continue; // a keep-alive comment
            };
            let Some(at) = place(id.trim()) else {
                counters.sse_disorder.fetch_add(1, Ordering::Relaxed);
                counters.note(format!("stream {path}: an event id `{id}`"));
                continue;
            };
            if last.is_some_and(|l| at <= l) {
                counters.sse_disorder.fetch_add(1, Ordering::Relaxed);
                counters.note(format!("stream {path}: id {at:?} after {last:?}"));
            }
            last = Some(at);
            received.events.fetch_add(1, Ordering::Relaxed);
            match stream {
                Stream::Runs => &counters.sse_runs_events,
                Stream::Logs => &counters.sse_logs_events,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
        text.drain(..taken);
    }
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------

/// The process's resident memory in MiB (`VmRSS`).
pub fn rss_mib() -> f64 {
    status_kib("VmRSS") / 1024.0
}

/// A number of `/proc/self/status` (kB for the sizes).
fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The process's CPU time (user and system) in seconds, from
/// `/proc/self/stat` (in clock ticks of 1/100 s, as procfs counts them).
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: utime is the
    // 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The least-squares slope of `(x, y)`, in y per x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// One `SELECT COUNT(*)`-like query's number.
async fn count(db: &DatabaseConnection, sql: &str) -> u64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index::<i64>(0)
        .map(|n| n as u64)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The rows of the runs' table by status.
async fn by_status(db: &DatabaseConnection) -> Vec<(String, u64)> {
    let sql = "SELECT status, COUNT(*) FROM task_runs GROUP BY status ORDER BY status";
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("the statuses")
        .iter()
        .map(|row| {
            (
                row.try_get_by_index::<String>(0).expect("a status"),
                row.try_get_by_index::<i64>(1).expect("a count") as u64,
            )
        })
        .collect()
}

/// Everything a soak measured, and the checks that failed.
pub struct Report {
    /// The database, as the caller named it.
    pub setup: String,
    /// What ran.
    pub config: Config,
    /// The memory samples, from the first run spawned to the end of the
    /// spawning.
    pub samples: Vec<Sample>,
    /// Seconds from the end of the spawning until the last stream event.
    pub drain_secs: f64,
    /// Runs spawned.
    pub runs_spawned: u64,
    /// Runs that succeeded as planned.
    pub runs_succeeded: u64,
    /// Runs that failed as planned.
    pub runs_failed: u64,
    /// Failures planned.
    pub failures_planned: u64,
    /// Runs that ended otherwise than planned.
    pub run_errors: u64,
    /// Spawns refused.
    pub spawn_errors: u64,
    /// Rows in the runs' table.
    pub rows: u64,
    /// …by status.
    pub rows_by_status: Vec<(String, u64)>,
    /// Changes in the feed (of the runs' table).
    pub changes: u64,
    /// Log lines emitted inside the runs.
    pub lines_emitted: u64,
    /// Rows in `tasktrail_logs`.
    pub lines_stored: u64,
    /// Rows in `tasktrail_spans`.
    pub spans_stored: u64,
    /// The log storage's own account.
    pub log_stats: LogStats,
    /// The tracker's.
    pub tracker_stats: TrackerStats,
    /// Requests per route: (route, answered, errors).
    pub requests: Vec<(&'static str, u64, u64)>,
    /// Events received by the runs' stream clients, in all.
    pub sse_runs_events: u64,
    /// …by the log tail clients.
    pub sse_logs_events: u64,
    /// Runs' stream clients that did not get exactly one event per change.
    pub sse_runs_short: Vec<u64>,
    /// Log tail clients that did not get exactly one event per stored line.
    pub sse_logs_short: Vec<u64>,
    /// Streams that ended or failed.
    pub sse_ended: u64,
    /// Event ids that did not grow.
    pub sse_disorder: u64,
    /// Warnings and errors logged by tasktrail; its lease warnings for runs
    /// that had ended (see `Warnings::lease_race`); and those logged by
    /// others (sqlx: slow statements).
    pub warnings: (u64, u64, u64),
    /// The first problems seen.
    pub notes: Vec<String>,
    /// The load average at the start and at the end (`/proc/loadavg`).
    pub load: (String, String),
}

impl Report {
    /// Samples after the warm-up.
    pub fn after_warm_up(&self) -> Vec<Sample> {
        let from = self.config.duration.as_secs_f64() * self.config.warm_up;
        self.samples
            .iter()
            .filter(|s| s.secs >= from)
            .copied()
            .collect()
    }

    /// The resident memory's least-squares slope after the warm-up, MiB a
    /// minute.
    pub fn slope_mib_per_min(&self) -> f64 {
        let points: Vec<(f64, f64)> = self
            .after_warm_up()
            .iter()
            .map(|s| (s.secs / 60.0, s.rss_mib))
            .collect();
        slope(&points)
    }

    /// Errors of every kind, in all.
    pub fn errors(&self) -> u64 {
        let t = &self.tracker_stats;
        let http: u64 = self.requests.iter().map(|r| r.2).sum();
        http + self.run_errors
            + self.spawn_errors
            + t.write_errors
            + t.dropped
            + t.refused
            + t.hook_errors
            + t.completion_hook_errors
            + self.log_stats.dropped
            + self.log_stats.refused
            + self.sse_ended
            + self.sse_disorder
            + self.warnings.0
    }

    /// Every check that failed, as a sentence; empty when all passed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(what);
            }
        };
        let t = &self.tracker_stats;
        let http: u64 = self.requests.iter().map(|r| r.2).sum();
        check(http == 0, format!("{http} HTTP requests failed"));
        check(
            self.run_errors == 0,
            format!("{} runs ended otherwise than planned", self.run_errors),
        );
        check(
            self.spawn_errors == 0,
            format!("{} spawns refused", self.spawn_errors),
        );
        check(
            t.write_errors + t.dropped + t.refused == 0,
            format!(
                "tracker writes: {} failed commits, {} dropped, {} refused",
                t.write_errors, t.dropped, t.refused
            ),
        );
        check(
            t.hook_errors + t.completion_hook_errors == 0,
            format!("{} hook errors", t.hook_errors + t.completion_hook_errors),
        );
        check(
            self.warnings.0 == 0,
            format!("tasktrail logged {} warnings or errors", self.warnings.0),
        );
        check(
            self.sse_ended == 0,
            format!("{} streams ended or failed", self.sse_ended),
        );
        check(
            self.sse_disorder == 0,
            format!("{} stream events out of order", self.sse_disorder),
        );
        check(
            self.runs_succeeded + self.runs_failed + self.run_errors == self.runs_spawned,
            format!(
                "{} runs spawned, {} ended",
                self.runs_spawned,
                self.runs_succeeded + self.runs_failed + self.run_errors
            ),
        );
        check(
            self.rows == self.runs_spawned,
            format!("{} rows for {} runs", self.rows, self.runs_spawned),
        );
        let status = |name: &str| {
            self.rows_by_status
                .iter()
                .find(|(s, _)| s == name)
                .map_or(0, |(_, n)| *n)
        };
        check(
            status("success") == self.runs_succeeded
                && status("failed") == self.runs_failed
                && self.runs_failed == self.failures_planned,
            format!(
                "rows by status {:?}; {} succeeded, {} failed ({} planned)",
                self.rows_by_status, self.runs_succeeded, self.runs_failed, self.failures_planned
            ),
        );
        let s = &self.log_stats;
        check(
            s.dropped == 0 && s.refused == 0 && s.pending == 0,
            format!(
                "log storage: {} dropped, {} refused, {} pending",
                s.dropped, s.refused, s.pending
            ),
        );
        check(
            s.appended == self.lines_emitted,
            format!(
                "{} lines emitted, {} appended to the storage",
                self.lines_emitted, s.appended
            ),
        );
        check(
            self.lines_stored == self.lines_emitted,
            format!(
                "{} lines emitted, {} stored",
                self.lines_emitted, self.lines_stored
            ),
        );
        check(
            self.spans_stored == self.runs_spawned,
            format!(
                "{} spans stored for {} runs",
                self.spans_stored, self.runs_spawned
            ),
        );
        check(
            self.sse_runs_short.is_empty(),
            format!(
                "{} runs' stream clients did not get one event per change ({} changes; they got {:?})",
                self.sse_runs_short.len(),
                self.changes,
                &self.sse_runs_short[..self.sse_runs_short.len().min(10)]
            ),
        );
        check(
            self.sse_logs_short.is_empty(),
            format!(
                "{} log tail clients did not get one event per line ({} lines; they got {:?})",
                self.sse_logs_short.len(),
                self.lines_stored,
                &self.sse_logs_short[..self.sse_logs_short.len().min(10)]
            ),
        );
        out
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let c = &self.config;
        let _ = writeln!(
            o,
            "soak on {}: {:.0} s, {} runs in flight (mean length {} ms, every {}th fails), \
             {} + {} stream clients (runs, log tail), {} requests/s per route; \
             load average at the start {}, at the end {}\n",
            self.setup,
            c.duration.as_secs_f64(),
            c.in_flight,
            c.run_ms,
            c.fail_every,
            c.sse_runs,
            c.sse_logs,
            if c.rps > 0.0 {
                format!("{}", c.rps)
            } else {
                "back-to-back".to_owned()
            },
            self.load.0,
            self.load.1
        );
        let _ = writeln!(
            o,
            "| elapsed s | RSS MiB | heap (anon) MiB | files MiB | threads | fds | CPU s (process) | runs in flight | runs ended | log lines | lines queued | HTTP requests | stream events |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for s in &self.samples {
            let _ = writeln!(
                o,
                "| {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                s.secs,
                s.rss_mib,
                s.anon_mib,
                s.file_mib,
                s.threads,
                s.fds,
                s.cpu_secs,
                s.running,
                s.runs_ended,
                s.lines,
                s.lines_pending,
                s.requests,
                s.sse_events
            );
        }
        let slope = self.slope_mib_per_min();
        let _ = writeln!(
            o,
            "\nRSS slope after the warm-up (t ≥ {:.0} s, {} samples, least squares): \
             **{slope:+.3} MiB/min** ({:+.1} KiB/min)",
            c.duration.as_secs_f64() * c.warm_up,
            self.after_warm_up().len(),
            slope * 1024.0
        );
        let t = &self.tracker_stats;
        let s = &self.log_stats;
        let http: u64 = self.requests.iter().map(|r| r.2).sum();
        let _ = writeln!(o, "\n| what | count |\n|---|---|");
        let mut row = |what: &str, value: String| {
            let _ = writeln!(o, "| {what} | {value} |");
        };
        row("**errors, in all**", format!("**{}**", self.errors()));
        row("… HTTP non-2xx or failed", format!("{http}"));
        row(
            "… tracker: failed commits / dropped / refused / hook errors",
            format!(
                "{} / {} / {} / {}",
                t.write_errors,
                t.dropped,
                t.refused,
                t.hook_errors + t.completion_hook_errors
            ),
        );
        row(
            "… log lines dropped / refused",
            format!("{} / {}", s.dropped, s.refused),
        );
        row(
            "… streams ended / event ids out of order",
            format!("{} / {}", self.sse_ended, self.sse_disorder),
        );
        row(
            "… runs ended otherwise than planned / spawns refused",
            format!("{} / {}", self.run_errors, self.spawn_errors),
        );
        row(
            "… warnings and errors logged by tasktrail",
            format!("{}", self.warnings.0),
        );
        row(
            "tasktrail's warning \"the run's lease was taken by another instance\" for runs that had ended (not errors: every run ended as planned)",
            format!("{}", self.warnings.1),
        );
        row(
            "warnings logged by others (not errors: sqlx's slow statements)",
            format!("{}", self.warnings.2),
        );
        row(
            "runs spawned / ended (succeeded + failed as planned)",
            format!(
                "{} / {} ({} + {})",
                self.runs_spawned,
                self.runs_succeeded + self.runs_failed + self.run_errors,
                self.runs_succeeded,
                self.runs_failed
            ),
        );
        row(
            "rows in `task_runs` (by status)",
            format!(
                "{} ({})",
                self.rows,
                self.rows_by_status
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            "tracker: writes / commits / progress writes",
            format!("{} / {} / {}", t.writes, t.commits, t.progress_writes),
        );
        row(
            "log lines emitted / appended / written / stored (`tasktrail_logs`)",
            format!(
                "{} / {} / {} / {}",
                self.lines_emitted, s.appended, s.written, self.lines_stored
            ),
        );
        row(
            "spans stored (`tasktrail_spans`, one per run)",
            format!("{}", self.spans_stored),
        );
        row(
            "changes in the feed (`tasktrail_changes`)",
            format!("{}", self.changes),
        );
        for (route, n, errors) in &self.requests {
            row(&format!("HTTP {route}"), format!("{n} ({errors} failed)"));
        }
        row(
            "HTTP requests, in all",
            format!("{}", self.requests.iter().map(|r| r.1).sum::<u64>()),
        );
        row(
            "stream events received: runs' stream / log tail",
            format!(
                "{} ({} clients × {}) / {} ({} clients × {})",
                self.sse_runs_events,
                c.sse_runs,
                self.changes,
                self.sse_logs_events,
                c.sse_logs,
                self.lines_stored
            ),
        );
        row(
            "time from the last spawn's end to the streams' last event",
            format!("{:.1} s", self.drain_secs),
        );
        if !self.notes.is_empty() {
            let _ = writeln!(o, "\nFirst problems seen:");
            for note in &self.notes {
                let _ = writeln!(o, "- {note}");
            }
        }
        o
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the soak on `db` (a fresh, empty database) as `config` says;
/// `setup` names it in the report. Call it inside a multi-threaded tokio
/// runtime, one soak at a time per process (the log capture is the global
/// subscriber's).
pub async fn soak(db: DatabaseConnection, setup: &str, config: Config) -> Report {
    let tracing_state = tracing_setup();
    let warnings_before = (
        tracing_state.warnings.tasktrail.load(Ordering::Relaxed),
        tracing_state.warnings.lease_race.load(Ordering::Relaxed),
        tracing_state.warnings.other.load(Ordering::Relaxed),
    );
    let load_start = loadavg();
    let config = Arc::new(config);
    tasktrail::schema::create::<soak_run::Model>(&db)
        .await
        .expect("the schema");
    let logs = Arc::new(DbLogStorage::new(db.clone()).await.expect("the log table"));
    capture(Some(Box::new(TaskLogLayer::new(logs.clone()))));
    let tracker = soak_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs.clone())
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });

    let counters = Arc::new(Counters::default());
    let recent = Arc::new(Recent::default());

    // The streams first: they see every change and line from the start.
    let (connected, mut connections) = tokio::sync::mpsc::channel(1);
    let mut clients = Vec::new();
    for i in 0..config.sse_clients() {
        let stream = if i < config.sse_runs {
            Stream::Runs
        } else {
            Stream::Logs
        };
        let received = Arc::new(Received::default());
        let task = tokio::spawn(sse_client(
            stream,
            addr,
            counters.clone(),
            received.clone(),
            connected.clone(),
        ));
        clients.push((stream, received, task));
    }
    drop(connected);
    while connections.recv().await.is_some() {}

    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let mut slots = Vec::with_capacity(config.in_flight);
    for i in 0..config.in_flight {
        let start = config.ramp.mul_f64(i as f64 / config.in_flight as f64);
        slots.push(tokio::spawn(slot(
            start,
            tracker.clone(),
            config.clone(),
            counters.clone(),
            recent.clone(),
            stop.clone(),
        )));
    }
    let mut loaders = Vec::new();
    for route in 0..ROUTES.len() {
        loaders.push(tokio::spawn(load(
            route,
            addr,
            config.clone(),
            counters.clone(),
            recent.clone(),
            stop.clone(),
        )));
    }

    // Memory, every `sample_every`, until the end of the spawning.
    let mut samples = Vec::new();
    let sample = |secs: f64| Sample {
        secs,
        rss_mib: rss_mib(),
        anon_mib: status_kib("RssAnon") / 1024.0,
        file_mib: (status_kib("RssFile") + status_kib("RssShmem")) / 1024.0,
        threads: status_kib("Threads") as u64,
        fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        cpu_secs: cpu_secs(),
        running: tracker.stats().running,
        runs_ended: counters.runs_ended(),
        lines: counters.lines.load(Ordering::Relaxed),
        lines_pending: logs.stats().pending,
        requests: counters.requests(),
        sse_events: counters.sse_events(),
    };
    samples.push(sample(0.0));
    let mut next = config.sample_every;
    while next <= config.duration {
        tokio::time::sleep_until(tokio::time::Instant::from_std(began + next)).await;
        samples.push(sample(began.elapsed().as_secs_f64()));
        next += config.sample_every;
    }

    // The end: no more runs or requests; the runs in flight end.
    stop.store(true, Ordering::Release);
    let spawning_ended = Instant::now();
    for task in slots.into_iter().chain(loaders) {
        task.await.expect("a slot or a loader panicked");
    }
    let flushed = logs.flush(Duration::from_secs(120)).await;
    if !flushed {
        counters.note("the log storage did not flush within 120 s".to_owned());
    }
    let lines_stored = count(&db, "SELECT COUNT(*) FROM tasktrail_logs").await;
    let changes = count(
        &db,
        "SELECT COUNT(*) FROM tasktrail_changes WHERE scope = 'task_runs'",
    )
    .await;
    // The streams' last events.
    let deadline = Instant::now() + config.drain;
    loop {
        let behind = clients.iter().any(|(stream, received, _)| {
            let want = match stream {
                Stream::Runs => changes,
                Stream::Logs => lines_stored,
            };
            !received.ended.load(Ordering::Acquire)
                && received.events.load(Ordering::Relaxed) < want
        });
        if !behind || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment for any event too many.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drain_secs = spawning_ended.elapsed().as_secs_f64();
    let mut sse_runs_short = Vec::new();
    let mut sse_logs_short = Vec::new();
    for (stream, received, task) in &clients {
        task.abort();
        let got = received.events.load(Ordering::Relaxed);
        match stream {
            Stream::Runs if got != changes => sse_runs_short.push(got),
            Stream::Logs if got != lines_stored => sse_logs_short.push(got),
            _ => {}
        }
    }
    for (_, _, task) in clients {
        let _ = task.await;
    }

    let report = Report {
        setup: setup.to_owned(),
        config: (*config).clone(),
        samples,
        drain_secs,
        runs_spawned: counters.spawned.load(Ordering::Relaxed),
        runs_succeeded: counters.succeeded.load(Ordering::Relaxed),
        runs_failed: counters.failed_as_planned.load(Ordering::Relaxed),
        failures_planned: counters.failures_planned.load(Ordering::Relaxed),
        run_errors: counters.run_errors.load(Ordering::Relaxed),
        spawn_errors: counters.spawn_errors.load(Ordering::Relaxed),
        rows: count(&db, "SELECT COUNT(*) FROM task_runs").await,
        rows_by_status: by_status(&db).await,
        changes,
        lines_emitted: counters.lines.load(Ordering::Relaxed),
        lines_stored,
        spans_stored: count(&db, "SELECT COUNT(*) FROM tasktrail_spans").await,
        log_stats: logs.stats(),
        tracker_stats: tracker.stats(),
        requests: ROUTES
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.name(),
                    counters.requests[i].load(Ordering::Relaxed),
                    counters.http_errors[i].load(Ordering::Relaxed),
                )
            })
            .collect(),
        sse_runs_events: counters.sse_runs_events.load(Ordering::Relaxed),
        sse_logs_events: counters.sse_logs_events.load(Ordering::Relaxed),
        sse_runs_short,
        sse_logs_short,
        sse_ended: counters.sse_ended.load(Ordering::Relaxed),
        sse_disorder: counters.sse_disorder.load(Ordering::Relaxed),
        warnings: (
            tracing_state.warnings.tasktrail.load(Ordering::Relaxed) - warnings_before.0,
            tracing_state.warnings.lease_race.load(Ordering::Relaxed) - warnings_before.1,
            tracing_state.warnings.other.load(Ordering::Relaxed) - warnings_before.2,
        ),
        notes: counters
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        load: (load_start, loadavg()),
    };
    server.abort();
    let _ = server.await;
    capture(None);
    let _ = tracker.shutdown(Duration::from_secs(10)).await;
    report
}
