//! The lifecycle rules and PowerCRUD's scenarios, on a SQLite file, in-memory
//! SQLite and PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::json;
use tasktrail::{Event, Progress, RunError, Status, TrackingConfig, Written};
use tasktrail_tests::entities::{
    custom_run, dense_attrs_run, dense_run, enum_run, panicky_run, task_run,
};
use tasktrail_tests::{Backend, TestDb, backends, connect};

async fn setup<M: TrackingConfig>(backend: Backend) -> (tasktrail::Tracker<M>, TestDb) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<M>(&db)
        .await
        .expect("create the schema");
    (tasktrail::Tracker::new(db), guard)
}

async fn run_row(db: &DatabaseConnection, key: &str) -> task_run::Model {
    task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("no row for {key}"))
}

async fn count(db: &DatabaseConnection) -> usize {
    task_run::Entity::find().all(db).await.expect("query").len()
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

// Rule 1: get-or-create by key; any event creates the row, later events find it.
async fn rule1_get_or_create(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    tracker
        .lifecycle(Event::progress("k1", 10.0))
        .await
        .unwrap();
    assert_eq!(count(&db).await, 1);
    tracker
        .lifecycle(Event::create("k1").name("import"))
        .await
        .unwrap();
    tracker.lifecycle(Event::start("k1")).await.unwrap();
    assert_eq!(count(&db).await, 1);
    let row = run_row(&db, "k1").await;
    assert_eq!(
        row.task_name, "import",
        "a late create fills in what it carries"
    );
    assert_eq!(row.status, "in_progress");
}

// Rule 2: only carried + mapped columns; None never overwrites; extras; skip.
async fn rule2_only_carried_columns(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    tracker
        .lifecycle(
            Event::create("k2")
                .name("report")
                .actor(&"ada")
                .objects(["book:1", "book:2"])
                .args(&json!({"year": 2026}))
                .kwargs(&json!({"dry_run": true}))
                .message("queued")
                .extra("tenant", "acme"),
        )
        .await
        .unwrap();
    // A row field no event maps keeps whatever the application wrote.
    let mut am: task_run::ActiveModel = run_row(&db, "k2").await.into();
    am.internal_note = Set(Some("hand-written".into()));
    am.update(&db).await.unwrap();

    tracker.lifecycle(Event::start("k2")).await.unwrap();
    tracker
        .lifecycle(Event::complete("k2").result(&json!({"rows": 3})))
        .await
        .unwrap();
    let row = run_row(&db, "k2").await;
    assert_eq!(row.user_label.as_deref(), Some("ada"));
    assert_eq!(row.affected_objects.as_deref(), Some("book:1, book:2"));
    assert_eq!(row.task_args, Some(json!({"year": 2026})));
    assert_eq!(row.task_kwargs, Some(json!({"dry_run": true})));
    assert_eq!(
        row.message.as_deref(),
        Some("queued"),
        "events without a message keep it"
    );
    assert_eq!(row.tenant.as_deref(), Some("acme"));
    assert_eq!(row.internal_note.as_deref(), Some("hand-written"));
    assert_eq!(row.result_payload, Some(json!({"rows": 3})));

    // An extra nobody maps is an error, and nothing is written.
    let err = tracker
        .lifecycle(Event::progress("k2", 1.0).extra("region", "eu"))
        .await;
    assert!(
        matches!(err, Err(tasktrail::TrackError::UnknownExtra { .. })),
        "{err:?}"
    );
}

// Rule 2 (cleanup) + PowerCRUD: cleanup sets the flag and touches nothing else.
async fn cleanup_sets_only_the_flag(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    tracker
        .lifecycle(Event::create("k3").name("x").at(t(0)))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::start("k3").at(t(1)))
        .await
        .unwrap();
    tracker
        .lifecycle(
            Event::complete("k3")
                .result(&json!([1]))
                .message("done")
                .at(t(2)),
        )
        .await
        .unwrap();
    let before = run_row(&db, "k3").await;
    assert!(!before.cleaned_up);
    let sent = Utc::now();
    assert_eq!(
        tracker
            .lifecycle(Event::cleanup("k3").at(t(9)))
            .await
            .unwrap(),
        Written::Stored
    );
    let after = run_row(&db, "k3").await;
    assert!(after.cleaned_up);
    written_between(after.updated_at, sent, Utc::now());
    assert_eq!(
        (
            after.status.as_str(),
            after.message.as_deref(),
            &after.result_payload
        ),
        (
            before.status.as_str(),
            before.message.as_deref(),
            &before.result_payload
        )
    );
    assert_eq!(
        (
            after.created_at,
            after.started_at,
            after.completed_at,
            after.failed_at
        ),
        (
            before.created_at,
            before.started_at,
            before.completed_at,
            before.failed_at
        )
    );
    // Cleanup never creates a run.
    assert_eq!(
        tracker.lifecycle(Event::cleanup("nope")).await.unwrap(),
        Written::NoRun
    );
    assert_eq!(count(&db).await, 1);
}

