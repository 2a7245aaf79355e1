//! Model-based property test of the lifecycle rules (issue 17): random
//! sequences of events — create, start, progress, a message, complete,
//! fail, cancel, interrupt, cleanup; duplicated, out of order (their `at`
//! times jump back and forth), with and without values, NUL and non-ASCII
//! text, progress outside 0–100 — for up to three keys, written
//! concurrently through two trackers on two connection pools of one
//! database (a SQLite file, PostgreSQL, MariaDB).
//!
//! Each tracker writes its share of a key's events in order, awaiting each;
//! the two trackers and all keys run at once, so a key's events from the
//! two trackers interleave in whatever order the databases commit them.
//! The check: there is an interleaving of the two trackers' sequences (each
//! kept in its order) under which a plain in-memory model of the rules
//! ([`Row::apply`], written from the rules' text, not from the SQL) gives
//! exactly the stored row — every column — and exactly what each write
//! answered (`Stored`, or `NoRun` for a cleanup before the run exists).
//!
//! Cases per backend: 200 by default (about 10–25 s per backend here).
//! Run longer with `PROPTEST_CASES=5000 cargo test -p tasktrail-tests
//! --test model_lifecycle`. A failing case is shrunk and its seed saved in
//! `tests/proptest-regressions/model_lifecycle.txt` (replayed first on
//! every later run); shrunk counterexamples that found a bug are kept as
//! named tests at the end of this file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tasktrail::{Event, EventKind, Progress, TrackerOptions, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, TestDb, connect, second_pool};

/// Cases per backend unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 200;

/// Names an event may carry (`""` too: a placeholder a `create` fills).
const NAMES: [&str; 4] = ["", "import", "export", "ünïcödé ✓"];
/// Messages: empty, plain, markup, non-ASCII, and a NUL (stored as U+FFFD).
const MESSAGES: [&str; 5] = ["", "boom", "<b>'x' & \"y\"</b>", "ünï ✓ 日本", "a\0b"];
/// Progress percents, two of them outside 0–100 (clamped).
const PERCENTS: [f64; 6] = [-5.0, 0.0, 12.5, 50.0, 100.0, 150.0];

/// The kinds of event the generator picks from. `Message` is a `progress`
/// carrying only a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Create,
    Start,
    Progress,
    Message,
    Complete,
    Fail,
    Cancel,
    Interrupt,
    Cleanup,
}

/// One generated event: its kind, the values it carries (indexes into the
/// tables above), when it happened, and which tracker writes it.
#[derive(Clone, Debug)]
struct Spec {
    kind: Kind,
    name: Option<usize>,
    message: Option<usize>,
    percent: Option<usize>,
    result: Option<i64>,
    args: Option<i64>,
    /// Seconds after the case's base time.
    at: i64,
    /// 0 or 1: the tracker (and pool) that writes it.
    tracker: usize,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Create),
        3 => Just(Kind::Start),
        3 => Just(Kind::Progress),
        1 => Just(Kind::Message),
        2 => Just(Kind::Complete),
        2 => Just(Kind::Fail),
        1 => Just(Kind::Cancel),
        1 => Just(Kind::Interrupt),
        2 => Just(Kind::Cleanup),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        kind(),
        proptest::option::of(0..NAMES.len()),
        proptest::option::of(0..MESSAGES.len()),
        proptest::option::of(0..PERCENTS.len()),
        proptest::option::of(-3_i64..3),
        proptest::option::of(-3_i64..3),
        0_i64..20,
        0_usize..2,
    )
        .prop_map(
            |(kind, name, message, percent, result, args, at, tracker)| {
                let mut s = Spec {
                    kind,
                    name,
                    message,
                    percent,
                    result,
                    args,
                    at,
                    tracker,
                };
                // What each kind can carry through its constructor.
                match kind {
                    Kind::Fail | Kind::Interrupt | Kind::Message => {
                        s.message = Some(s.message.unwrap_or(1));
                    }
                    Kind::Cleanup => {
                        s.name = None;
                        s.message = None;
                    }
                    _ => {}
                }
                if kind != Kind::Progress {
                    s.percent = None;
                } else if s.percent.is_none() {
                    s.percent = Some(2);
                }
                if kind != Kind::Complete {
                    s.result = None;
                }
                if kind != Kind::Create {
                    s.args = None;
                }
                s
            },
        )
}

/// A key's events, some of them duplicated (the same event sent twice,
/// possibly by the other tracker).
fn key_events() -> impl Strategy<Value = Vec<Spec>> {
    (
        proptest::collection::vec(spec(), 1..8),
        proptest::collection::vec((any::<prop::sample::Index>(), 0_usize..2), 0..3),
    )
        .prop_map(|(mut events, dups)| {
            for (at, tracker) in dups {
                let mut dup = events[at.index(events.len())].clone();
                dup.tracker = tracker;
                let to = at.index(events.len() + 1);
                events.insert(to, dup);
            }
            events
        })
}

