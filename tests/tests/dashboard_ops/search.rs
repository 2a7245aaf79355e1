//! Search routed to what answers it, and the time-range filter, through the
//! real router on every backend: a key and a key prefix through the key
//! index, a part of a task name through the names, any other term through
//! the text index (`schema::create_search_index`) or, without it, through
//! the newest-runs window, which the page and the API say. The routes must
//! give the runs a plain scan would, within what they promise; the time
//! range must hold on the list, the API and its links; hostile input is a
//! 4xx.

use axum::http::{Method, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, call_api, call_text, connect};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        filters: [status, task_name],
        page_size: 10,
    }
}

tasktrail::dashboard! {
    struct Zoned<task_run::Entity> {
        url_prefix: "/zoned",
        filters: [status, created_at],
        time_zone: "+02:00",
    }
}

/// 40 runs, one a minute from `t0`: keys `srch-000`…`srch-039`, three task
/// names, messages with a common word (`rows`) and, in run 7 only, a rare
/// one (`quokka`).
const RUNS: i64 = 40;

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap()
}

fn name_of(i: i64) -> &'static str {
    ["import_books", "send_newsletter", "reindex"][(i % 3) as usize]
}

fn message_of(i: i64) -> String {
    if i == 7 {
        "Found a Quokka in the rows".to_owned()
    } else {
        format!("copied {i} rows")
    }
}

async fn seed(tracker: &task_run::Tracker) {
    for i in 0..RUNS {
        let key = format!("srch-{i:03}");
        let at = t0() + Duration::minutes(i);
        tracker
            .lifecycle(
                Event::create(&key)
                    .name(name_of(i))
                    .message(message_of(i))
                    .at(at),
            )
            .await
            .unwrap();
    }
}

async fn keys(app: &axum::Router, uri: &str) -> (Vec<String>, Value) {
    let (status, body) = call_api(app, Method::GET, uri, &[]).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    let keys = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap().to_owned())
        .collect();
    (keys, body)
}

/// The seeded keys, newest first, of the runs `pick` selects.
fn expected(pick: impl Fn(i64) -> bool) -> Vec<String> {
    (0..RUNS)
        .rev()
        .filter(|i| pick(*i))
        .map(|i| format!("srch-{i:03}"))
        .collect()
}

