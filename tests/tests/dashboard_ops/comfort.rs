//! Issue 16, item 8: comfort. Dark mode (the OS setting through
//! `prefers-color-scheme`, overridden either way by the header's toggle,
//! remembered in `localStorage` and applied by `assets/theme.js` before the
//! first paint), keyboard shortcuts (`/`, `j` / `k`, `Enter`, `?`, `g o` /
//! `g r`), visible focus, and a screenshot of every page in both themes
//! (`target/e2e-artifacts/page-<name>-<theme>.png`).
//!
//! Over HTTP (every backend): every page loads `theme.js` synchronously
//! before its stylesheets and carries the toggle and the help dialog;
//! `theme.js` is served as a cached asset; `theme.css` derives readable
//! shades from the accent (checked here with an independent WCAG
//! computation against the palettes `app.css` serves), and a hostile accent
//! never reaches the stylesheet.
//!
//! In the browser: every page in light and dark, by the OS (emulated with
//! CDP `Emulation.setEmulatedMedia`) and by the toggle against the OS;
//! the body's background is dark in dark and light in light; every piece of
//! visible text reaches 4.5:1 (3:1 when large) against its background;
//! focus rings are visible; the shortcuts work and stay quiet while typing.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use fantoccini::Locator;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tasktrail::Dashboard;
use tasktrail_tests::browser::Browser;
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect};
use tower::ServiceExt;

use crate::{logs, serve};

tasktrail::dashboard! {
    struct Comfy<task_run::Entity> {
        title: "tasktrail comfort",
        url_prefix: "/ops",
        accent_colour: "#f06824",
        filters: [status, task_name],
        search: [task_name, message],
        actions: [cancel, delete],
        poll_interval: 1s,
    }
}

// ---------------------------------------------------------------------
// Colours, computed here independently of the runtime's own code.

fn parse_hex(text: &str) -> Option<[f64; 3]> {
    let hex = text.trim().strip_prefix('#')?;
    let full: String = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        6 => hex.to_owned(),
        _ => return None,
    };
    let channel = |i: usize| u8::from_str_radix(&full[i..i + 2], 16).ok().map(f64::from);
    Some([channel(0)?, channel(2)?, channel(4)?])
}

fn luminance([r, g, b]: [f64; 3]) -> f64 {
    let f = |c: f64| {
        let c = c / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)
}

fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The value of custom property `--name` in the first rule of `css` whose
/// selector starts with `selector`.
fn custom_property(css: &str, selector: &str, name: &str) -> Option<String> {
    let start = css.find(selector)?;
    let block = &css[start..];
    let body = &block[block.find('{')? + 1..block.find('}')?];
    body.split(';').find_map(|decl| {
        let (n, v) = decl.split_once(':')?;
        (n.trim() == format!("--{name}")).then(|| v.trim().to_owned())
    })
}

const LIGHT_RULE: &str = ":root, :root[data-theme=\"light\"]";
const DARK_BY_OS_RULE: &str = ":root:not([data-theme=\"light\"])";
const DARK_BY_CHOICE_RULE: &str = ":root[data-theme=\"dark\"]";

// ---------------------------------------------------------------------
// Over HTTP, on every backend.

/// `method uri` through `app` from a loopback peer: status, headers, body.
async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
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