/// A case: one to three keys, each with its events.
fn scenario() -> impl Strategy<Value = Vec<Vec<Spec>>> {
    proptest::collection::vec(key_events(), 1..4)
}

fn base_time(case: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(case as i64)
}

fn at_of(base: DateTime<Utc>, s: &Spec) -> DateTime<Utc> {
    base + chrono::Duration::seconds(s.at)
}

fn result_json(n: i64) -> Value {
    match n.rem_euclid(3) {
        0 => json!({ "n": n, "ok": true }),
        1 => json!([n, "x"]),
        _ => json!(format!("result {n}")),
    }
}

fn args_json(n: i64) -> Value {
    json!({ "file": format!("f{n}.csv"), "n": n })
}

fn event(key: &str, base: DateTime<Utc>, s: &Spec) -> Event {
    let mut ev = match s.kind {
        Kind::Create => Event::create(key),
        Kind::Start => Event::start(key),
        Kind::Progress => Event::progress(key, Progress::new(PERCENTS[s.percent.unwrap()])),
        Kind::Message => Event::new(EventKind::Progress, key),
        Kind::Complete => Event::complete(key),
        Kind::Fail => Event::fail(key, MESSAGES[s.message.unwrap()]),
        Kind::Cancel => Event::cancel(key),
        Kind::Interrupt => Event::interrupt(key, MESSAGES[s.message.unwrap()]),
        Kind::Cleanup => Event::cleanup(key),
    };
    if let Some(n) = s.name {
        ev = ev.name(NAMES[n]);
    }
    if let Some(m) = s.message
        && !matches!(s.kind, Kind::Fail | Kind::Interrupt)
    {
        ev = ev.message(MESSAGES[m]);
    }
    if let Some(r) = s.result {
        ev = ev.result(&result_json(r));
    }
    if let Some(a) = s.args {
        ev = ev.args(&args_json(a));
    }
    ev.at(at_of(base, s))
}

// ---------------------------------------------------------------------------
// The model: the eight rules as they read, on a plain struct.

/// The statuses, in the model's own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Pending,
    InProgress,
    Success,
    Failed,
    Cancelled,
    Interrupted,
}

impl St {
    fn of(kind: Kind) -> Option<St> {
        Some(match kind {
            Kind::Create => St::Pending,
            Kind::Start | Kind::Progress | Kind::Message => St::InProgress,
            Kind::Complete => St::Success,
            Kind::Fail => St::Failed,
            Kind::Cancel => St::Cancelled,
            Kind::Interrupt => St::Interrupted,
            Kind::Cleanup => return None,
        })
    }

    fn terminal(self) -> bool {
        matches!(
            self,
            St::Success | St::Failed | St::Cancelled | St::Interrupted
        )
    }

    /// Rule 4: status never regresses — nothing moves a run out of a
    /// terminal status, and `pending` never replaces `in_progress`.
    fn may_become(self, to: St) -> bool {
        if self.terminal() {
            return false;
        }
        !(self == St::InProgress && to == St::Pending)
    }
}

/// A run's row as the model keeps it (the columns `task_run` maps).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    status: St,
    name: String,
    message: Option<String>,
    percent: Option<f32>,
    user: Option<String>,
    args: Option<Value>,
    result: Option<Value>,
    cleaned: bool,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