// Rule 3: timestamps.
async fn rule3_timestamps(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    // The event times are the events' (here long past); `updated_at` is
    // the time of each write.
    let sent = Utc::now();
    tracker
        .lifecycle(Event::create("k4").name("x").at(t(0)))
        .await
        .unwrap();
    let r = run_row(&db, "k4").await;
    assert_eq!((r.created_at, r.started_at), (t(0), None));
    written_between(r.updated_at, sent, Utc::now());

    tracker
        .lifecycle(Event::start("k4").at(t(1)))
        .await
        .unwrap();
    let first = run_row(&db, "k4").await.updated_at;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    tracker
        .lifecycle(Event::start("k4").at(t(2)))
        .await
        .unwrap();
    let r = run_row(&db, "k4").await;
    assert_eq!(r.started_at, Some(t(1)), "the first start is kept");
    assert!(r.updated_at > first, "updated_at refreshed on every write");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    tracker
        .lifecycle(Event::progress("k4", 50.0).at(t(3)))
        .await
        .unwrap();
    let progressed = run_row(&db, "k4").await.updated_at;
    assert!(progressed > r.updated_at);
    let sent = Utc::now();
    tracker
        .lifecycle(Event::complete("k4").at(t(4)))
        .await
        .unwrap();
    let r = run_row(&db, "k4").await;
    assert_eq!(
        (r.created_at, r.completed_at, r.failed_at),
        (t(0), Some(t(4)), None)
    );
    written_between(r.updated_at, sent, Utc::now());

    tracker
        .lifecycle(Event::create("k5").at(t(0)))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::fail("k5", "disk full").at(t(5)))
        .await
        .unwrap();
    let r = run_row(&db, "k5").await;
    assert_eq!(
        (r.created_at, r.failed_at, r.completed_at),
        (t(0), Some(t(5)), None)
    );
    assert_eq!(r.message.as_deref(), Some("disk full"));
    assert_eq!(r.status, "failed");
}

/// `at` is the time of a write made between `from` and `to` (PostgreSQL
/// keeps microseconds).
fn written_between(
    at: chrono::DateTime<Utc>,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
) {
    let slack = chrono::TimeDelta::milliseconds(1);
    assert!(
        at >= from - slack && at <= to + slack,
        "updated_at {at} is the time of the write, between {from} and {to}"
    );
}

