//! The dashboard's JSON API against the real router: status codes, filters,
//! pagination, 404 for unknown runs, 400 with a message for malformed query
//! values (never a 500), hostile text returned intact as JSON, and the
//! loopback-only default — on a SQLite file, in-memory SQLite and PostgreSQL.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect, sse_events};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops/tasks",
        filters: [status, task_name],
        search: [task_name, message],
        page_size: 3,
    }
}

const HOSTILE: &str = "<script>alert('x')</script> \"quotes\" & ünïcödé ✓";

async fn get(app: &axum::Router, uri: &str, peer: &str) -> (StatusCode, Value, String) {
    let mut request = Request::get(uri).body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

const LOCAL: &str = "127.0.0.1:50000";

async fn json_api(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    for i in 0..7 {
        let key = format!("run-{i}");
        let at = chrono::Utc::now() - chrono::Duration::seconds(100 - i);
        tracker
            .lifecycle(
                Event::create(&key)
                    .name(if i % 2 == 0 { "import" } else { "export" })
                    .actor(&HOSTILE)
                    .args(&json!({ "file": HOSTILE }))
                    .at(at),
            )
            .await
            .unwrap();
        let end = if i % 3 == 0 {
            Event::fail(&key, HOSTILE)
        } else {
            Event::complete(&key).result(&json!([i]))
        };
        tracker.lifecycle(end.at(at)).await.unwrap();
    }
    let app = axum::Router::new().merge(Dashboard::new(Ops::default(), tracker).router());

    // The list: newest first, 3 per page, a cursor to the next.
    let (status, body, _) = get(&app, "/ops/tasks/api/runs", LOCAL).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["run-6", "run-5", "run-4"]);
    let next = body["next"].as_str().expect("a next page").to_owned();
    let (_, body, _) = get(&app, &format!("/ops/tasks/api/runs?after={next}"), LOCAL).await;
    let keys: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["run-3", "run-2", "run-1"]);

    // Filters and search through the URL (percent-encoded).
    let (status, body, _) = get(
        &app,
        "/ops/tasks/api/runs?status=failed&task_name=import&limit=10",
        LOCAL,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["run-6", "run-0"]);
    let (_, body, _) = get(&app, "/ops/tasks/api/runs?q=%3Cscript%3E&limit=10", LOCAL).await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 3, "{body}");

    // One run: every field; hostile text intact inside JSON strings.
    let (status, body, text) = get(&app, "/ops/tasks/api/runs/run-0", LOCAL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["message"], HOSTILE);
    assert_eq!(body["user_label"], HOSTILE);
    assert_eq!(body["task_args"], json!({ "file": HOSTILE }));
    for time in ["created_at", "updated_at", "failed_at"] {
        let text = body[time].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{time} = {text:?} is not RFC 3339"
        );
    }
    assert!(
        !text.contains("<script>"),
        "JSON escapes `<` so it cannot break out of HTML: {text}"
    );

    // Unknown run: 404 with a message.
    let (status, body, _) = get(&app, "/ops/tasks/api/runs/nope", LOCAL).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no run has the key `nope`");

    // Malformed query values: 400 with a message, never a 500.
    for query in [
        "status=bogus",
        "limit=0",
        "limit=99999999999999999999",
        "sort=-nope",
        "after=%FF%FE",
        "colour=red",
        "q=%F0%28%8C%28",
        "status",
        "q=a&q=b",
    ] {
        let (status, body, text) = get(&app, &format!("/ops/tasks/api/runs?{query}"), LOCAL).await;
        if query.starts_with("q=%F0") {
            // Invalid UTF-8 is decoded lossily: a search, not an error.
            assert_eq!(status, StatusCode::OK, "{query}: {text}");
            continue;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {text}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|m| m.starts_with("query parameter")),
            "{query}: {text}"
        );
    }

    // Metrics: every status counted.
    let (status, body, _) = get(&app, "/ops/tasks/api/metrics", LOCAL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 7);
    assert_eq!(body["by_status"]["failed"], 3);
    assert_eq!(body["by_status"]["success"], 4);
    assert_eq!(body["by_status"]["pending"], 0);
    // When they were counted: just now, by the first request.
    let as_of = chrono::DateTime::parse_from_rfc3339(body["as_of"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("as_of is RFC 3339: {e}: {body}"));
    let since = chrono::Utc::now().signed_duration_since(as_of);
    let age = body["age_seconds"].as_f64().expect("age_seconds");
    assert!(
        since >= chrono::TimeDelta::zero() && since < chrono::TimeDelta::seconds(30),
        "{body}"
    );
    assert!((0.0..30.0).contains(&age), "{body}");

    // Prometheus: the same counts, in the text format.
    let (status, _, text) = get(&app, "/ops/tasks/metrics", LOCAL).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("tasktrail_runs{table=\"task_runs\",status=\"failed\"} 3"),
        "{text}"
    );
    let age_line = text
        .lines()
        .find(|l| l.starts_with("tasktrail_runs_age_seconds{table=\"task_runs\"} "))
        .unwrap_or_else(|| panic!("no age of the counts: {text}"));
    let age: f64 = age_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..30.0).contains(&age), "{age_line}");
    assert!(
        text.contains("# TYPE tasktrail_writes_total counter"),
        "{text}"
    );
    assert!(
        text.contains("tasktrail_writes_total{table=\"task_runs\"} 14"),
        "{text}"
    );

    // Outside the prefix, or a prefix look-alike: not the dashboard.
    for uri in ["/api/runs", "/ops/tasks-evil/api/runs", "/ops/api/runs"] {
        let (status, _, _) = get(&app, uri, LOCAL).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }

    // Only loopback clients by default; IPv6 loopback and v4-mapped too.
    for peer in ["[::1]:50000", "[::ffff:127.0.0.1]:50000"] {
        let (status, _, _) = get(&app, "/ops/tasks/api/metrics", peer).await;
        assert_eq!(status, StatusCode::OK, "{peer}");
    }
    for peer in ["10.0.0.7:50000", "[2001:db8::1]:50000", "192.168.1.2:1"] {
        let (status, _, text) = get(&app, "/ops/tasks/api/metrics", peer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
        assert!(text.contains("loopback"), "{text}");
    }
}

