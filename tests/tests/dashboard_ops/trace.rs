//! The trace view (issue 16, item 5): the spans a run opens are recorded by
//! the log layer into the log storage (the database one, `tasktrail_spans`,
//! and the memory one) and shown on the run page as a waterfall with the
//! run's log lines, and as JSON at `GET {prefix}/api/runs/{key}/trace`.
//!
//! The HTTP tests run on every backend, each with the database log storage
//! and with the memory storage, through a subscriber of their own set as
//! the test thread's default (the run's future is awaited on that thread).
//! The browser test uses the binary's global subscriber and a spawned run.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tasktrail::logs::{DbLogStorage, LogStorage, MemoryLogStorage, TaskLogLayer};
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, call_api, call_text, connect};
use tracing::Instrument;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
    }
}

const HOSTILE: &str = "<script>alert('x')</script> \"q\" & ü";

/// The storages a scenario runs with on `db`: the database one, then the
/// memory one.
async fn storages(db: &sea_orm::DatabaseConnection) -> Vec<(&'static str, Arc<dyn LogStorage>)> {
    let db_logs = DbLogStorage::new(db.clone()).await.unwrap();
    vec![
        ("db", Arc::new(db_logs) as Arc<dyn LogStorage>),
        ("memory", Arc::new(MemoryLogStorage::new(10_000))),
    ]
}

