//! Settings at their extremes (`Duration::MAX`, zero, `usize::MAX`) neither
//! panic nor wrap: retention ages beyond chrono's range, a maximum duration
//! or a lease TTL of `Duration::MAX`, a huge session TTL or poll interval —
//! and the maintenance keeps beating through all of them. Retention with a
//! status mapping that stores two statuses alike deletes a stored value only
//! after the longest age of the statuses that share it, and never a value a
//! pending or running run is stored as; the heartbeat never stops a run
//! whose stored status merely looks like an ended one.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use tasktrail::auth::{NoAuth, Role, SessionKey, SimpleAuth, hash_password};
use tasktrail::run::store::lease;
use tasktrail::{Dashboard, Event, Retention, Status, TrackerOptions};
use tasktrail_tests::entities::{enum_run, shared_run, task_run};
use tasktrail_tests::{Backend, TestDb, backends, connect};
use tower::ServiceExt;

const DAY: Duration = Duration::from_secs(86_400);

/// Short intervals so that heartbeats and sweeps happen within a test.
fn quick() -> TrackerOptions {
    TrackerOptions {
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(600),
        sweep_interval: Duration::from_millis(200),
        cancel_grace: Duration::from_millis(200),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..TrackerOptions::default()
    }
}

async fn task_runs(backend: Backend, options: TrackerOptions) -> (task_run::Tracker, TestDb) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .expect("create the schema");
    (task_run::Tracker::with_options(db, options), guard)
}

async fn keys_of(db: &DatabaseConnection) -> Vec<String> {
    let mut keys: Vec<String> = task_run::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.task_key)
        .collect();
    keys.sort();
    keys
}

/// Ended runs 40 days old (one per ended status) and a fresh one.
async fn seed_ended(tracker: &task_run::Tracker) {
    let old = Utc::now() - chrono::Duration::days(40);
    for (key, end) in [
        ("old-success", Event::complete("x")),
        ("old-failed", Event::fail("x", "no")),
        ("old-cancelled", Event::cancel("x")),
        ("old-interrupted", Event::interrupt("x", "gone")),
    ] {
        tracker
            .lifecycle(Event::create(key).name("kept").at(old))
            .await
            .unwrap();
        let mut end = end;
        end.key = key.to_owned();
        tracker.lifecycle(end.at(old)).await.unwrap();
        tasktrail_tests::backdate(tracker.db(), key, old).await;
    }
}

// 8. Retention ages beyond chrono's range (and `days(u64::MAX)`) delete
// nothing instead of panicking; a batch size of zero deletes in batches of
// one instead of looping for ever; `u64::MAX` is a valid batch size.
async fn purge_at_the_extremes(backend: Backend) {
    let (tracker, _g) = task_runs(backend, quick()).await;
    seed_ended(&tracker).await;
    let never = [
        Retention::older_than(Duration::MAX),
        Retention::days(u64::MAX),
        // Within chrono's `TimeDelta`, beyond its `DateTime`.
        Retention::older_than(DAY * 365 * 300_000),
        Retention::days(30).status(Status::Failed, Duration::MAX),
    ];
    for (n, retention) in never.iter().enumerate() {
        let report = tokio::time::timeout(Duration::from_secs(20), tracker.purge(retention))
            .await
            .expect("the purge returns")
            .unwrap_or_else(|e| panic!("retention {n}: {e}"));
        if n < 3 {
            assert_eq!(report.deleted, 0, "retention {n}: nothing is that old");
        } else {
            assert_eq!(report.deleted, 3, "everything but the failed run");
            seed_ended(&tracker).await;
        }
    }
    assert_eq!(keys_of(tracker.db()).await.len(), 4);

    let mut zero = Retention::days(30);
    zero.batch_size = 0;
    let report = tokio::time::timeout(Duration::from_secs(20), tracker.purge(&zero))
        .await
        .expect("a batch size of zero does not loop for ever")
        .unwrap();
    assert_eq!(report.deleted, 4);

    seed_ended(&tracker).await;
    let mut huge = Retention::days(30);
    huge.batch_size = u64::MAX;
    let report = tracker.purge(&huge).await.unwrap();
    assert_eq!(report.deleted, 4);
    assert!(keys_of(tracker.db()).await.is_empty());
}

