//! Issue 16, items 3 and 4: a page per task kind (and its JSON twin, and
//! the list of kinds), the overview's kinds linking to their filtered
//! lists, and stuck runs flagged on the overview, the list and the run
//! page — on every backend, through the real router; hostile names are
//! 404 (never 5xx) and stay text. Then the kind page in a real browser.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backdate, backends, call_api, call_text, connect, find_run};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        filters: [status, task_name],
        stuck_after: 10m,
        time_zone: "+05:30",
    }
}

/// A kind whose name needs escaping in HTML and encoding in a path.
const HOSTILE_KIND: &str = "<b>\"q'</b> & ../x";

/// The `import` runs' durations in seconds: run `i` took `i` s; every
/// fifth failed.
const IMPORT_RUNS: u32 = 20;

/// The nearest-rank percentile `q` of `sorted` (index `round((n-1)·q)`),
/// as the dashboard documents it.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn seed(tracker: &task_run::Tracker, now: DateTime<Utc>) {
    for i in 1..=IMPORT_RUNS {
        let key = format!("import-{i}");
        let created = now - TimeDelta::hours(2) + TimeDelta::minutes(i64::from(i));
        let end = created + TimeDelta::seconds(i64::from(i));
        tracker
            .lifecycle(Event::create(&key).name("import").at(created))
            .await
            .unwrap();
        tracker
            .lifecycle(Event::start(&key).at(created))
            .await
            .unwrap();
        let last = if i % 5 == 0 {
            Event::fail(&key, "boom")
        } else {
            Event::complete(&key)
        };
        tracker.lifecycle(last.at(end)).await.unwrap();
    }
    for i in 1..=3 {
        let key = format!("export-{i}");
        let at = now - TimeDelta::minutes(30 + i);
        tracker
            .lifecycle(Event::create(&key).name("export").at(at))
            .await
            .unwrap();
        tracker
            .lifecycle(Event::complete(&key).at(at + TimeDelta::seconds(2)))
            .await
            .unwrap();
    }
    let at = now - TimeDelta::minutes(5);
    tracker
        .lifecycle(Event::create("hostile-1").name(HOSTILE_KIND).at(at))
        .await
        .unwrap();
    // A slow kind: its one run took an hour (p95 = 1 h).
    let at = now - TimeDelta::hours(5);
    tracker
        .lifecycle(Event::create("slow-1").name("slow").at(at))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::start("slow-1").at(at))
        .await
        .unwrap();
    tracker
        .lifecycle(Event::complete("slow-1").at(at + TimeDelta::hours(1)))
        .await
        .unwrap();
    // In progress: started 2 h ago, silent for an hour (stuck: no write).
    // Started 2 h ago, written just now: 2 h > 3 × p95 (57 s) and > 10 min
    // (stuck: too long). Started a minute ago (fine). A slow run started
    // 2 h ago, written now: 2 h < 3 × 1 h (fine).
    for (key, name, started) in [
        ("import-stale", "import", now - TimeDelta::hours(2)),
        ("import-long", "import", now - TimeDelta::hours(2)),
        ("import-fresh", "import", now - TimeDelta::minutes(1)),
        ("slow-running", "slow", now - TimeDelta::hours(2)),
    ] {
        tracker
            .lifecycle(Event::create(key).name(name).at(started))
            .await
            .unwrap();
        tracker
            .lifecycle(Event::start(key).at(started))
            .await
            .unwrap();
    }
}

async fn app(backend: Backend) -> (axum::Router, sea_orm::DatabaseConnection, impl Sized) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let now = Utc::now();
    seed(&tracker, now).await;
    backdate(&db, "import-stale", now - TimeDelta::hours(1)).await;
    for key in ["import-long", "import-fresh", "slow-running"] {
        backdate(&db, key, now).await;
    }
    let app = axum::Router::new().merge(
        Dashboard::new(Ops::default(), tracker)
            .stats_max_age(Duration::ZERO)
            .router(),
    );
    (app, db, guard)
}

async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call_api(app, Method::GET, uri, &[]).await
}

async fn get_text(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    call_text(app, Method::GET, uri, &[]).await
}

