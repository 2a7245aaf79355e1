//! Actions through the JSON API against the real router: cancel, retry and
//! delete, refused without the action header or from another origin, on a
//! read-only dashboard or when not enabled; 404 / 409 / 422 with messages —
//! on a SQLite file, in-memory SQLite and PostgreSQL.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use tasktrail::{Dashboard, Event, Task, TaskContext, TrackerOptions};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, call_api as call, connect, second_pool};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

tasktrail::dashboard! {
    struct ReadOnly<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
        read_only: true,
    }
}

tasktrail::dashboard! {
    struct CancelOnly<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel],
    }
}

struct Echo;

impl Task for Echo {
    const NAME: &'static str = "echo";
    type Args = String;
    type Output = String;
    type Error = String;
    async fn run(&self, _ctx: TaskContext, args: String) -> Result<String, String> {
        Ok(args)
    }
}

/// Waits (up to 2 s) until the API shows the run `in_progress`.
async fn until_in_progress(app: &axum::Router, key: &str) {
    for _ in 0..200 {
        let (_, run) = call(app, Method::GET, &format!("/ops/api/runs/{key}"), &[]).await;
        if run["status"] == "in_progress" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the spawned run `{key}` is not recorded in progress");
}
const MARK: (&str, &str) = ("x-requested-with", "tasktrail");

async fn actions(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    tracker.register(Echo);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();

    // A running run.
    let running = tracker
        .spawn("long", &(), |ctx| async move {
            Err::<(), _>(ctx.cancelled().await)
        })
        .await
        .unwrap();
    let key = running.key().to_owned();
    let cancel = format!("/ops/api/runs/{key}/cancel");
    until_in_progress(&app, &key).await;

    // Refused: no action header; another origin; GET.
    let (status, body) = call(&app, Method::POST, &cancel, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("X-Requested-With"));
    let (status, body) = call(
        &app,
        Method::POST,
        &cancel,
        &[
            MARK,
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = call(&app, Method::GET, &cancel, &[MARK]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Deleting a run that has not ended.
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/ops/api/runs/{key}"),
        &[MARK],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Cancelled, same origin.
    let (status, body) = call(
        &app,
        Method::POST,
        &cancel,
        &[
            MARK,
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "signalled");
    let outcome = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap();
    assert!(outcome.is_err());
    let (status, body) = call(&app, Method::POST, &cancel, &[MARK]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = call(&app, Method::POST, "/ops/api/runs/nope/cancel", &[MARK]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Retry: a registered kind runs again; an unknown kind is 422.
    let first = tracker.submit::<Echo>("hello".into()).await.unwrap();
    let first_key = first.key().to_owned();
    first.await.unwrap();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{first_key}/retry"),
        &[MARK],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["retry_of"], first_key.as_str());
    let new_key = body["key"].as_str().unwrap().to_owned();
    let mut done = false;
    for _ in 0..100 {
        let (_, run) = call(&app, Method::GET, &format!("/ops/api/runs/{new_key}"), &[]).await;
        if run["status"] == "success" {
            assert_eq!(run["retry_of"], first_key.as_str());
            assert_eq!(run["result_payload"], "hello");
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "the retried run succeeds");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{key}/retry"),
        &[MARK],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no task kind `long`"),
        "{body}"
    );

    // Delete an ended run.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/ops/api/runs/{key}"),
        &[MARK],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, Method::GET, &format!("/ops/api/runs/{key}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Read-only, and actions that are not enabled.
    tracker
        .lifecycle(Event::fail("ended", "x").name("echo").args(&"x"))
        .await
        .unwrap();
    let read_only = Dashboard::new(ReadOnly::default(), tracker.clone()).router();
    let (status, body) = call(&read_only, Method::DELETE, "/ops/api/runs/ended", &[MARK]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "this dashboard is read-only");
    let cancel_only = Dashboard::new(CancelOnly::default(), tracker.clone()).router();
    for (method, uri) in [
        (Method::DELETE, "/ops/api/runs/ended"),
        (Method::POST, "/ops/api/runs/ended/retry"),
    ] {
        let (status, body) = call(&cancel_only, method, uri, &[MARK]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert!(
            body["error"].as_str().unwrap().contains("not enabled"),
            "{body}"
        );
    }
    let (status, _) = call(&app, Method::GET, "/ops/api/runs/ended", &[]).await;
    assert_eq!(status, StatusCode::OK, "nothing was deleted");
}

/// Cancel-then-delete across instances: B runs the task, A's dashboard
/// cancels it (recorded; B stops at its next heartbeat) and deletes it at
/// once. While B still holds the run's lease the delete is refused (409):
/// deleting then would let B's final event bring a row back with an empty
/// name. Once B has let the run go, the delete goes through and nothing
/// comes back.
async fn cancel_then_delete_from_another_instance(backend: Backend) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let quick = || TrackerOptions {
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(5),
        ..TrackerOptions::default()
    };
    let owner = task_run::Tracker::with_options(db.clone(), quick());
    let running = owner
        .spawn("long", &(), |ctx| async move {
            let stop = ctx.cancelled().await;
            // Cleaning up takes a moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err::<(), _>(stop)
        })
        .await
        .unwrap();
    let key = running.key().to_owned();
    let other = task_run::Tracker::with_options(second_pool(&guard, 2).await, quick());
    let app = Dashboard::new(Ops::default(), other.clone()).router();
    until_in_progress(&app, &key).await;
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/ops/api/runs/{key}/cancel"),
        &[MARK],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "recorded", "{body}");
    let delete = format!("/ops/api/runs/{key}");
    let (status, body) = call(&app, Method::DELETE, &delete, &[MARK]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("still stopping"),
        "{body}"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the owner stops the run");
    assert!(outcome.is_err(), "{outcome:?}");
    // The lease goes just after the run's last event.
    let mut deleted = false;
    for _ in 0..100 {
        let (status, _) = call(&app, Method::DELETE, &delete, &[MARK]).await;
        if status == StatusCode::NO_CONTENT {
            deleted = true;
            break;
        }
        assert_eq!(status, StatusCode::CONFLICT);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(deleted, "the ended run could not be deleted");
    // Several of the owner's heartbeats later, nothing came back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = call(&app, Method::GET, &delete, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backends!(actions);
tasktrail_tests::shared_backends!(cancel_then_delete_from_another_instance);
