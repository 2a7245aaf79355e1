//! Issue 16, item 6: a run started from its kind's form and through
//! `POST {prefix}/api/kinds/{name}/runs` — the arguments checked against
//! the kind's `Args` type (a clear message, the text kept, no run), the
//! operator role, the action header and the session's CSRF token, an
//! audit row per run started; unknown kinds and hostile input answered
//! 4xx — on every backend, through the real router; and in a browser.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tasktrail::auth::{NoAuth, Role, SimpleAuth, hash_password};
use tasktrail::{Dashboard, Task, TaskContext};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, backends, connect};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

/// A kind with structured arguments: greets `name`, `times` steps.
struct Greet;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GreetArgs {
    name: String,
    times: u32,
}

impl Task for Greet {
    const NAME: &'static str = "greet";
    type Args = GreetArgs;
    type Output = String;
    type Error = String;
    async fn run(&self, ctx: TaskContext, args: GreetArgs) -> Result<String, String> {
        for i in 0..args.times {
            ctx.progress_with_message(
                f64::from(i) * 100.0 / f64::from(args.times.max(1)),
                format!("step {i}"),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(format!("hello {}", args.name))
    }
}

/// An answer, whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// A client with a cookie jar, from a loopback peer, naming `localhost`.
#[derive(Clone)]
pub(crate) struct Client {
    app: axum::Router,
    cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(app: &axum::Router) -> Client {
        Client {
            app: app.clone(),
            cookies: BTreeMap::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost:8080");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            builder = builder.header(header::COOKIE, jar.join("; "));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder.body(body.into()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for cookie in headers.get_all(header::SET_COOKIE) {
            let text = cookie.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    /// The form as htmx posts it: the action header, `HX-Request`, and the
    /// CSRF token when given.
    pub async fn htmx_form(
        &mut self,
        uri: &str,
        csrf: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Answer {
        let mut headers = vec![
            ("x-requested-with", "tasktrail"),
            ("hx-request", "true"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(token) = csrf {
            headers.push(("x-csrf-token", token));
        }
        self.send(Method::POST, uri, &headers, form(pairs)).await
    }

    /// `POST` of JSON with the action header (and the CSRF token).
    pub async fn api_post(&mut self, uri: &str, csrf: Option<&str>, body: &str) -> Answer {
        let mut headers = vec![
            ("x-requested-with", "tasktrail"),
            ("content-type", "application/json"),
        ];
        if let Some(token) = csrf {
            headers.push(("x-csrf-token", token));
        }
        self.send(Method::POST, uri, &headers, body.to_owned())
            .await
    }
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The CSRF token a page's `hx-headers` carries.
fn page_csrf(html: &str) -> Option<String> {
    let marker = "\"X-CSRF-Token\": \"";
    let rest = &html[html.find(marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The value of hidden input `name`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = &html[html.find(&marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The run key at the end of `/ops/runs/{key}`.
fn key_in(location: &str) -> String {
    let key = location
        .strip_prefix("/ops/runs/")
        .unwrap_or_else(|| panic!("not a run page: {location}"));
    // `%XX` escapes back to bytes (keys are UTF-8).
    let bytes = key.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&key[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// How many runs the table holds.
async fn runs_count(db: &sea_orm::DatabaseConnection) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    task_run::Entity::find().count(db).await.unwrap()
}

/// Waits (up to 10 s) for run `key` to end; answers its row.
async fn ended(db: &sea_orm::DatabaseConnection, key: &str) -> task_run::Model {
    for _ in 0..1_000 {
        if let Some(run) = tasktrail_tests::find_run(db, key).await
            && matches!(run.status.as_str(), "success" | "failed" | "cancelled")
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {key} did not end");
}

async fn start_from_form_and_api(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker.register(Greet);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let mut client = Client::new(&app);

    // The form.
    let page = client.get("/ops/kinds/greet/start").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text
            .contains("<textarea id=\"start-args\" name=\"args\"")
    );
    assert!(page.text.contains("hx-post=\"/ops/kinds/greet/start\""));
    assert!(page.text.contains("Start run"), "an operator may start");

    // Submitted through htmx: `HX-Redirect` to the new run's page.
    let args = r#"{"name": "ada", "times": 3}"#;
    let answer = client
        .htmx_form("/ops/kinds/greet/start", None, &[("args", args)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let to = answer
        .header("hx-redirect")
        .expect("HX-Redirect")
        .to_owned();
    let key = key_in(&to);
    let run = ended(&db, &key).await;
    assert_eq!(run.status, "success", "{run:?}");
    assert_eq!(run.task_name, "greet");
    assert_eq!(run.task_args, Some(json!({ "name": "ada", "times": 3 })));
    assert_eq!(run.result_payload, Some(json!("hello ada")));
    // The run's page is there.
    let run_page = client.get(&to).await;
    assert_eq!(run_page.status, StatusCode::OK);
    assert!(run_page.text.contains(&key));
    // The kind's page links to the form.
    let kind_page = client.get("/ops/kinds/greet").await;
    assert_eq!(kind_page.status, StatusCode::OK, "{}", kind_page.text);
    assert!(
        kind_page
            .text
            .contains(r#"<a class="kind-start" href="/ops/kinds/greet/start">"#),
        "{}",
        kind_page.text
    );
    // The audit row.
    let audit = tasktrail::auth::audit::for_target(&db, &key, 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "start");
    assert_eq!(audit[0].outcome, "done");
    assert!(audit[0].detail.contains("page"), "{audit:?}");

    // Without htmx: 303 to the run's page.
    let answer = client
        .send(
            Method::POST,
            "/ops/kinds/greet/start",
            &[
                ("x-requested-with", "tasktrail"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form(&[("args", r#"{"name": "bob", "times": 1}"#)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let key = key_in(answer.header("location").unwrap());
    assert_eq!(ended(&db, &key).await.status, "success");

    // Refusals: a clear message naming the problem, the text kept, no run.
    let before = runs_count(&db).await;
    for (args, status, says) in [
        (
            r#"{"name": "ada", "times": "#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not valid JSON",
        ),
        (
            r#"{"name": 5, "times": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"name": "ada"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `times`",
        ),
        (
            r#"{"name": "ada", "times": 1, "evil": true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `evil`",
        ),
        (
            r#"{"name": "ada", "times": -1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid value: integer `-1`",
        ),
        (
            "   ",
            StatusCode::UNPROCESSABLE_ENTITY,
            "the arguments are empty",
        ),
        (
            "<script>alert(1)</script>",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not valid JSON",
        ),
    ] {
        // htmx: the form alone, 200 (so htmx logs no error), the status
        // in a header.
        let answer = client
            .htmx_form("/ops/kinds/greet/start", None, &[("args", args)])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{args}: {}", answer.text);
        assert_eq!(
            answer.header("x-tasktrail-status"),
            Some(status.as_str()),
            "{args}"
        );
        assert!(answer.text.contains(says), "{args}: {}", answer.text);
        assert!(answer.header("hx-redirect").is_none());
        assert!(
            answer.text.starts_with("<form id=\"start-form\""),
            "{}",
            answer.text
        );
        // A plain post: the whole page, with the status.
        let answer = client
            .send(
                Method::POST,
                "/ops/kinds/greet/start",
                &[
                    ("x-requested-with", "tasktrail"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form(&[("args", args)]),
            )
            .await;
        assert_eq!(answer.status, status, "{args}: {}", answer.text);
        assert!(answer.text.contains(says), "{args}: {}", answer.text);
        assert!(answer.header("location").is_none());
        // The form again, with the text as written (escaped).
        assert!(answer.text.contains("id=\"start-form\""), "{}", answer.text);
        assert!(!answer.text.contains("<script>"), "{}", answer.text);
        let kept = args
            .replace('&', "&#38;")
            .replace('<', "&#60;")
            .replace('>', "&#62;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;");
        assert!(
            answer.text.contains(&kept) || answer.text.contains(&args.replace('"', "&quot;")),
            "{args} kept: {}",
            answer.text
        );
        if args.contains("times\": 1") || args.contains('5') {
            assert!(
                answer.text.contains("do not fit `greet`"),
                "{}",
                answer.text
            );
        }
    }
    // Too big: 413, and not echoed back.
    let big = format!(r#"{{"name": "{}", "times": 1}}"#, "x".repeat(70_000));
    let answer = client
        .send(
            Method::POST,
            "/ops/kinds/greet/start",
            &[
                ("x-requested-with", "tasktrail"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form(&[("args", &big)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer.text.contains("at most 65536 bytes"),
        "{}",
        answer.text
    );
    assert!(answer.text.len() < 20_000);
    // No action header: refused.
    let answer = client
        .send(
            Method::POST,
            "/ops/kinds/greet/start",
            &[("content-type", "application/x-www-form-urlencoded")],
            form(&[("args", args)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    // Unknown kinds: 404 saying so, on the form, its submit and the API.
    for uri in [
        "/ops/kinds/nope/start",
        "/ops/kinds/%3Cscript%3Ealert(1)%3C%2Fscript%3E/start",
        "/ops/kinds/%E2%9C%93/start",
    ] {
        let answer = client.get(uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            answer.text.contains("is registered in this process"),
            "{}",
            answer.text
        );
        assert!(answer.text.contains("greet"), "the kinds that can be");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let answer = client
            .htmx_form(uri, None, &[("args", r#"{"name": "a", "times": 1}"#)])
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let answer = client
        .api_post("/ops/api/kinds/nope/runs", None, r#"{"args": {}}"#)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("no task kind `nope` is registered in this process"),
        "{}",
        answer.text
    );
    assert_eq!(runs_count(&db).await, before, "no refused start made a run");

    // The API: 201 with the key and the run's page.
    let answer = client
        .api_post(
            "/ops/api/kinds/greet/runs",
            None,
            r#"{"args": {"name": "cy", "times": 2}}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let body = answer.json();
    let key = body["key"].as_str().unwrap().to_owned();
    assert_eq!(body["kind"], "greet");
    assert_eq!(body["url"], format!("/ops/runs/{key}"));
    assert_eq!(answer.header("location"), body["url"].as_str());
    let run = ended(&db, &key).await;
    assert_eq!(run.result_payload, Some(json!("hello cy")));
    let audit = tasktrail::auth::audit::for_target(&db, &key, 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].detail.contains("api"), "{audit:?}");
    // Hostile bodies: 4xx JSON, never a run.
    let before = runs_count(&db).await;
    let huge = format!(r#"{{"args": "{}"}}"#, "y".repeat(70_000));
    for (body, status, says) in [
        ("", StatusCode::BAD_REQUEST, "the body must be"),
        ("[]", StatusCode::BAD_REQUEST, "the body must be"),
        ("{}", StatusCode::BAD_REQUEST, "missing field `args`"),
        (
            r#"{"args": {"name": "a", "times": 1}, "key": "mine"}"#,
            StatusCode::BAD_REQUEST,
            "unknown field `key`",
        ),
        ("not json", StatusCode::BAD_REQUEST, "the body must be"),
        (
            r#"{"args": {"name": 1, "times": 1}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "do not fit `greet`'s arguments: invalid type: integer `1`",
        ),
        (
            r#"{"args": null}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "do not fit `greet`'s arguments",
        ),
        (huge.as_str(), StatusCode::PAYLOAD_TOO_LARGE, "64 KiB"),
    ] {
        let answer = client
            .api_post("/ops/api/kinds/greet/runs", None, body)
            .await;
        assert_eq!(answer.status, status, "{body:.80}: {}", answer.text);
        let error = answer.json()["error"].as_str().unwrap_or("").to_owned();
        assert!(error.contains(says), "{body:.80}: {error}");
    }
    // Without the action header.
    let answer = client
        .send(
            Method::POST,
            "/ops/api/kinds/greet/runs",
            &[("content-type", "application/json")],
            r#"{"args": {"name": "a", "times": 1}}"#.to_owned(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.json()["error"].is_string());
    // GET on the API route: 405 as JSON.
    let answer = client.get("/ops/api/kinds/greet/runs").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(runs_count(&db).await, before, "no refused start made a run");

    // The OpenAPI document lists the route.
    let doc = client.get("/ops/api/openapi.json").await.json();
    assert!(
        doc["paths"]["/api/kinds/{name}/runs"]["post"].is_object(),
        "{doc}"
    );
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

/// A viewer sees the form without its button and is refused (403) on the
/// form and the API; nothing is started.
async fn viewer_is_refused(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker.register(Greet);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .auth(NoAuth::anyone().role(Role::Viewer))
        .router();
    let mut client = Client::new(&app);
    let page = client.get("/ops/kinds/greet/start").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("Start run"), "{}", page.text);
    assert!(
        page.text
            .contains("a viewer may not start runs; ask for the operator role"),
        "{}",
        page.text
    );
    let args = r#"{"name": "v", "times": 1}"#;
    let answer = client
        .htmx_form("/ops/kinds/greet/start", None, &[("args", args)])
        .await;
    assert_eq!(answer.header("x-tasktrail-status"), Some("403"));
    assert!(answer.text.contains("a viewer may not start runs"));
    let answer = client
        .send(
            Method::POST,
            "/ops/kinds/greet/start",
            &[
                ("x-requested-with", "tasktrail"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form(&[("args", args)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    assert!(answer.text.contains("a viewer may not start runs"));
    let answer = client
        .api_post(
            "/ops/api/kinds/greet/runs",
            None,
            &json!({ "args": { "name": "v", "times": 1 } }).to_string(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("ask for the operator role")
    );
    assert_eq!(runs_count(&db).await, 0);
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

static OPERATOR: LazyLock<String> = LazyLock::new(|| hash_password("otto: battery staple"));

/// With a login session, starting a run needs the session's CSRF token;
/// the run records the operator as its user.
async fn csrf_and_the_operator(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker.register(Greet);
    let app = Dashboard::new(Ops::default(), tracker.clone())
        .auth(SimpleAuth::new().user("otto", &OPERATOR, Role::Operator))
        .session_key(tasktrail::auth::SessionKey::from_secret(&[7; 48]))
        .router();
    let mut client = Client::new(&app);
    let login = client.get("/ops/login").await;
    let token = hidden(&login.text, "csrf").expect("the login form's token");
    let answer = client
        .send(
            Method::POST,
            "/ops/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            form(&[
                ("username", "otto"),
                ("password", "otto: battery staple"),
                ("next", "/ops/kinds/greet/start"),
                ("csrf", &token),
            ]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let page = client.get("/ops/kinds/greet/start").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page_csrf(&page.text).expect("the session's token on the page");
    let args = r#"{"name": "otto", "times": 1}"#;
    for wrong in [None, Some("not-the-token")] {
        let answer = client
            .htmx_form("/ops/kinds/greet/start", wrong, &[("args", args)])
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
        assert!(answer.text.contains("CSRF"), "{}", answer.text);
        let answer = client
            .api_post(
                "/ops/api/kinds/greet/runs",
                wrong,
                r#"{"args": {"name": "otto", "times": 1}}"#,
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    }
    assert_eq!(runs_count(&db).await, 0);
    let answer = client
        .htmx_form("/ops/kinds/greet/start", Some(&csrf), &[("args", args)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let key = key_in(answer.header("hx-redirect").unwrap());
    let run = ended(&db, &key).await;
    assert_eq!(run.user_label.as_deref(), Some("otto"), "{run:?}");
    let audit = tasktrail::auth::audit::for_target(&db, &key, 10)
        .await
        .unwrap();
    assert_eq!(audit[0].user_id, "otto");
    assert_eq!(audit[0].action, "start");
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}

backends!(
    start_from_form_and_api,
    viewer_is_refused,
    csrf_and_the_operator
);

/// A kind that takes a few seconds: `steps` steps of 300 ms.
struct Slow;

#[derive(serde::Serialize, serde::Deserialize)]
struct SlowArgs {
    steps: u32,
}

impl Task for Slow {
    const NAME: &'static str = "slow_import";
    type Args = SlowArgs;
    type Output = u32;
    type Error = String;
    async fn run(&self, ctx: TaskContext, args: SlowArgs) -> Result<u32, String> {
        for i in 1..=args.steps {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ctx.progress_with_message(
                f64::from(i) * 100.0 / f64::from(args.steps),
                format!("step {i} of {}", args.steps),
            );
        }
        Ok(args.steps)
    }
}

/// In a real browser: the form refuses bad JSON with the message in place
/// (the text kept), then starts the run and lands on its page, whose
/// progress follows the run live to success; no console errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_run_in_a_browser() {
    use fantoccini::Locator;
    use tasktrail_tests::browser::Browser;
    let (db, _g) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    tracker.register(Slow);
    tracker.register(Greet);
    let app = Dashboard::new(Ops::default(), tracker.clone()).router();
    let (addr, server) = crate::serve(app).await;
    let base = format!("http://{addr}/ops");
    let browser = Browser::start().await;

    browser
        .goto(&format!("{base}/kinds/slow_import/start"))
        .await
        .unwrap();
    let area = browser.wait_for_css("#start-args").await;
    area.clear().await.unwrap();
    area.send_keys(r#"{"steps": "many"}"#).await.unwrap();
    browser
        .find(Locator::Css("#start-form button[type=\"submit\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let message = browser
        .wait_until("the refusal on the form", || async {
            let text = browser
                .find(Locator::Css("#start-error"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (!text.is_empty()).then_some(text)
        })
        .await;
    assert!(
        message.contains(
            "do not fit `slow_import`'s arguments: invalid type: string \"many\", expected u32"
        ),
        "{message}"
    );
    let kept = browser
        .eval("return document.getElementById('start-args').value;")
        .await;
    assert_eq!(kept, json!(r#"{"steps": "many"}"#), "the text is kept");
    assert_eq!(runs_count(&db).await, 0);
    browser.screenshot("start-refused.png").await;

    // Not JSON at all.
    let area = browser.wait_for_css("#start-args").await;
    area.clear().await.unwrap();
    area.send_keys("{steps: 3").await.unwrap();
    browser
        .find(Locator::Css("#start-form button[type=\"submit\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the JSON error", || async {
            let text = browser
                .find(Locator::Css("#start-error"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains("not valid JSON").then_some(())
        })
        .await;

    // Good arguments: the run's page, its progress live to success.
    let area = browser.wait_for_css("#start-args").await;
    area.clear().await.unwrap();
    area.send_keys(r#"{"steps": 10}"#).await.unwrap();
    browser.screenshot("start.png").await;
    browser.eval("window.__e2e_form = 1; return null;").await;
    browser
        .find(Locator::Css("#start-form button[type=\"submit\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let key = browser
        .wait_until("the new run's page", || async {
            let url = browser.current_url().await.ok()?;
            url.path().strip_prefix("/ops/runs/").map(str::to_owned)
        })
        .await;
    browser.wait_for_css(r#"h1 [data-kind="status"]"#).await;
    browser.eval("window.__e2e_run = 1; return null;").await;
    let progress = || async {
        browser
            .eval("var p = document.querySelector('progress'); return p ? p.value : null;")
            .await
            .as_f64()
    };
    let first = browser
        .wait_until("a progress value below 100", || async {
            progress().await.filter(|v| *v < 100.0)
        })
        .await;
    browser
        .wait_until("the progress to advance without a reload", || async {
            progress().await.filter(|v| *v > first)
        })
        .await;
    browser
        .wait_until_for(
            "the run to succeed on its page",
            Duration::from_secs(20),
            || async {
                let status = browser
                    .find(Locator::Css(r#"h1 [data-kind="status"]"#))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                (status == "success").then_some(())
            },
        )
        .await;
    assert_eq!(
        browser.eval("return window.__e2e_run || 0;").await,
        json!(1),
        "the run's page followed the run without a reload"
    );
    browser.screenshot("start-run.png").await;
    let run = tasktrail_tests::find_run(&db, &key).await.unwrap();
    assert_eq!(run.task_args, Some(json!({ "steps": 10 })));
    assert_eq!(run.result_payload, Some(json!(10)));
    browser.assert_no_console_errors().await;
    browser.close().await;
    server.abort();
    let _ = tracker.shutdown(Duration::from_secs(5)).await;
}
