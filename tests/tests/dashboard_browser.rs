//! The dashboard in a real browser: a headless Chromium (driven through
//! chromedriver) against the dashboard served over TCP on a SQLite file.
//! Overview, the list filtered with its form, a run's page whose progress
//! bar and status badge follow the run live without a reload, the cancel
//! button, and a console without errors. Screenshots land in
//! `target/e2e-artifacts/`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tasktrail::{Dashboard, RunError};
use tasktrail_tests::browser::Browser;
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, connect};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        title: "tasktrail e2e",
        url_prefix: "/ops",
        filters: [status, task_name],
        actions: [cancel, delete],
        poll_interval: 1s,
    }
}

/// The log lines the runs of this test binary write: a global subscriber
/// (the runs run on the runtime's worker threads) with the log layer.
fn logs() -> Arc<tasktrail::logs::MemoryLogStorage> {
    static LOGS: OnceLock<Arc<tasktrail::logs::MemoryLogStorage>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = Arc::new(tasktrail::logs::MemoryLogStorage::new(10_000));
        let subscriber =
            tracing_subscriber::registry().with(tasktrail::logs::TaskLogLayer::new(logs.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
    .clone()
}

/// The text of every element matching `selector`, read in one script so
/// that a live update in between cannot leave a stale element behind.
async fn texts(browser: &Browser, selector: &str) -> Vec<String> {
    let script = format!(
        "return Array.from(document.querySelectorAll({})).map(e => e.innerText.trim());",
        serde_json::to_string(selector).unwrap()
    );
    serde_json::from_value(browser.eval(&script).await).unwrap_or_default()
}

/// The detail page's progress bar value, if there is a bar.
async fn progress_value(browser: &Browser) -> Option<f64> {
    browser
        .eval(
            "var bar = document.querySelector('[data-kind=\"progress\"] progress'); \
             return bar ? bar.value : null;",
        )
        .await
        .as_f64()
}

async fn marker(browser: &Browser) -> Value {
    browser
        .eval("return window.__e2e_marker === undefined ? null : window.__e2e_marker;")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser() {
    let began = Instant::now();
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());

    // Finished runs: three successes, two failures.
    for i in 0..3 {
        let run = tracker
            .spawn(
                "import_books",
                &[format!("books-{i}.csv")],
                move |ctx| async move {
                    ctx.progress(50.0, "half way");
                    Ok::<_, String>(120 + i)
                },
            )
            .await
            .unwrap();
        run.await.unwrap();
    }
    for reason in ["SMTP refused the login", "the mailbox is full"] {
        let run = tracker
            .spawn("send_newsletter", &(), move |_ctx| async move {
                Err::<(), _>(reason)
            })
            .await
            .unwrap();
        assert!(matches!(run.await, Err(RunError::Failed(_))));
    }

    let app = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs())
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    let base = format!("http://{addr}/ops");

    let browser = Browser::start().await;
    println!(
        "browser started after {:?}; screenshots in {}",
        began.elapsed(),
        browser.artifacts().display()
    );

    // A long run whose progress creeps up towards 99 % (a little every
    // 300 ms, never reaching it, so it still moves however slow this
    // machine is) until it is cancelled.
    let long = tracker
        .spawn("rebuild_index", &["all"], |ctx| async move {
            let mut step = 0;
            loop {
                step += 1;
                let percent = 99.0 * (1.0 - 0.97f64.powi(step));
                ctx.progress(percent, format!("step {step}"));
                tracing::info!(step, "indexing <b>shelf</b> {step}");
                tokio::select! {
                    stop = ctx.cancelled() => return Err::<(), _>(stop),
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        })
        .await
        .unwrap();
    let long_key = long.key().to_owned();
    browser
        .wait_until("the long run to be recorded in progress", || async {
            let row = task_run::Entity::find()
                .filter(task_run::Column::TaskKey.eq(&long_key))
                .one(&db)
                .await
                .unwrap()?;
            (row.status == "in_progress").then_some(())
        })
        .await;

    // 1. The overview.
    browser.goto(&format!("{base}/")).await.unwrap();
    browser.wait_for_css("section.counts").await;
    let title = browser.title().await.unwrap();
    assert!(title.contains("tasktrail e2e"), "title: {title}");
    let counts = texts(&browser, "section.counts a.count").await;
    println!("overview counts: {counts:?}");
    let failed = texts(&browser, r#"section.counts a.count[href$="status=failed"]"#).await;
    assert_eq!(failed.len(), 1, "a count of failures, linked: {counts:?}");
    assert!(failed[0].starts_with('2'), "two failures: {counts:?}");
    browser.screenshot("overview.png").await;

    // 2. The list, filtered by status through its form.
    browser.goto(&format!("{base}/runs")).await.unwrap();
    let select = browser
        .wait_for_css(r#"form.filters select[name="status"]"#)
        .await;
    select.select_by_value("failed").await.unwrap();
    browser
        .find(Locator::Css(r#"form.filters button[type="submit"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = browser
        .wait_until("the list URL to carry the status filter", || async {
            let url = browser.current_url().await.ok()?;
            url.query_pairs()
                .any(|(k, v)| k == "status" && v == "failed")
                .then_some(url)
        })
        .await;
    assert_eq!(url.path(), "/ops/runs", "{url}");
    browser.wait_for_css("table.runs tbody tr").await;
    let statuses = texts(&browser, r#"table.runs tbody tr td[data-kind="status"]"#).await;
    assert_eq!(
        statuses,
        ["failed", "failed"],
        "only the failed runs, at {url}"
    );
    let names = texts(&browser, r#"table.runs tbody tr"#).await;
    assert!(
        names.iter().all(|row| row.contains("send_newsletter")),
        "{names:?}"
    );
    let selected = browser
        .eval(r#"return document.querySelector('form.filters select[name="status"]').value;"#)
        .await;
    assert_eq!(selected, "failed", "the form shows the filter in force");
    browser.screenshot("list.png").await;

    // 3. The long run's page, reached through its link in the list.
    browser
        .find(Locator::Css("header nav a[href$=\"/runs\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let link_css = format!(r#"table.runs tbody tr a[href$="/runs/{long_key}"]"#);
    browser.wait_for_css(&link_css).await.click().await.unwrap();
    browser
        .wait_until("the run's page", || async {
            let url = browser.current_url().await.ok()?;
            url.path()
                .ends_with(&format!("/runs/{long_key}"))
                .then_some(())
        })
        .await;
    browser.wait_for_css(r#"h1 [data-kind="status"]"#).await;
    browser.eval("window.__e2e_marker = 1; return null;").await;
    let first = browser
        .wait_until("a progress bar with a value", || progress_value(&browser))
        .await;
    let later = browser
        .wait_until("the progress bar to advance", || async {
            progress_value(&browser).await.filter(|v| *v > first)
        })
        .await;
    println!("progress moved from {first:.2} to {later:.2} without a reload");
    // Its log lines arrive in the logs panel while it runs, newest first,
    // as text (the markup in them is shown, not rendered).
    let lines_css = ".run-logs table.logs tbody tr td.message";
    let shown = texts(&browser, lines_css).await.len();
    let newest = browser
        .wait_until("new log lines in the run's panel", || async {
            let lines = texts(&browser, lines_css).await;
            (lines.len() >= shown + 2).then(|| lines[0].clone())
        })
        .await;
    assert!(newest.starts_with("indexing <b>shelf</b> "), "{newest}");
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('.run-logs b').length;")
            .await,
        0,
        "no markup from a log line became an element"
    );
    assert_eq!(marker(&browser).await, 1, "the page was not reloaded");
    let status = texts(&browser, r#"h1 [data-kind="status"]"#).await;
    assert_eq!(status, ["in_progress"]);
    browser.screenshot("detail.png").await;

    // 4. Cancel from the page: the badge follows, no reload.
    let button = browser
        .wait_for_css(r#"button[data-action="cancel"]"#)
        .await;
    button.click().await.unwrap();
    browser
        .wait_until("the status badge to read `cancelled`", || async {
            let status = texts(&browser, r#"h1 [data-kind="status"]"#).await;
            (status == ["cancelled"]).then_some(())
        })
        .await;
    assert_eq!(
        marker(&browser).await,
        1,
        "cancelling did not reload the page"
    );
    browser.screenshot("cancelled.png").await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .expect("the run ends once cancelled");
    assert!(
        matches!(outcome, Err(RunError::Cancelled(_))),
        "{outcome:?}"
    );

    // 5. Bulk: tick every failed run on the filtered list, delete them,
    // confirm the count, and watch their rows leave.
    browser
        .goto(&format!("{base}/runs?status=failed"))
        .await
        .unwrap();
    browser
        .wait_for_css("#select-page")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the selection count", || async {
            let count = texts(&browser, "form#bulk .selected-count").await;
            (count == ["2 selected"]).then_some(())
        })
        .await;
    browser
        .find(Locator::Css(r#"form#bulk button[value="delete"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let question = browser
        .wait_until("the confirmation", || async {
            let text = texts(&browser, "#flash .flash-confirm p").await;
            text.into_iter().find(|t| t.contains('?'))
        })
        .await;
    assert_eq!(question, "Delete 2 selected runs?");
    browser.screenshot("bulk-confirm.png").await;
    assert_eq!(
        texts(&browser, r#"table.runs tbody tr[data-row]"#)
            .await
            .len(),
        2,
        "nothing is deleted before the confirmation"
    );
    browser
        .find(Locator::Css("#flash button[data-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the deleted rows to leave the list", || async {
            let rows = texts(&browser, r#"table.runs tbody tr[data-row]"#).await;
            let flash = texts(&browser, "#flash .flash-ok p").await;
            (rows.is_empty() && flash.iter().any(|f| f == "Deleted 2 runs.")).then_some(())
        })
        .await;
    let failed_left = task_run::Entity::find()
        .filter(task_run::Column::Status.eq("failed"))
        .all(&db)
        .await
        .unwrap();
    assert!(failed_left.is_empty(), "{failed_left:?}");
    browser.screenshot("bulk-done.png").await;

    println!(
        "dashboard_in_a_browser: the browser steps passed after {:?}",
        began.elapsed()
    );

    // 5. Nothing went wrong in the browser along the way.
    let log = browser.console_log().await;
    for entry in &log {
        println!("console: {entry}");
    }
    browser.assert_no_console_errors().await;

    browser.close().await;
    server.abort();
    println!("dashboard_in_a_browser took {:?}", began.elapsed());
}

/// The console check can fail: an inline script injected into a dashboard
/// page is refused by its Content-Security-Policy, and the refusal shows up
/// as a console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_errors_are_caught() {
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    let app = Dashboard::new(Ops::default(), tracker).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );

    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{addr}/ops/runs"))
        .await
        .unwrap();
    browser.wait_for_css("table.runs").await;
    browser
        .eval(
            "var s = document.createElement('script'); \
             s.textContent = 'window.__e2e_inline = 1'; \
             document.body.appendChild(s); return null;",
        )
        .await;
    let errors = browser
        .wait_until("the CSP violation in the console log", || async {
            let errors = browser.console_errors().await;
            errors
                .iter()
                .any(|e| e.message.contains("Content Security Policy"))
                .then_some(errors)
        })
        .await;
    for entry in &errors {
        println!("caught: {entry}");
    }
    assert_eq!(
        browser
            .eval("return window.__e2e_inline === undefined;")
            .await,
        true,
        "the inline script did not run"
    );
    browser.close().await;
    server.abort();
}
