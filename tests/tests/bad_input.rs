//! What a new user hit (issue 11): a database refusal taken for an outage
//! stalled a tracker; text PostgreSQL cannot store lost whole events; a NUL
//! in a dashboard request came back as "the database did not answer". On a
//! SQLite file, in-memory SQLite and PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tasktrail::{Dashboard, Event, MAX_KEY_BYTES, SpawnError, TrackError, Written};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::find_run as row;
use tasktrail_tests::{Backend, backends, connect, pg};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        filters: [status, task_name],
        search: [task_name, message],
    }
}

/// A trigger that refuses every write of a run whose key starts with
/// `bad-<code>` with that SQLSTATE (PostgreSQL), with `SIGNAL` (MariaDB)
/// or with `RAISE(ABORT)` (SQLite): a real refusal by a database that
/// answers.
async fn refuse_bad_keys(db: &DatabaseConnection, backend: Backend) {
    if backend == Backend::Postgres {
        db.execute_unprepared(
            "CREATE FUNCTION refuse_bad() RETURNS trigger AS $$
             BEGIN
               IF NEW.task_key LIKE 'bad-%' THEN
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = split_part(NEW.task_key, '-', 2);
               END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_bad BEFORE INSERT OR UPDATE ON task_runs
               FOR EACH ROW EXECUTE FUNCTION refuse_bad();",
        )
        .await
        .unwrap();
    } else if backend == Backend::MariaDb {
        // A SIGNAL's SQLSTATE is a literal: every refusal is 45000 (an
        // error the application raised: permanent).
        for op in ["INSERT", "UPDATE"] {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER refuse_bad_{op} BEFORE {op} ON task_runs FOR EACH ROW
                 BEGIN
                   IF NEW.task_key LIKE 'bad-%' THEN
                     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test';
                   END IF;
                 END"
            ))
            .await
            .unwrap();
        }
    } else {
        for op in ["INSERT", "UPDATE"] {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER refuse_bad_{op} BEFORE {op} ON task_runs
                 WHEN NEW.task_key LIKE 'bad-%'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
            ))
            .await
            .unwrap();
        }
    }
}

/// Issue 11, item 2: an event the database refuses is returned as refused
/// (never queued), and the events after it land. On PostgreSQL the refusals
/// are SQLSTATEs the old test took for SQLite's BUSY/LOCKED (22021: a NUL
/// byte, 42501: permission denied; both 5 modulo 256).
async fn refused_event_does_not_hold_back_later_ones(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    refuse_bad_keys(&db, backend).await;
    let tracker = task_run::Tracker::new(db.clone());
    let bad = ["bad-22021", "bad-42501", "bad-23514", "bad-XX000"];
    for (i, key) in bad.iter().enumerate() {
        let written = tracker.lifecycle(Event::create(*key).name("import")).await;
        assert!(
            matches!(written, Err(TrackError::Refused { .. })),
            "{key}: {written:?}"
        );
        let stats = tracker.stats();
        assert_eq!(stats.queue_len, 0, "{key} was queued: {stats:?}");
        assert_eq!(stats.refused, i as u64 + 1);
    }
    for i in 0..5 {
        let key = format!("good-{i}");
        for event in [
            Event::create(&key).name("import"),
            Event::start(&key),
            Event::complete(&key).result(&i),
        ] {
            assert_eq!(tracker.lifecycle(event).await.unwrap(), Written::Stored);
        }
        assert_eq!(row(&db, &key).await.unwrap().status, "success");
    }
    for key in bad {
        assert!(row(&db, key).await.is_none());
    }
    assert_eq!(tracker.stats().queued, 0);
}

