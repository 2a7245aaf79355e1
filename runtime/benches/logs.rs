//! The cost of capturing a log line with `TaskLogLayer`, against
//! tracing-subscriber's own `fmt` layer writing the same event to
//! `io::sink()`, and the cost of an event outside any run.
//!
//! Run with `cargo bench -p tasktrail --bench logs`; the figures are in
//! `BENCHMARKS.md`.
//!
//! * `event/fmt_layer_to_sink`: the baseline. A registry with the `fmt`
//!   layer (its defaults: timestamp, level, target, span context, fields)
//!   writing to `io::sink()`; one `info!` with a message and two fields,
//!   inside a run's `task{task_key}` span.
//! * `event/task_log_layer_memory`: the same event, the same span, through
//!   `TaskLogLayer` into a `MemoryLogStorage` (a ring of 100,000 lines, full
//!   before measuring, so every append also drops the oldest line).
//! * `event/outside_run_runs_only`: the same event outside any span, through
//!   `TaskLogLayer` capturing runs only: what every event of the rest of an
//!   app pays.
//! * `event/outside_run_no_layer`: that event with a bare registry, for
//!   reference.
//!
//! * `span/no_layer`: a span with two fields opened, entered, exited and
//!   closed inside a run's span, with a bare registry: the baseline.
//! * `span/task_log_layer_recorded`: the same span through `TaskLogLayer`
//!   into a `MemoryLogStorage` (no cap per run): numbered, its fields
//!   recorded, written to the storage's ring of spans when it closes.
//! * `span/task_log_layer_over_cap`: the same once the run's cap is
//!   reached: only counted.
//! * `span/outside_run`: the same span outside any run, with the layer.
//!
//! After the criterion groups, `paired` alternates the baseline and the
//! layer in batches of 10,000 events and prints the median of the ratios of
//! back-to-back batches, and `resident` fills a fresh ring with 100,000
//! lines and prints how much the process's resident memory grew.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tasktrail::logs::{LogStorage, MemoryLogStorage, TaskLogLayer};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

fn fmt_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    )
}

fn layer_dispatch(storage: Arc<MemoryLogStorage>) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(TaskLogLayer::new(storage)))
}

/// A full ring: every measured append also drops the oldest line.
fn full_ring() -> Arc<MemoryLogStorage> {
    let storage = Arc::new(MemoryLogStorage::new(100_000));
    let dispatch = layer_dispatch(storage.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("task", task_key = "0196f1c4-7d2a-7c1e-9a51-3f0e6c2b8d10");
        let _in_run = span.enter();
        for i in 0..100_000_u64 {
            event(i);
        }
    });
    storage
}

#[inline(never)]
fn event(i: u64) {
    tracing::info!(rows = i, file = "books.csv", "imported a batch of books");
}

/// Runs `f` with `dispatch` as the default, inside a run's span if
/// `in_run`.
fn with<R>(dispatch: &Dispatch, in_run: bool, f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(dispatch, || {
        if in_run {
            let span =
                tracing::info_span!("task", task_key = "0196f1c4-7d2a-7c1e-9a51-3f0e6c2b8d10");
            let _in_run = span.enter();
            f()
        } else {
            f()
        }
    })
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event");
    let fmt = fmt_dispatch();
    with(&fmt, true, || {
        group.bench_function("fmt_layer_to_sink", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                event(i);
            });
        });
    });
    let layer = layer_dispatch(full_ring());
    with(&layer, true, || {
        group.bench_function("task_log_layer_memory", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                event(i);
            });
        });
    });
    let storage = full_ring();
    let before = storage.stats().appended;
    let outside = layer_dispatch(storage.clone());
    with(&outside, false, || {
        group.bench_function("outside_run_runs_only", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                event(i);
            });
        });
    });
    assert_eq!(
        storage.stats().appended,
        before,
        "nothing outside a run is captured"
    );
    let bare = Dispatch::new(tracing_subscriber::registry());
    with(&bare, false, || {
        group.bench_function("outside_run_no_layer", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                event(i);
            });
        });
    });
    group.finish();
}

#[inline(never)]
fn span(i: u64) {
    let span = tracing::info_span!("parse", rows = i, file = "books.csv");
    let _entered = span.enter();
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    let mut case = |name: &str, dispatch: Dispatch, in_run: bool| {
        with(&dispatch, in_run, || {
            group.bench_function(name, |b| {
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    span(i);
                });
            });
        });
    };
    case(
        "no_layer",
        Dispatch::new(tracing_subscriber::registry()),
        true,
    );
    let storage = Arc::new(MemoryLogStorage::new(100_000));
    case(
        "task_log_layer_recorded",
        Dispatch::new(
            tracing_subscriber::registry()
                .with(TaskLogLayer::new(storage.clone()).max_spans_per_run(usize::MAX)),
        ),
        true,
    );
    assert!(
        !storage
            .trace_of("0196f1c4-7d2a-7c1e-9a51-3f0e6c2b8d10")
            .spans
            .is_empty()
    );
    case(
        "task_log_layer_over_cap",
        Dispatch::new(
            tracing_subscriber::registry().with(
                TaskLogLayer::new(Arc::new(MemoryLogStorage::new(1_000))).max_spans_per_run(1),
            ),
        ),
        true,
    );
    case(
        "outside_run",
        layer_dispatch(Arc::new(MemoryLogStorage::new(1_000))),
        false,
    );
    group.finish();
}

/// Nanoseconds per event over a batch of `n`.
fn batch(dispatch: &Dispatch, n: u64) -> f64 {
    with(dispatch, true, || {
        let start = Instant::now();
        for i in 0..n {
            event(std::hint::black_box(i));
        }
        start.elapsed().as_nanos() as f64 / n as f64
    })
}

fn paired() {
    let fmt = fmt_dispatch();
    let layer = layer_dispatch(full_ring());
    // Warm both.
    batch(&fmt, 50_000);
    batch(&layer, 50_000);
    let mut ratios = Vec::new();
    let (mut fmt_ns, mut layer_ns) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline || ratios.len() < 20 {
        let a = batch(&fmt, 10_000);
        let b = batch(&layer, 10_000);
        ratios.push(b / a);
        fmt_ns.push(a);
        layer_ns.push(b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "paired ({} pairs of 10,000 events): fmt layer {:.0} ns/event, TaskLogLayer {:.0} ns/event, median ratio {:.2}",
        ratios.len(),
        median(&mut fmt_ns),
        median(&mut layer_ns),
        median(&mut ratios),
    );
}

/// The process's resident memory in bytes (Linux).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory() {
    let Some(before) = resident() else {
        println!("resident: /proc/self/statm is not readable here");
        return;
    };
    let storage = full_ring();
    let after = resident().unwrap_or(before);
    let stats = storage.stats();
    println!(
        "resident: {} lines stored grew the process by {:.1} MiB ({} bytes per line)",
        stats.stored.unwrap_or(0),
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) / stats.stored.unwrap_or(1).max(1),
    );
    drop(storage);
}

fn main() {
    // Measured first, on a fresh heap.
    memory();
    let mut c = Criterion::default().configure_from_args();
    events(&mut c);
    spans(&mut c);
    c.final_summary();
    paired();
}