// Rule 4: status never regresses.
async fn rule4_status_never_regresses(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();

    // create after progress: stays in_progress, but the name is filled in.
    tracker.lifecycle(Event::progress("a", 30.0)).await.unwrap();
    tracker
        .lifecycle(Event::create("a").name("late").message("queued"))
        .await
        .unwrap();
    let r = run_row(&db, "a").await;
    assert_eq!(
        (r.status.as_str(), r.task_name.as_str()),
        ("in_progress", "late")
    );
    assert_eq!(
        r.message, None,
        "a create that loses the status race writes no state"
    );

    // create / progress / start / fail / cancel after complete: stays success.
    tracker
        .lifecycle(Event::create("b").name("first").actor(&"ada").args(&[1]))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::complete("b").result(&"ok").message("done").at(t(5)))
        .await
        .unwrap();
    for late in [
        Event::create("b")
            .name("second")
            .message("queued")
            .args(&[2]),
        Event::progress("b", 10.0).message("working"),
        Event::start("b").at(t(6)),
        Event::fail("b", "too late"),
        Event::cancel("b"),
    ] {
        tracker.lifecycle(late).await.unwrap();
    }
    let r = run_row(&db, "b").await;
    assert_eq!(r.status, "success");
    assert_eq!(r.message.as_deref(), Some("done"));
    assert_eq!(r.percent, None);
    assert_eq!((r.failed_at, r.started_at), (None, None));
    assert_eq!(r.result_payload, Some(json!("ok")));
    // A repeated create fills in, never replaces: name, user (anonymous
    // here) and args stay as the first create recorded them.
    assert_eq!(r.task_name, "first");
    assert_eq!(r.user_label.as_deref(), Some("ada"));
    assert_eq!(r.task_args, Some(json!([1])));

    // cancelled is terminal too.
    tracker.lifecycle(Event::cancel("c")).await.unwrap();
    tracker.lifecycle(Event::complete("c")).await.unwrap();
    assert_eq!(run_row(&db, "c").await.status, "cancelled");
}

// Rule 5: progress keeps the message; progress is clamped and typed.
async fn rule5_progress(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    tracker
        .lifecycle(Event::create("p").name("x").message("queued by ada"))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::progress(
            "p",
            Progress::new(40.0).with_text("4 of 10"),
        ))
        .await
        .unwrap();
    let r = run_row(&db, "p").await;
    assert_eq!(r.status, "in_progress", "progress sets in_progress");
    assert_eq!(r.percent, Some(40.0));
    assert_eq!(
        r.message.as_deref(),
        Some("queued by ada"),
        "progress keeps the message"
    );
    tracker
        .lifecycle(Event::progress("p", 150.0))
        .await
        .unwrap();
    assert_eq!(run_row(&db, "p").await.percent, Some(100.0));
    tracker
        .lifecycle(Event::progress("p", f64::NAN))
        .await
        .unwrap();
    assert_eq!(run_row(&db, "p").await.percent, Some(0.0));

    // Mapped to do so (progress_sets_message), progress text replaces the
    // message; a text progress column stores "40% 4 of 10".
    let (custom, _g2) = setup::<custom_run::Model>(backend).await;
    custom
        .lifecycle(Event::create("q").name("x").message("queued"))
        .await
        .unwrap();
    custom
        .lifecycle(Event::progress(
            "q",
            Progress::new(40.0).with_text("4 of 10"),
        ))
        .await
        .unwrap();
    let r = custom_run::Entity::find()
        .one(custom.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.message.as_deref(), Some("4 of 10"));
    assert_eq!(r.progress_payload.as_deref(), Some("40% 4 of 10"));
}

