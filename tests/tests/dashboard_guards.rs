//! Guards around the dashboard's actions, through the real router on a
//! SQLite file, in-memory SQLite and PostgreSQL:
//!
//! - the audit trail stays bounded: no row for a refusal about a run that
//!   does not exist, targets of bounded length that the run's page still
//!   finds, text without NUL, and old entries purged;
//! - a database error's text never reaches a client;
//! - a retry needs an ended run, is refused while an earlier retry of the
//!   same run is pending or running (across concurrent requests and across
//!   instances), and a bulk retry starts its runs a few at a time;
//! - `retention_days` deletes the ended runs older than it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use tasktrail::auth::audit::entry;
use tasktrail::auth::{AuthBackend, NoAuth, RequestInfo, Role, User};
use tasktrail::hooks::ObjectInfo;
use tasktrail::{Dashboard, Event, Task, TaskContext, TrackerOptions};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect, second_pool};
use tokio::sync::Semaphore;
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

tasktrail::dashboard! {
    struct Kept<task_run::Entity> {
        url_prefix: "/ops",
        retention_days: 30,
    }
}

const MARK: (&str, &str) = ("x-requested-with", "tasktrail");

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(MARK.0, MARK.1);
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn audit_rows(db: &sea_orm::DatabaseConnection) -> Vec<entry::Model> {
    entry::Entity::find().all(db).await.unwrap()
}

/// Waits (up to 10 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn status_of(db: &sea_orm::DatabaseConnection, key: &str) -> Option<String> {
    task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .unwrap()
        .map(|r| r.status)
}

/// A user whose display name carries a NUL (say, from a user table).
struct Named(User);

