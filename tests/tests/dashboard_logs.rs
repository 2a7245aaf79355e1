//! The dashboard's logs against the real router, over the database log
//! storage on a SQLite file, in-memory SQLite and PostgreSQL: the Logs page
//! with its filters in the URL, hostile text escaped, the run page's logs
//! panel, the JSON API with the storage's stats, 400 with a message for
//! malformed parameters, and the live tail (server-sent events, resumable
//! with `Last-Event-ID`); without a storage, no Logs page. On PostgreSQL,
//! two instances writing at once: the tail never skips a line whose id was
//! drawn first but committed last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tasktrail::logs::{DbLogStorage, LogLevel, LogRecord, LogStorage};
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, SseCollector, backends, connect, second_pool, sse_events};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
    }
}

const HOSTILE: &str = "<script>alert('x')</script> \"quotes\" & ünïcödé ✓";

async fn request(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> axum::response::Response {
    let mut builder = Request::get(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    app.clone().oneshot(request).await.unwrap()
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = request(app, uri, &[]).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn logs_on_the_dashboard(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker
        .lifecycle(Event::create("run-1").name("import"))
        .await
        .unwrap();
    let logs = Arc::new(DbLogStorage::new(db).await.unwrap());
    logs.append(
        LogRecord::new(LogLevel::Info, format!("hello {HOSTILE}"))
            .in_run("run-1")
            .target("app::import")
            .field("file", HOSTILE),
    );
    logs.append(LogRecord::new(LogLevel::Error, "disk full").in_run("run-1"));
    logs.append(LogRecord::new(LogLevel::Debug, "elsewhere").in_run("run-2"));
    assert!(logs.flush(Duration::from_secs(30)).await);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs.clone())
        .router();

    // The Logs page: newest first, every value escaped, no raw markup.
    let (status, html) = get(&app, "/ops/logs").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("href=\"/ops/logs\">Logs</a>"),
        "the nav links it"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("hello &#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;"),
        "{html}"
    );
    assert!(html.contains("file=&#60;script&#62;"), "{html}");
    let order = ["disk full", "hello", "elsewhere"];
    let at: Vec<usize> = ["elsewhere", "disk full", "hello"]
        .iter()
        .map(|m| html.find(m).unwrap())
        .collect();
    assert!(at[0] < at[1] && at[1] < at[2], "newest first: {order:?}");
    assert!(html.contains("<a href=\"/ops/runs/run-1\">run-1</a>"));
    // Filters, kept in the form.
    let (_, html) = get(&app, "/ops/logs?run=run-1&level=warn&q=DISK").await;
    assert!(html.contains("disk full") && !html.contains("hello") && !html.contains("elsewhere"));
    assert!(html.contains("name=\"run\" value=\"run-1\""));
    assert!(html.contains("<option value=\"WARN\" selected>"), "{html}");
    assert!(html.contains("name=\"q\" value=\"DISK\""));
    // The tail continues after the newest line shown, with the same filters.
    assert!(
        html.contains(
            "data-tail=\"/ops/api/logs/events?run=run-1&#38;level=WARN&#38;q=DISK&#38;after="
        ),
        "{html}"
    );
    for (uri, want) in [
        ("/ops/logs?level=loud", "not a log level"),
        ("/ops/logs?limit=0", "must be 1 to"),
        ("/ops/logs?limit=many", "not a whole number"),
        ("/ops/logs?since=yesterday", "RFC 3339"),
        ("/ops/logs?colour=red", "unknown parameter `colour`"),
        ("/ops/api/logs?after=-1", "not a line id"),
    ] {
        let (status, text) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {text}");
        assert!(text.contains(want), "{uri}: {text}");
    }

    // The run's page shows its own lines.
    let (_, page) = get(&app, "/ops/runs/run-1").await;
    let panel = &page[page.find("class=\"run-logs\"").expect("a logs panel")..];
    assert!(panel.contains("disk full") && panel.contains("hello"));
    assert!(!panel.contains("elsewhere"), "only this run's lines");
    assert!(panel.contains("/ops/api/logs/events?run=run-1&#38;after="));

    // The JSON API.
    let (status, body) = get(&app, "/ops/api/logs?run=run-1&level=info").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    let lines = body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["message"], "disk full");
    assert_eq!(lines[1]["fields"]["file"], HOSTILE);
    assert_eq!(lines[1]["target"], "app::import");
    assert_eq!(body["stats"]["appended"], 3);
    assert_eq!(body["stats"]["dropped"], 0);

    // The live tail: from a cursor, every later line that matches, oldest
    // first; resumed with Last-Event-ID.
    let first_id = lines[1]["id"].as_u64().unwrap();
    let response = request(
        &app,
        &format!("/ops/api/logs/events?run=run-1&after={first_id}"),
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let events = sse_events(&mut body, 1).await;
    assert_eq!(events.len(), 1);
    let line: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(line["message"], "disk full");
    assert!(line["shown_at"].as_str().unwrap().len() >= 23);
    // A new line arrives while connected; another run's does not.
    logs.append(LogRecord::new(LogLevel::Warn, "other run").in_run("run-2"));
    logs.append(LogRecord::new(LogLevel::Warn, format!("late {HOSTILE}")).in_run("run-1"));
    assert!(logs.flush(Duration::from_secs(30)).await);
    let events = sse_events(&mut body, 1).await;
    assert_eq!(events.len(), 1);
    assert!(
        !events[0].1.contains('<'),
        "escaped in JSON: {}",
        events[0].1
    );
    let line: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(line["message"], format!("late {HOSTILE}"));
    drop(body);
    let response = request(
        &app,
        "/ops/api/logs/events",
        &[("last-event-id", &first_id.to_string())],
    )
    .await;
    let mut body = response.into_body();
    let events = sse_events(&mut body, 4).await;
    let messages: Vec<String> = events
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(messages[0], "disk full", "resumed after the given id");
    assert_eq!(messages.len(), 4, "{messages:?}");

    // Without a storage: no Logs page, no panel, a 404 with the reason.
    let plain = Dashboard::new(Ops::default(), tracker).router();
    let (status, text) = get(&plain, "/ops/logs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("Dashboard::log_storage"), "{text}");
    let (_, page) = get(&plain, "/ops/runs/run-1").await;
    assert!(!page.contains("run-logs") && !page.contains("/ops/logs\""));
}

backends!(logs_on_the_dashboard);

/// Two instances write lines to one PostgreSQL (or MariaDB) at once.
/// Instance A's write draws its line id first and then stays open for 2 s
/// (a trigger sleeps after the insert); B writes the next line meanwhile.
/// Ids come from a sequence (an AUTO_INCREMENT) before commit, so without
/// the log writers' commit-order lock B committed id n+1 first, the tail
/// read it and moved past n, and A's line never reached the stream. Now B's
/// write waits for A's commit: the tail shows both, in id order.
async fn the_tail_never_skips_a_line_committed_late(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let (db, test) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let a = Arc::new(DbLogStorage::new(db.clone()).await.unwrap());
    let b = Arc::new(
        DbLogStorage::new(second_pool(&test, 4).await)
            .await
            .unwrap(),
    );
    let slow = if backend == Backend::MariaDb {
        "CREATE TRIGGER slow_line AFTER INSERT ON tasktrail_logs FOR EACH ROW \
         BEGIN IF NEW.message = 'slow' THEN DO SLEEP(2); END IF; END"
    } else {
        "CREATE FUNCTION slow_line() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.message = 'slow' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow_line AFTER INSERT ON tasktrail_logs \
         FOR EACH ROW EXECUTE FUNCTION slow_line();"
    };
    db.execute_unprepared(slow).await.unwrap();
    let app = Dashboard::new(Ops::default(), task_run::Tracker::new(db.clone()))
        .log_storage(a.clone())
        .router();
    let response = request(&app, "/ops/api/logs/events", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tail = SseCollector::start(response.into_body());

    a.append(LogRecord::new(LogLevel::Info, "slow"));
    // A's insert has drawn its id and sleeps in the trigger.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.append(LogRecord::new(LogLevel::Info, "fast"));
    assert!(b.flush(Duration::from_secs(10)).await);
    assert!(a.flush(Duration::from_secs(10)).await);

    let events = tail.wait_for(2, Duration::from_secs(5)).await;
    // Give a wrongly late third event the chance to show.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let events = if events.len() >= 2 {
        tail.events()
    } else {
        events
    };
    let lines: Vec<(u64, String)> = events
        .iter()
        .map(|(_, data)| {
            let line: Value = serde_json::from_str(data).unwrap();
            (
                line["id"].as_u64().unwrap(),
                line["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let messages: Vec<&str> = lines.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(messages, ["slow", "fast"], "every line once, in id order");
    assert!(lines[0].0 < lines[1].0, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tail_never_skips_a_line_committed_late_postgres() {
    the_tail_never_skips_a_line_committed_late(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tail_never_skips_a_line_committed_late_mariadb() {
    the_tail_never_skips_a_line_committed_late(Backend::MariaDb).await;
}
