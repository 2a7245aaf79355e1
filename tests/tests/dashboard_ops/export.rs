//! Issue 16, item 7: the filtered list exported as CSV and JSON lines,
//! streamed page by page (exact rows, order, quoting, formula cells
//! defused, hostile parameters 4xx); and "every run matching" bulk actions
//! over any count as a tracked background run with progress and cancel —
//! on every backend, through the real router.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tasktrail::Dashboard;
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, call_api, call_text, connect};
use tower::ServiceExt;

use crate::start::Client;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

/// The message of seeded run `i`: every CSV hazard in turn.
fn message(i: usize) -> String {
    match i % 8 {
        0 => format!("a, b {i}"),
        1 => format!("say \"hi\" {i}"),
        2 => format!("two\nlines {i}"),
        3 => format!("=1+{i}"),
        4 => format!("+SUM(A{i})"),
        5 => format!("-{i}"),
        6 => format!("@cmd {i}"),
        _ => format!("plain {i}"),
    }
}

/// What the CSV cell of `message(i)` reads back as.
fn csv_message(i: usize) -> String {
    let m = message(i);
    if m.starts_with(['=', '+', '-', '@']) {
        format!("'{m}")
    } else {
        m
    }
}

/// Inserts `n` runs named `name` with `status`, keys `{prefix}-{i:06}`,
/// created one second apart from `start` (so the order is known), in
/// statements of 500 rows.
async fn seed(
    db: &sea_orm::DatabaseConnection,
    prefix: &str,
    name: &str,
    status: &str,
    n: usize,
    start: chrono::DateTime<chrono::Utc>,
) {
    let mut rows = Vec::with_capacity(500);
    for i in 0..n {
        let at = start + chrono::Duration::seconds(i as i64);
        rows.push(task_run::ActiveModel {
            task_key: Set(format!("{prefix}-{i:06}")),
            task_name: Set(name.to_owned()),
            status: Set(status.to_owned()),
            message: Set(Some(message(i))),
            percent: Set(Some((i % 100) as f32)),
            task_args: Set(Some(json!({ "i": i, "note": "x,\"y\"" }))),
            cleaned_up: Set(false),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        });
        if rows.len() == 500 || i + 1 == n {
            task_run::Entity::insert_many(std::mem::take(&mut rows))
                .exec(db)
                .await
                .unwrap();
        }
    }
}

/// A CSV document (RFC 4180) as rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                c => cell.push(c),
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut cell)),
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    row.push(std::mem::take(&mut cell));
                    rows.push(std::mem::take(&mut row));
                }
                c => cell.push(c),
            }
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "a CSV ends with a line break"
    );
    rows
}

/// `GET uri`: status, headers, and the body's chunks as they came.
async fn chunks(
    app: &axum::Router,
    uri: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<usize>, String) {
    let mut request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40_000,
        ))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
    }
    (status, headers, sizes, String::from_utf8(all).unwrap())
}