async fn routes(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    seed(&tracker).await;
    // A window of 25 runs: the 15 oldest are outside it.
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .search_window(25)
        .router();
    let limit = "&limit=100";

    // An exact key: that run, through the key index.
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=srch-007{limit}")).await;
    assert_eq!(found, ["srch-007"]);
    assert_eq!(body["search"]["route"], "key");
    assert_eq!(body["search"]["bounded"], false);
    // A prefix: every run whose key starts with it, the old ones too.
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=srch-00{limit}")).await;
    assert_eq!(found, expected(|i| i < 10));
    assert_eq!(body["search"]["route"], "key");
    // Keys are case-sensitive: no run has this key, and the term is then
    // searched as text (in the window: no text index yet).
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=SRCH-007{limit}")).await;
    assert_eq!(body["search"]["route"], "window");
    assert!(found.is_empty(), "{found:?}");

    // Part of a task name: that kind's runs, all of them.
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=NEWSLETTER{limit}")).await;
    assert_eq!(found, expected(|i| i % 3 == 1));
    assert_eq!(body["search"]["route"], "name");
    // A term in two names: both.
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=e{limit}")).await;
    assert_eq!(found, expected(|i| i % 3 != 0), "`e` is in two names");
    assert_eq!(
        body["search"]["note"],
        "Runs of the tasks “reindex”, “send_newsletter”."
    );
    // With a filter and paging: the same runs, page by page.
    let mut pages = Vec::new();
    let mut uri = "/ops/api/runs?q=reindex&limit=4".to_owned();
    loop {
        let (found, body) = keys(&app, &uri).await;
        pages.extend(found);
        match body["next"].as_str() {
            Some(next) => uri = format!("/ops/api/runs?q=reindex&limit=4&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, expected(|i| i % 3 == 2));

    // A word of the messages without the text index: the newest 25 runs
    // only, and the API says so.
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=rows{limit}")).await;
    assert_eq!(found, expected(|i| i >= RUNS - 25));
    assert_eq!(body["search"]["route"], "window");
    assert_eq!(body["search"]["bounded"], true);
    let note = body["search"]["note"].as_str().unwrap();
    assert!(note.contains("newest 25 runs"), "{note}");
    // The rare word is in run 7, outside the window: not found.
    let (found, _) = keys(&app, &format!("/ops/api/runs?q=quokka{limit}")).await;
    assert!(found.is_empty());
    // The list page says it too, and never counts past the page.
    let (status, html) = call_text(&app, Method::GET, "/ops/runs?q=rows", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Only the newest 25 runs were searched"),
        "{html}"
    );
    assert!(html.contains("10+ runs"), "the page of 10 has more");

    // With the text index (where the backend has one), every run is
    // searched, the rare word found and the common one too.
    tasktrail::schema::create_search_index::<task_run::Model>(&db)
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .search_window(25)
        .router();
    let (found, body) = keys(&app, &format!("/ops/api/runs?q=quokka{limit}")).await;
    if backend == Backend::MariaDb {
        // MySQL / MariaDB: no substring index; still the window.
        assert_eq!(body["search"]["route"], "window");
        assert!(found.is_empty());
    } else {
        assert_eq!(body["search"]["route"], "text_index", "{body}");
        assert_eq!(found, ["srch-007"]);
        let (found, _) = keys(&app, &format!("/ops/api/runs?q=rows{limit}")).await;
        assert_eq!(found, expected(|_| true));
        // Index rows follow writes: a new message is found, the old one
        // no longer.
        tracker
            .lifecycle(Event::progress("srch-003", 10.0).message("a wombat appeared"))
            .await
            .unwrap();
        let (found, _) = keys(&app, &format!("/ops/api/runs?q=wombat{limit}")).await;
        assert_eq!(found, ["srch-003"]);
        let (found, _) = keys(&app, &format!("/ops/api/runs?q=copied%203%20rows{limit}")).await;
        assert!(found.is_empty(), "{found:?}");
        // A deleted run leaves the index.
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        task_run::Entity::delete_many()
            .filter(task_run::Column::TaskKey.eq("srch-007"))
            .exec(&db)
            .await
            .unwrap();
        let (found, body) = keys(&app, &format!("/ops/api/runs?q=quokka{limit}")).await;
        assert!(found.is_empty(), "{body}");
    }
    // Two characters: not something a trigram index can look up.
    let (_, body) = keys(&app, &format!("/ops/api/runs?q=ow{limit}")).await;
    assert_eq!(body["search"]["route"], "window");
    // Wildcards are text.
    let (found, _) = keys(&app, &format!("/ops/api/runs?q=%25%25%25{limit}")).await;
    assert!(found.is_empty());
    let (found, _) = keys(&app, &format!("/ops/api/runs?q=_{limit}")).await;
    assert_eq!(
        found,
        expected(|i| i % 3 != 2 && (backend == Backend::MariaDb || i != 7)),
        "`_` is in two names, as text (run 7 is deleted where there is an index)"
    );
}

async fn time_ranges(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    seed(&tracker).await;
    // Two recent runs, for the relative ranges.
    for (key, ago) in [("recent-1", 30), ("recent-2", 3 * 60)] {
        tracker
            .lifecycle(
                Event::create(key)
                    .name("reindex")
                    .at(Utc::now() - Duration::minutes(ago)),
            )
            .await
            .unwrap();
    }
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let zoned = Dashboard::new(Zoned::default(), tracker.clone()).router();

    let (found, _) = keys(&app, "/ops/api/runs?since=1h").await;
    assert_eq!(found, ["recent-1"]);
    let (found, _) = keys(&app, "/ops/api/runs?since=24h").await;
    assert_eq!(found, ["recent-1", "recent-2"]);
    let (found, _) = keys(&app, "/ops/api/runs?since=7d&q=reindex&limit=100").await;
    assert_eq!(found, ["recent-1", "recent-2"]);
    // From–to, RFC 3339: [from, to).
    let (found, _) = keys(
        &app,
        "/ops/api/runs?from=2026-11-20T08:05:00Z&to=2026-11-20T08:08:00Z",
    )
    .await;
    assert_eq!(found, ["srch-007", "srch-006", "srch-005"]);
    // A local time in the dashboard's zone (+02:00): 10:05 there is 08:05 UTC.
    let (found, _) = keys(
        &zoned,
        "/zoned/api/runs?from=2026-11-20T10:05&to=2026-11-20T10:07",
    )
    .await;
    assert_eq!(found, ["srch-006", "srch-005"]);
    // A date alone as `to` takes in that day; open-ended ranges.
    let (found, _) = keys(&app, "/ops/api/runs?to=2026-11-20&limit=100").await;
    assert_eq!(found.len(), RUNS as usize);
    let (found, _) = keys(&app, "/ops/api/runs?from=2026-11-20T08:38:00Z&limit=100").await;
    assert_eq!(found, ["recent-1", "recent-2", "srch-039", "srch-038"]);
    // Paging keeps the range.
    let (found, body) = keys(&app, "/ops/api/runs?to=2026-11-20&limit=15").await;
    assert_eq!(found.len(), 15);
    let next = body["next"].as_str().unwrap();
    let (more, _) = keys(
        &app,
        &format!("/ops/api/runs?to=2026-11-20&limit=100&after={next}"),
    )
    .await;
    assert_eq!(more.len(), RUNS as usize - 15);
    assert!(more.iter().all(|k| k.starts_with("srch-")));

    // The page: the preset kept in the form, the zone named, links keep it.
    let (status, html) = call_text(&app, Method::GET, "/ops/runs?since=24h", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<option value="24h" selected>"#), "{html}");
    assert!(html.contains("Times are in UTC."));
    assert!(html.contains("recent-2") && !html.contains("srch-001"));
    assert!(
        html.contains("since=24h&#38;sort=task_key"),
        "the sort links keep the range"
    );
    let (_, html) = call_text(&zoned, Method::GET, "/zoned/runs", &[]).await;
    assert!(html.contains("Times are in UTC+02:00."), "{html}");
    // The form's "from – to" preset sends the times; another preset wins
    // over times left in the form.
    let (status, html) = call_text(
        &app,
        Method::GET,
        "/ops/runs?since=custom&from=2026-11-20T08:05&to=2026-11-20T08:06",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("srch-005") && !html.contains("srch-006"));
    let (status, html) = call_text(
        &app,
        Method::GET,
        "/ops/runs?since=1h&from=2026-11-20T08:05&to=",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("recent-1") && !html.contains("srch-005"));

    // `filters: [created_at]` makes the creation time the range's field;
    // a value filter on it is refused with the way to do it.
    let (status, body) = call_api(
        &zoned,
        Method::GET,
        "/zoned/api/runs?created_at=2026-11-20",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("since=24h"),
        "{body}"
    );
}

async fn hostile_input(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    seed(&tracker).await;
    tasktrail::schema::create_search_index::<task_run::Model>(&db)
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    for (query, message) in [
        ("since=0h", "between 1 minute"),
        ("since=-5h", "between 1 minute"),
        ("since=5y", "not a span"),
        ("since=h", "not a span"),
        ("since=99999999999999999999d", "not a span"),
        ("since=4000d", "between 1 minute"),
        ("since=1h&since=2h", "more than once"),
        ("since=1h&from=2026-11-20", "not both"),
        ("from=yesterday", "not a time"),
        ("from=2026-13-40", "not a time"),
        ("to=2026-11-20T25:00", "not a time"),
        ("from=2026-11-21&to=2026-11-20", "later than `from`"),
        (
            "from=2026-11-20&to=2026-11-20T00:00:00Z",
            "later than `from`",
        ),
        ("created_at=1h", "since=24h"),
    ] {
        let (status, body) =
            call_api(&app, Method::GET, &format!("/ops/api/runs?{query}"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{query}: {error}");
        // The page's form sends its preset with the times left in it: the
        // preset wins there.
        if !query.contains("not both") && message != "not both" {
            let (status, html) =
                call_text(&app, Method::GET, &format!("/ops/runs?{query}"), &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {html}");
        }
    }
    // Search terms that are SQL, FTS5 syntax, quotes, NULs, very long,
    // Unicode: answered, never a 5xx.
    for q in [
        "\"",
        "\"\"",
        "' OR 1=1 --",
        "NEAR(a b)",
        "a* OR b",
        "col:val",
        "^start",
        "\\",
        "%",
        "_",
        "ü",
        "𝄞𝄞𝄞",
        "a\"b\"c",
        "-",
        "*",
        "()",
        "AND",
        "{x y}",
        "\u{10FFFF}",
        "srch-00\u{10FFFF}",
        "x\u{0}y",
    ] {
        let uri = format!(
            "/ops/api/runs?q={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let (status, body) = call_api(&app, Method::GET, &uri, &[]).await;
        assert!(
            status.is_success() || status.is_client_error(),
            "{q:?}: {status} {body}"
        );
        let page = uri.replace("/api/runs", "/runs");
        let (status, html) = call_text(&app, Method::GET, &page, &[]).await;
        assert!(
            status.is_success() || status.is_client_error(),
            "{q:?}: {status}"
        );
        if status.is_success() {
            assert!(!html.contains("<script>alert"), "escaped");
        }
    }
    let long = "a".repeat(201);
    let (status, _) = call_api(&app, Method::GET, &format!("/ops/api/runs?q={long}"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, html) = call_text(
        &app,
        Method::GET,
        "/ops/runs?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert(1)"), "the term is escaped");
}

backends!(routes, time_ranges, hostile_input);

/// The list in a browser: a search typed into the box (with `/`) and sent
/// with Enter answers through the task names and says so; the time preset
/// "from – to" shows its two inputs, which narrow the list; "last hour"
/// hides them and keeps only the recent run; the URL carries the state; no
/// console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_time_range_in_a_browser() {
    use fantoccini::Locator;
    use fantoccini::key::Key;
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    seed(&tracker).await;
    tracker
        .lifecycle(
            Event::create("recent-1")
                .name("reindex")
                .at(Utc::now() - Duration::minutes(20)),
        )
        .await
        .unwrap();
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let (addr, server) = crate::serve(app).await;
    let browser = tasktrail_tests::browser::Browser::start().await;
    let base = format!("http://{addr}/ops");
    browser.goto(&format!("{base}/runs")).await.unwrap();
    browser.wait_for_css("form.filters").await;

    // `/` focuses the search box; type and send.
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("/")
        .await
        .unwrap();
    let search = browser.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("newsletter").await.unwrap();
    search.send_keys(&(Key::Enter).to_string()).await.unwrap();
    let note = browser
        .wait_until("the search's note", || async {
            let text = browser
                .eval("var n = document.querySelector('.search-note'); return n ? n.innerText : null;")
                .await;
            text.as_str().map(str::to_owned)
        })
        .await;
    assert!(note.contains("send_newsletter"), "{note}");
    let keys: Vec<String> = serde_json::from_value(
        browser
            .eval("return Array.from(document.querySelectorAll('tr[data-row]')).map(r => r.dataset.row);")
            .await,
    )
    .unwrap();
    assert_eq!(keys, expected(|i| i % 3 == 1)[..10].to_vec());
    browser.screenshot("search.png").await;

    // The custom range: its inputs appear only for "from – to".
    browser.goto(&format!("{base}/runs")).await.unwrap();
    assert!(custom_hidden(&browser).await, "no custom range by default");
    browser
        .eval(
            "var s = document.querySelector('select.time-preset'); s.value = 'custom'; \
             s.dispatchEvent(new Event('change')); return null;",
        )
        .await;
    assert!(!custom_hidden(&browser).await, "the from / to inputs show");
    browser
        .eval(
            "document.querySelector('input[name=from]').value = '2026-11-20T08:05'; \
             document.querySelector('input[name=to]').value = '2026-11-20T08:08'; \
             document.querySelector('form.filters button[type=submit]').click(); return null;",
        )
        .await;
    browser
        .wait_until("the range's runs", || async {
            let keys: Vec<String> = serde_json::from_value(
                browser
                    .eval("return Array.from(document.querySelectorAll('tr[data-row]')).map(r => r.dataset.row);")
                    .await,
            )
            .unwrap_or_default();
            (keys == ["srch-007", "srch-006", "srch-005"]).then_some(())
        })
        .await;
    let url = browser.current_url().await.unwrap();
    let query = url.query().unwrap_or_default().to_owned();
    assert!(query.contains("from=2026-11-20T08%3A05"), "{query}");
    assert!(
        !custom_hidden(&browser).await,
        "the custom range stays open"
    );
    browser.screenshot("time-range.png").await;

    // "Last hour": the inputs hide, the preset wins over the times left.
    browser
        .eval(
            "var s = document.querySelector('select.time-preset'); s.value = '1h'; \
             s.dispatchEvent(new Event('change')); \
             document.querySelector('form.filters button[type=submit]').click(); return null;",
        )
        .await;
    browser
        .wait_until("the last hour's run", || async {
            let keys: Vec<String> = serde_json::from_value(
                browser
                    .eval("return Array.from(document.querySelectorAll('tr[data-row]')).map(r => r.dataset.row);")
                    .await,
            )
            .unwrap_or_default();
            (keys == ["recent-1"]).then_some(())
        })
        .await;
    assert!(custom_hidden(&browser).await);
    let footer = browser
        .find(Locator::Css("footer.zone"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(footer, "Times are in UTC.");
    browser.assert_no_console_errors().await;
    browser.close().await;
    server.abort();
}

/// Whether the list's custom time range (from / to) is hidden.
async fn custom_hidden(browser: &tasktrail_tests::browser::Browser) -> bool {
    browser
        .eval("return document.querySelector('.time-custom').hidden;")
        .await
        .as_bool()
        .expect("the custom range is on the page")
}