backends!(purge_at_the_extremes);

/// The lease row of run `key`: (heartbeat, expiry), in ms.
async fn lease_of(db: &DatabaseConnection, key: &str) -> Option<(i64, i64)> {
    use sea_orm::{ColumnTrait, QueryFilter};
    lease::Entity::find()
        .filter(lease::Column::RunKey.eq(key))
        .one(db)
        .await
        .unwrap()
        .map(|l| (l.heartbeat_ms, l.expires_ms))
}

// 8. A retention that cannot be computed must not end the maintenance: the
// heartbeat of a long run keeps beating, and another instance's sweep
// leaves the run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_survives_a_retention_beyond_range() {
    let options = TrackerOptions {
        retention: Some(Retention::older_than(Duration::MAX)),
        retention_interval: Duration::from_millis(50),
        ..quick()
    };
    let (tracker, _g) = task_runs(Backend::SqliteFile, options).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let wait = release.clone();
    let run = tracker
        .begin("long")
        .key("long-run")
        .spawn(move |_ctx| async move {
            wait.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = lease_of(tracker.db(), "long-run").await.expect("a lease");
    // Several heartbeats and lease lifetimes later.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = lease_of(tracker.db(), "long-run").await.expect("a lease");
    assert!(
        later.0 > first.0 && later.1 > Utc::now().timestamp_millis(),
        "the heartbeat kept beating: {first:?} then {later:?}"
    );
    let other = task_run::Tracker::with_options(tracker.db().clone(), quick());
    let swept = other.recover().await.unwrap();
    assert!(swept.interrupted.is_empty(), "{swept:?}");
    release.notify_one();
    run.await.expect("the run ends as it wants");
}

// 8. A lease row whose deadline wrapped (written by a build that added
// `Duration::MAX` to the start time) does not make the recovery sweep
// overflow: the sweep interrupts the run as overlong and carries on.
#[tokio::test]
async fn the_sweep_survives_a_wrapped_deadline() {
    let (tracker, _g) = task_runs(Backend::SqliteFile, quick()).await;
    tracker
        .lifecycle(Event::create("wrapped").name("old"))
        .await
        .unwrap();
    tracker.lifecycle(Event::start("wrapped")).await.unwrap();
    let now = Utc::now().timestamp_millis();
    lease::ActiveModel {
        scope: Set("task_runs".to_owned()),
        run_key: Set("wrapped".to_owned()),
        task_name: Set("old".to_owned()),
        instance: Set("an-older-build".to_owned()),
        started_ms: Set(now),
        heartbeat_ms: Set(now),
        expires_ms: Set(now + 60_000),
        deadline_ms: Set(Some(now.wrapping_add(i64::MAX))),
    }
    .insert(tracker.db())
    .await
    .unwrap();
    let report = tracker.recover().await.expect("the sweep completes");
    assert_eq!(report.overlong, ["wrapped"]);
    let row = task_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, Status::Interrupted.as_str());
}

