//! The pages' side of the dashboard against the real router: the
//! overview's numbers (counts, durations p50 / p95, runs per hour, running
//! runs), the run page's timeline and buttons, the htmx actions on one run,
//! bulk actions on selected runs and on every run matching a filter (with
//! the confirmation step), the bulk JSON API, `nest` at another path and
//! the numbers' cache — on a SQLite file, in-memory SQLite and PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{TimeDelta, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tasktrail::{Dashboard, Event, Task, TaskContext};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        filters: [status, task_name],
        search: [task_name, message],
        actions: [cancel, retry, delete],
        page_size: 50,
    }
}

tasktrail::dashboard! {
    struct Viewer<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
        read_only: true,
    }
}

/// Runs until cancelled.
struct Sleepy;

impl Task for Sleepy {
    const NAME: &'static str = "sleepy";
    type Args = ();
    type Output = ();
    type Error = String;
    async fn run(&self, ctx: TaskContext, _args: ()) -> Result<(), String> {
        Err(ctx.cancelled().await.to_string())
    }
}

const HTMX: [(&str, &str); 2] = [("x-requested-with", "tasktrail"), ("hx-request", "true")];

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::from(body.to_owned())).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    send(app, Method::GET, uri, &[], "").await
}

/// A form post as htmx sends it.
async fn post_form(app: &axum::Router, uri: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = form(pairs);
    let mut headers = HTMX.to_vec();
    headers.push(("content-type", "application/x-www-form-urlencoded"));
    send(app, Method::POST, uri, &headers, &body).await
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The value of the hidden input `name` in `html` (first one).
fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(
        rest[..rest.find('"')?]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

async fn status_of(app: &axum::Router, key: &str) -> String {
    get(app, &format!("/ops/api/runs/{key}")).await.json()["status"]
        .as_str()
        .unwrap_or("gone")
        .to_owned()
}

/// Ended runs with known durations, one failed, one running.
async fn seed(tracker: &task_run::Tracker) {
    let base = Utc::now() - TimeDelta::minutes(30);
    // Durations 1, 2, 3, 10 s (success) and 20 s (failed): p50 = 3 s,
    // p95 = 20 s (nearest rank over 5).
    for (i, secs) in [1, 2, 3, 10, 20].into_iter().enumerate() {
        let key = format!("done-{i}");
        let at = base + TimeDelta::seconds(i as i64);
        tracker
            .lifecycle(Event::create(&key).name("import").at(at))
            .await
            .unwrap();
        tracker.lifecycle(Event::start(&key).at(at)).await.unwrap();
        let end = at + TimeDelta::seconds(secs);
        let event = if secs == 20 {
            Event::fail(&key, "boom")
        } else {
            Event::complete(&key)
        };
        tracker.lifecycle(event.at(end)).await.unwrap();
    }
    // An old run: outside the 24 hours of the chart and the percentiles.
    let old = Utc::now() - TimeDelta::days(3);
    tracker
        .lifecycle(Event::create("old").name("import").at(old))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::complete("old").at(old + TimeDelta::hours(5)))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::create("live").name("export").at(base))
        .await
        .unwrap();
    tracker
        .lifecycle(
            Event::progress("live", 40.0)
                .message("step 4 of 10")
                .at(base),
        )
        .await
        .unwrap();
}