impl AuthBackend for Named {
    fn authenticate<'a>(&'a self, _request: &'a RequestInfo<'a>) -> BoxFuture<'a, Option<User>> {
        let user = self.0.clone();
        Box::pin(async move { Some(user) })
    }

    fn has_login_form(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------- item 4

async fn audit_is_bounded(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let viewer = Dashboard::new(Ops::default(), tracker.clone())
        .auth(NoAuth::anyone().role(Role::Viewer))
        .router();
    let operator = Dashboard::new(Ops::default(), tracker.clone()).router();

    // A loop of refusals about runs that do not exist writes nothing: a
    // viewer's (403) and an operator's (404), with a 60 KB path segment.
    let huge = "k".repeat(60_000);
    for app in [&viewer, &operator] {
        for _ in 0..3 {
            let (status, body) = call(
                app,
                Method::POST,
                &format!("/ops/api/runs/{huge}/cancel"),
                None,
            )
            .await;
            assert!(status.is_client_error(), "{status} {body}");
            let (status, _) =
                call(app, Method::DELETE, &format!("/ops/api/runs/{huge}"), None).await;
            assert!(status.is_client_error(), "{status}");
        }
    }
    assert_eq!(
        audit_rows(&db).await,
        Vec::new(),
        "no row for runs that do not exist"
    );

    // A run with a long key: its entries have a bounded target, and the
    // run's page still lists them.
    let long_key = format!("run-{}", "x".repeat(490));
    tracker
        .lifecycle(Event::fail(&long_key, "boom").name("nope"))
        .await
        .unwrap();
    let (status, _) = call(
        &viewer,
        Method::DELETE,
        &format!("/ops/api/runs/{long_key}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &operator,
        Method::POST,
        &format!("/ops/api/runs/{long_key}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let rows = audit_rows(&db).await;
    assert_eq!(
        rows.len(),
        2,
        "a refusal about a real run is kept: {rows:?}"
    );
    for row in &rows {
        assert!(
            row.target.len() <= 256,
            "target of {} bytes",
            row.target.len()
        );
        assert!(row.detail.len() <= 2_000 * 4);
    }
    let found = tasktrail::auth::audit::for_target(&db, &long_key, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "the run's entries are found by its key");
    // Another long key with the same beginning has entries of its own.
    let twin = format!("run-{}y", "x".repeat(2_000));
    assert_eq!(
        tasktrail::auth::audit::for_target(&db, &twin, 10)
            .await
            .unwrap()
            .len(),
        0
    );

    // A NUL in the user's name is stored (as U+FFFD), not refused.
    tracker
        .lifecycle(Event::fail("ended-1", "boom").name("nope"))
        .await
        .unwrap();
    let named = Dashboard::new(Ops::default(), tracker.clone())
        .auth(Named(
            User::new("u1", Role::Operator).named("Ada\0Lovelace"),
        ))
        .router();
    let (status, body) = call(&named, Method::DELETE, "/ops/api/runs/ended-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let rows = tasktrail::auth::audit::for_target(&db, "ended-1", 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the delete is in the trail");
    assert_eq!(rows[0].user_name, "Ada\u{FFFD}Lovelace");
    assert_eq!(rows[0].outcome, "done");
}

/// Entries older than the audit retention are purged in the background.
async fn audit_retention(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let day_ms = 86_400_000_i64;
    let now = chrono::Utc::now().timestamp_millis();
    for (target, age_days) in [("old", 400), ("recent", 1)] {
        entry::Entity::insert(entry::ActiveModel {
            id: sea_orm::NotSet,
            at_ms: Set(now - age_days * day_ms),
            user_id: Set("ada".into()),
            user_name: Set("Ada".into()),
            action: Set("delete".into()),
            target: Set(target.into()),
            outcome: Set("done".into()),
            detail: Set("api".into()),
        })
        .exec(&db)
        .await
        .unwrap();
    }
    let tracker = task_run::Tracker::new(db.clone());
    let _app = Dashboard::new(Ops::default(), tracker.clone()).router();
    eventually("the 400-day-old entry is purged", || async {
        audit_rows(&db).await.iter().all(|r| r.target != "old")
    })
    .await;
    let left: Vec<String> = audit_rows(&db)
        .await
        .into_iter()
        .map(|r| r.target)
        .collect();
    assert_eq!(left, ["recent"]);
}

backends!(audit_is_bounded, audit_retention);

// ---------------------------------------------------------------- item 5

/// A kind whose runs lock an object.
struct Touch;

impl Task for Touch {
    const NAME: &'static str = "touch";
    type Args = String;
    type Output = String;
    type Error = String;
    fn objects(&self, args: &String) -> Vec<ObjectInfo> {
        vec![ObjectInfo {
            key: format!("book:{args}"),
            label: args.clone(),
        }]
    }
    async fn run(&self, _ctx: TaskContext, args: String) -> Result<String, String> {
        Ok(args)
    }
}

fn leaks_database_text(body: &Value) -> bool {
    let text = body.to_string().to_lowercase();
    [
        "error returned from database",
        "no such table",
        "does not exist",
        "tasktrail_locks",
        "task_runs",
        "sqlstate",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

async fn database_errors_stay_in_the_log(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker.register(Touch);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    tracker
        .lifecycle(Event::fail("t-1", "boom").name("touch").args(&"dune"))
        .await
        .unwrap();

    // Retry: the lock table is gone.
    tasktrail::schema::drop_run_tables(&db).await.unwrap();
    let (status, body) = call(&app, Method::POST, "/ops/api/runs/t-1/retry", None).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(!leaks_database_text(&body), "{body}");

    // Cancel and the others: the runs table is gone.
    tasktrail::schema::drop::<task_run::Model>(&db)
        .await
        .unwrap();
    for (method, uri) in [
        (Method::POST, "/ops/api/runs/t-1/cancel"),
        (Method::POST, "/ops/api/runs/t-1/retry"),
        (Method::DELETE, "/ops/api/runs/t-1"),
        (Method::GET, "/ops/api/runs/t-1"),
        (Method::GET, "/ops/api/runs"),
    ] {
        let (status, body) = call(&app, method, uri, None).await;
        assert!(status.is_server_error(), "{uri}: {status} {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
        assert!(!leaks_database_text(&body), "{uri}: {body}");
    }
    let (status, body) = call(
        &app,
        Method::POST,
        "/ops/api/runs/bulk",
        Some(json!({ "action": "cancel", "keys": ["t-1"] })),
    )
    .await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(!leaks_database_text(&body), "{body}");
    // The trail's own detail does not keep the database's text either.
    for row in audit_rows(&db).await {
        assert!(!leaks_database_text(&json!(row.detail)), "{row:?}");
    }
}

backends!(database_errors_stay_in_the_log);

// ---------------------------------------------------------------- item 10

/// A kind whose runs wait for the test to let them finish, counting how
/// many run at once.
#[derive(Clone)]
struct Hold {
    gate: Arc<Semaphore>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

impl Hold {
    fn new() -> Self {
        Hold {
            gate: Arc::new(Semaphore::new(0)),
            now: Arc::default(),
            most: Arc::default(),
            started: Arc::default(),
        }
    }

    fn release_all(&self) {
        self.gate.add_permits(100_000);
    }
}

impl Task for Hold {
    const NAME: &'static str = "hold";
    type Args = String;
    type Output = String;
    type Error = String;
    async fn run(&self, _ctx: TaskContext, args: String) -> Result<String, String> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(args)
    }
}

/// Sends `n` retries of `key` at once, spread over `apps`.
async fn concurrent_retries(
    apps: &[axum::Router],
    key: &str,
    n: usize,
) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = apps[i % apps.len()].clone();
            let uri = format!("/ops/api/runs/{key}/retry");
            tokio::spawn(async move { call(&app, Method::POST, &uri, None).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn accepted(answers: &[(StatusCode, Value)]) -> Vec<String> {
    for (status, body) in answers {
        assert!(
            *status == StatusCode::ACCEPTED || *status == StatusCode::CONFLICT,
            "{status} {body}"
        );
        assert!(
            body["error"].is_string() || body["key"].is_string(),
            "{body}"
        );
    }
    answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, b)| b["key"].as_str().unwrap().to_owned())
        .collect()
}

/// A fresh database with the runs table, a tracker that knows [`Hold`],
/// and the dashboard on it.
async fn holding(
    backend: Backend,
) -> (
    sea_orm::DatabaseConnection,
    tasktrail_tests::TestDb,
    task_run::Tracker,
    Hold,
    axum::Router,
) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let hold = Hold::new();
    tracker.register(hold.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    (db, guard, tracker, hold, app)
}

async fn retry_guard(backend: Backend) {
    let (db, _g, tracker, hold, app) = holding(backend).await;

    // Runs that have not ended are not retried.
    for (key, event) in [("p-1", Event::create("p-1")), ("r-1", Event::start("r-1"))] {
        tracker
            .lifecycle(event.name("hold").args(&"a"))
            .await
            .unwrap();
        let (status, body) = call(
            &app,
            Method::POST,
            &format!("/ops/api/runs/{key}/retry"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{key}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("has not ended"),
            "{body}"
        );
    }
    assert_eq!(hold.started.load(Ordering::SeqCst), 0);

    // An ended run: eight retries at once make one run.
    tracker
        .lifecycle(Event::fail("f-1", "boom").name("hold").args(&"a"))
        .await
        .unwrap();
    let answers = concurrent_retries(std::slice::from_ref(&app), "f-1", 8).await;
    let new_keys = accepted(&answers);
    assert_eq!(new_keys.len(), 1, "{answers:?}");
    let refusal = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::CONFLICT)
        .unwrap();
    assert!(
        refusal.1["error"]
            .as_str()
            .unwrap()
            .contains(&format!("already being retried by run `{}`", new_keys[0])),
        "{}",
        refusal.1
    );
    // While it runs, still refused.
    eventually("the retry runs", || async {
        hold.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let (status, _) = call(&app, Method::POST, "/ops/api/runs/f-1/retry", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Once it has ended, the run may be retried again.
    hold.release_all();
    eventually("the retry ends", || async {
        status_of(&db, &new_keys[0]).await.as_deref() == Some("success")
    })
    .await;
    eventually("a new retry is accepted", || async {
        call(&app, Method::POST, "/ops/api/runs/f-1/retry", None)
            .await
            .0
            == StatusCode::ACCEPTED
    })
    .await;
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// Two instances (two trackers on two pools) sharing the database: one
/// retry in all.
async fn retry_guard_across_instances(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let holds = [Hold::new(), Hold::new()];
    let a = task_run::Tracker::new(db.clone());
    let b = task_run::Tracker::new(second_pool(&guard, 4).await);
    a.register(holds[0].clone());
    b.register(holds[1].clone());
    let apps = [
        Dashboard::new(Ops::default(), a.clone()).router(),
        Dashboard::new(Ops::default(), b.clone()).router(),
    ];
    a.lifecycle(Event::fail("f-2", "boom").name("hold").args(&"a"))
        .await
        .unwrap();
    let answers = concurrent_retries(&apps, "f-2", 8).await;
    assert_eq!(accepted(&answers).len(), 1, "{answers:?}");
    for hold in &holds {
        hold.release_all();
    }
    let _ = a.shutdown(Duration::from_secs(5)).await;
    let _ = b.shutdown(Duration::from_secs(5)).await;
}

/// How many runs of bulk retries run at once when the tracker sets no
/// `max_concurrent`.
const BULK_BOUND: usize = tasktrail::dashboard::actions::BULK_RETRY_CONCURRENCY;

/// A bulk retry of every matching run starts a few at a time, not all of
/// them at once.
async fn bulk_retry_is_bounded(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::with_options(db.clone(), TrackerOptions::default());
    let hold = Hold::new();
    tracker.register(hold.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    for i in 0..24 {
        tracker
            .lifecycle(
                Event::fail(format!("b-{i:02}"), "boom")
                    .name("hold")
                    .args(&"a"),
            )
            .await
            .unwrap();
    }
    let (status, body) = call(
        &app,
        Method::POST,
        "/ops/api/runs/bulk",
        Some(json!({ "action": "retry", "filter": "status=failed" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["done"].as_array().unwrap().len(), 24, "{body}");
    // Give every run the chance to start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = hold.now.load(Ordering::SeqCst);
    assert!(running >= 1, "some retries run");
    assert!(running <= BULK_BOUND, "{running} retries run at once");
    hold.release_all();
    eventually("every retry ends", || async {
        hold.started.load(Ordering::SeqCst) == 24
    })
    .await;
    assert!(hold.most.load(Ordering::SeqCst) <= BULK_BOUND);
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// Rounds of eight retries at once of one run, one ended run per round:
/// each round makes exactly one run and refuses the others with 409, never
/// 503. On MariaDB the retry guard's claim once took gap locks, and
/// retries racing for the same guard deadlocked until the claim gave up
/// (a 503 every few rounds).
async fn racing_retries_never_deadlock(backend: Backend) {
    let (db, _g, tracker, hold, app) = holding(backend).await;
    for round in 0..30 {
        let key = format!("race-{round}");
        tracker
            .lifecycle(Event::fail(key.as_str(), "boom").name("hold").args(&"a"))
            .await
            .unwrap();
        let answers = concurrent_retries(std::slice::from_ref(&app), &key, 8).await;
        let new_keys = accepted(&answers);
        assert_eq!(new_keys.len(), 1, "round {round}: {answers:?}");
        // The retry holds its guard until it ends: let it end.
        hold.gate.add_permits(1);
        eventually("the round's retry ends", || async {
            status_of(&db, &new_keys[0]).await.as_deref() == Some("success")
        })
        .await;
    }
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

backends!(
    retry_guard,
    racing_retries_never_deadlock,
    bulk_retry_is_bounded
);

mod across_instances {
    use tasktrail_tests::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_file() {
        super::retry_guard_across_instances(Backend::SqliteFile).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::retry_guard_across_instances(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        super::retry_guard_across_instances(Backend::MariaDb).await;
    }
}

// ---------------------------------------------------------------- item 14

async fn retention_days(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let long_ago = chrono::Utc::now() - chrono::Duration::days(31);
    let lately = chrono::Utc::now() - chrono::Duration::days(29);
    for (key, event) in [
        ("old-ok", Event::complete("old-ok").at(long_ago)),
        ("old-failed", Event::fail("old-failed", "x").at(long_ago)),
        ("old-running", Event::start("old-running").at(long_ago)),
        ("new-ok", Event::complete("new-ok").at(lately)),
    ] {
        assert_eq!(event.key, key);
        tracker.lifecycle(event.name("import")).await.unwrap();
    }
    // `updated_at` is the time of the write: the runs were last written
    // when their events say.
    for (key, at) in [
        ("old-ok", long_ago),
        ("old-failed", long_ago),
        ("old-running", long_ago),
        ("new-ok", lately),
    ] {
        task_run::Entity::update_many()
            .col_expr(
                task_run::Column::UpdatedAt,
                sea_orm::sea_query::Expr::val(at),
            )
            .filter(task_run::Column::TaskKey.eq(key))
            .exec(&db)
            .await
            .unwrap();
    }
    // 0 would delete every ended run: refused in a settings file as by
    // the macro.
    let err = serde_json::from_str::<Kept>(r#"{ "retention_days": 0 }"#).unwrap_err();
    assert!(err.to_string().contains("retention_days"), "{err}");
    // The settings file's value counts as much as the macro's.
    let kept: Kept = serde_json::from_str(r#"{ "retention_days": 30 }"#).unwrap();
    let _app = Dashboard::new(kept, tracker.clone()).router();
    eventually("the old ended runs are deleted", || async {
        status_of(&db, "old-ok").await.is_none() && status_of(&db, "old-failed").await.is_none()
    })
    .await;
    assert_eq!(
        status_of(&db, "old-running").await.as_deref(),
        Some("in_progress")
    );
    assert_eq!(status_of(&db, "new-ok").await.as_deref(), Some("success"));
}

backends!(retention_days);