async fn pages_load_the_theme_first_and_carry_the_toggle_and_the_help(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let run = tracker
        .spawn("import_books", &["a.csv"], |_ctx| async move {
            Ok::<_, String>(1)
        })
        .await
        .unwrap();
    let key = run.key().to_owned();
    run.await.unwrap();
    let app = Dashboard::new(Comfy::default(), tracker.clone())
        .log_storage(logs())
        .router();

    for path in [
        "/ops/".to_owned(),
        "/ops/runs".to_owned(),
        "/ops/runs?status=success".to_owned(),
        format!("/ops/runs/{key}"),
        "/ops/logs".to_owned(),
    ] {
        let (status, _, html) = call(&app, Method::GET, &path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        // theme.js: the first script, synchronous (neither defer nor
        // async), before any stylesheet, so the theme is set before the
        // first paint.
        let script = r#"<script src="/ops/assets/theme.js"></script>"#;
        let at = html
            .find(script)
            .unwrap_or_else(|| panic!("{path}: no `{script}`:\n{html}"));
        let sheet = html.find(r#"<link rel="stylesheet""#).unwrap();
        let first_script = html.find("<script").unwrap();
        assert!(
            at < sheet && at == first_script,
            "{path}: theme.js comes first"
        );
        assert!(
            html.contains(r#"<button id="theme-toggle" type="button""#),
            "{path}"
        );
        assert!(html.contains(r#"<dialog id="shortcuts""#), "{path}");
        for shortcut in [
            "<kbd>/</kbd>",
            "<kbd>j</kbd>",
            "<kbd>k</kbd>",
            "<kbd>?</kbd>",
            "<kbd>Enter</kbd>",
        ] {
            assert!(html.contains(shortcut), "{path}: the help lists {shortcut}");
        }
        assert!(
            html.contains(r#"<form method="dialog">"#),
            "{path}: the help closes"
        );
        // Strict CSP kept: no inline script, no style attribute.
        assert!(!html.contains(" style="), "{path}: an inline style");
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "{path}: an inline script"
        );
    }

    // theme.js: a cached asset like app.js.
    let (status, headers, js) = call(&app, Method::GET, "/ops/assets/theme.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        js.contains("tasktrail-theme") && js.contains("data-theme"),
        "{js}"
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age"),
        "{headers:?}"
    );
    let (status, _, body) = call(
        &app,
        Method::GET,
        "/ops/assets/theme.js",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED, "{body}");
    // Malformed or hostile requests for it: never a 5xx.
    for (method, uri, headers) in [
        (
            Method::GET,
            "/ops/assets/theme.js",
            vec![("if-none-match", "\"nope\", ,,W/\"x")],
        ),
        (
            Method::GET,
            "/ops/assets/theme.js?v=%00%ff%3Cscript%3E",
            vec![],
        ),
        (Method::POST, "/ops/assets/theme.js", vec![]),
        (Method::GET, "/ops/assets/theme.jsx", vec![]),
        (
            Method::GET,
            "/ops/assets/theme.js/..%2f..%2fapp.css",
            vec![],
        ),
    ] {
        let (status, _, body) = call(&app, method.clone(), uri, &headers).await;
        assert!(
            status == StatusCode::OK || status.is_client_error(),
            "{method} {uri}: {status} {body}"
        );
        if status == StatusCode::OK {
            assert!(body.contains("tasktrail-theme"), "{uri}");
        }
    }

    // theme.css: the accent, white or black text on it, and the shades of
    // it that read at 4.5:1 on each palette's backgrounds (the backgrounds
    // read from the app.css the dashboard serves).
    let (status, _, app_css) = call(&app, Method::GET, "/ops/assets/app.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, theme_css) = call(&app, Method::GET, "/ops/assets/theme.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let var = |name: &str| {
        let v = custom_property(&theme_css, ":root", name)
            .unwrap_or_else(|| panic!("theme.css has no --{name}: {theme_css}"));
        parse_hex(&v).unwrap_or_else(|| panic!("--{name}: {v}"))
    };
    let accent = var("accent");
    assert_eq!(accent, parse_hex("#f06824").unwrap());
    let on = var("on-accent");
    let on_ratio = contrast(accent, on);
    println!("theme.css: {theme_css}  text on the accent {on_ratio:.2}:1");
    assert!(on_ratio >= 4.5, "{theme_css}");
    for (ink, rule) in [
        ("accent-ink-light", LIGHT_RULE),
        ("accent-ink-dark", DARK_BY_OS_RULE),
        ("accent-ink-dark", DARK_BY_CHOICE_RULE),
    ] {
        for background in ["bg", "surface", "row-selected"] {
            let bg = custom_property(&app_css, rule, background)
                .and_then(|v| parse_hex(&v))
                .unwrap_or_else(|| panic!("app.css: no --{background} in `{rule}`"));
            let ratio = contrast(var(ink), bg);
            println!("--{ink} on --{background} ({rule}): {ratio:.2}:1");
            assert!(ratio >= 4.5, "--{ink} on --{background}: {ratio:.2}");
        }
    }

    // A hostile accent (the struct's fields are public: a settings file or
    // code can set anything) never reaches the stylesheet.
    for hostile in [
        "red;} body { display: none",
        "#fff</style><script>alert(1)</script>",
        "#12345g",
        "",
    ] {
        let config = Comfy {
            accent_colour: hostile.to_owned(),
            ..Comfy::default()
        };
        let app = Dashboard::new(config, tracker.clone()).router();
        let (status, _, css) = call(&app, Method::GET, "/ops/assets/theme.css", &[]).await;
        assert_eq!(status, StatusCode::OK, "{hostile:?}");
        assert!(css.contains("--accent: #2563eb;"), "{hostile:?}: {css}");
        assert!(
            !css.contains("display") && !css.contains('<'),
            "{hostile:?}: {css}"
        );
    }
}

backends!(pages_load_the_theme_first_and_carry_the_toggle_and_the_help);

// ---------------------------------------------------------------------
// In the browser.

/// Every page of the dashboard: a name for its screenshot and its path,
/// where `{done}`, `{failed}` and `{running}` stand for the keys of a
/// finished, a failed and an in-progress run. Add a page here and it is
/// checked and screenshot in both themes.
const PAGES: &[(&str, &str)] = &[
    ("overview", "/ops/"),
    ("runs", "/ops/runs"),
    ("runs-failed", "/ops/runs?status=failed"),
    ("runs-search", "/ops/runs?q=newsletter"),
    ("run-done", "/ops/runs/{done}"),
    ("run-failed", "/ops/runs/{failed}"),
    ("run-running", "/ops/runs/{running}"),
    ("kind", "/ops/kinds/import_books"),
    ("logs", "/ops/logs"),
    ("logs-warn", "/ops/logs?level=WARN"),
    ("login", "/secure/login"),
];

/// `POST /session/{id}/goog/cdp/execute`: a Chrome DevTools Protocol
/// command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}

/// Makes the page's `prefers-color-scheme` `scheme`, as an OS setting would.
async fn emulate_os_scheme(browser: &Browser, scheme: &str) {
    browser
        .issue_cmd(Cdp {
            cmd: "Emulation.setEmulatedMedia",
            params: json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        })
        .await
        .unwrap_or_else(|e| panic!("CDP Emulation.setEmulatedMedia through chromedriver: {e}"));
}

/// Presses each key of `keys` (a character, or a `Key`'s code point).
async fn press(browser: &Browser, keys: &[char]) {
    let mut actions = KeyActions::new("keyboard".to_owned());
    for key in keys {
        actions = actions
            .then(KeyAction::Down { value: *key })
            .then(KeyAction::Up { value: *key });
    }
    browser.perform_actions(actions).await.unwrap();
}

/// Presses `key` with `modifier` held.
async fn press_with(browser: &Browser, modifier: Key, key: char) {
    let modifier = char::from(modifier);
    let actions = KeyActions::new("keyboard".to_owned())
        .then(KeyAction::Down { value: modifier })
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key })
        .then(KeyAction::Up { value: modifier });
    browser.perform_actions(actions).await.unwrap();
}

/// What the page looks like now: the OS scheme it sees, the chosen theme,
/// the body's background colour and its luminance.
#[derive(Debug, serde::Deserialize)]
struct Look {
    os_dark: bool,
    theme: Option<String>,
    body_bg: String,
    body_luminance: f64,
    accent: String,
}

const LOOK: &str = r#"
  var m = getComputedStyle(document.body).backgroundColor.match(/[\d.]+/g).map(Number);
  var f = function (v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return {
    os_dark: window.matchMedia("(prefers-color-scheme: dark)").matches,
    theme: document.documentElement.getAttribute("data-theme"),
    body_bg: getComputedStyle(document.body).backgroundColor,
    body_luminance: 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]),
    accent: getComputedStyle(document.documentElement).getPropertyValue("--accent").trim(),
  };
"#;

async fn look(browser: &Browser) -> Look {
    serde_json::from_value(browser.eval(LOOK).await).unwrap()
}

/// Every visible piece of text (and every field's value) whose contrast
/// with the background behind it is below 4.5:1 (3:1 for large text),
/// skipping disabled controls (WCAG exempts them). Also returns how many
/// were measured and the lowest ratio seen.
const CONTRAST_SCAN: &str = r#"
  function parse(c) {
    var m = c && c.match(/^rgba?\(([^)]+)\)$/);
    if (!m) return null;
    var p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function over(top, bottom) {
    var a = top[3];
    return [top[0] * a + bottom[0] * (1 - a), top[1] * a + bottom[1] * (1 - a), top[2] * a + bottom[2] * (1 - a), 1];
  }
  function lum(c) {
    var f = function (v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function ratio(a, b) { var x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  function background(el) {
    var layers = [];
    for (var e = el; e; e = e.parentElement) {
      var c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    var bg = [255, 255, 255, 1];
    for (var i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  }
  function opacity(el) {
    var o = 1;
    for (var e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  }
  var failures = [], measured = 0, lowest = 99;
  document.querySelectorAll("body *").forEach(function (el) {
    var tag = el.tagName.toLowerCase();
    if (tag === "script" || tag === "style" || tag === "option") return;
    var field = (tag === "input" && !/^(hidden|checkbox|radio)$/.test(el.type)) || tag === "select" || tag === "textarea";
    var text = tag === "select" ? (el.selectedIndex >= 0 ? el.options[el.selectedIndex].text : "") : field ? (el.value || "") : Array.prototype.filter.call(el.childNodes, function (n) {
      return n.nodeType === 3 && n.textContent.trim() !== "";
    }).map(function (n) { return n.textContent.trim(); }).join(" ");
    if (!text) return;
    if (el.getClientRects().length === 0) return;
    var style = getComputedStyle(el);
    if (style.visibility !== "visible") return;
    if (el.closest("[disabled]") || el.closest("[hidden]")) return;
    var svg = el instanceof SVGElement;
    var fg = parse(svg ? style.fill : style.color);
    if (!fg) { failures.push(tag + ": unreadable colour " + (svg ? style.fill : style.color)); return; }
    var bg = background(el);
    fg = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
    var size = parseFloat(style.fontSize), weight = Number(style.fontWeight) || 400;
    var large = size >= 24 || (size >= 18.66 && weight >= 700);
    var r = ratio(fg, bg);
    measured++;
    if (r < lowest) lowest = r;
    if (r < (large ? 3 : 4.5)) {
      failures.push(tag + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "") +
        " \"" + text.slice(0, 40) + "\" " + style.color + " on rgb(" + bg.slice(0, 3).map(Math.round).join(", ") + ") = " + r.toFixed(2));
    }
  });
  return { failures: failures, measured: measured, lowest: lowest };
"#;

#[derive(Debug, serde::Deserialize)]
struct Scan {
    failures: Vec<String>,
    measured: u64,
    lowest: f64,
}

async fn scan(browser: &Browser) -> Scan {
    serde_json::from_value(browser.eval(CONTRAST_SCAN).await).unwrap()
}

/// The focused element, its outline and how it contrasts with the page
/// behind it.
#[derive(Debug, serde::Deserialize)]
struct Focus {
    tag: String,
    focus_visible: bool,
    outline_style: String,
    outline_width: f64,
    outline_contrast: f64,
}

const FOCUS: &str = r#"
  var el = document.activeElement;
  if (!el || el === document.body) return null;
  var s = getComputedStyle(el);
  function rgb(c) { return (c.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(Number); }
  function lum(c) {
    var f = function (v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  var bg = getComputedStyle(document.body).backgroundColor;
  var a = lum(rgb(s.outlineColor)), b = lum(rgb(bg));
  return {
    tag: el.tagName.toLowerCase(),
    focus_visible: el.matches(":focus-visible"),
    outline_style: s.outlineStyle,
    outline_width: parseFloat(s.outlineWidth),
    outline_contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
  };
"#;

async fn focus(browser: &Browser) -> Option<Focus> {
    serde_json::from_value(browser.eval(FOCUS).await).unwrap()
}

fn assert_visible_focus(f: &Focus, theme: &str) {
    assert!(
        f.focus_visible,
        "{theme}: {f:?} does not match :focus-visible"
    );
    assert!(
        f.outline_style != "none" && f.outline_width >= 2.0,
        "{theme}: no visible outline on {f:?}"
    );
    assert!(
        f.outline_contrast >= 3.0,
        "{theme}: the focus ring of {f:?} is faint"
    );
}

/// The index of the selected row among the runs list's rows, and its key.
async fn selection(browser: &Browser) -> Option<(u64, String)> {
    let value = browser
        .eval(
            "var rows = Array.from(document.querySelectorAll('table.runs tbody tr[data-row]')); \
             var i = rows.findIndex(r => r.classList.contains('selected')); \
             return i < 0 ? null : [i, rows[i].getAttribute('data-row')];",
        )
        .await;
    serde_json::from_value(value).unwrap()
}

async fn path(browser: &Browser) -> String {
    let url = browser.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn wait_for_path(browser: &Browser, want: &str) {
    browser
        .wait_until(&format!("the page {want}"), || async {
            (path(browser).await == want).then_some(())
        })
        .await;
    browser
        .wait_until("the page to load", || async {
            (browser.eval("return document.readyState;").await == "complete").then_some(())
        })
        .await;
}

async fn active(browser: &Browser, script: &str) -> Value {
    browser
        .eval(&format!(
            "var el = document.activeElement; return {script};"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_both_themes() {
    use tasktrail::auth::{Role, SessionKey, SimpleAuth, hash_password};
    let began = Instant::now();
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    let logs = logs();

    // Enough finished runs that the list scrolls; a warning in some, two
    // failures with errors, one run in progress.
    let mut done = Vec::new();
    for i in 0..32 {
        let run = tracker
            .spawn(
                "import_books",
                &[format!("books-{i}.csv")],
                move |ctx| async move {
                    ctx.progress_with_message(50.0, "half way");
                    // A span, for the run page's trace.
                    tracing::info_span!("read", file = i).in_scope(|| {
                        tracing::info!(file = i, "read books-{i}.csv");
                    });
                    if i % 5 == 0 {
                        tracing::warn!("books-{i}.csv: 3 rows without an ISBN");
                    }
                    Ok::<_, String>(120 + i)
                },
            )
            .await
            .unwrap();
        done.push(run.key().to_owned());
        run.await.unwrap();
    }
    let mut failed = Vec::new();
    for reason in ["SMTP refused the login", "the mailbox is full"] {
        let run = tracker
            .spawn("send_newsletter", &(), move |_ctx| async move {
                tracing::error!("sending failed: {reason}");
                Err::<(), _>(reason)
            })
            .await
            .unwrap();
        failed.push(run.key().to_owned());
        assert!(run.await.is_err());
    }
    let long = tracker
        .spawn("rebuild_index", &["all"], |ctx| async move {
            let mut step = 0;
            loop {
                step += 1;
                ctx.progress_with_message(
                    99.0 * (1.0 - 0.97f64.powi(step)),
                    format!("step {step}"),
                );
                tracing::info!(step, "indexing shelf {step}");
                tokio::select! {
                    stop = ctx.cancelled() => return Err::<(), _>(stop),
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        })
        .await
        .unwrap();
    let running = long.key().to_owned();
    println!(
        "comfort: {} runs seeded in {:?}",
        done.len() + 3,
        began.elapsed()
    );

    // The dashboard, and a second one behind a login form (for the login
    // page) on the same origin.
    let open = Dashboard::new(Comfy::default(), tracker.clone())
        .log_storage(logs.clone())
        .router();
    let secure = Dashboard::new(
        Comfy {
            url_prefix: "/secure".to_owned(),
            ..Comfy::default()
        },
        tracker.clone(),
    )
    .auth(SimpleAuth::new().user("ada", &hash_password("correct horse"), Role::Operator))
    .session_key(SessionKey::from_secret(&[9u8; 64]))
    .router();
    let (addr, server) = serve(open.merge(secure)).await;
    let origin = format!("http://{addr}");
    let url_of = |path: &str| {
        format!(
            "{origin}{}",
            path.replace("{done}", &done[0])
                .replace("{failed}", &failed[0])
                .replace("{running}", &running)
        )
    };

    let browser = Browser::start().await;
    println!("comfort: browser started after {:?}", began.elapsed());

    // 1. Every page in four ways: the OS light or dark with no choice
    // made (the media query), and a choice against the OS (the toggle's
    // data-theme). The first two are the screenshots.
    struct Mode {
        os: &'static str,
        chosen: Option<&'static str>,
        expect: &'static str,
        shot: bool,
    }
    let modes = [
        Mode {
            os: "light",
            chosen: None,
            expect: "light",
            shot: true,
        },
        Mode {
            os: "dark",
            chosen: None,
            expect: "dark",
            shot: true,
        },
        Mode {
            os: "light",
            chosen: Some("dark"),
            expect: "dark",
            shot: false,
        },
        Mode {
            os: "dark",
            chosen: Some("light"),
            expect: "light",
            shot: false,
        },
    ];
    let mut backgrounds = std::collections::BTreeMap::new();
    let mut lowest = (99.0f64, String::new());
    let mut measured = 0;
    browser.goto(&url_of("/ops/")).await.unwrap();
    for mode in &modes {
        emulate_os_scheme(&browser, mode.os).await;
        let store = match mode.chosen {
            Some(theme) => format!("localStorage.setItem('tasktrail-theme', '{theme}');"),
            None => "localStorage.removeItem('tasktrail-theme');".to_owned(),
        };
        browser.eval(&format!("{store} return null;")).await;
        for (name, page) in PAGES {
            let url = url_of(page);
            browser.goto(&url).await.unwrap();
            browser.wait_for_css("body main").await;
            let look = look(&browser).await;
            let label = format!("{name} (OS {}, chosen {:?})", mode.os, mode.chosen);
            assert_eq!(
                look.os_dark,
                mode.os == "dark",
                "{label}: the emulated OS scheme"
            );
            assert_eq!(look.theme.as_deref(), mode.chosen, "{label}: data-theme");
            // The configured accent holds whatever the theme (the
            // palettes must not override theme.css).
            assert_eq!(look.accent, "#f06824", "{label}: the accent");
            if mode.expect == "dark" {
                assert!(
                    look.body_luminance < 0.05,
                    "{label}: a light body in dark: {look:?}"
                );
            } else {
                assert!(
                    look.body_luminance > 0.8,
                    "{label}: a dark body in light: {look:?}"
                );
            }
            let scan = scan(&browser).await;
            assert!(
                scan.measured >= 3,
                "{label}: measured only {} texts",
                scan.measured
            );
            assert!(
                scan.failures.is_empty(),
                "{label}: text below AA contrast:\n  {}",
                scan.failures.join("\n  ")
            );
            measured += scan.measured;
            if scan.lowest < lowest.0 {
                lowest = (scan.lowest, label.clone());
            }
            backgrounds
                .entry(*name)
                .or_insert_with(Vec::new)
                .push((mode.expect, look.body_bg.clone()));
            if mode.shot {
                browser
                    .screenshot(&format!("page-{name}-{}.png", mode.expect))
                    .await;
            }
        }
    }
    for (name, seen) in &backgrounds {
        let light: Vec<&String> = seen
            .iter()
            .filter(|(t, _)| *t == "light")
            .map(|(_, b)| b)
            .collect();
        let dark: Vec<&String> = seen
            .iter()
            .filter(|(t, _)| *t == "dark")
            .map(|(_, b)| b)
            .collect();
        assert!(
            light.iter().all(|b| *b == light[0]),
            "{name}: light backgrounds {light:?}"
        );
        assert!(
            dark.iter().all(|b| *b == dark[0]),
            "{name}: dark backgrounds {dark:?}"
        );
        assert_ne!(
            light[0], dark[0],
            "{name}: the same background in both themes"
        );
    }
    println!(
        "comfort: {} pages x {} modes, {measured} texts measured, lowest contrast {:.2}:1 ({}), after {:?}",
        PAGES.len(),
        modes.len(),
        lowest.0,
        lowest.1,
        began.elapsed()
    );

    // 2. The toggle: auto -> light -> dark, kept across a reload, back to
    // auto. (The OS says light.)
    emulate_os_scheme(&browser, "light").await;
    browser
        .eval("localStorage.removeItem('tasktrail-theme'); return null;")
        .await;
    browser.goto(&url_of("/ops/runs")).await.unwrap();
    let toggle = browser.wait_for_css("#theme-toggle").await;
    assert_eq!(toggle.text().await.unwrap(), "Theme: auto");
    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: light");
    assert_eq!(look(&browser).await.theme.as_deref(), Some("light"));
    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: dark");
    let dark = look(&browser).await;
    assert!(
        dark.theme.as_deref() == Some("dark") && dark.body_luminance < 0.05,
        "{dark:?}"
    );
    browser.refresh().await.unwrap();
    let toggle = browser.wait_for_css("#theme-toggle").await;
    assert_eq!(
        toggle.text().await.unwrap(),
        "Theme: dark",
        "after a reload"
    );
    let dark = look(&browser).await;
    assert!(
        dark.theme.as_deref() == Some("dark") && dark.body_luminance < 0.05,
        "after a reload: {dark:?}"
    );
    assert_eq!(
        browser
            .eval("return localStorage.getItem('tasktrail-theme');")
            .await,
        "dark"
    );
    // Also on another page, and on the login page (no toggle there).
    browser.goto(&url_of("/secure/login")).await.unwrap();
    browser.wait_for_css("form.login").await;
    assert!(
        look(&browser).await.body_luminance < 0.05,
        "the login page follows the choice"
    );
    browser.goto(&url_of("/ops/runs")).await.unwrap();
    let toggle = browser.wait_for_css("#theme-toggle").await;
    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: auto");
    assert_eq!(look(&browser).await.theme, None);
    browser.refresh().await.unwrap();
    browser.wait_for_css("#theme-toggle").await;
    let auto = look(&browser).await;
    assert!(
        auto.theme.is_none() && auto.body_luminance > 0.8,
        "{auto:?}"
    );
    assert_eq!(
        browser
            .eval("return localStorage.getItem('tasktrail-theme');")
            .await,
        Value::Null
    );

    // 3. Visible focus in both themes: Tab through the first controls of
    // the list (links, buttons, the search box, selects).
    for theme in ["light", "dark"] {
        browser
            .eval(&format!(
                "localStorage.setItem('tasktrail-theme', '{theme}'); return null;"
            ))
            .await;
        browser.goto(&url_of("/ops/runs")).await.unwrap();
        browser.wait_for_css("table.runs").await;
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..12 {
            press(&browser, &[char::from(Key::Tab)]).await;
            if let Some(f) = focus(&browser).await {
                assert_visible_focus(&f, theme);
                kinds.insert(f.tag.clone());
            }
        }
        for tag in ["a", "button", "input", "select"] {
            assert!(
                kinds.contains(tag),
                "{theme}: Tab never reached a {tag}: {kinds:?}"
            );
        }
        // A row selected with the keyboard has the ring too.
        browser
            .eval("document.activeElement.blur(); return null;")
            .await;
        press(&browser, &['j']).await;
        let f = focus(&browser)
            .await
            .expect("the selected row has the focus");
        assert_eq!(f.tag, "tr");
        assert_visible_focus(&f, theme);
        // And the selected row still reads at AA.
        let scan = scan(&browser).await;
        assert!(
            scan.failures.is_empty(),
            "{theme}, a row selected: {:?}",
            scan.failures
        );
        browser
            .screenshot(&format!("page-runs-selected-{theme}.png"))
            .await;
    }
    browser
        .eval("localStorage.removeItem('tasktrail-theme'); return null;")
        .await;

    // 4. The shortcuts, on the list.
    browser.goto(&url_of("/ops/runs")).await.unwrap();
    browser.wait_for_css("table.runs tbody tr[data-row]").await;
    assert_eq!(selection(&browser).await, None);
    // "/" focuses the search box; "j" typed there is text, not a move.
    press(&browser, &['/']).await;
    assert_eq!(
        active(&browser, "el.name").await,
        "q",
        "/ focuses the search"
    );
    press(&browser, &['j', 'k']).await;
    assert_eq!(
        active(&browser, "el.value").await,
        "jk",
        "typed into the search"
    );
    assert_eq!(
        selection(&browser).await,
        None,
        "typing moved the selection"
    );
    browser
        .eval("document.activeElement.value = ''; document.activeElement.blur(); return null;")
        .await;
    // j j k: the 2nd row, then the 1st; Alt+j does nothing.
    press(&browser, &['j']).await;
    assert_eq!(selection(&browser).await.map(|s| s.0), Some(0));
    press(&browser, &['j']).await;
    assert_eq!(
        selection(&browser).await.map(|s| s.0),
        Some(1),
        "j j: the 2nd row"
    );
    press_with(&browser, Key::Alt, 'j').await;
    press_with(&browser, Key::Control, 'j').await;
    assert_eq!(
        selection(&browser).await.map(|s| s.0),
        Some(1),
        "a modifier held: no move"
    );
    press(&browser, &['k']).await;
    let (at, first_key) = selection(&browser).await.unwrap();
    assert_eq!(at, 0, "j j k: the 1st row");
    // Enter opens it.
    press(&browser, &[char::from(Key::Enter)]).await;
    wait_for_path(&browser, &format!("/ops/runs/{first_key}")).await;
    // "/" on a page without a search box: the list, its search focused.
    press(&browser, &['/']).await;
    wait_for_path(&browser, "/ops/runs").await;
    browser
        .wait_until("the search box focused on the list", || async {
            (active(&browser, "el.name").await == "q").then_some(())
        })
        .await;
    browser
        .eval("document.activeElement.blur(); return null;")
        .await;
    // Far down the list, the selected row is scrolled into view.
    let rows = browser
        .eval("return document.querySelectorAll('table.runs tbody tr[data-row]').length;")
        .await
        .as_u64()
        .unwrap();
    assert!(rows >= 30, "{rows} rows");
    press(&browser, &vec!['j'; rows as usize]).await;
    assert_eq!(
        selection(&browser).await.map(|s| s.0),
        Some(rows - 1),
        "stops at the last row"
    );
    let shown = browser
        .eval(
            "var r = document.querySelector('table.runs tr.selected').getBoundingClientRect(); \
             return [r.top >= 0 && r.bottom <= document.documentElement.clientHeight + 1, window.scrollY, r.top, r.bottom, document.documentElement.clientHeight];",
        )
        .await;
    assert_eq!(shown[0], true, "the last row is in view: {shown}");
    assert!(
        shown[1].as_f64().unwrap() > 0.0,
        "the page scrolled: {shown}"
    );
    // Esc clears the selection.
    press(&browser, &[char::from(Key::Escape)]).await;
    assert_eq!(selection(&browser).await, None);
    // "?" opens the help, Esc closes it; keys do nothing while it is open.
    let dialog_open = "return document.getElementById('shortcuts').open;";
    assert_eq!(browser.eval(dialog_open).await, false);
    press(&browser, &['?']).await;
    assert_eq!(browser.eval(dialog_open).await, true, "? opens the help");
    let help = browser
        .find(Locator::Css("dialog#shortcuts"))
        .await
        .unwrap();
    assert!(help.is_displayed().await.unwrap());
    assert!(help.text().await.unwrap().contains("Keyboard shortcuts"));
    press(&browser, &['j']).await;
    assert_eq!(selection(&browser).await, None, "j behind the open help");
    let scan_open = scan(&browser).await;
    assert!(
        scan_open.failures.is_empty(),
        "the help: {:?}",
        scan_open.failures
    );
    browser.screenshot("page-shortcuts-light.png").await;
    press(&browser, &[char::from(Key::Escape)]).await;
    assert_eq!(
        browser.eval(dialog_open).await,
        false,
        "Esc closes the help"
    );
    // The header's ? button opens it too; its Close button closes it.
    browser
        .find(Locator::Css("#shortcuts-open"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(browser.eval(dialog_open).await, true);
    browser
        .find(Locator::Css("dialog#shortcuts form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(browser.eval(dialog_open).await, false);
    // g o / g r / g l.
    press(&browser, &['g', 'o']).await;
    wait_for_path(&browser, "/ops/").await;
    // j on the overview selects among the runs in progress.
    press(&browser, &['j']).await;
    assert_eq!(
        selection(&browser).await.map(|s| s.1),
        Some(running.clone())
    );
    press(&browser, &['g', 'l']).await;
    wait_for_path(&browser, "/ops/logs").await;
    press(&browser, &['g', 'r']).await;
    wait_for_path(&browser, "/ops/runs").await;

    browser.assert_no_console_errors().await;
    println!("comfort: done after {:?}", began.elapsed());
    long.cancel();
    browser.close().await;
    server.abort();
}