// Rule 6: Err → failed; panic → failed with the message; dropped → cancelled.
async fn rule6_outcomes(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();

    let ok = tracker
        .begin("sum")
        .key("ok")
        .run(|run| async move {
            run.progress(50.0).await;
            Ok::<_, std::io::Error>(json!({"sum": 3}))
        })
        .await
        .unwrap();
    assert_eq!(ok, json!({"sum": 3}));
    let r = run_row(&db, "ok").await;
    assert_eq!((r.status.as_str(), r.percent), ("success", Some(100.0)));
    assert_eq!(r.result_payload, Some(json!({"sum": 3})));
    assert!(r.completed_at.is_some() && r.started_at.is_some());

    let err = tracker
        .begin("sum")
        .key("err")
        .run(|_| async { Err::<(), _>(std::io::Error::other("no such file")) })
        .await;
    assert!(matches!(err, Err(RunError::Failed(_))));
    let r = run_row(&db, "err").await;
    assert_eq!(
        (r.status.as_str(), r.message.as_deref()),
        ("failed", Some("no such file"))
    );
    assert!(r.failed_at.is_some() && r.completed_at.is_none());

    let panicked = tracker
        .begin("sum")
        .key("panic")
        .run(|_| async {
            if true {
                panic!("boom at row 7");
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
    assert!(
        matches!(&panicked, Err(RunError::Panicked(m)) if m == "boom at row 7"),
        "{panicked:?}"
    );
    let r = run_row(&db, "panic").await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.message.as_deref(), Some("panicked: boom at row 7"));

    let slow = tracker.begin("sum").key("dropped").run(|_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<(), std::io::Error>(())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err()
    );
    let mut status = String::new();
    for _ in 0..50 {
        status = run_row(&db, "dropped").await.status;
        if status == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "cancelled");

    // The handle API reports the same way.
    let run = tracker.begin("manual").key("manual").start().await;
    run.finish(&Err::<(), _>("bad input")).await;
    assert_eq!(run_row(&db, "manual").await.status, "failed");
}

// Rule 7: a panicking hook never breaks the run; it is counted.
async fn rule7_broken_hook(backend: Backend) {
    let (tracker, _g) = setup::<panicky_run::Model>(backend).await;
    let result = tracker
        .begin("x")
        .key("h")
        .actor(&"ada")
        .run(|_| async { Ok::<_, std::io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(result, 1);
    let r = panicky_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, "success");
    assert_eq!(
        r.user_label.as_deref(),
        Some("ada"),
        "the default formatter stands in"
    );
    assert_eq!(tracker.stats().hook_errors, 1);
}

// Rule 8: payloads are JSON, capped, redacted.
async fn rule8_payloads(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    let args = json!({"user": "ada", "password": "hunter2", "nested": [{"token": "t0k", "n": 1}]});
    tracker
        .lifecycle(
            Event::create("r")
                .name("x")
                .args(&args)
                .kwargs(&(f64::NAN, u128::MAX)),
        )
        .await
        .unwrap();
    let r = run_row(&db, "r").await;
    assert_eq!(
        r.task_args,
        Some(
            json!({"user": "ada", "password": "[redacted]", "nested": [{"token": "[redacted]", "n": 1}]})
        )
    );
    assert_eq!(r.task_kwargs, Some(json!(["NaN", u128::MAX.to_string()])));

    let big = vec!["x".repeat(100); 100];
    tracker
        .lifecycle(Event::complete("r").result(&big))
        .await
        .unwrap();
    let result = run_row(&db, "r").await.result_payload.unwrap();
    assert_eq!(result["$truncated"], json!(true), "{result}");
    assert!(result.to_string().len() <= 2048);
}

// PowerCRUD: create persists user, objects, args; no user → anonymous.
async fn create_persists_identity(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    let run = tracker
        .begin("import_books")
        .actor(&"grace")
        .objects([42_i64, 43])
        .args(&("books.csv", 2))
        .create()
        .await;
    let r = run_row(&db, run.key()).await;
    assert_eq!(r.status, "pending");
    assert_eq!(r.task_name, "import_books");
    assert_eq!(r.user_label.as_deref(), Some("grace"));
    assert_eq!(r.affected_objects.as_deref(), Some("42, 43"));
    assert_eq!(r.task_args, Some(json!(["books.csv", 2])));

    let anon = tracker.begin("nightly").create().await;
    assert_eq!(
        run_row(&db, anon.key()).await.user_label.as_deref(),
        Some("anonymous")
    );
}

// PowerCRUD: custom hooks are applied.
async fn custom_hooks_are_applied(backend: Backend) {
    let (tracker, _g) = setup::<custom_run::Model>(backend).await;
    tracker
        .begin("x")
        .key("c")
        .actor(&"ada")
        .objects(["a", "b"])
        .args(&[1, 2])
        .run(|_| async { Ok::<_, std::io::Error>("done") })
        .await
        .unwrap();
    let r = custom_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.user_label.as_deref(), Some("user:ADA"));
    assert_eq!(r.affected_objects.as_deref(), Some("a | b"));
    assert_eq!(r.task_args, Some(json!({"kind": "Args", "value": [1, 2]})));
    // A text result column holds the JSON text.
    assert_eq!(
        r.result_payload.as_deref(),
        Some(r#"{"kind":"Result","value":"done"}"#)
    );
    tracker.begin("y").key("anon").create().await;
    let anon = custom_run::Entity::find()
        .filter(custom_run::Column::TaskId.eq("anon"))
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anon.user_label.as_deref(), Some("system"));
}

// A user ActiveEnum status, text progress, naive and offset timestamps.
async fn enum_status_and_other_types(backend: Backend) {
    use enum_run::RunState;
    let (tracker, _g) = setup::<enum_run::Model>(backend).await;
    let sent = Utc::now();
    tracker
        .lifecycle(Event::create("e").message("hi").at(t(0)))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::progress("e", Progress::new(12.5)).at(t(1)))
        .await
        .unwrap();
    let r = enum_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, RunState::Running);
    assert_eq!(r.progress_text.as_deref(), Some("12.5%"));
    // A naive `updated_at`, stamped with the time of the write (UTC).
    written_between(r.updated_at.and_utc(), sent, Utc::now());
    assert_eq!(r.created_at, t(0).fixed_offset());
    tracker.lifecycle(Event::complete("e")).await.unwrap();
    tracker.lifecycle(Event::create("e")).await.unwrap();
    let r = enum_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, RunState::Done);
    let status = enum_run::Model::decode_status(sea_orm::Value::from("done"));
    assert_eq!(status, Some(Status::Success));
}