/// Issue 11, item 4: a NUL in any text or JSON string is stored (as
/// U+FFFD) on every backend, so a create keeps its name, user and args and
/// a fail ends the run.
async fn nul_in_text_and_json_is_stored(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let r = '\u{FFFD}';
    tracker
        .lifecycle(
            Event::create("nul-1")
                .name("imp\0ort")
                .actor(&"ad\0a")
                .args(&json!({ "fi\0le": "a\0b", "list": ["\0"] }))
                .kwargs(&json!({ "mode": "x\0" }))
                .message("queued\0")
                .extra("tenant", "acme\0"),
        )
        .await
        .unwrap();
    tracker.lifecycle(Event::start("nul-1")).await.unwrap();
    tracker
        .lifecycle(Event::fail("nul-1", "disk\0full"))
        .await
        .unwrap();
    let got = row(&db, "nul-1").await.expect("the run's row");
    assert_eq!(got.status, "failed");
    assert_eq!(got.task_name, format!("imp{r}ort"));
    assert_eq!(got.user_label.as_deref(), Some(format!("ad{r}a").as_str()));
    assert_eq!(
        got.message.as_deref(),
        Some(format!("disk{r}full").as_str())
    );
    assert_eq!(got.tenant.as_deref(), Some(format!("acme{r}").as_str()));
    assert_eq!(
        got.task_args,
        Some(json!({ format!("fi{r}le"): format!("a{r}b"), "list": [r.to_string()] }))
    );
    assert_eq!(got.task_kwargs, Some(json!({ "mode": format!("x{r}") })));
    assert!(got.failed_at.is_some());

    tracker
        .lifecycle(Event::complete("nul-2").result(&json!({ "out": "\0" })))
        .await
        .unwrap();
    let got = row(&db, "nul-2").await.unwrap();
    assert_eq!(got.status, "success");
    assert_eq!(got.result_payload, Some(json!({ "out": r.to_string() })));
    assert_eq!(tracker.stats().refused, 0);
}

/// Run keys: a NUL or more than `MAX_KEY_BYTES` bytes is refused with a
/// clear error, never queued; the longest allowed key is stored and found.
async fn run_keys_are_checked(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    for key in ["a\0b", long.as_str()] {
        let written = tracker.lifecycle(Event::create(key).name("import")).await;
        match written {
            Err(TrackError::InvalidKey { key: shown, reason }) => {
                assert!(shown.chars().count() <= 65, "{shown}");
                assert!(
                    reason.contains("NUL") || reason.contains("512 bytes"),
                    "{reason}"
                );
            }
            other => panic!("{key:.20}: {other:?}"),
        }
        let spawned = tracker
            .begin("import")
            .key(key)
            .spawn(|_ctx| async { Ok::<_, String>(()) })
            .await;
        assert!(
            matches!(spawned, Err(SpawnError::InvalidKey { .. })),
            "{spawned:?}"
        );
    }
    assert_eq!(tracker.stats().queue_len, 0);
    // The longest key allowed, in multi-byte characters, is stored whole.
    let longest = "é".repeat(MAX_KEY_BYTES / 2);
    assert_eq!(longest.len(), MAX_KEY_BYTES);
    tracker
        .lifecycle(Event::create(&longest).name("import"))
        .await
        .unwrap();
    assert_eq!(row(&db, &longest).await.unwrap().task_key, longest);
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get(uri).body(Body::empty()).unwrap();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, String::from_utf8_lossy(&bytes).into_owned())
}

/// Issue 11, item 3: a NUL in a dashboard request is a 400 that says so
/// (JSON under /api/), not a 503; the pages and API still answer after it.
async fn nul_in_a_request_is_a_bad_request(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker
        .lifecycle(Event::create("run-1").name("import"))
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), tracker).router();
    for uri in [
        "/ops/runs?q=%00",
        "/ops/api/runs?q=%00",
        "/ops/runs?task_name=%00",
        "/ops/api/runs?task_name=im%00port",
        "/ops/api/runs?status=%00",
        "/ops/runs/%00",
        "/ops/api/runs/run%001",
        "/ops/api/runs?after=%00",
        "/ops/logs?q=%00",
        "/ops/api/logs?run=%00",
        "/ops/api/events?q=%00",
    ] {
        let (status, kind, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains("NUL"), "{uri}: {body}");
        if uri.starts_with("/ops/api/") {
            assert_eq!(kind.as_deref(), Some("application/json"), "{uri}");
            let json: Value = serde_json::from_str(&body).unwrap();
            assert!(json["error"].as_str().unwrap().contains("NUL"), "{uri}");
        }
    }
    // An encoded `%` followed by `00` is a plain search.
    let (status, _, body) = get(&app, "/ops/api/runs?q=%2500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = get(&app, "/ops/api/runs?q=import").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("run-1"));
}