/// Rule 8: a NUL in text is stored as U+FFFD.
fn stored_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Applies one event to the row (`None`: no run yet); returns what the
/// write answers.
fn apply(row: &mut Option<Row>, s: &Spec, base: DateTime<Utc>) -> Written {
    let at = at_of(base, s);
    let name = s.name.map(|n| stored_text(NAMES[n]));
    let message = s.message.map(|m| stored_text(MESSAGES[m]));
    // Rule 5: clamped to 0–100, stored in a float column.
    let percent = s.percent.map(|p| PERCENTS[p].clamp(0.0, 100.0) as f32);
    let result = s.result.map(result_json);
    let args = s.args.map(args_json);
    // `create` carries the anonymous actor.
    let user = (s.kind == Kind::Create).then(|| tasktrail::hooks::ANONYMOUS.to_owned());

    let Some(to) = St::of(s.kind) else {
        // Rule 2: cleanup writes only the flag (and `updated_at`), and never
        // makes a run.
        return match row {
            Some(r) => {
                r.cleaned = true;
                Written::Stored
            }
            None => Written::NoRun,
        };
    };

    match row {
        None => {
            // Rule 1: the first event makes the run, with what it carries.
            *row = Some(Row {
                status: to,
                name: name.unwrap_or_default(),
                message,
                percent,
                user,
                args,
                result,
                cleaned: false,
                created_at: at,
                started_at: (s.kind == Kind::Start).then_some(at),
                completed_at: (s.kind == Kind::Complete).then_some(at),
                failed_at: (s.kind == Kind::Fail).then_some(at),
            });
        }
        Some(r) => {
            let moves = r.status.may_become(to);
            // Rule 3: `created_at` never changes (`updated_at`, the time of
            // the write, is checked against the case's wall-clock bounds).
            // Identity: a late `create` only fills what is missing; other
            // events overwrite with what they carry (rule 2: `None` never
            // overwrites).
            if s.kind == Kind::Create {
                if let Some(n) = name
                    && r.name.is_empty()
                {
                    r.name = n;
                }
                if r.user.is_none() {
                    r.user = user;
                }
                if r.args.is_none() {
                    r.args = args;
                }
            } else if let Some(n) = name {
                r.name = n;
            }
            // The run's state moves only where rule 4 lets the status move.
            if moves {
                r.status = to;
                if let Some(m) = message {
                    r.message = Some(m);
                }
                if let Some(p) = percent {
                    r.percent = Some(p);
                }
                if let Some(v) = result {
                    r.result = Some(v);
                }
                match s.kind {
                    Kind::Start => r.started_at = r.started_at.or(Some(at)),
                    Kind::Complete => r.completed_at = Some(at),
                    Kind::Fail => r.failed_at = Some(at),
                    _ => {}
                }
            }
        }
    }
    Written::Stored
}

fn row_of(m: &task_run::Model) -> Row {
    let status = match m.status.as_str() {
        "pending" => St::Pending,
        "in_progress" => St::InProgress,
        "success" => St::Success,
        "failed" => St::Failed,
        "cancelled" => St::Cancelled,
        "interrupted" => St::Interrupted,
        other => panic!("a status the model does not know: {other}"),
    };
    Row {
        status,
        name: m.task_name.clone(),
        message: m.message.clone(),
        percent: m.percent,
        user: m.user_label.clone(),
        args: m.task_args.clone(),
        result: m.result_payload.clone(),
        cleaned: m.cleaned_up,
        created_at: m.created_at,
        started_at: m.started_at,
        completed_at: m.completed_at,
        failed_at: m.failed_at,
    }
}

/// Whether some interleaving of `a` and `b` (each in its order), applied
/// from no row, ends in `stored` and answers each write as it was
/// answered. `Queued` answers match anything (the write was retried later).
fn explains(
    row: Option<Row>,
    a: &[(&Spec, Written)],
    b: &[(&Spec, Written)],
    base: DateTime<Utc>,
    stored: &Option<Row>,
) -> bool {
    if a.is_empty() && b.is_empty() {
        return &row == stored;
    }
    // Either tracker's next event may have committed first.
    let step = |row: &Option<Row>, (spec, answered): &(&Spec, Written)| {
        let mut next = row.clone();
        let modelled = apply(&mut next, spec, base);
        (*answered == Written::Queued || modelled == *answered).then_some(next)
    };
    if let Some(first) = a.first()
        && let Some(next) = step(&row, first)
        && explains(next, &a[1..], b, base, stored)
    {
        return true;
    }
    if let Some(first) = b.first()
        && let Some(next) = step(&row, first)
        && explains(next, a, &b[1..], base, stored)
    {
        return true;
    }
    false
}

// ---------------------------------------------------------------------------
// Running a case against a database.

struct Fixture {
    /// The database the test reads back from.
    db: DatabaseConnection,
    trackers: [task_run::Tracker; 2],
    _guard: TestDb,
}