/// The HTML of the list row of run `key`.
fn row<'a>(html: &'a str, key: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-row=\"{key}\">"))
        .unwrap_or_else(|| panic!("no row {key} in {html}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

async fn kind_numbers(backend: Backend) {
    let (app, db, _guard) = app(backend).await;

    // Expected, from the seeded durations.
    let mut durations: Vec<u64> = (1..=u64::from(IMPORT_RUNS)).collect();
    durations.sort_unstable();
    let failed = (1..=IMPORT_RUNS).filter(|i| i % 5 == 0).count() as u64;
    let succeeded = u64::from(IMPORT_RUNS) - failed;

    let (status, body) = get_json(&app, "/ops/api/kinds/import").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "import");
    // 20 ended, 3 in progress.
    assert_eq!(body["runs"], u64::from(IMPORT_RUNS) + 3);
    assert_eq!(body["succeeded"], succeeded);
    assert_eq!(body["failed"], failed);
    assert_eq!(body["statuses"]["in_progress"], 3);
    let rate = body["success_rate"].as_f64().unwrap();
    assert!((rate - succeeded as f64 / (succeeded + failed) as f64).abs() < 1e-9);
    let d = &body["durations"];
    assert_eq!(d["sample"], u64::from(IMPORT_RUNS));
    assert_eq!(d["p50_ms"], nearest_rank(&durations, 0.50) * 1000, "{d}");
    assert_eq!(d["p95_ms"], nearest_rank(&durations, 0.95) * 1000, "{d}");
    assert_eq!(d["p99_ms"], nearest_rank(&durations, 0.99) * 1000, "{d}");
    // The newest run is the fresh one.
    let fresh = find_run(&db, "import-fresh").await.unwrap();
    let last: DateTime<Utc> = body["last_run"].as_str().unwrap().parse().unwrap();
    assert_eq!(last.timestamp_millis(), fresh.created_at.timestamp_millis());
    // 24 hours of the dashboard's zone (+05:30: they start at :30 UTC),
    // holding every import run (all within 3 h) and its failures.
    let hours = body["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    for h in hours {
        let start: DateTime<Utc> = h["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(start.format("%M:%S").to_string(), "30:00", "{h}");
    }
    let total: u64 = hours.iter().map(|h| h["runs"].as_u64().unwrap()).sum();
    let fails: u64 = hours.iter().map(|h| h["failed"].as_u64().unwrap()).sum();
    assert_eq!(total, u64::from(IMPORT_RUNS) + 3);
    assert_eq!(fails, failed);
    assert_eq!(body["runs_list"], "/ops/runs?task_name=import");
    // Counted just now (uncached here), in UTC with milliseconds.
    let as_of: DateTime<Utc> = body["as_of"].as_str().unwrap().parse().unwrap();
    let since = Utc::now() - as_of;
    assert!(
        since >= TimeDelta::zero() && since < TimeDelta::seconds(30),
        "{body}"
    );

    // The page: the same numbers, an SVG with one bar per hour, labelled
    // in the zone.
    let (status, html) = get_text(&app, "/ops/kinds/import").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("<dd data-stat=\"runs\">{}</dd>", IMPORT_RUNS + 3)));
    assert!(
        html.contains("<dd data-stat=\"success-rate\">80.0%</dd>"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "<dd data-stat=\"p95\">{}.0 s</dd>",
        nearest_rank(&durations, 0.95)
    )));
    assert!(html.contains(&format!(
        "<dd data-stat=\"p99\">{}.0 s</dd>",
        nearest_rank(&durations, 0.99)
    )));
    // When they were counted, in the dashboard's zone (+05:30).
    let counted = html
        .split("<time data-stat=\"counted-at\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no counting time: {html}"));
    let counted = chrono::NaiveDateTime::parse_from_str(counted, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{counted:?}: {e}"));
    let since = (Utc::now() + TimeDelta::minutes(330)).naive_utc() - counted;
    assert!(
        since >= TimeDelta::seconds(-1) && since < TimeDelta::seconds(30),
        "counted at {counted} (+05:30)"
    );
    let svg_start = html.find("<svg").expect("an SVG chart");
    let svg = &html[svg_start..html[svg_start..].find("</svg>").unwrap() + svg_start];
    assert!(svg.contains("role=\"img\"") && svg.contains("aria-label=\"Runs of import per hour"));
    assert!(svg.contains("<title>"));
    assert_eq!(svg.matches("<rect class=\"bar\"").count(), 24);
    assert!(svg.matches("<rect class=\"bar-failed\"").count() >= 1);
    assert!(!svg.contains("style="), "no inline style under the CSP");
    let local_hour = (Utc::now() + TimeDelta::minutes(330))
        .format("%H:00")
        .to_string();
    assert!(
        svg.contains(&format!(">{local_hour}</text>")),
        "the last hour labelled {local_hour} in +05:30: {svg}"
    );
    assert!(html.contains("href=\"/ops/runs?task_name=import\""));

    // The list of kinds.
    let (status, body) = get_json(&app, "/ops/api/kinds").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    let mut want = vec![HOSTILE_KIND, "export", "import", "slow"];
    want.sort_unstable();
    assert_eq!(names, want);
    assert_eq!(body["truncated"], false);
}