backends!(
    refused_event_does_not_hold_back_later_ones,
    nul_in_text_and_json_is_stored,
    run_keys_are_checked,
    nul_in_a_request_is_a_bad_request,
);

/// Issue 11, item 2, the queued path: events wait while PostgreSQL is down;
/// when it is back, the one it refuses is dropped (logged, counted) and the
/// others land in order — it does not hold them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_event_refused_after_an_outage_is_dropped_postgres() {
    let instance = pg::Instance::launch().expect("a dedicated PostgreSQL");
    let url = pg::create_database(&instance.admin_url()).await;
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.max_connections(2)
        .acquire_timeout(Duration::from_millis(500));
    let db = Database::connect(opts).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    refuse_bad_keys(&db, Backend::Postgres).await;
    let tracker = task_run::Tracker::with_options(
        db.clone(),
        tasktrail::TrackerOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..Default::default()
        },
    );
    instance.stop().unwrap();
    let events = [
        Event::create("good-1").name("import"),
        Event::create("bad-22021").name("import"),
        Event::start("good-1"),
        Event::create("bad-42501").name("import"),
        Event::progress("good-1", 50.0),
        Event::complete("good-1").result(&"done"),
        Event::create("good-2").name("export"),
    ];
    for event in events {
        assert_eq!(tracker.lifecycle(event).await.unwrap(), Written::Queued);
    }
    instance.start().unwrap();
    assert!(
        tracker.flush(Duration::from_secs(30)).await,
        "the queue did not drain: {:?}",
        tracker.stats()
    );
    let good = row(&db, "good-1").await.expect("good-1 landed");
    assert_eq!(good.status, "success");
    assert_eq!(good.percent, Some(50.0));
    assert_eq!(good.result_payload, Some(json!("done")));
    assert!(row(&db, "good-2").await.is_some());
    assert!(row(&db, "bad-22021").await.is_none());
    let stats = tracker.stats();
    assert_eq!((stats.refused, stats.queue_len, stats.dropped), (2, 0, 0));
}

/// The read path keeps "unreachable" for a database that is: PostgreSQL
/// stopped → 503 with `Retry-After`; a schema that does not match (the
/// table is gone) → 500 whose body does not leak the database's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_answers_503_only_when_the_database_is_down_postgres() {
    let instance = pg::Instance::launch().expect("a dedicated PostgreSQL");
    let url = pg::create_database(&instance.admin_url()).await;
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.max_connections(2)
        .acquire_timeout(Duration::from_millis(500));
    let db = Database::connect(opts).await.unwrap();
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker)
        .stats_max_age(Duration::ZERO)
        .router();
    let (status, _, _) = get(&app, "/ops/api/runs").await;
    assert_eq!(status, StatusCode::OK);

    instance.stop().unwrap();
    for uri in ["/ops/api/runs", "/ops/api/runs?q=x", "/ops/runs"] {
        let mut request = Request::get(uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(
            "127.0.0.1:50000".parse::<SocketAddr>().unwrap(),
        ));
        let started = std::time::Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(response.headers().contains_key("retry-after"), "{uri}");
        assert!(started.elapsed() < Duration::from_secs(10), "{uri}");
    }
    instance.start().unwrap();
    // Back: the pool reconnects.
    let mut ok = false;
    for _ in 0..50 {
        if get(&app, "/ops/api/runs").await.0 == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "the dashboard answers again once PostgreSQL is back");

    db.execute_unprepared("DROP TABLE task_runs").await.unwrap();
    let (status, kind, body) = get(&app, "/ops/api/runs").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(kind.as_deref(), Some("application/json"));
    assert!(!body.contains("task_runs"), "{body}");
    assert!(!body.contains("does not exist"), "{body}");
}