static CASE: AtomicU64 = AtomicU64::new(0);

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let (db, guard) = connect(backend).await;
        tasktrail::schema::create::<task_run::Model>(&db)
            .await
            .expect("create the schema");
        let mut trackers = Vec::new();
        for instance in ["model-a", "model-b"] {
            let pool = second_pool(&guard, 4).await;
            trackers.push(task_run::Tracker::with_options(
                pool,
                TrackerOptions {
                    instance: Some(instance.to_owned()),
                    ..TrackerOptions::default()
                },
            ));
        }
        let [a, b]: [task_run::Tracker; 2] = trackers.try_into().ok().unwrap();
        Fixture {
            db,
            trackers: [a, b],
            _guard: guard,
        }
    }

    async fn run(&self, keys: Vec<Vec<Spec>>) -> Result<(), TestCaseError> {
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let began = Utc::now();
        let base = base_time(case);
        // Every key × tracker writes its events in order, all at once.
        let mut tasks = Vec::new();
        for (k, specs) in keys.iter().enumerate() {
            let key = format!("c{case}-k{k}");
            for (t, tracker) in self.trackers.iter().enumerate() {
                let mine: Vec<Spec> = specs.iter().filter(|s| s.tracker == t).cloned().collect();
                let tracker = tracker.clone();
                let key = key.clone();
                tasks.push(tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for s in &mine {
                        let answer = tracker
                            .write(&event(&key, base, s))
                            .await
                            .map_err(|e| format!("{key} {:?}: {e}", s.kind))?;
                        answers.push(answer);
                    }
                    Ok::<_, String>((k, t, answers))
                }));
            }
        }
        let mut answers = vec![[Vec::new(), Vec::new()]; keys.len()];
        for task in tasks {
            let (k, t, a) = task
                .await
                .expect("a writer task")
                .map_err(TestCaseError::fail)?;
            answers[k][t] = a;
        }
        for tracker in &self.trackers {
            prop_assert!(
                tracker.flush(Duration::from_secs(30)).await,
                "queued events not written within 30 s"
            );
        }

        for (k, specs) in keys.iter().enumerate() {
            let key = format!("c{case}-k{k}");
            let stored = task_run::Entity::find()
                .filter(task_run::Column::TaskKey.eq(&key))
                .all(&self.db)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(stored.len() <= 1, "{key}: {} rows (rule 1)", stored.len());
            if let Some(row) = stored.first() {
                // Rule 3: `updated_at` is the time of a write of this case
                // (the database's clock may lag the test's by its rounding).
                let ended = Utc::now();
                prop_assert!(
                    row.updated_at >= began - chrono::Duration::milliseconds(1)
                        && row.updated_at <= ended,
                    "{key}: updated_at {} outside the case ({began} – {ended})",
                    row.updated_at
                );
            }
            let stored = stored.first().map(row_of);
            let per_tracker: Vec<Vec<(&Spec, Written)>> = (0..2)
                .map(|t| {
                    specs
                        .iter()
                        .filter(|s| s.tracker == t)
                        .zip(answers[k][t].iter().copied())
                        .collect()
                })
                .collect();
            if !explains(None, &per_tracker[0], &per_tracker[1], base, &stored) {
                let mut sequential = None;
                for s in specs {
                    apply(&mut sequential, s, base);
                }
                return Err(TestCaseError::fail(format!(
                    "{key}: no order of the two trackers' events explains the row.\n\
                     answers: {:?}\nstored: {stored:#?}\nthe model, in generated order: {sequential:#?}",
                    answers[k]
                )));
            }
        }
        Ok(())
    }
}

fn check(backend: Backend) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = rt.block_on(Fixture::new(backend));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model_lifecycle.txt",
        ))),
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let outcome = runner.run(&scenario(), |keys| rt.block_on(fixture.run(keys)));
    eprintln!(
        "{backend:?}: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = outcome {
        panic!("{backend:?}: {e}");
    }
}

#[test]
fn model_sqlite_file() {
    check(Backend::SqliteFile);
}

#[test]
fn model_postgres() {
    check(Backend::Postgres);
}

#[test]
fn model_mariadb() {
    check(Backend::MariaDb);
}

/// The model itself, on a hand-written sequence: a late create fills only
/// what is missing, a start after success moves nothing, cleanup before
/// the run exists writes nothing.
#[test]
fn the_model_reads_as_the_rules() {
    let base = base_time(0);
    let spec = |kind, at| Spec {
        kind,
        name: None,
        message: None,
        percent: None,
        result: None,
        args: None,
        at,
        tracker: 0,
    };
    let mut row = None;
    assert_eq!(
        apply(&mut row, &spec(Kind::Cleanup, 0), base),
        Written::NoRun
    );
    assert!(row.is_none());
    let mut start = spec(Kind::Start, 1);
    start.name = Some(1);
    apply(&mut row, &start, base);
    let mut create = spec(Kind::Create, 2);
    create.name = Some(2);
    create.args = Some(1);
    apply(&mut row, &create, base);
    let r = row.clone().unwrap();
    assert_eq!(r.status, St::InProgress);
    assert_eq!(r.name, "import", "a late create does not replace the name");
    assert_eq!(r.args, Some(args_json(1)), "but fills the args");
    assert_eq!(r.created_at, base + chrono::Duration::seconds(1));
    apply(&mut row, &spec(Kind::Complete, 3), base);
    apply(&mut row, &spec(Kind::Start, 4), base);
    let mut fail = spec(Kind::Fail, 5);
    fail.message = Some(1);
    apply(&mut row, &fail, base);
    let r = row.unwrap();
    assert_eq!(r.status, St::Success);
    assert_eq!(r.failed_at, None);
    assert_eq!(r.message, None);
    assert_eq!(r.started_at, Some(base + chrono::Duration::seconds(1)));
}