/// Spawns a run that reports progress and succeeds, under `options` and
/// with `max_duration` on the run itself; answers its stored status.
async fn spawn_one(options: TrackerOptions, max_duration: Option<Duration>) -> String {
    let (tracker, _g) = task_runs(Backend::SqliteMemory, options).await;
    let mut builder = tracker.begin("extreme").key("r1");
    if let Some(limit) = max_duration {
        builder = builder.max_duration(limit);
    }
    let run = builder
        .spawn(|ctx| async move {
            for n in 0..3 {
                ctx.progress(f64::from(n) * 10.0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, String>("done")
        })
        .await
        .expect("spawned");
    let outcome = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ends");
    assert_eq!(outcome.expect("the run succeeds"), "done");
    assert!(tracker.flush(Duration::from_secs(5)).await);
    if let Some((_, expires)) = lease_of(tracker.db(), "r1").await {
        assert!(expires > 0, "a lease expiry that did not wrap: {expires}");
    }
    task_run::Entity::find()
        .one(tracker.db())
        .await
        .unwrap()
        .expect("the row")
        .status
}

// 8. `RunBuilder::max_duration(Duration::MAX)`: no limit, not a deadline in
// the past nor a panic.
#[tokio::test]
async fn a_run_with_max_duration_max_runs_to_its_end() {
    assert_eq!(
        spawn_one(quick(), Some(Duration::MAX)).await,
        Status::Success.as_str()
    );
    let options = TrackerOptions {
        max_duration: Some(Duration::MAX),
        ..quick()
    };
    assert_eq!(spawn_one(options, None).await, Status::Success.as_str());
}

// 8. `lease_ttl = Duration::MAX`: a lease that never lapses, not one that
// expired before it was written.
#[tokio::test]
async fn a_lease_ttl_of_max_never_lapses() {
    let options = TrackerOptions {
        lease_ttl: Duration::MAX,
        ..quick()
    };
    let (tracker, _g) = task_runs(Backend::SqliteFile, options).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let wait = release.clone();
    let run = tracker
        .begin("long")
        .key("forever")
        .spawn(move |_ctx| async move {
            wait.notified().await;
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, expires) = lease_of(tracker.db(), "forever").await.expect("a lease");
    assert!(
        expires > Utc::now().timestamp_millis() + 365 * 86_400_000,
        "the lease lives for years: {expires}"
    );
    let other = task_run::Tracker::with_options(tracker.db().clone(), quick());
    assert!(other.recover().await.unwrap().interrupted.is_empty());
    release.notify_one();
    run.await.unwrap();
}

// 8. Every other duration and size of the tracker at its extreme: the run
// still runs to its end.
#[tokio::test]
async fn every_tracker_setting_at_its_extreme_runs() {
    let mut failed = Vec::new();
    for (what, options) in [
        (
            "progress_interval",
            TrackerOptions {
                progress_interval: Duration::MAX,
                ..quick()
            },
        ),
        (
            "max_concurrent",
            TrackerOptions {
                max_concurrent: Some(usize::MAX),
                ..quick()
            },
        ),
        (
            "the rest",
            TrackerOptions {
                cancel_grace: Duration::MAX,
                sweep_interval: Duration::MAX,
                retention_interval: Duration::MAX,
                min_backoff: Duration::MAX,
                max_backoff: Duration::MAX,
                max_payload_bytes: Some(usize::MAX),
                queue_capacity: usize::MAX,
                ..quick()
            },
        ),
        (
            "zeros",
            TrackerOptions {
                progress_interval: Duration::ZERO,
                cancel_grace: Duration::ZERO,
                sweep_interval: Duration::ZERO,
                retention_interval: Duration::ZERO,
                min_backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                max_payload_bytes: Some(0),
                max_concurrent: Some(0),
                ..quick()
            },
        ),
    ] {
        // Each in its own task, so that one panic does not hide the others.
        match tokio::spawn(spawn_one(options, None)).await {
            Ok(status) if status == Status::Success.as_str() => {}
            Ok(status) => failed.push(format!("{what}: ended {status}")),
            Err(e) => failed.push(format!("{what}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A request through the real router from a loopback peer.
async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    cookies: &str,
    body: Option<String>,
) -> axum::response::Response {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:8080");
    if !cookies.is_empty() {
        builder = builder.header(header::COOKIE, cookies);
    }
    if body.is_some() {
        builder = builder
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "http://localhost:8080");
    }
    let mut request = builder
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    app.clone().oneshot(request).await.unwrap()
}

async fn text_of(response: axum::response::Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `name=value` of every `Set-Cookie` of `response`, and their `Max-Age`s.
fn set_cookies(response: &axum::response::Response) -> (Vec<String>, Vec<i64>) {
    let mut pairs = Vec::new();
    let mut ages = Vec::new();
    for value in response.headers().get_all(header::SET_COOKIE) {
        let text = value.to_str().unwrap();
        pairs.push(text.split(';').next().unwrap().trim().to_owned());
        for attr in text.split(';').skip(1) {
            if let Some(age) = attr.trim().strip_prefix("Max-Age=") {
                ages.push(age.parse().unwrap());
            }
        }
    }
    (pairs, ages)
}

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
    }
}

static HASH: LazyLock<String> = LazyLock::new(|| hash_password("ada: correct horse"));

// 8. A huge `session_ttl` is a long login, not a session born expired.
#[tokio::test]
async fn a_huge_session_ttl_is_a_long_session() {
    let (tracker, _g) = task_runs(Backend::SqliteMemory, quick()).await;
    let app = Dashboard::new(Ops::default(), tracker)
        .auth(SimpleAuth::new().user("ada", &HASH, Role::Admin))
        .session_key(SessionKey::from_secret(&[7; 48]))
        .session_ttl(Duration::MAX)
        .router();
    let page = send(&app, Method::GET, "/ops/login", "", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let (cookies, _) = set_cookies(&page);
    let html = text_of(page).await;
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the login form's token") + marker.len();
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", "ada")
        .append_pair("password", "ada: correct horse")
        .append_pair("next", "/ops/runs")
        .append_pair("csrf", csrf)
        .finish();
    let login = send(
        &app,
        Method::POST,
        "/ops/login",
        &cookies.join("; "),
        Some(body),
    )
    .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let (cookies, ages) = set_cookies(&login);
    let session = cookies
        .iter()
        .find(|c| c.split('=').next().unwrap().contains("session"))
        .expect("a session cookie");
    let session_age = ages.iter().copied().max().unwrap();
    assert!(
        session_age > 86_400,
        "the cookie lives long, not a negative Max-Age: {ages:?}"
    );
    let runs = send(&app, Method::GET, "/ops/runs", session, None).await;
    assert_eq!(
        runs.status(),
        StatusCode::OK,
        "the session is valid: {:?}",
        runs.headers().get(header::LOCATION)
    );
}

// 8. A poll interval beyond what a browser timer holds (2^31 - 1 ms; more
// fires at once, in a loop) is served as that longest timer.
#[tokio::test]
async fn a_huge_poll_interval_does_not_poll_in_a_loop() {
    let (tracker, _g) = task_runs(Backend::SqliteMemory, quick()).await;
    let config = Ops {
        poll_interval: Duration::MAX,
        ..Ops::default()
    };
    let app = Dashboard::new(config, tracker)
        .auth(NoAuth::anyone())
        .router();
    let page = send(&app, Method::GET, "/ops/", "", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = text_of(page).await;
    let marker = "data-poll-ms=\"";
    let start = html.find(marker).expect("data-poll-ms") + marker.len();
    let ms: u128 = html[start..start + html[start..].find('"').unwrap()]
        .parse()
        .unwrap();
    assert!(
        (86_400_000..=2_147_483_647).contains(&ms),
        "{ms} ms fits a browser timer"
    );
}

// 8. The same settings out of range the other way, set in code (a
// settings file is validated, a struct literal is not): a poll interval of
// zero (pages and live streams polling in a loop) and a page size of zero
// (empty pages).
#[tokio::test]
async fn zero_poll_interval_and_page_size_are_clamped() {
    let (tracker, _g) = task_runs(Backend::SqliteMemory, quick()).await;
    for n in 0..3 {
        tracker
            .lifecycle(Event::create(format!("run-{n}")).name("listed"))
            .await
            .unwrap();
    }
    let config = Ops {
        poll_interval: Duration::ZERO,
        page_size: 0,
        ..Ops::default()
    };
    let app = Dashboard::new(config, tracker)
        .auth(NoAuth::anyone())
        .router();
    let html = text_of(send(&app, Method::GET, "/ops/", "", None).await).await;
    let marker = "data-poll-ms=\"";
    let start = html.find(marker).expect("data-poll-ms") + marker.len();
    let ms: u128 = html[start..start + html[start..].find('"').unwrap()]
        .parse()
        .unwrap();
    assert!(ms >= 100, "the pages poll every {ms} ms");
    let runs = send(&app, Method::GET, "/ops/api/runs", "", None).await;
    assert_eq!(runs.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&text_of(runs).await).unwrap();
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(1), "{json}");
}

// 9. Statuses stored alike: `enum_run` stores Failed and Interrupted as
// `error`; `shared_run` stores Cancelled as `queued` (with Pending) and
// Interrupted as `running` (with InProgress).
async fn retention_with_shared_stored_values(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<enum_run::Model>(&db)
        .await
        .unwrap();
    tasktrail::schema::create::<shared_run::Model>(&db)
        .await
        .unwrap();
    let now = Utc::now();
    let days = |n: i64| now - chrono::Duration::days(n);
    let seed_enum = || async {
        use enum_run::RunState::*;
        enum_run::Entity::delete_many().exec(&db).await.unwrap();
        for (key, state, age) in [
            ("error-10d", Error, 10),
            ("error-40d", Error, 40),
            ("done-10d", Done, 10),
            ("stopped-10d", Stopped, 10),
            ("queued-40d", Queued, 40),
            ("running-40d", Running, 40),
        ] {
            enum_run::ActiveModel {
                task_key: Set(key.to_owned()),
                state: Set(state),
                progress_text: Set(None),
                message: Set(None),
                created_at: Set(days(age).fixed_offset()),
                updated_at: Set(days(age).naive_utc()),
            }
            .insert(&db)
            .await
            .unwrap();
        }
    };
    let enum_keys = || async {
        let mut keys: Vec<String> = enum_run::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.task_key)
            .collect();
        keys.sort();
        keys
    };
    let tracker = enum_run::Tracker::new(db.clone());

    // Interrupted after a day, Failed after 30: both are `error`, so an
    // `error` row goes after the longest of the two.
    seed_enum().await;
    let report = tracker
        .purge(&Retention::days(30).status(Status::Interrupted, DAY))
        .await
        .unwrap();
    assert_eq!(
        enum_keys().await,
        [
            "done-10d",
            "error-10d",
            "queued-40d",
            "running-40d",
            "stopped-10d"
        ],
        "a 10-day-old failed run is kept for 30 days"
    );
    assert_eq!(report.deleted, 1);
    assert_eq!(
        report.count(Status::Failed),
        1,
        "counted as what `error` reads back as"
    );

    // Keeping Failed keeps every `error` row.
    seed_enum().await;
    let report = tracker
        .purge(&Retention::days(1).keep(Status::Failed))
        .await
        .unwrap();
    assert_eq!(
        enum_keys().await,
        ["error-10d", "error-40d", "queued-40d", "running-40d"],
        "keep(Failed) keeps the failed runs"
    );
    assert_eq!(report.deleted, 2);

    // A value an ended status shares with a pending or running one is never
    // deleted: those rows may be runs that have not ended.
    let shared = shared_run::Tracker::new(db.clone());
    {
        use shared_run::Phase::*;
        for (key, phase) in [
            ("queued", Queued),
            ("running", Running),
            ("done", Done),
            ("error", Error),
        ] {
            shared_run::ActiveModel {
                task_key: Set(key.to_owned()),
                phase: Set(phase),
                created_at: Set(days(40)),
                updated_at: Set(days(40)),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
    }
    let report = shared.purge(&Retention::days(1)).await.unwrap();
    let mut left: Vec<String> = shared_run::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.task_key)
        .collect();
    left.sort();
    assert_eq!(left, ["queued", "running"], "pending and running runs stay");
    assert_eq!(report.deleted, 2);
}

backends!(retention_with_shared_stored_values);

// 9 (the heartbeat's side): a running run whose stored status is also what
// an ended status is stored as is not taken for an ended one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_does_not_stop_a_run_stored_like_an_ended_one() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<shared_run::Model>(&db)
        .await
        .unwrap();
    let tracker = shared_run::Tracker::with_options(db, quick());
    let run = tracker
        .begin("shared")
        .spawn(|ctx| async move {
            tokio::select! {
                _ = ctx.cancelled() => Err("stopped by the heartbeat".to_owned()),
                () = tokio::time::sleep(Duration::from_millis(800)) => Ok(()),
            }
        })
        .await
        .unwrap();
    run.await.expect("the run was left to end by itself");
}