/// Every run of the JSON API's list for `query`, page by page.
async fn api_list(app: &axum::Router, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut uri = format!("/ops/api/runs?{query}&limit=1000");
        if let Some(a) = &after {
            uri.push_str(&format!("&after={a}"));
        }
        let (status, page) = call_api(app, Method::GET, &uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        out.extend(page["runs"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return out,
        }
    }
}

async fn export_filtered(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    seed(&db, "exp", "export", "success", 1_200, start).await;
    seed(&db, "oth", "other", "failed", 150, start).await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();

    // CSV: a header and 1,200 rows, newest first, every cell as stored.
    let (status, headers, sizes, text) =
        chunks(&app, "/ops/api/runs/export.csv?task_name=export").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"runs-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    assert!(sizes.len() >= 2, "streamed page by page: {sizes:?}");
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 1 + 1_200);
    let head = &rows[0];
    let col = |name: &str| {
        head.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {head:?}"))
    };
    let (key, msg, args, status_col, name_col) = (
        col("task_key"),
        col("message"),
        col("task_args"),
        col("status"),
        col("task_name"),
    );
    for (n, row) in rows[1..].iter().enumerate() {
        let i = 1_199 - n;
        assert_eq!(row.len(), head.len(), "row {n}");
        assert_eq!(row[key], format!("exp-{i:06}"), "newest first");
        assert_eq!(row[msg], csv_message(i), "row {n}");
        assert_eq!(row[name_col], "export");
        assert_eq!(row[status_col], "success");
        let stored: Value = serde_json::from_str(&row[args]).unwrap();
        assert_eq!(stored, json!({ "i": i, "note": "x,\"y\"" }));
    }
    // The raw text: quoted cells and a defused formula, as written.
    assert!(text.contains("\"a, b 8\""), "a comma is quoted");
    assert!(text.contains("\"say \"\"hi\"\" 9\""), "quotes doubled");
    assert!(text.contains("\"two\nlines 10\""), "a line break is quoted");
    assert!(text.contains(",'=1+11,"), "a formula is defused");
    assert!(!text.contains(",=1+"), "no cell starts a formula");

    // JSON lines: each run as the JSON API shows it, in the same order.
    let (status, headers, _, text) =
        chunks(&app, "/ops/api/runs/export.jsonl?task_name=export").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1_200);
    assert!(text.ends_with('\n'));
    assert_eq!(lines, api_list(&app, "task_name=export").await);

    // Any list parameter applies: sort, search, status.
    let (_, _, _, text) = chunks(
        &app,
        "/ops/api/runs/export.jsonl?task_name=export&sort=task_key",
    )
    .await;
    let keys: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["task_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (0..1_200).map(|i| format!("exp-{i:06}")).collect();
    assert_eq!(keys, want, "sorted by key, ascending");
    let (_, _, _, text) = chunks(&app, "/ops/api/runs/export.csv?q=two%0Alines").await;
    let expected =
        (0..1_200).filter(|i| i % 8 == 2).count() + (0..150).filter(|i| i % 8 == 2).count();
    assert_eq!(parse_csv(&text).len(), 1 + expected);
    let (_, _, _, text) = chunks(&app, "/ops/api/runs/export.csv?status=failed").await;
    assert_eq!(parse_csv(&text).len(), 1 + 150);
    // Nothing matches: a header alone; empty JSON lines.
    let (_, _, _, text) = chunks(&app, "/ops/api/runs/export.csv?task_name=nothing").await;
    assert_eq!(parse_csv(&text).len(), 1);
    let (status, _, _, text) = chunks(&app, "/ops/api/runs/export.jsonl?task_name=nothing").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    // An empty value (the filter form's "any") is no filter.
    let (_, _, _, text) = chunks(&app, "/ops/api/runs/export.jsonl?status=&task_name=").await;
    assert_eq!(text.lines().count(), 1_350);

    // Hostile parameters: 400 with a JSON message, never a 5xx.
    let long = "q".repeat(300);
    for (query, says) in [
        ("after=abc", "takes no `after`"),
        ("limit=10", "takes no `limit`"),
        ("status=sideways", "status"),
        ("sort=nope", "`nope` is not a field"),
        ("sort=task_args", "cannot be sorted"),
        ("colour=red", "colour"),
        ("q=a&q=b", "more than once"),
        (&format!("q={long}"), "longer than 200"),
        ("task_name=%00", ""),
    ] {
        for ext in ["csv", "jsonl"] {
            let uri = format!("/ops/api/runs/export.{ext}?{query}");
            let (status, body) = call_api(&app, Method::GET, &uri, &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let error = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{uri}: {body}"));
            assert!(error.contains(says), "{uri}: {error}");
        }
    }
    let (status, _) = call_api(&app, Method::POST, "/ops/api/runs/export.csv", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = call_api(&app, Method::GET, "/ops/api/runs/export.xlsx", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The list page links to both, with its filters.
    let (status, page) =
        call_text(&app, Method::GET, "/ops/runs?task_name=export&q=two", &[]).await;
    assert_eq!(status, StatusCode::OK);
    for ext in ["csv", "jsonl"] {
        let href =
            format!("/ops/api/runs/export.{ext}?task_name=export&#38;q=two&#38;sort=-created_at");
        assert!(page.contains(&href), "{href} in the page");
    }
    // The OpenAPI document lists them.
    let (_, doc) = call_api(&app, Method::GET, "/ops/api/openapi.json", &[]).await;
    let params = doc["paths"]["/api/runs/export.csv"]["get"]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}"));
    assert!(params.iter().any(|p| p["name"] == "task_name"));
    assert!(!params.iter().any(|p| p["name"] == "after"));
    assert!(doc["paths"]["/api/runs/export.jsonl"]["get"].is_object());
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

backends!(export_filtered);

/// 20,000 runs on a SQLite file: the body comes in one chunk per page of
/// 1,000 runs, none bigger than a page — the server holds one page at a
/// time, whatever the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_export_streams() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    seed(
        &db,
        "big",
        "big",
        "success",
        20_000,
        chrono::Utc::now() - chrono::Duration::days(2),
    )
    .await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let (status, _, sizes, text) = chunks(&app, "/ops/api/runs/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        text.matches("\r\n").count(),
        20_001,
        "a header and 20,000 rows"
    );
    assert!(sizes.len() >= 20, "{} chunks", sizes.len());
    let largest = *sizes.iter().max().unwrap();
    assert!(
        largest < text.len() / 10,
        "the largest chunk is {largest} of {} bytes",
        text.len()
    );
    let (_, _, sizes, text) = chunks(&app, "/ops/api/runs/export.jsonl").await;
    assert_eq!(text.lines().count(), 20_000);
    assert!(sizes.len() >= 20, "{} chunks", sizes.len());
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// How many runs named `name` have `status`.
async fn count(db: &sea_orm::DatabaseConnection, name: &str, status: Option<&str>) -> u64 {
    let mut select = task_run::Entity::find().filter(task_run::Column::TaskName.eq(name));
    if let Some(status) = status {
        select = select.filter(task_run::Column::Status.eq(status));
    }
    select.count(db).await.unwrap()
}

/// Waits (up to `limit`) for run `key` to end.
async fn ended(db: &sea_orm::DatabaseConnection, key: &str, limit: Duration) -> task_run::Model {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(run) = tasktrail_tests::find_run(db, key).await
            && matches!(run.status.as_str(), "success" | "failed" | "cancelled")
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {key} did not end in {limit:?}");
}

/// POST the bulk API; answers status and body.
async fn bulk_api(app: &axum::Router, body: Value) -> (StatusCode, Value) {
    let mut client = Client::new(app);
    let answer = client
        .api_post("/ops/api/runs/bulk", None, &body.to_string())
        .await;
    let json = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    (answer.status, json)
}

/// More than one page of matching runs (1,500): the bulk API starts a
/// background run that cancels them all (each with its audit row), with
/// progress 100 at the end, leaving the others alone; then deletes them
/// in the background on request.
async fn bulk_in_the_background(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let start = chrono::Utc::now() - chrono::Duration::hours(5);
    seed(&db, "bk", "bulk", "pending", 1_500, start).await;
    seed(&db, "kp", "keep", "pending", 50, start).await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();

    let (status, body) = bulk_api(
        &app,
        json!({ "action": "cancel", "filter": "task_name=bulk" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["matching"], 1_500, "{body}");
    let key = body["bulk_run"].as_str().unwrap().to_owned();
    assert_eq!(body["url"], format!("/ops/runs/{key}"));
    let run = ended(&db, &key, Duration::from_secs(240)).await;
    assert_eq!(run.status, "success", "{run:?}");
    assert_eq!(run.task_name, "tasktrail.bulk");
    assert_eq!(run.percent, Some(100.0), "{run:?}");
    assert_eq!(
        run.result_payload,
        Some(json!({ "action": "cancel", "done": 1_500, "skipped": 0 }))
    );
    assert_eq!(
        run.task_args,
        Some(json!({ "action": "cancel", "filter": "task_name=bulk" }))
    );
    assert_eq!(count(&db, "bulk", Some("cancelled")).await, 1_500);
    assert_eq!(
        count(&db, "keep", Some("pending")).await,
        50,
        "the others untouched"
    );
    // Each run's audit row, and the bulk's own.
    for k in ["bk-000000", "bk-000777", "bk-001499"] {
        let audit = tasktrail::auth::audit::for_target(&db, k, 5).await.unwrap();
        assert_eq!(audit.len(), 1, "{k}: {audit:?}");
        assert_eq!(
            (audit[0].action.as_str(), audit[0].detail.as_str()),
            ("cancel", "bulk")
        );
    }
    let audit = tasktrail::auth::audit::for_target(&db, &key, 5)
        .await
        .unwrap();
    assert!(audit[0].detail.contains("in the background"), "{audit:?}");

    // `background: true` with a filter; with explicit keys it is refused.
    let (status, body) = bulk_api(
        &app,
        json!({ "action": "delete", "filter": "task_name=bulk&status=cancelled", "background": true }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let key = body["bulk_run"].as_str().unwrap().to_owned();
    let run = ended(&db, &key, Duration::from_secs(240)).await;
    assert_eq!(run.status, "success", "{run:?}");
    assert_eq!(
        count(&db, "bulk", None).await,
        0,
        "every matching run deleted"
    );
    assert_eq!(count(&db, "keep", None).await, 50);
    // Small selections stay immediate.
    let (status, body) = bulk_api(
        &app,
        json!({ "action": "cancel", "filter": "task_name=keep" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["done"].as_array().unwrap().len(), 50);
    // Hostile requests: 4xx with a message, no run.
    for (request, want) in [
        (
            json!({ "action": "cancel", "keys": ["kp-000001"], "background": true }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "action": "cancel", "filter": "status=sideways", "background": true }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "action": "cancel", "filter": "after=zzz", "background": "yes" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "action": "explode", "filter": "", "background": true }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = bulk_api(&app, request.clone()).await;
        assert_eq!(status, want, "{request}: {body}");
        assert!(body["error"].is_string(), "{request}: {body}");
    }
    assert_eq!(
        count(&db, "tasktrail.bulk", None).await,
        2,
        "no bulk run for a refusal"
    );
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// From the list page: a filter matching more than 1,000 runs asks with
/// the count and says it runs in the background; confirmed, the browser
/// goes to the bulk run's page. Cancelling the bulk run stops it: some
/// runs are left as they were.
async fn cancel_a_bulk_midway(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let n = 4_000;
    seed(
        &db,
        "mw",
        "many",
        "pending",
        n,
        chrono::Utc::now() - chrono::Duration::hours(9),
    )
    .await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let mut client = Client::new(&app);
    let ask = [
        ("action", "cancel"),
        ("scope", "matching"),
        ("filter", "task_name=many"),
    ];
    let answer = client.htmx_form("/ops/runs/bulk", None, &ask).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(
        answer
            .text
            .contains("Cancel all 4000 runs matching task_name = many?"),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("background run"), "{}", answer.text);
    assert_eq!(
        count(&db, "tasktrail.bulk", None).await,
        0,
        "asking starts nothing"
    );
    let confirmed = [&ask[..], &[("confirmed", "4000")]].concat();
    let answer = client.htmx_form("/ops/runs/bulk", None, &confirmed).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let to = answer
        .headers
        .get("hx-redirect")
        .expect("HX-Redirect")
        .to_str()
        .unwrap()
        .to_owned();
    let key = to.strip_prefix("/ops/runs/").unwrap().to_owned();
    // Some runs cancelled: cancel the bulk run as its page's button does.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&db, "many", Some("cancelled")).await < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bulk run made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = client
        .send(
            Method::POST,
            &format!("/ops/runs/{key}/cancel"),
            &[("x-requested-with", "tasktrail"), ("hx-request", "true")],
            Body::empty(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // It stops at its next check, well before the tracker's cancel grace
    // (10 s) would drop it.
    let run = ended(&db, &key, Duration::from_secs(3)).await;
    assert_eq!(run.status, "cancelled", "{run:?}");
    let done = count(&db, "many", Some("cancelled")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&db, "many", Some("cancelled")).await, done, "stopped");
    assert!(done < n as u64, "{done} of {n}: some runs untouched");
    assert_eq!(count(&db, "many", Some("pending")).await, n as u64 - done);
    // Its page shows it, with its progress and message.
    let (status, page) = call_text(&app, Method::GET, &to, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("tasktrail.bulk"));
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

backends!(bulk_in_the_background, cancel_a_bulk_midway);

/// Past the old cap of 10,000: 12,000 failed runs seeded by SQL on a
/// SQLite file, all deleted by the background run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_past_the_old_cap() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    seed(
        &db,
        "cap",
        "capped",
        "failed",
        12_000,
        chrono::Utc::now() - chrono::Duration::days(3),
    )
    .await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let (status, body) = bulk_api(
        &app,
        json!({ "action": "delete", "filter": "status=failed" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["matching"], 12_000);
    let key = body["bulk_run"].as_str().unwrap().to_owned();
    let run = ended(&db, &key, Duration::from_secs(600)).await;
    assert_eq!(run.status, "success", "{run:?}");
    assert_eq!(run.percent, Some(100.0));
    assert_eq!(
        run.result_payload,
        Some(json!({ "action": "delete", "done": 12_000, "skipped": 0 }))
    );
    assert_eq!(count(&db, "capped", None).await, 0);
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The export bench: 100,000 runs on a SQLite file exported as CSV and as
/// JSON lines through the real router, the body read chunk by chunk and
/// dropped (what a client downloading it does). Prints rows/s and the
/// process's peak RSS before and after (VmHWM, reset after seeding through
/// `/proc/self/clear_refs`). `cargo test -p tasktrail-tests --test
/// dashboard_ops export::export_bench -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bench: 100,000 runs"]
async fn export_bench() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let n = 100_000;
    seed(
        &db,
        "bench",
        "bench",
        "success",
        n,
        chrono::Utc::now() - chrono::Duration::days(5),
    )
    .await;
    let tracker = task_run::Tracker::new(db.clone());
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    for ext in ["csv", "jsonl"] {
        // Reset the peak to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = peak_rss_kib();
        let started = std::time::Instant::now();
        let mut request = Request::builder()
            .uri(format!("/ops/api/runs/export.{ext}"))
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40_000,
            ))));
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let (mut bytes, mut lines, mut chunks) = (0_usize, 0_usize, 0_usize);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                bytes += data.len();
                // Rows end in CRLF in CSV (a line break inside a cell is
                // a bare LF); chunks end at a row's end.
                lines += if ext == "csv" {
                    data.windows(2).filter(|w| w == b"\r\n").count()
                } else {
                    data.iter().filter(|b| **b == b'\n').count()
                };
                chunks += 1;
            }
        }
        let took = started.elapsed();
        let after = peak_rss_kib();
        let rows = if ext == "csv" { lines - 1 } else { lines };
        assert_eq!(rows, n);
        println!(
            "export.{ext}: {n} runs, {:.1} MB in {chunks} chunks, {:.2} s, {:.0} rows/s; peak RSS {} MiB before, {} MiB during (+{} MiB)",
            bytes as f64 / 1e6,
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            before / 1024,
            after / 1024,
            (after - before) / 1024
        );
    }
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}