async fn overview_links_to_filtered_lists(backend: Backend) {
    let (app, _db, _guard) = app(backend).await;
    let (status, html) = get_text(&app, "/ops/").await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["import", "export", "slow"] {
        assert!(html.contains(&format!(
            "<a class=\"kind\" href=\"/ops/kinds/{kind}\">{kind}</a>"
        )));
        assert!(html.contains(&format!("href=\"/ops/runs?task_name={kind}\"")));
    }
    // The hostile name: escaped text, a percent-encoded link.
    assert!(!html.contains(HOSTILE_KIND));
    assert!(
        html.contains("&#60;b&#62;&#34;q&#39;&#60;/b&#62; &#38; ../x")
            || html.contains("&lt;b&gt;"),
        "{html}"
    );
    let encoded = "%3Cb%3E%22q%27%3C%2Fb%3E%20%26%20..%2Fx";
    assert!(
        html.contains(&format!("href=\"/ops/kinds/{encoded}\"")),
        "{html}"
    );
    let (status, page) = get_text(&app, &format!("/ops/kinds/{encoded}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains(HOSTILE_KIND));
    let (_, body) = get_json(&app, &format!("/ops/api/kinds/{encoded}")).await;
    assert_eq!(body["name"], HOSTILE_KIND);
    assert_eq!(body["runs"], 1);

    // A kind's list shows that kind only.
    let (status, list) = get_text(&app, "/ops/runs?task_name=export").await;
    assert_eq!(status, StatusCode::OK);
    let rows = list.matches("<tr data-row=").count();
    assert_eq!(rows, 3, "{list}");
    for i in 1..=3 {
        row(&list, &format!("export-{i}"));
    }
    assert!(!list.contains("data-row=\"import-"));
}

async fn stuck_runs_are_flagged(backend: Backend) {
    let (app, _db, _guard) = app(backend).await;

    // The overview: a count and a link.
    let (_, html) = get_text(&app, "/ops/").await;
    assert!(
        html.contains("<a href=\"/ops/runs?stuck=true\"><strong>2</strong> stuck runs</a>"),
        "{html}"
    );

    // The list: a badge on the stuck rows only.
    let (_, list) = get_text(&app, "/ops/runs").await;
    for key in ["import-stale", "import-long"] {
        assert!(row(&list, key).contains("badge stuck"), "{key}");
    }
    for key in ["import-fresh", "slow-running", "import-3"] {
        assert!(!row(&list, key).contains("badge stuck"), "{key}");
    }
    // The filter, on the page and the API.
    let (status, list) = get_text(&app, "/ops/runs?stuck=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.matches("<tr data-row=").count(), 2, "{list}");
    assert!(list.contains("name=\"stuck\" value=\"true\""));
    let (status, body) = get_json(&app, "/ops/api/runs?stuck=true").await;
    assert_eq!(status, StatusCode::OK);
    let mut keys: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["import-long", "import-stale"]);
    let (_, body) = get_json(&app, "/ops/api/runs?stuck=false&limit=100").await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 29);
    for bad in ["yes", "1", "", "%00", "true&stuck=true"] {
        let (status, body) = get_json(&app, &format!("/ops/api/runs?stuck={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("stuck") || bad == "%00", "{body}");
    }

    // The run pages: a notice saying why.
    let (_, page) = get_text(&app, "/ops/runs/import-stale").await;
    assert!(page.contains("class=\"notice stuck\""));
    assert!(page.contains("no write for"));
    let (_, page) = get_text(&app, "/ops/runs/import-long").await;
    assert!(
        page.contains("three times its kind&#39;s p95") || page.contains("three times its kind"),
        "{page}"
    );
    for key in ["import-fresh", "slow-running", "import-1"] {
        let (_, page) = get_text(&app, &format!("/ops/runs/{key}")).await;
        assert!(!page.contains("notice stuck"), "{key}");
    }
}

async fn hostile_names_are_not_kinds(backend: Backend) {
    let (app, _db, _guard) = app(backend).await;
    let long = "a".repeat(5_000);
    let names = [
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%22quoted%22%20'single'",
        "%00",
        "import%00",
        "..%2F..%2Fetc%2Fpasswd",
        "%FF%FE",
        "IMPORT",
        "import%20",
        long.as_str(),
        "%25",
    ];
    for name in names {
        let (status, html) = get_text(&app, &format!("/ops/kinds/{name}")).await;
        assert!(status.is_client_error(), "{name}: {status} {html}");
        let (status, body) = get_json(&app, &format!("/ops/api/kinds/{name}")).await;
        assert!(status.is_client_error(), "{name}: {status}");
        assert!(body["error"].is_string(), "{name}: {body}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                body["error"].as_str().unwrap().contains("no task kind"),
                "{body}"
            );
            assert!(body["error"].as_str().unwrap().chars().count() < 200);
        }
    }
    let (status, html) = get_text(&app, "/ops/kinds/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("no task kind is named `<script>`"),
        "a plain-text page: {html}"
    );
}

backends!(
    kind_numbers,
    overview_links_to_filtered_lists,
    stuck_runs_are_flagged,
    hostile_names_are_not_kinds
);

/// The overview in Chromium: follow a kind's link to its page, whose SVG
/// chart has a size; no console errors; a screenshot (`kind.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_page_in_a_browser() {
    use fantoccini::Locator;
    let (app, _db, _guard) = app(Backend::SqliteFile).await;
    let (addr, server) = crate::serve(app).await;
    let browser = tasktrail_tests::browser::Browser::start().await;
    let base = format!("http://{addr}/ops");
    browser.goto(&format!("{base}/")).await.unwrap();
    browser
        .wait_for_css("a.kind[href='/ops/kinds/import']")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for_css("figure.kind-chart svg").await;
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/ops/kinds/import"
    );
    let size = browser
        .eval(
            "var r = document.querySelector('figure.kind-chart svg').getBoundingClientRect(); \
             var bars = document.querySelectorAll('figure.kind-chart rect.bar'); \
             var tall = Array.from(bars).filter(b => b.getBoundingClientRect().height > 0).length; \
             return [r.width, r.height, bars.length, tall];",
        )
        .await;
    let size: Vec<f64> = serde_json::from_value(size).unwrap();
    assert!(
        size[0] > 100.0 && size[1] > 50.0,
        "the chart has a size: {size:?}"
    );
    assert_eq!(size[2], 24.0);
    assert!(size[3] >= 1.0, "some bars are drawn: {size:?}");
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(heading.contains("import"), "{heading}");
    // The link to the kind's runs.
    browser
        .find(Locator::Css("a.kind-runs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for_css("table.runs").await;
    assert_eq!(
        browser.current_url().await.unwrap().query(),
        Some("task_name=import")
    );
    browser.goto(&format!("{base}/kinds/import")).await.unwrap();
    browser.wait_for_css("figure.kind-chart svg").await;
    browser.screenshot("kind.png").await;
    browser.assert_no_console_errors().await;
    browser.close().await;
    server.abort();
}

/// Seeds `n` ended runs of 20 kinds (one `INSERT … SELECT` of a generated
/// series) over the last 24 hours.
async fn seed_many(db: &sea_orm::DatabaseConnection, backend: Backend, n: u32) {
    use sea_orm::ConnectionTrait;
    let columns = "(task_key, task_name, status, cleaned_up, created_at, updated_at, started_at, completed_at)";
    let sql = match backend {
        Backend::Postgres => format!(
            "INSERT INTO task_runs {columns} SELECT 'k' || i, 'kind-' || (i % 20), \
             CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END, false, \
             now() - (i % 86400) * interval '1 second', now(), \
             now() - (i % 86400) * interval '1 second', \
             now() - (i % 86400) * interval '1 second' + (i % 60) * interval '1 second' \
             FROM generate_series(1, {n}) AS i"
        ),
        Backend::MariaDb => format!(
            "SET STATEMENT max_recursive_iterations = 10000000 FOR INSERT INTO task_runs {columns} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL \
             SELECT i + 1 FROM s WHERE i < {n}) SELECT CONCAT('k', i), CONCAT('kind-', i % 20), \
             IF(i % 10 = 0, 'failed', 'success'), 0, NOW(6) - INTERVAL (i % 86400) SECOND, NOW(6), \
             NOW(6) - INTERVAL (i % 86400) SECOND, \
             NOW(6) - INTERVAL (i % 86400) SECOND + INTERVAL (i % 60) SECOND FROM s"
        ),
        _ => format!(
            "INSERT INTO task_runs {columns} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL \
             SELECT i + 1 FROM s WHERE i < {n}) SELECT 'k' || i, 'kind-' || (i % 20), \
             CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END, 0, \
             strftime('%Y-%m-%d %H:%M:%f000 +00:00', 'now', '-' || (i % 86400) || ' seconds'), \
             strftime('%Y-%m-%d %H:%M:%f000 +00:00', 'now'), \
             strftime('%Y-%m-%d %H:%M:%f000 +00:00', 'now', '-' || (i % 86400) || ' seconds'), \
             strftime('%Y-%m-%d %H:%M:%f000 +00:00', 'now', '-' || (i % 86400 - i % 60) || ' seconds') \
             FROM s"
        ),
    };
    db.execute_unprepared(&sql).await.expect("seed the runs");
}

/// The kind reads on 200,000 runs, uncached (`stats_max_age` zero): the
/// distinct names, one kind's numbers, the overview with 20 kinds. Prints
/// the median of 5 timings (the overview: one); run with `--ignored
/// --nocapture`.
async fn kinds_on_a_big_table(backend: Backend) {
    let (db, _guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    seed_many(&db, backend, 200_000).await;
    eprintln!(
        "{backend:?}: seeded 200,000 runs in {:?}",
        started.elapsed()
    );
    let tracker = task_run::Tracker::new(db.clone());
    let app = axum::Router::new().merge(
        Dashboard::new(Ops::default(), tracker)
            .stats_max_age(Duration::ZERO)
            .router(),
    );
    let uris: &[&str] = if std::env::var_os("KINDS_QUICK").is_some() {
        &["/ops/api/kinds/kind-3"]
    } else {
        &["/ops/api/kinds", "/ops/api/kinds/kind-3", "/ops/"]
    };
    for uri in uris {
        let mut times = Vec::new();
        let rounds = if *uri == "/ops/" { 1 } else { 5 };
        for _ in 0..rounds {
            let started = std::time::Instant::now();
            let (status, body) = get_text(&app, uri).await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{body}");
            if *uri == "/ops/api/kinds" {
                assert_eq!(body.matches("\"name\"").count(), 20, "{body}");
            }
        }
        times.sort();
        eprintln!(
            "{backend:?}: GET {uri} uncached: median {:?} (debug build)",
            times[times.len() / 2]
        );
    }
}

mod big {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: 200,000 rows per backend"]
    async fn sqlite_file() {
        kinds_on_a_big_table(Backend::SqliteFile).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: 200,000 rows per backend"]
    async fn postgres() {
        kinds_on_a_big_table(Backend::Postgres).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: 200,000 rows per backend"]
    async fn mariadb() {
        kinds_on_a_big_table(Backend::MariaDb).await;
    }
}