/// Every statement the overview and `/api/metrics` run reads a bounded
/// number of rows, whatever the table's size: an aggregate (`COUNT`) or a
/// `LIMIT`. The runs-per-hour chart once read every run of the last 24
/// hours (74,000 rows after 20 minutes of issue 17's soak), and the
/// process's memory grew with the table.
async fn overview_reads_are_bounded(backend: Backend) {
    use std::sync::{Arc, Mutex};
    let (mut db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let seen: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
    let record = seen.clone();
    db.set_metric_callback(move |info| {
        if let Some(list) = record.lock().unwrap().as_mut() {
            list.push(info.statement.sql.clone());
        }
    });
    let tracker = task_run::Tracker::new(db);
    seed(&tracker).await;
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .stats_max_age(Duration::ZERO)
        .router();
    *seen.lock().unwrap() = Some(Vec::new());
    assert_eq!(get(&app, "/ops/").await.status, StatusCode::OK);
    let metrics = get(&app, "/ops/api/metrics").await.json();
    let statements = seen.lock().unwrap().take().unwrap();
    // The chart still counts what it did (see `overview_and_run_page`).
    let hours = metrics["runs_per_hour_24h"].as_array().unwrap();
    let runs: u64 = hours.iter().map(|h| h["runs"].as_u64().unwrap()).sum();
    assert_eq!(runs, 6, "{metrics}");
    let selects: Vec<&String> = statements
        .iter()
        .filter(|sql| sql.trim_start().to_ascii_uppercase().starts_with("SELECT"))
        .collect();
    assert!(selects.len() >= 4, "{statements:#?}");
    for sql in selects {
        let upper = sql.to_ascii_uppercase();
        assert!(
            upper.contains("COUNT(") || upper.contains(" LIMIT "),
            "a statement of the overview without an aggregate or a LIMIT: {sql}"
        );
    }
}

async fn overview_and_run_page(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    seed(&tracker).await;
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .stats_max_age(Duration::ZERO)
        .router();

    // The numbers, as JSON.
    let metrics = get(&app, "/ops/api/metrics").await.json();
    assert_eq!(metrics["total"], 7, "{metrics}");
    assert_eq!(metrics["by_status"]["success"], 5, "{metrics}");
    assert_eq!(metrics["by_status"]["in_progress"], 1, "{metrics}");
    let d = &metrics["durations_24h"];
    assert_eq!(d["runs"], 5, "{metrics}");
    assert!(
        (d["p50_seconds"].as_f64().unwrap() - 3.0).abs() < 0.01,
        "{d}"
    );
    assert!(
        (d["p95_seconds"].as_f64().unwrap() - 20.0).abs() < 0.01,
        "{d}"
    );
    let hours = metrics["runs_per_hour_24h"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let runs: u64 = hours.iter().map(|h| h["runs"].as_u64().unwrap()).sum();
    let failed: u64 = hours.iter().map(|h| h["failed"].as_u64().unwrap()).sum();
    assert_eq!(
        (runs, failed),
        (6, 1),
        "the 3-day-old run is not in the chart"
    );

    // The same on the page: the chart has 24 bars with one failed part,
    // and the running run shows with its progress bar.
    let page = get(&app, "/ops/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = &page.text;
    assert!(
        html.contains("<dt>Duration p50</dt><dd>3.0 s</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>Duration p95</dt><dd>20.0 s</dd>"),
        "{html}"
    );
    assert!(
        html.contains("83.3%"),
        "5 of 6 ended runs succeeded: {html}"
    );
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 24, "{html}");
    assert_eq!(html.matches("<rect class=\"bar-failed\"").count(), 1);
    assert!(html.contains("6 runs in the last 24 hours, 1 failed"));
    let running = &html[html.find("Running now").unwrap()..];
    assert!(running.contains("href=\"/ops/runs/live\""), "{running}");
    assert!(
        running.contains("<progress max=\"100\" value=\"40\">"),
        "{running}"
    );
    assert!(running.contains("step 4 of 10"));
    assert!(!running.contains("done-0"), "only runs in progress");

    // A run's page: its timeline in order, and the buttons for its state.
    let page = get(&app, "/ops/runs/done-4").await.text;
    let timeline = &page[page.find("<ol class=\"timeline\">").unwrap()..];
    let order: Vec<usize> = ["Created", "Started", "Failed", "Last written"]
        .iter()
        .map(|l| {
            timeline
                .find(l)
                .unwrap_or_else(|| panic!("{l} in {timeline}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{timeline}");
    assert!(timeline.contains("+20.0 s"), "{timeline}");
    assert!(page.contains("hx-post=\"/ops/runs/done-4/retry\""));
    assert!(
        page.contains("data-action=\"cancel\" data-when=\"active\" hx-post=\"/ops/runs/done-4/cancel\" hx-target=\"#flash\" hidden"),
        "an ended run's cancel button is hidden: {page}"
    );
    let live = get(&app, "/ops/runs/live").await.text;
    assert!(live.contains("hx-post=\"/ops/runs/live/cancel\" hx-target=\"#flash\">"));
    assert!(live.contains("hx-post=\"/ops/runs/live/delete\" hx-target=\"#flash\" hx-confirm=\"Delete run live? This cannot be undone.\" hidden"));
    // htmx sends the action header from every element of the page.
    assert!(live.contains("hx-headers='{\"X-Requested-With\": \"tasktrail\"}'"));

    // The list: a checkbox per row tied to the bulk form, which carries
    // the current filter.
    let list = get(&app, "/ops/runs?status=success&q=imp").await.text;
    assert_eq!(
        list.matches("type=\"checkbox\" name=\"key\"").count(),
        5,
        "{list}"
    );
    assert!(list.contains("<form id=\"bulk\""));
    assert_eq!(
        hidden(&list, "filter").as_deref(),
        Some("status=success&q=imp")
    );

    // A read-only dashboard shows no action anywhere.
    let viewer = Dashboard::new(Viewer::default(), tracker).router();
    for uri in ["/ops/runs/live", "/ops/runs"] {
        let html = get(&viewer, uri).await.text;
        assert!(!html.contains("hx-post"), "{uri}: {html}");
        assert!(!html.contains("type=\"checkbox\""), "{uri}");
    }
}

async fn page_actions(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    tracker.register(Sleepy);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .stats_max_age(Duration::ZERO)
        .router();

    // Cancel a running task from its page.
    let running = tracker.submit::<Sleepy>(()).await.unwrap();
    let key = running.key().to_owned();
    for _ in 0..300 {
        if status_of(&app, &key).await == "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancel = format!("/ops/runs/{key}/cancel");
    // Without htmx's header: refused, as a fragment with the reason.
    let refused = send(&app, Method::POST, &cancel, &[], "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains("class=\"flash flash-error\""));
    assert!(
        refused.text.contains("X-Requested-With"),
        "{}",
        refused.text
    );
    let done = post_form(&app, &cancel, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(
        done.text.contains("Cancellation requested"),
        "{}",
        done.text
    );
    let _ = running.await;
    assert_eq!(status_of(&app, &key).await, "cancelled");
    // Again: 409 with the reason; an unknown run: 404; an unknown action: 400.
    let again = post_form(&app, &cancel, &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text.contains("already ended"), "{}", again.text);
    let unknown = post_form(&app, "/ops/runs/nope/cancel", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = post_form(&app, &format!("/ops/runs/{key}/explode"), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("unknown action `explode`"));

    // The run's page shows what was done to it so far.
    let page = get(&app, &format!("/ops/runs/{key}")).await.text;
    let audit = &page[page
        .find("<section class=\"audit\">")
        .expect("an audit section")..];
    assert!(
        audit.contains("<td>loopback client</td><td>cancel</td><td class=\"outcome\">refused</td>"),
        "{audit}"
    );
    assert!(
        audit.contains("<td>cancel</td><td class=\"outcome\">done</td><td>page: signalled</td>"),
        "{audit}"
    );

    // Retry from the page: a link to the new run.
    let retried = post_form(&app, &format!("/ops/runs/{key}/retry"), &[]).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert!(
        retried.text.contains("is being retried as"),
        "{}",
        retried.text
    );
    assert!(retried.text.contains("href=\"/ops/runs/"));

    // Delete from the page: htmx is sent back to the list.
    let deleted = post_form(&app, &format!("/ops/runs/{key}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.headers["hx-redirect"], "/ops/runs");
    assert_eq!(status_of(&app, &key).await, "gone");
    // Every action is in the audit trail, newest first, even the refused
    // ones and after the run is gone.
    let trail: Vec<(String, String, String)> =
        tasktrail::auth::audit::for_target(tracker.db(), &key, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.outcome, e.user_id))
            .collect();
    let want = [
        ("delete", "done"),
        ("retry", "done"),
        ("cancel", "refused"),
        ("cancel", "done"),
    ];
    assert_eq!(
        trail,
        want.map(|(a, o)| (a.to_owned(), o.to_owned(), "local".to_owned())),
    );

    // A key that needs escaping in a path.
    tracker
        .lifecycle(Event::create("a b/c?d").name("odd"))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::fail("a b/c?d", "x"))
        .await
        .unwrap();
    let list = get(&app, "/ops/runs?task_name=odd").await.text;
    assert!(list.contains("href=\"/ops/runs/a%20b%2Fc%3Fd\""), "{list}");
    let page = get(&app, "/ops/runs/a%20b%2Fc%3Fd").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let gone = post_form(&app, "/ops/runs/a%20b%2Fc%3Fd/delete", &[]).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.text);
}

async fn bulk_actions(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .stats_max_age(Duration::ZERO)
        .router();
    // 12 failed "import" runs, 3 failed "export", 2 pending "import".
    for i in 0..17 {
        let key = format!("r{i:02}");
        let name = if (12..15).contains(&i) {
            "export"
        } else {
            "import"
        };
        tracker
            .lifecycle(Event::create(&key).name(name))
            .await
            .unwrap();
        if i < 15 {
            tracker.lifecycle(Event::fail(&key, "x")).await.unwrap();
        }
    }

    // Selected runs: the first request only asks for confirmation.
    let step1 = post_form(
        &app,
        "/ops/runs/bulk",
        &[
            ("action", "delete"),
            ("scope", "selected"),
            ("key", "r00"),
            ("key", "r01"),
            ("key", "r15"),
            ("filter", ""),
        ],
    )
    .await;
    assert_eq!(step1.status, StatusCode::OK, "{}", step1.text);
    assert!(
        step1.text.contains("Delete 3 selected runs?"),
        "{}",
        step1.text
    );
    assert!(step1.text.contains("Deleting cannot be undone."));
    assert_eq!(status_of(&app, "r00").await, "failed", "nothing done yet");
    // Confirming: the ended runs are deleted, the pending one skipped with
    // its reason, and the page is told which rows to drop.
    let step2 = post_form(
        &app,
        "/ops/runs/bulk",
        &[
            ("action", "delete"),
            ("scope", "selected"),
            ("key", "r00"),
            ("key", "r01"),
            ("key", "r15"),
            ("confirmed", "3"),
        ],
    )
    .await;
    assert_eq!(step2.status, StatusCode::OK, "{}", step2.text);
    assert!(
        step2.text.contains("Deleted 2 runs. Skipped 1:"),
        "{}",
        step2.text
    );
    assert!(
        step2.text.contains("r15: run `r15` has not ended"),
        "{}",
        step2.text
    );
    assert!(
        step2
            .text
            .contains("data-removed=\"[&#34;r00&#34;,&#34;r01&#34;]\""),
        "{}",
        step2.text
    );
    assert_eq!(status_of(&app, "r00").await, "gone");
    assert_eq!(status_of(&app, "r15").await, "pending");
    for (key, outcome) in [("r00", "done"), ("r01", "done"), ("r15", "refused")] {
        let trail = tasktrail::auth::audit::for_target(tracker.db(), key, 10)
            .await
            .unwrap();
        assert_eq!(
            trail.len(),
            1,
            "{key}: one entry for the confirmed bulk delete"
        );
        assert_eq!(
            (trail[0].action.as_str(), trail[0].outcome.as_str()),
            ("delete", outcome)
        );
        assert!(trail[0].detail.starts_with("bulk"), "{:?}", trail[0]);
    }

    // Nothing selected: a message, no confirmation.
    let none = post_form(
        &app,
        "/ops/runs/bulk",
        &[("action", "cancel"), ("scope", "selected")],
    )
    .await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(none.text.contains("select at least one run"));

    // Hostile keys come back escaped, in the question and in the reasons.
    let hostile = "<script>alert('x')</script>\"";
    for confirmed in [None, Some("1")] {
        let mut fields = vec![
            ("action", "cancel"),
            ("scope", "selected"),
            ("key", hostile),
        ];
        fields.extend(confirmed.map(|n| ("confirmed", n)));
        let answer = post_form(&app, "/ops/runs/bulk", &fields).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert!(!answer.text.contains("<script"), "{}", answer.text);
        assert!(!answer.text.contains("x')</script>\""), "{}", answer.text);
        if confirmed.is_some() {
            assert!(answer.text.contains("Skipped 1:"), "{}", answer.text);
            assert!(answer.text.contains("&#60;script&#62;"), "{}", answer.text);
        }
    }

    // Every run matching a filter: the count is shown, from the filter.
    let matching = [
        ("action", "delete"),
        ("scope", "matching"),
        ("filter", "status=failed&task_name=import&sort=-created_at"),
    ];
    let ask = post_form(&app, "/ops/runs/bulk", &matching).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.text);
    assert!(
        ask.text
            .contains("Delete 10 matching status = failed, task_name = import runs?"),
        "{}",
        ask.text
    );
    assert_eq!(hidden(&ask.text, "confirmed").as_deref(), Some("10"));
    // A run starts matching between the question and the answer: asked again.
    tracker
        .lifecycle(Event::create("late").name("import"))
        .await
        .unwrap();
    tracker.lifecycle(Event::fail("late", "x")).await.unwrap();
    let mut confirm = matching.to_vec();
    confirm.push(("confirmed", "10"));
    let changed = post_form(&app, "/ops/runs/bulk", &confirm).await;
    assert!(
        changed.text.contains("Delete 11 matching"),
        "{}",
        changed.text
    );
    assert!(changed.text.contains("changed since you asked"));
    assert_eq!(status_of(&app, "late").await, "failed", "nothing done yet");
    confirm.pop();
    confirm.push(("confirmed", "11"));
    let done = post_form(&app, "/ops/runs/bulk", &confirm).await;
    assert!(done.text.contains("Deleted 11 runs."), "{}", done.text);
    let left = get(&app, "/ops/api/runs?limit=100").await.json();
    let keys: Vec<&str> = left["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap())
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, ["r12", "r13", "r14", "r15", "r16"]);
    // A filter matching nothing; a malformed filter (400, as on the list).
    let empty = post_form(
        &app,
        "/ops/runs/bulk",
        &[
            ("action", "retry"),
            ("scope", "matching"),
            ("filter", "task_name=nothing"),
        ],
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text.contains("no run matches"));
    let malformed = post_form(
        &app,
        "/ops/runs/bulk",
        &[
            ("action", "retry"),
            ("scope", "matching"),
            ("filter", "status=sideways"),
        ],
    )
    .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.text
    );

    // The bulk JSON API: keys or a filter, no confirmation step.
    let api = |body: Value| {
        let app = app.clone();
        async move {
            send(
                &app,
                Method::POST,
                "/ops/api/runs/bulk",
                &[
                    ("x-requested-with", "tasktrail"),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            )
            .await
        }
    };
    let out = api(json!({ "action": "cancel", "keys": ["r15", "r16", "r12", "nope"] })).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    let out = out.json();
    assert_eq!(out["done"].as_array().unwrap().len(), 2, "{out}");
    let skipped: Vec<&str> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["r12", "nope"], "{out}");
    assert_eq!(status_of(&app, "r16").await, "cancelled");
    let out = api(json!({ "action": "delete", "filter": "task_name=export" })).await;
    assert_eq!(
        out.json()["done"].as_array().unwrap().len(),
        3,
        "{}",
        out.text
    );
    for (body, want) in [
        (json!({ "action": "explode", "keys": [] }), "unknown action"),
        (json!({ "action": "cancel" }), "either `keys`"),
        (
            json!({ "action": "cancel", "keys": ["a"], "filter": "" }),
            "either `keys`",
        ),
        (json!({ "action": "cancel", "keys": "r1" }), "keys"),
        (
            json!({ "action": "cancel", "keys": [], "extra": 1 }),
            "extra",
        ),
    ] {
        let out = api(body.clone()).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{body}: {}", out.text);
        assert!(out.text.contains(want), "{body}: {}", out.text);
    }
    let no_header = send(
        &app,
        Method::POST,
        "/ops/api/runs/bulk",
        &[("content-type", "application/json")],
        r#"{"action":"delete","filter":""}"#,
    )
    .await;
    assert_eq!(no_header.status, StatusCode::FORBIDDEN);

    // Read-only: refused whatever the scope.
    let viewer = Dashboard::new(Viewer::default(), tracker).router();
    let refused = post_form(
        &viewer,
        "/ops/runs/bulk",
        &[("action", "cancel"), ("scope", "matching"), ("filter", "")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains("read-only"));
}

/// Nested at another path with `nest`, links follow that path; the
/// numbers' cache serves a snapshot until it is older than its max age.
async fn nested_and_cached(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    tracker
        .lifecycle(Event::create("one").name("import"))
        .await
        .unwrap();
    let app = axum::Router::new().nest(
        "/admin/jobs",
        Dashboard::new(Ops::default(), tracker.clone())
            .stats_max_age(Duration::from_millis(400))
            .routes(),
    );
    let page = get(&app, "/admin/jobs/runs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("href=\"/admin/jobs/runs/one\""),
        "{}",
        page.text
    );
    assert!(page.text.contains("src=\"/admin/jobs/assets/app.js\""));
    assert!(page.text.contains("hx-post=\"/admin/jobs/runs/bulk\""));
    assert!(
        !page.text.contains("\"/ops/"),
        "no link to the configured prefix"
    );
    let home = get(&app, "/admin/jobs").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("href=\"/admin/jobs/runs\""));
    assert_eq!(
        get(&app, "/admin/jobs/api/runs/one").await.status,
        StatusCode::OK
    );
    assert_eq!(get(&app, "/ops/runs").await.status, StatusCode::NOT_FOUND);

    // Cached: a new run is not counted until the snapshot is 400 ms old,
    // then (served stale once while it refreshes) it is.
    let total = |app: axum::Router| async move {
        get(&app, "/admin/jobs/api/metrics").await.json()["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(total(app.clone()).await, 1);
    tracker
        .lifecycle(Event::create("two").name("import"))
        .await
        .unwrap();
    assert_eq!(total(app.clone()).await, 1, "served from the cache");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut seen = total(app.clone()).await;
    for _ in 0..100 {
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = total(app.clone()).await;
    }
    assert_eq!(seen, 2, "refreshed in the background");
}

/// Every `$ref` in `doc` names a schema it defines.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The OpenAPI document: the entity's fields in the `Run` schema, the
/// dashboard's filters as parameters, every route of the JSON API, every
/// reference resolved, the server at the prefix (or the nest path).
async fn openapi_document(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let answer = get(&app, "/ops/api/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert_eq!(doc["servers"][0]["url"], "/ops");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "/api/events",
            "/api/kinds/{name}/runs",
            "/api/metrics",
            "/api/runs",
            "/api/runs/bulk",
            "/api/runs/export.csv",
            "/api/runs/export.jsonl",
            "/api/runs/{key}",
            "/api/runs/{key}/cancel",
            "/api/runs/{key}/retry",
            "/api/runs/{key}/trace",
            "/metrics",
        ]
    );
    assert!(paths["/api/runs/{key}"]["delete"].is_object());
    let params: Vec<&str> = paths["/api/runs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "status",
            "task_name",
            "q",
            "since",
            "from",
            "to",
            "sort",
            "after",
            "limit"
        ]
    );
    let status = &paths["/api/runs"]["get"]["parameters"][0]["schema"]["enum"];
    assert!(status.as_array().unwrap().contains(&json!("in_progress")));
    let run = &doc["components"]["schemas"]["Run"];
    let props = run["properties"].as_object().unwrap();
    assert_eq!(props.len(), 20, "every field: {run}");
    assert!(props["task_args"].get("type").is_none(), "JSON: any value");
    assert_eq!(props["task_key"]["type"], "string");
    assert_eq!(props["percent"]["type"], json!(["number", "null"]));
    assert_eq!(props["created_at"]["format"], "date-time");
    assert_eq!(props["cleaned_up"]["type"], "boolean");
    assert!(
        run["required"]
            .as_array()
            .unwrap()
            .contains(&json!("task_key"))
    );
    assert!(
        !run["required"]
            .as_array()
            .unwrap()
            .contains(&json!("message"))
    );
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 5);
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").expect(&r);
        assert!(doc["components"]["schemas"][name].is_object(), "{r}");
    }

    let nested = axum::Router::new().nest(
        "/admin/jobs",
        Dashboard::new(Ops::default(), tracker).routes(),
    );
    let doc = get(&nested, "/admin/jobs/api/openapi.json").await.json();
    assert_eq!(doc["servers"][0]["url"], "/admin/jobs");
}

tasktrail::dashboard! {
    struct EnumOps<tasktrail_tests::entities::enum_run::Entity> {}
}

/// Counts per status from one grouped query, also when the status column
/// is an enum with its own names (a PostgreSQL enum type there).
async fn counts_of_an_enum_status(backend: Backend) {
    use tasktrail_tests::entities::enum_run;
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<enum_run::Model>(&db)
        .await
        .unwrap();
    let tracker = enum_run::Tracker::new(db);
    for (i, end) in ["done", "error", "error", "open"].iter().enumerate() {
        let key = format!("e{i}");
        tracker.lifecycle(Event::create(&key)).await.unwrap();
        match *end {
            "done" => tracker.lifecycle(Event::complete(&key)).await.unwrap(),
            "error" => tracker.lifecycle(Event::fail(&key, "x")).await.unwrap(),
            _ => tracker.lifecycle(Event::start(&key)).await.unwrap(),
        };
    }
    let app = Dashboard::new(EnumOps::default(), tracker)
        .stats_max_age(Duration::ZERO)
        .router();
    let metrics = get(&app, "/tasks/api/metrics").await.json();
    assert_eq!(
        metrics["by_status"],
        json!({ "pending": 0, "in_progress": 1, "success": 1, "failed": 2, "cancelled": 0, "interrupted": 0 }),
        "{metrics}"
    );
    assert_eq!(metrics["total"], 4);
}

/// The JSON list reads each run as one value on SQLite (`json_array`, one
/// SQLite value per run instead of one per column) and writes what the
/// model path writes: every run of every page of every sort equals `GET
/// /api/runs/{key}` (read through the model), for values that are hard to
/// carry through JSON (escapes, control characters, `</script>`, floats
/// that need 17 digits, NULLs, JSON of every kind, nanoseconds). A page
/// holding a time stored in another format than RFC 3339 is read again
/// through the model; every other page is one `json_array` statement.
async fn json_list_reads_like_the_model(backend: Backend) {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
    use std::sync::{Arc, Mutex};
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let texts = [
        "plain",
        "quote \" backslash \\ slash /",
        "line\nbreak\ttab\r",
        "\u{1}\u{1f}control\u{7f}",
        "</script><b>&amp;",
        "émoji 🦀 \u{2028}\u{2029}",
        "",
    ];
    let floats = [
        None,
        Some(0.1f32),
        Some(1.0 / 3.0),
        Some(1e-7),
        Some(99.99),
        Some(100.0),
        Some(-0.0),
        Some(f32::MAX),
        Some(16_777_217.0),
    ];
    let jsons = [
        None,
        Some(json!(null)),
        Some(
            json!({"b": 1, "a": [1.5, 0.1, -0.0, 1e300, 12345678901234567u64], "c": {"z": "\"\n</script>"}}),
        ),
        Some(json!("just text")),
        Some(json!(42)),
        Some(json!([true, false, {}])),
    ];
    let base = chrono::DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for i in 0..40usize {
        let at = base
            + TimeDelta::seconds(i as i64 * 37 % 40)
            + TimeDelta::nanoseconds((i as i64 * 123_456_789) % 1_000_000_000);
        let text = |k: usize| (k % 3 != 2).then(|| texts[k % texts.len()].to_owned());
        task_run::ActiveModel {
            task_key: Set(format!("k-{i:02}")),
            task_name: Set(texts[i % texts.len()].to_owned()),
            status: Set(["success", "failed", "in_progress", "not a status"][i % 4].to_owned()),
            message: Set(text(i + 1)),
            percent: Set(floats[i % floats.len()]),
            user_label: Set(text(i + 2)),
            affected_objects: Set(text(i)),
            task_args: Set(jsons[i % jsons.len()].clone()),
            task_kwargs: Set(jsons[(i + 1) % jsons.len()].clone()),
            result_payload: Set(jsons[(i + 2) % jsons.len()].clone()),
            cleaned_up: Set(i % 3 == 0),
            created_at: Set(at),
            updated_at: Set(at + TimeDelta::milliseconds(i as i64)),
            started_at: Set((i % 2 == 0).then_some(at)),
            completed_at: Set((i % 5 == 0).then_some(at + TimeDelta::seconds(1))),
            failed_at: Set(None),
            tenant: Set(text(i + 3)),
            internal_note: Set(None),
            retry_of: Set(None),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
    }
    // A time only the model reads (sqlx takes several formats).
    db.execute_unprepared(
        "UPDATE task_runs SET updated_at = '2026-12-07 10:00:00' WHERE task_key = 'k-05'",
    )
    .await
    .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let mut db = db;
    db.set_metric_callback(move |info| {
        record.lock().unwrap().push(info.statement.sql.clone());
    });
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let sqlite = matches!(backend, Backend::SqliteFile | Backend::SqliteMemory);
    let mut one_value_pages = 0;
    for sort in [
        "-created_at",
        "created_at",
        "percent",
        "-percent",
        "-id",
        "task_name",
        "-updated_at",
    ] {
        // Each page's keys, and whether it was read through the model.
        let mut pages: Vec<(Vec<String>, bool)> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut uri = format!("/ops/api/runs?sort={sort}&limit=7");
            if let Some(cursor) = &after {
                uri.push_str(&format!("&after={cursor}"));
            }
            seen.lock().unwrap().clear();
            let page = get(&app, &uri).await;
            assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.text);
            let statements = std::mem::take(&mut *seen.lock().unwrap());
            let page = page.json();
            let one_value = statements.iter().any(|s| s.contains("json_array("));
            let through_model = statements.iter().any(|s| {
                !s.contains("json_array(") && s.contains("task_runs") && s.starts_with("SELECT")
            });
            // SQLite reads each page as one value per run first; the other
            // backends through the model.
            assert_eq!(one_value, sqlite, "{uri}: {statements:?}");
            assert!(through_model || sqlite, "{uri}: {statements:?}");
            one_value_pages += usize::from(one_value && !through_model);
            let mut keys = Vec::new();
            for run in page["runs"].as_array().unwrap() {
                let key = run["task_key"].as_str().unwrap();
                let alone = get(&app, &format!("/ops/api/runs/{key}")).await.json();
                assert_eq!(run, &alone, "{uri}: run {key}");
                keys.push(key.to_owned());
            }
            pages.push((keys, through_model));
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let keys: Vec<&String> = pages.iter().flat_map(|(keys, _)| keys).collect();
        let distinct: std::collections::BTreeSet<&&String> = keys.iter().collect();
        assert_eq!(
            (keys.len(), distinct.len()),
            (40, 40),
            "sort {sort}: {keys:?}"
        );
        if sqlite {
            // Read again through the model: exactly the pages that read
            // k-05, shown or as the row that tells a next page exists.
            for (i, (keys, through_model)) in pages.iter().enumerate() {
                let next_first = pages.get(i + 1).map(|(next, _)| &next[0]);
                let reads_k05 = keys.iter().chain(next_first).any(|k| k == "k-05");
                assert_eq!(
                    *through_model, reads_k05,
                    "sort {sort}, page {i}: {pages:?}"
                );
            }
        }
    }
    if sqlite {
        assert!(one_value_pages >= 30, "{one_value_pages}");
    }
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

backends!(counts_of_an_enum_status);
backends!(overview_and_run_page);
backends!(overview_reads_are_bounded);
backends!(json_list_reads_like_the_model);
backends!(openapi_document);
backends!(page_actions);
backends!(bulk_actions);
backends!(nested_and_cached);
