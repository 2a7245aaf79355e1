//! The dashboard in a real browser: a headless Chromium (driven through
//! chromedriver) against the dashboard served over TCP on a SQLite file.
//! Overview, the list filtered with its form, a run's page whose progress
//! bar and status badge follow the run live without a reload, the cancel
//! button, and a console without errors; then the same dashboard behind a
//! login form, full of hostile text that must stay text. Screenshots land
//! in `target/e2e-artifacts/`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tasktrail::{Dashboard, RunError};
use tasktrail_tests::browser::{Browser, LogEntry};
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

/// Serves `app` over TCP on a free loopback port, with the peer's address.
async fn serve(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    (addr, server)
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
                    ctx.progress_with_message(50.0, "half way");
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
    let (addr, server) = serve(app).await;
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
                ctx.progress_with_message(percent, format!("step {step}"));
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
    let (addr, server) = serve(app).await;

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

/// Markup and script in every place a run's data can hold text. Executed,
/// each part would set `window.__xss`; rendered as markup, it would leave an
/// `img`, a `script`, an `svg` or a `javascript:` link in the page.
const XSS: &str = r#"<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> "><svg onload=window.__xss=3> javascript:window.__xss=4"#;
/// What the pages must show, as text, wherever the payload is.
const XSS_TEXT: &str = r#"<img src=x onerror="window.__xss=1">"#;
/// A run key with markup and every character a URL gives a meaning to: it
/// goes into links, `hx-post` URLs, `data-run` attributes, the selectors
/// live updates build and the flash an action answers.
const HOSTILE_KEY: &str =
    r#"rebuild/"><img src=x onerror="window.__xss=9"><svg onload=window.__xss=10> ?x=1&y=%2F#z"#;

/// What the current page made of the payload: whether any of it ran, the
/// elements it could have created, and whether its text is visible.
async fn payload_effects(browser: &Browser) -> Value {
    let script = format!(
        "return {{ \
           xss: window.__xss === undefined ? null : String(window.__xss), \
           injected: document.querySelectorAll( \
             'img[src=\"x\"], body script:not([src]), [onerror], [onload], \
              a[href^=\"javascript:\"], [src^=\"javascript:\"], form[action^=\"javascript:\"]').length, \
           stray_svg: document.querySelectorAll('svg').length \
             - document.querySelectorAll('figure.chart > svg').length, \
           text: document.body.innerText.includes({}) \
         }};",
        serde_json::to_string(XSS_TEXT).unwrap()
    );
    browser.eval(&script).await
}

/// Asserts that the payload on the current page is shown as text and
/// nothing else.
async fn assert_inert(browser: &Browser, page: &str) {
    let effects = payload_effects(browser).await;
    println!("{page}: {effects}");
    assert_eq!(effects["xss"], Value::Null, "a payload ran on {page}");
    assert_eq!(
        effects["injected"], 0,
        "payload markup became elements on {page}"
    );
    assert_eq!(effects["stray_svg"], 0, "an svg from the payload on {page}");
    assert_eq!(
        effects["text"], true,
        "the payload is shown as text on {page}"
    );
}

/// Whether `entry` is Chromium's report of the login form's answer to a
/// wrong password: the page comes with status 401, and Chromium logs every
/// document loaded with an error status as a failed resource.
fn is_refused_login(entry: &LogEntry, addr: SocketAddr) -> bool {
    entry.source == "network"
        && entry
            .message
            .starts_with(&format!("http://{addr}/ops/login "))
        && entry.message.contains("status of 401")
}

async fn path_and_query(browser: &Browser) -> Option<(String, Vec<(String, String)>)> {
    let url = browser.current_url().await.ok()?;
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    Some((url.path().to_owned(), query.collect()))
}

/// Waits until the browser is on the login page, sent there from `from`.
async fn wait_for_login(browser: &Browser, from: &str) {
    let (_, query) = browser
        .wait_until("the login page", || async {
            path_and_query(browser)
                .await
                .filter(|(path, _)| path == "/ops/login")
        })
        .await;
    if !from.is_empty() {
        assert!(
            query.iter().any(|(k, v)| k == "next" && v == from),
            "the login page carries next={from}: {query:?}"
        );
    }
    browser
        .wait_for_css("form.login input[name=\"password\"]")
        .await;
}

async fn log_in(browser: &Browser, username: &str, password: &str) {
    let user = browser
        .wait_for_css("form.login input[name=\"username\"]")
        .await;
    user.clear().await.unwrap();
    user.send_keys(username).await.unwrap();
    let pass = browser
        .find(Locator::Css("form.login input[name=\"password\"]"))
        .await
        .unwrap();
    pass.clear().await.unwrap();
    pass.send_keys(password).await.unwrap();
    browser
        .find(Locator::Css("form.login button[type=\"submit\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// A dashboard behind a login form, full of hostile text: log in (wrongly,
/// then rightly), see every page show the payload as text and run none of
/// it, cancel a run through htmx with the session's CSRF token, log out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_act_logout_with_hostile_data() {
    use tasktrail::auth::{Role, SessionKey, SimpleAuth, hash_password};
    use tasktrail::logs::{LogLevel, LogRecord, LogStorage};

    let began = Instant::now();
    let logs = logs();
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());

    // The hostile run: the payload in its name, first and last message,
    // user label, arguments, result and log lines (emitted in the run, and
    // appended with a hostile target and field).
    let hostile = tracker
        .begin(format!("import {XSS}"))
        .actor(&format!("mallory {XSS}"))
        .args(&serde_json::json!({ "file": XSS, "href": "javascript:window.__xss=5" }))
        .message(format!("queued {XSS}"))
        .spawn(|ctx| async move {
            tracing::warn!(payload = XSS, "importing {XSS}");
            tracing::info!("see javascript:window.__xss=6");
            ctx.message(format!("done {XSS}"));
            Ok::<_, String>(
                serde_json::json!({ "summary": XSS, "link": "javascript:window.__xss=7" }),
            )
        })
        .await
        .unwrap();
    let hostile_key = hostile.key().to_owned();
    hostile.await.unwrap();
    logs.append(
        LogRecord::new(LogLevel::Error, format!("appended {XSS}"))
            .in_run(&hostile_key)
            .target(format!("target {XSS}"))
            .field("href", "javascript:window.__xss=8")
            .field("html", XSS),
    );
    let row = task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(&hostile_key))
        .one(&db)
        .await
        .unwrap()
        .expect("the hostile run is recorded");
    let stored = [
        ("task name", Some(row.task_name.clone())),
        ("message", row.message.clone()),
        ("user label", row.user_label.clone()),
        ("args", row.task_args.as_ref().map(ToString::to_string)),
        (
            "result",
            row.result_payload.as_ref().map(ToString::to_string),
        ),
    ];
    for (what, value) in &stored {
        assert!(
            value.as_deref().is_some_and(|v| v.contains("<img src=x")),
            "the payload is stored in the {what}: {value:?}"
        );
    }

    // A long run, its key, progress messages and log lines hostile too.
    let long = tracker
        .begin("rebuild_index")
        .key(HOSTILE_KEY)
        .args(&["all"])
        .spawn(|ctx| async move {
            let mut step = 0;
            loop {
                step += 1;
                ctx.progress_with_message(
                    99.0 * (1.0 - 0.97f64.powi(step)),
                    format!("step {step} {XSS}"),
                );
                tracing::info!(step, "indexing {XSS} {step}");
                tokio::select! {
                    stop = ctx.cancelled() => return Err::<(), _>(stop),
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        })
        .await
        .unwrap();
    let long_key = long.key().to_owned();

    let auth = SimpleAuth::new().user("ada", &hash_password("correct horse"), Role::Operator);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .log_storage(logs.clone())
        .auth(auth)
        .session_key(SessionKey::from_secret(&[7u8; 64]))
        .router();
    let (addr, server) = serve(app).await;
    let base = format!("http://{addr}/ops");

    let browser = Browser::start().await;
    println!("login test: browser started after {:?}", began.elapsed());

    // 1. Logged out, the list sends to the login page; a wrong password is
    // refused, the right one leads back to the list.
    browser.goto(&format!("{base}/runs")).await.unwrap();
    wait_for_login(&browser, "/ops/runs").await;
    browser.screenshot("login.png").await;
    let attempt = Instant::now();
    log_in(&browser, "ada", "wrong horse").await;
    let error = browser
        .wait_until("the login error", || async {
            texts(&browser, "form.login .flash-error")
                .await
                .into_iter()
                .next()
        })
        .await;
    assert_eq!(error, "Wrong user name or password.");
    println!(
        "login test: a wrong password refused in {:?}",
        attempt.elapsed()
    );
    wait_for_login(&browser, "").await;
    let kept = browser
        .eval(r#"return document.querySelector('form.login input[name="username"]').value;"#)
        .await;
    assert_eq!(kept, "ada", "the form keeps the user name");
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|e| is_refused_login(e, addr)),
        "the refused login's 401 is in the console: {errors:?}"
    );
    browser.screenshot("login-error.png").await;
    let attempt = Instant::now();
    log_in(&browser, "ada", "correct horse").await;
    browser
        .wait_until("the list after logging in", || async {
            path_and_query(&browser)
                .await
                .filter(|(path, _)| path == "/ops/runs")
        })
        .await;
    browser.wait_for_css("table.runs tbody tr").await;
    let who = texts(&browser, "header .who").await;
    assert_eq!(who, ["ada · operator"]);
    println!(
        "login test: logged in (list shown) in {:?}",
        attempt.elapsed()
    );
    browser.screenshot("after-login.png").await;
    println!("login test: logged in after {:?}", began.elapsed());

    // 2. The payload everywhere, as text only.
    assert_inert(&browser, "the runs list").await;

    browser
        .goto(&format!("{base}/runs/{hostile_key}"))
        .await
        .unwrap();
    browser.wait_for_css(r#"h1 [data-kind="status"]"#).await;
    browser
        .wait_until("the run's log lines", || async {
            let lines = texts(&browser, ".run-logs table.logs tbody td.message").await;
            (lines.len() >= 3).then_some(())
        })
        .await;
    assert_inert(&browser, "the hostile run's page").await;
    let page = browser.eval("return document.body.innerText;").await;
    let page = page.as_str().unwrap_or_default();
    for shown in [
        format!("import {XSS}"),
        format!("mallory {XSS}"),
        format!("appended {XSS}"),
        format!("target {XSS}"),
        "javascript:window.__xss=5".to_owned(),
        "javascript:window.__xss=7".to_owned(),
        "javascript:window.__xss=8".to_owned(),
    ] {
        assert!(page.contains(&shown), "the run's page shows {shown:?}");
    }
    browser.screenshot("hostile-run.png").await;

    browser
        .goto(&format!("{base}/logs?run={hostile_key}"))
        .await
        .unwrap();
    browser
        .wait_until("the hostile lines on the Logs page", || async {
            let lines = texts(&browser, "table.logs tbody td.message").await;
            (lines.len() >= 3).then_some(())
        })
        .await;
    assert_inert(&browser, "the Logs page").await;
    // A line arriving through the live tail is built as text too.
    logs.append(
        LogRecord::new(LogLevel::Warn, format!("live {XSS}"))
            .in_run(&hostile_key)
            .target(format!("live target {XSS}"))
            .field("html", XSS),
    );
    browser
        .wait_until("the live line in the tail", || async {
            let lines = texts(&browser, "table.logs tbody td.message").await;
            lines
                .iter()
                .any(|l| l.starts_with(&format!("live {XSS}")))
                .then_some(())
        })
        .await;
    assert_inert(&browser, "the Logs page after a live line").await;
    browser.screenshot("hostile-logs.png").await;

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
    browser.goto(&format!("{base}/")).await.unwrap();
    browser.wait_for_css("section.counts").await;
    let running = browser
        .wait_until("the long run among the running ones", || async {
            let rows = browser
                .eval(
                    "return Array.from(document.querySelectorAll('table.running tbody tr')) \
                     .map(r => r.getAttribute('data-row'));",
                )
                .await;
            let rows: Vec<String> = serde_json::from_value(rows).unwrap_or_default();
            (!rows.is_empty()).then_some(rows)
        })
        .await;
    assert_eq!(running, [HOSTILE_KEY], "the key survives as an attribute");
    assert_inert(&browser, "the overview").await;
    browser.screenshot("hostile-overview.png").await;

    // 3. Act: cancel the long run from its page (htmx, with the CSRF
    // token), after its hostile message has changed live at least once.
    // The page is reached through the overview's link, built from the key.
    browser
        .find(Locator::Css("table.running tbody tr a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the long run's page", || async {
            let shown = texts(&browser, "h1 code").await;
            (shown == [HOSTILE_KEY]).then_some(())
        })
        .await;
    browser.wait_for_css(r#"h1 [data-kind="status"]"#).await;
    browser.eval("window.__e2e_marker = 1; return null;").await;
    let message_css = r#"td[data-kind="message"]"#;
    let first = texts(&browser, message_css).await;
    browser
        .wait_until("the message to change live", || async {
            let now = texts(&browser, message_css).await;
            (now != first && now.iter().all(|m| m.contains(XSS_TEXT))).then_some(())
        })
        .await;
    assert_inert(&browser, "the long run's page, updated live").await;
    browser
        .wait_for_css(r#"button[data-action="cancel"]"#)
        .await
        .click()
        .await
        .unwrap();
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
    let flash = texts(&browser, "#flash").await.join(" ");
    assert!(
        flash.contains(HOSTILE_KEY),
        "the flash names the run, as text: {flash}"
    );
    assert_inert(&browser, "the cancelled run's page").await;
    browser.screenshot("hostile-cancelled.png").await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .expect("the run ends once cancelled");
    assert!(
        matches!(outcome, Err(RunError::Cancelled(_))),
        "{outcome:?}"
    );

    // 4. Log out: back on the login page, and the list is closed again.
    browser
        .find(Locator::Css("header form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_login(&browser, "").await;
    browser.screenshot("logged-out.png").await;
    browser.goto(&format!("{base}/runs")).await.unwrap();
    wait_for_login(&browser, "/ops/runs").await;

    // 5. Nothing went wrong in the browser along the way: no error but the
    // 401 of the wrong password.
    for entry in &browser.console_log().await {
        println!("console: {entry}");
    }
    let (refused, errors): (Vec<LogEntry>, Vec<LogEntry>) = browser
        .console_errors()
        .await
        .into_iter()
        .partition(|e| is_refused_login(e, addr));
    assert_eq!(refused.len(), 1, "one refused login: {refused:?}");
    assert!(
        errors.is_empty(),
        "{} console error(s) in the browser:\n  {}",
        errors.len(),
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );

    browser.close().await;
    server.abort();
    println!(
        "login_act_logout_with_hostile_data took {:?}",
        began.elapsed()
    );
}