// sea-orm 2.0's dense entity forms are tracked through `Model`.
async fn dense_model_forms(backend: Backend) {
    let (tracker, _g) = setup::<dense_run::Model>(backend).await;
    tracker
        .begin("x")
        .key("d")
        .run(|_| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    let r = dense_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, "success");

    let (tracker, _g2) = setup::<dense_attrs_run::Model>(backend).await;
    tracker.lifecycle(Event::start("d")).await.unwrap();
    let r = dense_attrs_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, "in_progress");
}

/// Keys that differ only by case are two runs, on every backend (MySQL's
/// default collation would make them one: `schema::create` gives the key
/// `utf8mb4_bin` there), and the same holds for the objects runs lock.
async fn keys_are_case_sensitive(backend: Backend) {
    let (tracker, _g) = setup::<task_run::Model>(backend).await;
    let db = tracker.db().clone();
    for key in ["Run-1", "run-1", "RUN-1"] {
        tracker
            .lifecycle(Event::create(key).name(key))
            .await
            .unwrap();
    }
    tracker.lifecycle(Event::complete("run-1")).await.unwrap();
    assert_eq!(count(&db).await, 3);
    for key in ["Run-1", "RUN-1"] {
        let row = run_row(&db, key).await;
        assert_eq!(
            (row.task_name.as_str(), row.status.as_str()),
            (key, "pending")
        );
    }
    assert_eq!(run_row(&db, "run-1").await.status, "success");
    // Two runs lock `Book:1` and `book:1` at once: two objects.
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let first = tracker
        .begin("hold")
        .objects(["Book:1"])
        .spawn(|_ctx| async move {
            let _ = wait.await;
            Ok::<_, String>(())
        })
        .await
        .expect("Book:1 is free");
    let second = tracker
        .begin("hold")
        .objects(["book:1"])
        .spawn(|_ctx| async { Ok::<_, String>(()) })
        .await
        .expect("book:1 is another object than Book:1");
    second.await.unwrap();
    go.send(()).unwrap();
    first.await.unwrap();
}

backends!(
    keys_are_case_sensitive,
    rule1_get_or_create,
    rule2_only_carried_columns,
    cleanup_sets_only_the_flag,
    rule3_timestamps,
    rule4_status_never_regresses,
    rule5_progress,
    rule6_outcomes,
    rule7_broken_hook,
    rule8_payloads,
    create_persists_identity,
    custom_hooks_are_applied,
    enum_status_and_other_types,
    dense_model_forms,
);