/// Waits until the database storage wrote what was handed to it.
async fn settle(storage: &Arc<dyn LogStorage>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = storage.stats();
        if stats.pending == 0 && stats.written + stats.refused + stats.dropped >= stats.appended {
            // Spans go through the same writer as lines: a short wait
            // for the last batch in flight.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if storage.stats().pending == 0 {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a traced run does: `parent > child > grandchild` with sleeps and
/// lines, a `sibling` entered twice across an await, a span with a hostile
/// name and fields, and a line directly in the run.
async fn traced_work() {
    let parent = tracing::info_span!("parent", step = 1, file = HOSTILE);
    async {
        tracing::info!("in parent");
        let child = tracing::info_span!("child", n = 2);
        async {
            let grandchild = tracing::debug_span!("grandchild", deep = true);
            async {
                tokio::time::sleep(Duration::from_millis(60)).await;
                tracing::warn!("deep line");
            }
            .instrument(grandchild)
            .await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        .instrument(child)
        .await;
    }
    .instrument(parent)
    .await;
    let sibling = tracing::info_span!("sibling", late = tracing::field::Empty);
    async {
        tracing::info!("sibling before");
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::Span::current().record("late", "recorded later");
        tracing::info!("sibling after");
    }
    .instrument(sibling)
    .await;
    let hostile = tracing::info_span!("<script>alert('span')</script>", field = HOSTILE);
    hostile.in_scope(|| tracing::error!("hostile {}", HOSTILE));
    drop(hostile);
    tracing::info!("directly in run");
}

/// Records run `key` (create, start, the traced work in its own `task`
/// span, complete) with `layer` as this thread's subscriber.
async fn run_traced(
    tracker: &task_run::Tracker,
    layer: TaskLogLayer,
    key: &str,
    work: impl std::future::Future<Output = ()>,
) {
    let _guard = tracing::subscriber::set_default(tasktrail_tests::thread_subscriber(layer));
    tracker
        .lifecycle(Event::create(key).name("traced"))
        .await
        .unwrap();
    tracker.lifecycle(Event::start(key)).await.unwrap();
    work.instrument(tracing::info_span!("task", task_key = %key))
        .await;
    // Outside any run: neither the span nor its line is recorded.
    tracing::info_span!("outside", key).in_scope(|| {
        tracing::info_span!("outside_child").in_scope(|| tracing::info!("not in a run"));
    });
    tracker.lifecycle(Event::complete(key)).await.unwrap();
}

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span `{name}` in {trace:#}"))
}

fn ms(span: &Value) -> f64 {
    span["duration_ms"].as_f64().expect("a closed span")
}

fn line_span(trace: &Value, message: &str) -> Value {
    trace["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["message"].as_str().unwrap().starts_with(message))
        .unwrap_or_else(|| panic!("no line `{message}` in {trace:#}"))["span"]
        .clone()
}

async fn the_trace_of_a_run(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    for (kind, storage) in storages(&db).await {
        let key = format!("traced-{kind}");
        run_traced(
            &tracker,
            TaskLogLayer::new(storage.clone()),
            &key,
            traced_work(),
        )
        .await;
        settle(&storage).await;
        let app = Dashboard::new(Ops::default(), tracker.clone())
            .log_storage(storage.clone())
            .router();

        let (status, trace) = call_api(
            &app,
            Method::GET,
            &format!("/ops/api/runs/{key}/trace"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {trace}");
        assert_eq!(trace["run"], key.as_str());
        assert_eq!(trace["dropped"], 0, "{kind}");
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 5, "{kind}: only the run's spans: {trace:#}");
        let (parent, child, grandchild, sibling) = (
            span(&trace, "parent"),
            span(&trace, "child"),
            span(&trace, "grandchild"),
            span(&trace, "sibling"),
        );
        // The tree.
        assert_eq!(parent["parent"], Value::Null, "{kind}: under the run");
        assert_eq!(child["parent"], parent["id"], "{kind}");
        assert_eq!(grandchild["parent"], child["id"], "{kind}");
        assert_eq!(sibling["parent"], Value::Null, "{kind}");
        // Names, levels, fields (one recorded after the span opened).
        assert_eq!(parent["fields"]["step"], 1, "{kind}");
        assert_eq!(parent["fields"]["file"], HOSTILE, "{kind}");
        assert_eq!(child["fields"]["n"], 2, "{kind}");
        assert_eq!(grandchild["fields"]["deep"], true, "{kind}");
        assert_eq!(grandchild["level"], "DEBUG", "{kind}");
        assert_eq!(sibling["fields"]["late"], "recorded later", "{kind}");
        // Times: start ≤ end, each child inside its parent, durations
        // matching the sleeps (generously).
        for s in spans {
            let (start, end) = (s["start"].as_str().unwrap(), s["end"].as_str().unwrap());
            let start = chrono::DateTime::parse_from_rfc3339(start).unwrap();
            let end = chrono::DateTime::parse_from_rfc3339(end).unwrap();
            assert!(start <= end, "{kind}: {s}");
        }
        let at = |s: &Value, f: &str| {
            chrono::DateTime::parse_from_rfc3339(s[f].as_str().unwrap()).unwrap()
        };
        assert!(at(child, "start") >= at(parent, "start") && at(child, "end") <= at(parent, "end"));
        assert!(
            at(grandchild, "start") >= at(child, "start")
                && at(grandchild, "end") <= at(child, "end")
        );
        assert!(
            at(sibling, "start") >= at(parent, "end"),
            "{kind}: the sibling came after"
        );
        assert!(
            (55.0..5_000.0).contains(&ms(grandchild)),
            "{kind}: {grandchild}"
        );
        assert!((85.0..5_000.0).contains(&ms(child)), "{kind}: {child}");
        assert!(ms(parent) >= ms(child), "{kind}");
        // Entered twice across its await: one span, its whole life.
        assert!((45.0..5_000.0).contains(&ms(sibling)), "{kind}: {sibling}");
        // Lines on their spans.
        assert_eq!(line_span(&trace, "in parent"), parent["id"], "{kind}");
        assert_eq!(line_span(&trace, "deep line"), grandchild["id"], "{kind}");
        assert_eq!(line_span(&trace, "sibling before"), sibling["id"], "{kind}");
        assert_eq!(line_span(&trace, "sibling after"), sibling["id"], "{kind}");
        assert_eq!(line_span(&trace, "directly in run"), Value::Null, "{kind}");
        assert!(
            !trace["logs"].to_string().contains("not in a run"),
            "{kind}: {trace}"
        );
        assert_eq!(sibling["logs"].as_array().unwrap().len(), 2, "{kind}");
        // The storage's own answer: nothing outside the run.
        let stored = storage.trace(&key).await.unwrap().unwrap();
        assert!(stored.spans.iter().all(|s| !s.name.starts_with("outside")));

        // The page: a waterfall, a row per span, children indented, bars
        // as SVG attributes, hostile text escaped, no inline style.
        let (status, html) = call_text(&app, Method::GET, &format!("/ops/runs/{key}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {html}");
        let section = &html[html
            .find("<section class=\"trace\">")
            .expect("a trace section")..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(section.contains("5 spans over"), "{kind}: {section}");
        assert_eq!(
            section.matches("<tr class=\"trace-row").count(),
            6,
            "{kind}: the run and its spans"
        );
        assert!(
            section.contains("class=\"span-name depth-3\"><span class=\"name\" title=\"")
                && section.contains(">grandchild</span>"),
            "{kind}: {section}"
        );
        assert!(section.contains("<svg class=\"span-track\""), "{kind}");
        assert!(
            section.contains("class=\"log-tick level-warn\""),
            "{kind}: {section}"
        );
        assert!(
            !section.contains("style="),
            "{kind}: no inline style: {section}"
        );
        assert!(!html.contains("<script>alert"), "{kind}: {section}");
        assert!(
            section.contains("&#60;script&#62;alert(&#39;span&#39;)&#60;/script&#62;"),
            "{kind}: the span's name escaped: {section}"
        );
        assert!(
            section.contains("file=&#60;script&#62;alert(&#39;x&#39;)"),
            "{kind}: its fields escaped: {section}"
        );
        // Each bar inside the track, a child's not before its parent's.
        let bar = |id: &Value| -> (f64, f64) {
            let row = &section[section
                .find(&format!("data-span=\"{id}\""))
                .unwrap_or_else(|| panic!("row {id}"))..];
            let rect = &row[row.find("<rect class=\"span-bar").unwrap()..];
            let attr = |name: &str| -> f64 {
                let at = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                rect[at..at + rect[at..].find('"').unwrap()]
                    .parse()
                    .unwrap()
            };
            (attr("x"), attr("width"))
        };
        let (px, pw) = bar(&parent["id"]);
        let (cx, cw) = bar(&child["id"]);
        let (gx, gw) = bar(&grandchild["id"]);
        assert!(pw > 0.0 && cw > 0.0 && gw > 0.0, "{kind}");
        assert!(
            px <= cx && cx <= gx && gx + gw <= px + pw + 0.01,
            "{kind}: {px} {pw} {cx} {cw} {gx} {gw}"
        );
        assert!(
            px + pw <= 1_000.0 && bar(&sibling["id"]).0 >= px + pw - 0.01,
            "{kind}"
        );
        // The logs panel hides the line's link to its span.
        assert!(!html.contains("tasktrail.span="), "{kind}");
    }
    // Written to their own table, indexed by run.
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM tasktrail_spans",
        ))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        5,
        "only the database storage's run, no span outside it"
    );
}

async fn the_cap_drops_extra_spans(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    for (kind, storage) in storages(&db).await {
        let key = format!("many-{kind}");
        let work = async {
            for n in 0..40 {
                tracing::info_span!("step", n).in_scope(|| tracing::info!(n, "step {n}"));
            }
        };
        run_traced(
            &tracker,
            TaskLogLayer::new(storage.clone()).max_spans_per_run(5),
            &key,
            work,
        )
        .await;
        settle(&storage).await;
        let app = Dashboard::new(Ops::default(), tracker.clone())
            .log_storage(storage.clone())
            .router();
        let (status, trace) = call_api(
            &app,
            Method::GET,
            &format!("/ops/api/runs/{key}/trace"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {trace}");
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 5, "{kind}: {trace:#}");
        let ns: Vec<i64> = spans
            .iter()
            .map(|s| s["fields"]["n"].as_i64().unwrap())
            .collect();
        assert_eq!(ns, [0, 1, 2, 3, 4], "{kind}: the first ones");
        assert_eq!(trace["dropped"], 35, "{kind}");
        // Lines in dropped spans are kept, on the run's row.
        assert_eq!(line_span(&trace, "step 39"), Value::Null, "{kind}");
        assert_eq!(line_span(&trace, "step 4"), spans[4]["id"], "{kind}");
        let (_, html) = call_text(&app, Method::GET, &format!("/ops/runs/{key}"), &[]).await;
        assert!(html.contains("35 more not recorded"), "{kind}: {html}");
    }
}

async fn bad_requests_and_empty_states(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker
        .lifecycle(Event::create("plain").name("quiet"))
        .await
        .unwrap();
    for (kind, storage) in storages(&db).await {
        let app = Dashboard::new(Ops::default(), tracker.clone())
            .log_storage(storage)
            .router();
        // A run without spans: an empty trace, an empty state.
        let (status, trace) = call_api(&app, Method::GET, "/ops/api/runs/plain/trace", &[]).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {trace}");
        assert_eq!(trace["spans"], serde_json::json!([]), "{kind}");
        let (_, html) = call_text(&app, Method::GET, "/ops/runs/plain", &[]).await;
        assert!(
            html.contains("No spans recorded for this run."),
            "{kind}: {html}"
        );
        // Unknown and malformed keys: 4xx with a JSON message.
        let long = format!("/ops/api/runs/{}/trace", "k".repeat(5_000));
        for (uri, want) in [
            ("/ops/api/runs/nope/trace", StatusCode::NOT_FOUND),
            ("/ops/api/runs/%3Cscript%3E/trace", StatusCode::NOT_FOUND),
            (long.as_str(), StatusCode::NOT_FOUND),
            ("/ops/api/runs/a%00b/trace", StatusCode::BAD_REQUEST),
            ("/ops/api/runs/%FF%FE/trace", StatusCode::BAD_REQUEST),
        ] {
            let (status, body) = call_api(&app, Method::GET, uri, &[]).await;
            assert_eq!(status, want, "{kind} {uri}: {body}");
            assert!(body["error"].is_string(), "{kind} {uri}: {body}");
        }
        let (status, body) = call_api(&app, Method::GET, "/ops/api/runs/nope/trace", &[]).await;
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no run has the key"),
            "{status} {body}"
        );
        // Not a route that changes anything.
        let (status, _) = call_api(
            &app,
            Method::POST,
            "/ops/api/runs/plain/trace",
            &[("x-requested-with", "tasktrail")],
        )
        .await;
        assert!(status.is_client_error(), "{kind}: {status}");
    }
    // Without a log storage: the page says so, the API answers 404.
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let (_, html) = call_text(&app, Method::GET, "/ops/runs/plain", &[]).await;
    assert!(
        html.contains("No trace: this dashboard has no log storage"),
        "{html}"
    );
    let (status, body) = call_api(&app, Method::GET, "/ops/api/runs/plain/trace", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("log storage"),
        "{body}"
    );
    // The OpenAPI document lists the route.
    let (_, doc) = call_api(&app, Method::GET, "/ops/api/openapi.json", &[]).await;
    assert_eq!(
        doc["paths"]["/api/runs/{key}/trace"]["get"]["operationId"], "getRunTrace",
        "{doc}"
    );
}

backends!(
    the_trace_of_a_run,
    the_cap_drops_extra_spans,
    bad_requests_and_empty_states
);

/// A spawned run with nested spans, through the binary's global
/// subscriber: its page shows the waterfall, bars of non-zero width, each
/// child's bar starting within its parent's; no console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waterfall_in_a_browser() {
    let (db, _g) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let logs = crate::logs();
    let run = tracker
        .spawn("import_books", &["shelf-a"], |_ctx| async move {
            async {
                tracing::info!(files = 3, "reading the shelf");
                for file in 0..3 {
                    async {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        let parse = tracing::debug_span!("parse", rows = 120);
                        async {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            if file == 1 {
                                tracing::warn!("a row without an ISBN");
                            }
                        }
                        .instrument(parse)
                        .await;
                    }
                    .instrument(tracing::info_span!("file", file, name = "<b>books</b>.csv"))
                    .await;
                }
            }
            .instrument(tracing::info_span!("import", shelf = "a"))
            .await;
            async { tokio::time::sleep(Duration::from_millis(50)).await }
                .instrument(tracing::info_span!("index"))
                .await;
            tracing::info!("done");
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    run.await.unwrap();
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs)
        .router();
    let (addr, server) = crate::serve(app).await;
    let browser = tasktrail_tests::browser::Browser::start().await;
    browser
        .goto(&format!("http://{addr}/ops/runs/{key}"))
        .await
        .unwrap();
    browser.wait_for_css("table.waterfall").await;
    let bars = browser
        .eval(
            "return [...document.querySelectorAll('tr.trace-row')].map(tr => { \
               const r = tr.querySelector('rect.span-bar').getBoundingClientRect(); \
               return { id: tr.dataset.span, parent: tr.dataset.parent, \
                        name: tr.querySelector('.name').textContent, left: r.left, \
                        width: r.width, ticks: tr.querySelectorAll('rect.log-tick').length }; })",
        )
        .await;
    println!("bars: {bars:#}");
    let bars = bars.as_array().unwrap();
    // The run, import, 3 × (file > parse), index.
    assert_eq!(bars.len(), 1 + 1 + 6 + 1, "{bars:#?}");
    let by_id = |id: &Value| bars.iter().find(|b| b["id"] == *id).unwrap();
    for bar in bars {
        assert!(bar["width"].as_f64().unwrap() > 0.0, "a visible bar: {bar}");
        if bar["id"] != "0" {
            let parent = by_id(&bar["parent"]);
            let (l, pl, pw) = (
                bar["left"].as_f64().unwrap(),
                parent["left"].as_f64().unwrap(),
                parent["width"].as_f64().unwrap(),
            );
            assert!(
                l >= pl - 0.5 && l <= pl + pw + 0.5,
                "{} starts within {}: {bar} {parent}",
                bar["name"],
                parent["name"]
            );
        }
    }
    let names: Vec<&str> = bars.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "run", "import", "file", "parse", "file", "parse", "file", "parse", "index"
        ]
    );
    assert!(
        bars.iter()
            .map(|b| b["ticks"].as_u64().unwrap())
            .sum::<u64>()
            >= 3
    );
    // Children are indented further than their parents.
    let indent = browser
        .eval(
            "return ['import', 'file', 'parse'].map(n => [...document.querySelectorAll('td.span-name')] \
               .find(td => td.querySelector('.name').textContent === n).getBoundingClientRect().left + \
               parseFloat(getComputedStyle([...document.querySelectorAll('td.span-name')] \
               .find(td => td.querySelector('.name').textContent === n)).paddingLeft))",
        )
        .await;
    let indent: Vec<f64> = indent
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(indent[0] < indent[1] && indent[1] < indent[2], "{indent:?}");
    browser
        .eval("document.querySelector('section.trace').scrollIntoView(); return null")
        .await;
    browser.screenshot("trace.png").await;
    browser.assert_no_console_errors().await;
    browser.close().await;
    server.abort();
}