backends!(json_api);

/// A real server on a real socket: a loopback client gets the API; a router
/// served without the peer's address refuses rather than guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker).router();

    async fn fetch(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    let response = fetch(addr, "/ops/tasks/api/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"total\":0"), "{response}");
    server.abort();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app).into_future());
    let response = fetch(addr, "/ops/tasks/api/metrics").await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response.contains("into_make_service_with_connect_info"),
        "{response}"
    );
    server.abort();
}

async fn get_with(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut builder = Request::get(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(LOCAL.parse::<SocketAddr>().unwrap()));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The HTML pages: every value escaped, no inline script or style (so the
/// strict CSP holds), filters and sort in the URL, 400 / 404 with messages,
/// assets with ETags.
async fn html_pages(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    for i in 0..5 {
        let key = format!("run-{i}");
        tracker
            .lifecycle(
                Event::create(&key)
                    .name(if i % 2 == 0 { "import" } else { HOSTILE })
                    .actor(&HOSTILE)
                    .args(&json!({ "file": HOSTILE })),
            )
            .await
            .unwrap();
        let end = if i % 2 == 0 {
            Event::fail(&key, HOSTILE)
        } else {
            Event::complete(&key)
        };
        tracker.lifecycle(end).await.unwrap();
    }
    let app = Dashboard::new(Ops::default(), tracker).router();

    for uri in [
        "/ops/tasks/",
        "/ops/tasks/runs",
        "/ops/tasks/runs/run-0",
        "/ops/tasks/runs?status=failed&q=%3Cscript",
    ] {
        let (status, headers, html) = get_with(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {html}");
        assert!(
            !html.contains("<script>"),
            "{uri}: a raw <script> in {html}"
        );
        // Scripts only from files (the strict CSP forbids inline ones).
        let scripts = html.matches("<script").count();
        let external = ["htmx.min.js", "app.js"]
            .iter()
            .map(|file| {
                html.matches(&format!(
                    "<script src=\"/ops/tasks/assets/{file}\" defer></script>"
                ))
                .count()
            })
            .sum::<usize>()
            // The theme is applied before the first paint: not deferred.
            + html
                .matches("<script src=\"/ops/tasks/assets/theme.js\"></script>")
                .count();
        assert_eq!((scripts, external), (3, 3), "{uri}: {html}");
        assert!(!html.contains("style="), "{uri}: an inline style");
        // No inline event handler attribute (` onclick=`, ` onload=`, …),
        // and no htmx attribute that evaluates script (`hx-on`, `js:`).
        let handler = html.match_indices(" on").any(|(at, _)| {
            let name: String = html[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        });
        assert!(!handler, "{uri}: an inline event handler attribute");
        assert!(!html.contains("hx-on") && !html.contains("js:"), "{uri}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        if uri != "/ops/tasks/" {
            assert!(
                html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
                "{uri}: escaped text shown"
            );
        }
    }
    let (_, _, html) = get_with(&app, "/ops/tasks/", &[]).await;
    assert!(html.contains("/ops/tasks/runs?status=failed"), "{html}");
    let (_, _, html) = get_with(&app, "/ops/tasks/runs?status=failed", &[]).await;
    assert_eq!(
        html.matches("href=\"/ops/tasks/runs/run-").count(),
        3,
        "{html}"
    );
    assert!(
        html.contains("<option value=\"failed\" selected>failed (3)</option>"),
        "{html}"
    );
    // A page of 3 → a next link carrying the filter state.
    let (_, _, html) = get_with(&app, "/ops/tasks/runs", &[]).await;
    assert!(html.contains("Next page"), "{html}");

    let (status, _, text) = get_with(&app, "/ops/tasks/runs?status=nope", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("`nope` is not a status"), "{text}");
    let (status, _, text) = get_with(&app, "/ops/tasks/runs/%3Cscript%3E", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.starts_with("no run has the key"), "{text}");

    // Assets: ETag, 304 when unchanged, the accent colour as CSS.
    let (status, headers, css) = get_with(&app, "/ops/tasks/assets/app.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("--accent"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, body) = get_with(
        &app,
        "/ops/tasks/assets/app.css",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (status, headers, js) = get_with(&app, "/ops/tasks/assets/app.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.contains("EventSource"));
    // The list's live cells carry their run and field.
    let (_, _, html) = get_with(&app, "/ops/tasks/runs?status=failed", &[]).await;
    assert!(
        html.contains("data-run=\"run-0\" data-field=\"status\" data-kind=\"status\""),
        "{html}"
    );
    assert!(
        html.contains("data-events=\"/ops/tasks/api/events\""),
        "{html}"
    );
    // htmx and the icon, embedded, with their own ETags.
    for (asset, kind, needle) in [
        ("htmx.min.js", "text/javascript", "htmx"),
        ("icon.svg", "image/svg+xml", "<svg"),
    ] {
        let uri = format!("/ops/tasks/assets/{asset}");
        let (status, headers, body) = get_with(&app, &uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(body.contains(needle), "{asset}");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let (status, _, _) = get_with(&app, &uri, &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{asset}");
    }
    let (_, headers, css) = get_with(&app, "/ops/tasks/assets/theme.css", &[]).await;
    assert!(
        css.starts_with(":root { --accent: #2563eb; --on-accent: #ffffff;"),
        "{css}"
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
}

backends!(html_pages);

/// Live updates: every write becomes an event carrying the run; a client
/// that reconnects with `Last-Event-ID` gets only what it missed.
async fn live_updates(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    tracker
        .lifecycle(Event::create("before").name("import"))
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let open = |last: Option<String>| {
        let app = app.clone();
        async move {
            let mut builder = Request::get("/ops/tasks/api/events");
            if let Some(last) = last {
                builder = builder.header("last-event-id", last);
            }
            let mut request = builder.body(Body::empty()).unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(LOCAL.parse::<SocketAddr>().unwrap()));
            app.oneshot(request).await.unwrap()
        }
    };
    let response = open(None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    tracker
        .lifecycle(Event::start("live-1").name(HOSTILE))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::progress("live-1", 40.0))
        .await
        .unwrap();
    // An event per change: the start, then the progress.
    let events = sse_events(&mut body, 2).await;
    let changes: Vec<(String, String)> = events
        .iter()
        .map(|(_, d)| {
            let run: Value = serde_json::from_str(d).unwrap();
            (
                run["task_key"].as_str().unwrap().to_owned(),
                run["__change"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("live-1".into(), "start".into()),
            ("live-1".into(), "progress".into())
        ],
        "the writes, in order, not `before`"
    );
    let first_id = events[0].0.clone();
    let (_, data) = events[1].clone();
    let run: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        run["percent"], 40.0,
        "an event carries the run as it is when sent: {data}"
    );
    assert!(!data.contains('<'), "HTML-safe JSON in the stream: {data}");
    drop(body);

    // Reconnect with the first id: only later changes come (the progress
    // it missed, then the new run).
    tracker
        .lifecycle(Event::complete("live-2").name("export"))
        .await
        .unwrap();
    let response = open(Some(first_id.clone())).await;
    let mut body = response.into_body();
    let events = sse_events(&mut body, 2).await;
    let keys: Vec<String> = events
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["task_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, ["live-1", "live-2"], "{keys:?}");

    // An id from before the stream followed the change feed (an
    // `(updated_at, key)` cursor, base64 of its JSON) resumes from now
    // rather than failing.
    let old = "WyJzIiwiMjAyNi0wMS0wMSIsImsiXQ";
    let response = open(Some(old.into())).await;
    assert_eq!(response.status(), StatusCode::OK);

    // A Last-Event-ID that is not ours: 400.
    let response = open(Some("garbage".into())).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

backends!(live_updates);

/// Behind a reverse proxy: `X-Forwarded-Prefix` moves the pages' links, but
/// only from a trusted proxy and only when it is a plain path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_prefix_from_trusted_proxies_only() {
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker)
        .allow_remote_without_auth()
        .trusted_proxies(["10.0.0.1".parse().unwrap()])
        .router();
    let page = |peer: &'static str, forwarded: &'static str| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/ops/tasks/runs")
                .header("x-forwarded-prefix", forwarded)
                .body(Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    let html = page("10.0.0.1:4000", "/app").await;
    assert!(html.contains("href=\"/app/ops/tasks/runs\""), "{html}");
    assert!(
        html.contains("data-events=\"/app/ops/tasks/api/events\""),
        "{html}"
    );
    // Untrusted peer, or a value that is not a plain path: ignored.
    for (peer, forwarded) in [
        ("10.0.0.2:4000", "/app"),
        ("10.0.0.1:4000", "//evil.example"),
        ("10.0.0.1:4000", "https://evil.example"),
        ("10.0.0.1:4000", "/app/../x"),
        ("10.0.0.1:4000", "/a\"b"),
    ] {
        let html = page(peer, forwarded).await;
        assert!(
            html.contains("href=\"/ops/tasks/runs\""),
            "{peer} {forwarded}: {html}"
        );
        assert!(!html.contains("evil"), "{peer} {forwarded}");
    }
}

// ─── Every error under `{prefix}/api/` is JSON ────────────────────────────

tasktrail::dashboard! {
    struct Every<task_run::Entity> {
        url_prefix: "/ops/tasks",
        actions: [cancel, retry, delete],
    }
}

tasktrail::dashboard! {
    struct Frozen<task_run::Entity> {
        url_prefix: "/ops/tasks",
        actions: [cancel, retry, delete],
        read_only: true,
    }
}

/// Every route under `{prefix}/api/` (runtime/src/dashboard/router.rs): the
/// method it takes, a path (on the pending run `p-1`), a body it accepts,
/// and a method it does not take.
const API_ROUTES: &[(&str, &str, &str, &str)] = &[
    ("GET", "/ops/tasks/api/runs", "", "PUT"),
    ("GET", "/ops/tasks/api/runs/p-1", "", "PUT"),
    ("DELETE", "/ops/tasks/api/runs/p-1", "", "PATCH"),
    ("POST", "/ops/tasks/api/runs/p-1/cancel", "", "GET"),
    ("POST", "/ops/tasks/api/runs/p-1/retry", "", "DELETE"),
    (
        "POST",
        "/ops/tasks/api/runs/bulk",
        r#"{"action": "cancel", "keys": ["p-1"]}"#,
        "GET",
    ),
    ("GET", "/ops/tasks/api/metrics", "", "POST"),
    ("GET", "/ops/tasks/api/openapi.json", "", "DELETE"),
    ("GET", "/ops/tasks/api/events", "", "POST"),
    ("GET", "/ops/tasks/api/logs", "", "POST"),
    ("GET", "/ops/tasks/api/logs/events", "", "PUT"),
];

/// One request that must be refused, and how.
struct Refusal {
    what: String,
    app: axum::Router,
    method: String,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// `None`: sent without `ConnectInfo`.
    peer: Option<&'static str>,
    status: StatusCode,
}

async fn send_raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, String)],
    body: &str,
    peer: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut builder = Request::builder().method(method).uri(uri);
    if !headers.iter().any(|(k, _)| *k == "host") {
        builder = builder.header("host", "localhost:8080");
    }
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    let mut request = builder.body(Body::from(body.to_owned())).unwrap();
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    // An event stream that was let through never ends: not read.
    if headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, headers, String::new());
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Logs `user` in through the form: the session cookie and its CSRF token.
async fn session(app: &axum::Router, user: &str, password: &str) -> (String, String) {
    let cookies = |headers: &axum::http::HeaderMap| -> String {
        headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let between = |text: &str, before: &str, after: &str| -> String {
        let at = text.find(before).expect(before) + before.len();
        text[at..][..text[at..].find(after).unwrap()].to_owned()
    };
    let (_, headers, page) = send_raw(app, "GET", "/ops/tasks/login", &[], "", Some(LOCAL)).await;
    let form_token = between(&page, "name=\"csrf\" value=\"", "\"");
    let body = format!(
        "username={user}&password={}&csrf={form_token}",
        password.replace(' ', "+")
    );
    let (status, headers, text) = send_raw(
        app,
        "POST",
        "/ops/tasks/login",
        &[
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("cookie", cookies(&headers)),
        ],
        &body,
        Some(LOCAL),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    let cookie = cookies(&headers)
        .split("; ")
        .find(|c| c.starts_with("tasktrail_session="))
        .unwrap()
        .to_owned();
    let (_, _, page) = send_raw(
        app,
        "GET",
        "/ops/tasks/runs",
        &[("cookie", cookie.clone())],
        "",
        Some(LOCAL),
    )
    .await;
    let token = between(&page, "\"X-CSRF-Token\": \"", "\"");
    (cookie, token)
}

/// The CSRF refusal on cancel was `text/plain`; so were the loopback gate,
/// the proxy-auth gate, 405 and axum's own rejections. Every refusal of
/// every API route is `{"error": "…"}` with `application/json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_is_json() {
    use tasktrail::auth::{HeaderAuth, NoAuth, Role, SessionKey, SimpleAuth, hash_password};
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    for key in ["p-1", "f-1", "s-1"] {
        tracker
            .lifecycle(Event::create(key).name("no-such-kind"))
            .await
            .unwrap();
    }
    tracker.lifecycle(Event::fail("f-1", "boom")).await.unwrap();
    tracker.lifecycle(Event::complete("s-1")).await.unwrap();
    let logs: std::sync::Arc<dyn tasktrail::logs::LogStorage> =
        std::sync::Arc::new(tasktrail::logs::MemoryLogStorage::new(100));
    let every = || Dashboard::new(Every::default(), tracker.clone()).log_storage(logs.clone());
    let local = every().router();
    let frozen = Dashboard::new(Frozen::default(), tracker.clone())
        .log_storage(logs.clone())
        .router();
    let some = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs.clone())
        .router();
    let no_logs = Dashboard::new(Every::default(), tracker.clone()).router();
    let viewers = every().auth(NoAuth::anyone().role(Role::Viewer)).router();
    let proxy = "10.0.0.5";
    let proxied = every()
        .auth(HeaderAuth::new(
            "x-forwarded-user",
            [proxy.parse().unwrap()],
        ))
        .router();
    let login = every()
        .auth(
            SimpleAuth::new()
                .user("otto", &hash_password("otto pw"), Role::Operator)
                .user("vic", &hash_password("vic pw"), Role::Viewer),
        )
        .session_key(SessionKey::from_secret(&[9; 48]))
        .secure_cookies(false)
        .router();
    let (otto_cookie, otto_token) = session(&login, "otto", "otto pw").await;
    let (vic_cookie, vic_token) = session(&login, "vic", "vic pw").await;

    let mark = || ("x-requested-with", "tasktrail".to_owned());
    let json = || ("content-type", "application/json".to_owned());
    let mut cases: Vec<Refusal> = Vec::new();
    let mut case = |what: &str,
                    app: &axum::Router,
                    method: &str,
                    uri: &str,
                    headers: Vec<(&'static str, String)>,
                    body: &str,
                    peer: Option<&'static str>,
                    status: StatusCode| {
        cases.push(Refusal {
            what: what.to_owned(),
            app: app.clone(),
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers,
            body: body.to_owned(),
            peer,
            status,
        });
    };
    const REMOTE: &str = "203.0.113.5:4000";
    for &(method, uri, body, other) in API_ROUTES {
        let changes = method != "GET";
        let base = if changes {
            vec![mark(), json()]
        } else {
            vec![]
        };
        let with = |extra: &[(&'static str, String)]| [&base[..], extra].concat();
        // The gates, on every route.
        let forbidden = StatusCode::FORBIDDEN;
        case(
            "a remote peer",
            &local,
            method,
            uri,
            with(&[]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "no ConnectInfo",
            &local,
            method,
            uri,
            with(&[]),
            body,
            None,
            forbidden,
        );
        case(
            "a rebound Host",
            &local,
            method,
            uri,
            with(&[("host", "evil.example".into())]),
            body,
            Some(LOCAL),
            forbidden,
        );
        case(
            "a proxy header on loopback",
            &local,
            method,
            uri,
            with(&[("x-forwarded-for", "203.0.113.9".into())]),
            body,
            Some(LOCAL),
            forbidden,
        );
        case(
            "no session",
            &login,
            method,
            uri,
            with(&[]),
            body,
            Some(REMOTE),
            StatusCode::UNAUTHORIZED,
        );
        case(
            "no user from the proxy",
            &proxied,
            method,
            uri,
            with(&[]),
            body,
            Some("10.0.0.5:4000"),
            StatusCode::UNAUTHORIZED,
        );
        case(
            "a method the route does not take",
            &local,
            other,
            uri,
            with(&[]),
            body,
            Some(LOCAL),
            StatusCode::METHOD_NOT_ALLOWED,
        );
        if !changes {
            continue;
        }
        // The checks of actions.
        case(
            "no X-Requested-With",
            &local,
            method,
            uri,
            vec![json()],
            body,
            Some(LOCAL),
            forbidden,
        );
        case(
            "a foreign origin",
            &local,
            method,
            uri,
            with(&[("origin", "https://evil.example".into())]),
            body,
            Some(LOCAL),
            forbidden,
        );
        case(
            "a session without its CSRF token",
            &login,
            method,
            uri,
            with(&[("cookie", otto_cookie.clone())]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "a session with a wrong CSRF token",
            &login,
            method,
            uri,
            with(&[
                ("cookie", otto_cookie.clone()),
                ("x-csrf-token", "wrong".into()),
            ]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "a session's token from a foreign origin",
            &login,
            method,
            uri,
            with(&[
                ("cookie", otto_cookie.clone()),
                ("x-csrf-token", otto_token.clone()),
                ("origin", "https://evil.example".into()),
            ]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "a viewer's session",
            &login,
            method,
            uri,
            with(&[
                ("cookie", vic_cookie.clone()),
                ("x-csrf-token", vic_token.clone()),
            ]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "a viewer",
            &viewers,
            method,
            uri,
            with(&[]),
            body,
            Some(REMOTE),
            forbidden,
        );
        case(
            "read-only",
            &frozen,
            method,
            uri,
            with(&[]),
            body,
            Some(LOCAL),
            forbidden,
        );
    }
    // What the handlers refuse.
    let mut handler =
        |what: &str, app: &axum::Router, method: &str, uri: &str, body: &str, status| {
            let headers = if method == "GET" {
                vec![]
            } else {
                vec![mark(), json()]
            };
            case(what, app, method, uri, headers, body, Some(LOCAL), status);
        };
    let bad = StatusCode::BAD_REQUEST;
    let missing = StatusCode::NOT_FOUND;
    handler(
        "a bad limit",
        &local,
        "GET",
        "/ops/tasks/api/runs?limit=0",
        "",
        bad,
    );
    handler(
        "a bad status",
        &local,
        "GET",
        "/ops/tasks/api/runs?status=bogus",
        "",
        bad,
    );
    handler(
        "a key that is not UTF-8",
        &local,
        "GET",
        "/ops/tasks/api/runs/%FF",
        "",
        bad,
    );
    handler(
        "cancel, a key that is not UTF-8",
        &local,
        "POST",
        "/ops/tasks/api/runs/%FF/cancel",
        "",
        bad,
    );
    handler(
        "bulk, not JSON",
        &local,
        "POST",
        "/ops/tasks/api/runs/bulk",
        "{not json",
        bad,
    );
    handler(
        "bulk, an unknown action",
        &local,
        "POST",
        "/ops/tasks/api/runs/bulk",
        r#"{"action": "explode", "keys": ["p-1"]}"#,
        bad,
    );
    handler(
        "logs, a bad level",
        &local,
        "GET",
        "/ops/tasks/api/logs?level=loud",
        "",
        bad,
    );
    handler(
        "logs, a bad limit",
        &local,
        "GET",
        "/ops/tasks/api/logs?limit=0",
        "",
        bad,
    );
    handler(
        "an unknown run",
        &local,
        "GET",
        "/ops/tasks/api/runs/nope",
        "",
        missing,
    );
    handler(
        "delete, an unknown run",
        &local,
        "DELETE",
        "/ops/tasks/api/runs/nope",
        "",
        missing,
    );
    handler(
        "cancel, an unknown run",
        &local,
        "POST",
        "/ops/tasks/api/runs/nope/cancel",
        "",
        missing,
    );
    handler(
        "retry, an unknown run",
        &local,
        "POST",
        "/ops/tasks/api/runs/nope/retry",
        "",
        missing,
    );
    handler(
        "an unknown API path",
        &local,
        "GET",
        "/ops/tasks/api/nope",
        "",
        missing,
    );
    handler(
        "an unknown API path, deeper",
        &local,
        "POST",
        "/ops/tasks/api/runs/p-1/explode",
        "",
        missing,
    );
    handler(
        "the API's root",
        &local,
        "GET",
        "/ops/tasks/api/",
        "",
        missing,
    );
    handler(
        "logs without a log storage",
        &no_logs,
        "GET",
        "/ops/tasks/api/logs",
        "",
        missing,
    );
    handler(
        "log tail without a log storage",
        &no_logs,
        "GET",
        "/ops/tasks/api/logs/events",
        "",
        missing,
    );
    handler(
        "cancel, an ended run",
        &local,
        "POST",
        "/ops/tasks/api/runs/s-1/cancel",
        "",
        StatusCode::CONFLICT,
    );
    handler(
        "delete, a pending run",
        &local,
        "DELETE",
        "/ops/tasks/api/runs/p-1",
        "",
        StatusCode::CONFLICT,
    );
    handler(
        "retry, an unknown task kind",
        &local,
        "POST",
        "/ops/tasks/api/runs/f-1/retry",
        "",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    handler(
        "delete, not enabled",
        &some,
        "DELETE",
        "/ops/tasks/api/runs/s-1",
        "",
        StatusCode::FORBIDDEN,
    );
    // Refusals that need a header of their own.
    for (what, uri) in [
        ("events, a foreign Last-Event-ID", "/ops/tasks/api/events"),
        (
            "log tail, a foreign Last-Event-ID",
            "/ops/tasks/api/logs/events",
        ),
    ] {
        case(
            what,
            &local,
            "GET",
            uri,
            vec![("last-event-id", "garbage".into())],
            "",
            Some(LOCAL),
            bad,
        );
    }

    let total = cases.len();
    let mut wrong = Vec::new();
    for refusal in cases {
        let (status, headers, text) = send_raw(
            &refusal.app,
            &refusal.method,
            &refusal.uri,
            &refusal.headers,
            &refusal.body,
            refusal.peer,
        )
        .await;
        let label = format!(
            "{} {} ({}): {status} {text}",
            refusal.method, refusal.uri, refusal.what
        );
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body["error"].as_str().unwrap_or("");
        if status != refusal.status {
            wrong.push(format!("expected {}: {label}", refusal.status));
        } else if !content_type.starts_with("application/json") {
            wrong.push(format!("content-type {content_type:?}: {label}"));
        } else if message.trim().is_empty() || body.as_object().is_none_or(|o| o.len() != 1) {
            wrong.push(format!("not {{\"error\": \"…\"}}: {label}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} refusals are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Pages stay pages: a refused page is not JSON.
    let (status, headers, _) =
        send_raw(&local, "GET", "/ops/tasks/runs", &[], "", Some(REMOTE)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/")),
        "{headers:?}"
    );
}

/// Driving the router with `oneshot` (as tests do) without `ConnectInfo`:
/// the 403 names both fixes, the serve-side one and the test-side one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_connect_info_the_refusal_names_both_fixes() {
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), task_run::Tracker::new(db)).router();
    for uri in ["/ops/tasks/runs", "/ops/tasks/api/runs"] {
        let (status, _, text) = send_raw(&app, "GET", uri, &[], "", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for fix in [
            "into_make_service_with_connect_info",
            "ConnectInfo(",
            "oneshot",
        ] {
            assert!(text.contains(fix), "{uri}: names `{fix}`: {text}");
        }
    }
}
