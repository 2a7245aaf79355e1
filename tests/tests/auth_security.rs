//! The dashboard's authentication attacked through the real router: gate
//! bypasses by path tricks and methods, open redirects through `next`,
//! CSRF on actions and logout, tampered / foreign / expired session
//! cookies and their attributes, login brute force (also concurrent, and
//! password spraying), roles, the loopback-only default, `NoAuth` and
//! `HeaderAuth` — and not one 5xx anywhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tasktrail::auth::{HeaderAuth, NoAuth, Role, SessionKey, SimpleAuth, hash_password};
use tasktrail::{Dashboard, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, TestDb, connect};
use tower::ServiceExt;

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        url_prefix: "/ops",
        actions: [cancel, retry, delete],
    }
}

/// The host every request names (and a same-origin `Origin` carries).
const HOST: &str = "localhost:8080";
/// A run whose key and message must never leak to a client without a
/// session.
const SECRET_KEY: &str = "secret-run-7f3a";
const SECRET_MESSAGE: &str = "classified-payload-91c2";

const ADA: (&str, &str) = ("ada", "ada: correct horse");
const OTTO: (&str, &str) = ("otto", "otto: battery staple");
const VIC: (&str, &str) = ("vic", "vic: tr0ub4dor");

/// argon2 is slow in a debug build: hash each password once.
static HASHES: LazyLock<[String; 3]> = LazyLock::new(|| [ADA.1, OTTO.1, VIC.1].map(hash_password));

fn users() -> SimpleAuth {
    SimpleAuth::new()
        .user(ADA.0, &HASHES[0], Role::Admin)
        .user(OTTO.0, &HASHES[1], Role::Operator)
        .user(VIC.0, &HASHES[2], Role::Viewer)
}

fn key_of(n: u8) -> SessionKey {
    SessionKey::from_secret(&[n; 48])
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

/// Every status a test saw, to check that none is a 5xx.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Method, String, StatusCode)>>>);

impl Seen {
    fn record(&self, method: &Method, uri: &str, status: StatusCode) {
        self.0
            .lock()
            .unwrap()
            .push((method.clone(), uri.to_owned(), status));
    }

    /// Asserts that not one response was a server error; answers how many
    /// responses were seen.
    fn assert_no_5xx(&self) -> usize {
        let seen = self.0.lock().unwrap();
        let errors: Vec<_> = seen
            .iter()
            .filter(|(_, _, status)| status.is_server_error())
            .collect();
        assert!(errors.is_empty(), "server errors: {errors:?}");
        seen.len()
    }

    /// [`assert_no_5xx`](Self::assert_no_5xx), but `allowed` may occur.
    fn assert_no_5xx_but(&self, allowed: StatusCode) -> usize {
        let seen = self.0.lock().unwrap();
        let errors: Vec<_> = seen
            .iter()
            .filter(|(_, _, status)| status.is_server_error() && *status != allowed)
            .collect();
        assert!(errors.is_empty(), "server errors: {errors:?}");
        seen.len()
    }
}

/// The cookies a browser would keep (one path: the dashboard's).
#[derive(Clone, Debug, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("a Set-Cookie header is ASCII");
            let cookie = SetCookie::parse(set);
            if cookie.attr("max-age") == Some("0") {
                self.0.remove(&cookie.name);
            } else {
                self.0.insert(cookie.name, cookie.value);
            }
        }
    }

    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// One parsed `Set-Cookie`.
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    /// Lower-case attribute names, with their values (`""` for flags).
    attrs: BTreeMap<String, String>,
}

impl SetCookie {
    fn parse(set: &str) -> SetCookie {
        let mut parts = set.split(';').map(str::trim);
        let (name, value) = parts
            .next()
            .and_then(|p| p.split_once('='))
            .expect("name=value");
        let attrs = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                None => (p.to_ascii_lowercase(), String::new()),
            })
            .collect();
        SetCookie {
            name: name.to_owned(),
            value: value.to_owned(),
            attrs,
        }
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    fn named(headers: &HeaderMap, name: &str) -> Option<SetCookie> {
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| SetCookie::parse(v.to_str().unwrap()))
            .find(|c| c.name == name)
    }
}

/// Request headers, as pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }
}

/// A browser-like client: one peer address, a cookie jar, and the host.
#[derive(Clone)]
struct Client {
    app: axum::Router,
    peer: Option<SocketAddr>,
    jar: Jar,
    seen: Seen,
    /// Headers sent with every request (what a proxy adds).
    extra: Vec<(&'static str, String)>,
}

impl Client {
    fn new(app: &axum::Router, peer: &str, seen: &Seen) -> Client {
        Client {
            app: app.clone(),
            peer: Some(addr(peer)),
            jar: Jar::default(),
            seen: seen.clone(),
            extra: Vec::new(),
        }
    }

    /// The same client with `name: value` on every request.
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Client {
        self.extra.push((name, value.into()));
        self
    }

    /// Sends a request with the jar's cookies and `Host`, keeps the cookies
    /// the response sets. An event stream's body is not read (it never
    /// ends).
    async fn send(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        let named = |k: &str| k.eq_ignore_ascii_case("host");
        if !headers.iter().any(|(k, _)| named(k)) && !self.extra.iter().any(|(k, _)| named(k)) {
            builder = builder.header(header::HOST, HOST);
        }
        if let Some(cookies) = self.jar.header() {
            builder = builder.header(header::COOKIE, cookies);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        for (k, v) in &self.extra {
            builder = builder.header(*k, v);
        }
        let mut request = builder.body(Body::from(body.to_owned())).unwrap();
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        self.seen.record(&method, uri, status);
        let headers = response.headers().clone();
        self.jar.absorb(&headers);
        let stream = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = if stream {
            String::new()
        } else {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Answer {
            status,
            headers,
            text,
        }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[], "").await
    }

    /// A form post as htmx sends it: the action header, and the session's
    /// CSRF token when given.
    async fn htmx_post(&mut self, uri: &str, csrf: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
        let mut headers = vec![
            ("x-requested-with", "tasktrail"),
            ("hx-request", "true"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(token) = csrf {
            headers.push(("x-csrf-token", token));
        }
        self.send(Method::POST, uri, &headers, &form(pairs)).await
    }

    /// The login form: its answer and its CSRF token.
    async fn login_page(&mut self, next: Option<&str>) -> (Answer, String) {
        let uri = match next {
            Some(next) => format!("/ops/login?{}", form(&[("next", next)])),
            None => "/ops/login".to_owned(),
        };
        let page = self.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.text);
        let csrf = hidden(&page.text, "csrf").expect("the login form's csrf input");
        (page, csrf)
    }

    /// Fetches the login form and posts it.
    async fn login(&mut self, (user, password): (&str, &str), next: &str) -> Answer {
        let (_, csrf) = self.login_page(None).await;
        self.post_login(user, password, next, &csrf).await
    }

    async fn post_login(&mut self, user: &str, password: &str, next: &str, csrf: &str) -> Answer {
        let body = form(&[
            ("username", user),
            ("password", password),
            ("next", next),
            ("csrf", csrf),
        ]);
        self.send(
            Method::POST,
            "/ops/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await
    }

    /// Posts the login form as a browser retrying it would: with the
    /// token of the form the last answer showed.
    async fn attempt(&mut self, user: &str, password: &str, csrf: &mut String) -> Answer {
        let answer = self.post_login(user, password, "/ops/", csrf).await;
        if let Some(token) = hidden(&answer.text, "csrf") {
            *csrf = token;
        }
        answer
    }

    /// Logs in (must succeed) and answers the session's CSRF token, read
    /// from the page's `hx-headers` and checked against the logout form's.
    async fn logged_in(&mut self, who: (&str, &str)) -> String {
        let answer = self.login(who, "/ops/runs").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        assert_eq!(answer.location(), Some("/ops/runs"));
        assert!(self.jar.0.contains_key("tasktrail_session"));
        assert!(
            !self.jar.0.contains_key("tasktrail_login"),
            "the login cookie is removed"
        );
        let page = self.get("/ops/runs").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let token = page_csrf(&page.text).expect("hx-headers carries the CSRF token");
        assert_eq!(hidden(&page.text, "csrf").as_deref(), Some(token.as_str()));
        token
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The value of the first hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker)? + marker.len();
    let rest = &html[at..];
    Some(
        rest[..rest.find('"')?]
            .replace("&#38;", "&")
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/"),
    )
}

/// The CSRF token in `<body hx-headers='{…, "X-CSRF-Token": "…"}'>`.
fn page_csrf(html: &str) -> Option<String> {
    let body = &html[html.find("<body")?..];
    let attr = &body[body.find("hx-headers='")?..body.find('>')?];
    let marker = "\"X-CSRF-Token\": \"";
    let rest = &attr[attr.find(marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The `next` of a `/ops/login?next=…` address.
fn next_param(location: &str) -> Option<String> {
    let query = location.strip_prefix("/ops/login?")?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
}

/// What a redirect after login may go to: a plain path under `/ops`.
fn plain_dashboard_path(path: &str) -> bool {
    // (`/ops//x` is a path on the same host: only a leading `//` names
    // another.)
    (path == "/ops" || path.starts_with("/ops/"))
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
        && !path
            .split(['/', '?', '#'])
            .any(|segment| segment == ".." || segment == ".")
}

/// A fresh database with the secret run (pending, so that it can be
/// cancelled) and a few more.
async fn tracker() -> (task_run::Tracker, TestDb) {
    let (db, guard) = connect(Backend::SqliteMemory).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db);
    tracker
        .lifecycle(
            Event::create(SECRET_KEY)
                .name("import")
                .message(SECRET_MESSAGE),
        )
        .await
        .unwrap();
    (tracker, guard)
}

/// A pending run that can be cancelled.
async fn pending(tracker: &task_run::Tracker, key: &str) {
    tracker
        .lifecycle(Event::create(key).name("import"))
        .await
        .unwrap();
}

async fn status_in_db(tracker: &task_run::Tracker, key: &str) -> String {
    task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(tracker.db())
        .await
        .unwrap()
        .map_or_else(|| "gone".to_owned(), |run| run.status)
}

fn with_logs(dashboard: Dashboard<Ops>) -> Dashboard<Ops> {
    dashboard.log_storage(Arc::new(tasktrail::logs::MemoryLogStorage::new(1_000)))
}

/// The dashboard with a login form.
fn login_app(tracker: &task_run::Tracker) -> axum::Router {
    with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .router()
}

/// Every route of the dashboard that must be closed without a session,
/// relative to `/ops`.
fn closed_routes() -> Vec<String> {
    let key = SECRET_KEY;
    [
        "",
        "/",
        "/runs",
        "/runs/{key}",
        "/logs",
        "/api/runs",
        "/api/runs/{key}",
        "/api/metrics",
        "/api/openapi.json",
        "/metrics",
        "/api/logs",
        "/api/events",
        "/api/logs/events",
        "/api/runs/{key}/cancel",
        "/api/runs/{key}/retry",
        "/api/runs/bulk",
        "/runs/{key}/cancel",
        "/runs/{key}/delete",
        "/runs/bulk",
    ]
    .iter()
    .map(|r| r.replace("{key}", key))
    .collect()
}

/// Ways of spelling `/ops{rest}` that a careless gate could let through.
fn disguises(rest: &str) -> Vec<String> {
    let tail = rest.strip_prefix('/').unwrap_or(rest);
    let mut out = vec![
        format!("/ops{rest}"),
        format!("//ops{rest}"),
        format!("/ops/.{rest}"),
        format!("/ops/./{tail}"),
        format!("/ops/../ops{rest}"),
        format!("/ops/assets/..{rest}"),
        format!("/ops/assets/..%2F{tail}"),
        format!("/ops/assets/%2e%2e{rest}"),
        format!("/ops/assets/%2E%2E/{tail}"),
        format!("/ops/login/..{rest}"),
        format!("/ops/login%2F..{rest}"),
        format!("/ops/logout/..{rest}"),
        format!("/ops{rest}/"),
        format!("/ops{rest}/."),
        format!("/ops{rest}%2F.."),
        format!("/%6Fps{rest}"),
        format!("/%256Fps{rest}"),
        format!("/OPS{rest}"),
        format!("/ops;{rest}"),
        format!("/ops{rest};x"),
        format!("/ops%2F{tail}"),
        format!("/ops-evil{rest}"),
        format!("/opsx{rest}"),
        format!("/ops{rest}?next=//evil.example"),
        format!("http://evil.example/ops{rest}"),
        format!("/ops/{}", tail.replace('/', "%2F")),
    ];
    if let Some(first) = tail.chars().next() {
        // `/ops/%72uns`, and encoded twice: `/ops/%2572uns`.
        let code = first as u32;
        out.push(format!("/ops/%{code:02x}{}", &tail[1..]));
        out.push(format!("/ops/%{code:02X}{}", &tail[1..]));
        out.push(format!("/ops/%25{code:02x}{}", &tail[1..]));
    }
    out
}

/// Checks an answer to a request without a session: a way to the login
/// page, or a refusal; never the dashboard's content, never a 5xx.
fn assert_closed(method: &Method, uri: &str, answer: &Answer) {
    let what = format!("{method} {uri} → {}", answer.status);
    match answer.status {
        StatusCode::SEE_OTHER => {
            let location = answer
                .location()
                .unwrap_or_else(|| panic!("{what}: no Location"));
            let next = next_param(location)
                .unwrap_or_else(|| panic!("{what}: redirected to {location}, not the login page"));
            assert!(
                plain_dashboard_path(&next),
                "{what}: next={next:?} is not a plain dashboard path"
            );
        }
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::METHOD_NOT_ALLOWED => {}
        other => panic!("{what}: unexpected status {other}: {}", answer.text),
    }
    if let Some(to) = answer.header("hx-redirect") {
        let next = next_param(to).unwrap_or_else(|| panic!("{what}: HX-Redirect {to}"));
        assert!(
            plain_dashboard_path(&next),
            "{what}: HX-Redirect next={next:?}"
        );
    }
    for secret in [SECRET_KEY, SECRET_MESSAGE] {
        assert!(
            !answer.text.contains(secret),
            "{what}: the body leaks {secret}: {}",
            answer.text
        );
    }
    assert!(
        !answer.text.contains("hx-headers"),
        "{what}: a dashboard page: {}",
        answer.text
    );
}

// ─── 1. The gate ──────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_bypass_attempts_without_a_session() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let app = login_app(&tracker);
    let seen = Seen::default();
    let mut client = Client::new(&app, "198.51.100.20", &seen);

    // The paths the brief names, verbatim, plus every disguise of every
    // closed route.
    let mut paths: Vec<String> = [
        "/ops/%72uns",
        "/ops/runs%2F..",
        "/%6Fps/runs",
        "//ops/runs",
        "/ops/./runs",
        "/ops/../ops/runs",
        "/ops/assets/../runs",
        "/ops/assets/..%2Fruns",
        "/ops/runs/",
        "/ops-evil",
        "/opsx/runs",
        "/ops/../x",
        "/ops/login/../runs",
        "/ops/assets/%2e%2e/api/runs",
        "/ops/assets/../api/runs",
        "/ops/assets/..%2F..%2Fops/api/runs",
        "/ops/assets/app.css/../../runs",
        "/ops/%2e/runs",
        "/ops/runs/%2e%2e",
        "/ops/api/runs/%2e%2e/runs",
        "/ops/runs/..%2F..%2Fapi%2Fruns",
        "/ops/api/runs/..%2Fevents",
    ]
    .map(str::to_owned)
    .to_vec();
    for rest in closed_routes() {
        paths.extend(disguises(&rest));
    }
    paths.sort();
    paths.dedup();

    let methods = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::POST,
        Method::DELETE,
        Method::PUT,
        Method::PATCH,
    ];
    let plain: &[(&str, &str)] = &[];
    let htmx: &[(&str, &str)] = &[
        ("x-requested-with", "tasktrail"),
        ("hx-request", "true"),
        ("hx-current-url", "https://evil.example//evil.example/x"),
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "http://localhost:8080"),
    ];
    let (mut sent, mut unparsable, mut redirects) = (0, Vec::new(), 0);
    for path in &paths {
        if path.parse::<Uri>().is_err() {
            // hyper refuses such a request line before any router runs.
            unparsable.push(path.clone());
            continue;
        }
        for method in &methods {
            for headers in [plain, htmx] {
                let body = if *method == Method::POST {
                    "action=cancel&scope=selected&key=secret-run-7f3a&confirmed=1"
                } else {
                    ""
                };
                let answer = client.send(method.clone(), path, headers, body).await;
                assert_closed(method, path, &answer);
                if answer.status == StatusCode::SEE_OTHER {
                    redirects += 1;
                }
                sent += 1;
            }
        }
    }
    assert!(
        unparsable.is_empty(),
        "paths http cannot parse: {unparsable:?}"
    );
    assert!(client.jar.0.is_empty() || !client.jar.0.contains_key("tasktrail_session"));

    // The plain routes without a session: pages to the login page with
    // `next`, the API 401, htmx 401 with HX-Redirect.
    let answer = client.get("/ops/runs?status=failed").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        next_param(answer.location().unwrap()).as_deref(),
        Some("/ops/runs?status=failed")
    );
    let answer = client.get("/ops/api/runs").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = client.get("/ops/api/events").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = client
        .send(
            Method::GET,
            "/ops/runs",
            &[
                ("hx-request", "true"),
                (
                    "hx-current-url",
                    "http://localhost:8080/ops/runs/secret-run-7f3a",
                ),
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.header("hx-redirect"),
        Some("/ops/login?next=%2Fops%2Fruns%2Fsecret-run-7f3a")
    );
    // What is open: the login page and the assets, and nothing else.
    assert_eq!(client.get("/ops/login").await.status, StatusCode::OK);
    assert_eq!(
        client.get("/ops/assets/app.css").await.status,
        StatusCode::OK
    );

    // Not one request changed the run.
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");
    assert!(redirects > 0);
    let total = seen.assert_no_5xx();
    println!(
        "gate: {sent} bypass attempts over {} paths ({redirects} sent to the login page), {total} responses, no 5xx, in {:?}",
        paths.len(),
        began.elapsed()
    );
}

// ─── 2. Open redirects ────────────────────────────────────────────────────

const HOSTILE_NEXT: &[&str] = &[
    "https://evil.example",
    "https://evil.example/ops/",
    "//evil.example",
    "//evil.example/ops/",
    "/\\evil.example",
    "\\\\evil",
    "/ops/../evil",
    "/ops/..",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/ops/%2e%2e/x",
    "/ops/%252e%252e/x",
    "/ops/%2E%2E%2F%2E%2E%2Fevil",
    "/ops/%5C%5Cevil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/ops-evil",
    "/opsx/runs",
    "ops/runs",
    " /ops/runs",
    "/ops/runs\r\nSet-Cookie: pwned=1",
    "/ops/runs%0d%0aSet-Cookie:%20pwned=1",
    "/ops/\tevil",
    "/ops/./runs",
    "",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_never_leaves_the_dashboard() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let app = login_app(&tracker);
    let seen = Seen::default();

    for &next in HOSTILE_NEXT {
        // The login page's hidden input does not hold it.
        let mut client = Client::new(&app, "198.51.100.30", &seen);
        let (page, _) = client.login_page(Some(next)).await;
        assert_eq!(
            hidden(&page.text, "next").as_deref(),
            Some("/ops/"),
            "next={next:?}"
        );
        assert!(!page.text.contains("evil"), "next={next:?}: {}", page.text);
        assert!(!page.text.contains("<script>"), "next={next:?}");
        // Logging in with it goes to the dashboard's root.
        let answer = client.login(ADA, next).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(answer.location(), Some("/ops/"), "next={next:?}");
        assert!(answer.header("set-cookie").is_some());
        assert!(
            !answer
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .any(|v| v.to_str().unwrap().contains("pwned")),
            "next={next:?}: header injection"
        );
        // Logged in, the login page redirects at once: not there either.
        let answer = client
            .get(&format!("/ops/login?{}", form(&[("next", next)])))
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(answer.location(), Some("/ops/"), "next={next:?}");
    }

    // Markup in a next under the prefix is harmless there (a path on this
    // host), and escaped in the form.
    let mut client = Client::new(&app, "198.51.100.30", &seen);
    let markup = "/ops/\"><script>alert(1)</script>";
    let (page, _) = client.login_page(Some(markup)).await;
    assert!(!page.text.contains("<script>"), "{}", page.text);
    assert!(!page.text.contains("\"><script>alert"), "{}", page.text);
    assert!(
        page.text
            .contains("value=\"/ops/&#34;&#62;&#60;script&#62;alert(1)"),
        "{}",
        page.text
    );

    // A good next is kept, through the form and after logging in.
    let good = "/ops/runs?status=failed";
    let mut client = Client::new(&app, "198.51.100.30", &seen);
    let (page, csrf) = client.login_page(Some(good)).await;
    assert_eq!(hidden(&page.text, "next").as_deref(), Some(good));
    let answer = client.post_login(ADA.0, ADA.1, good, &csrf).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), Some(good));
    let answer = client
        .get(&format!(
            "/ops/login?{}",
            form(&[("next", "/ops/runs/x%20y")])
        ))
        .await;
    assert_eq!(answer.location(), Some("/ops/runs/x%20y"));

    // A failed login keeps a good next in the form, and drops a bad one.
    let mut client = Client::new(&app, "198.51.100.31", &seen);
    let (_, csrf) = client.login_page(None).await;
    let answer = client
        .post_login(ADA.0, "wrong", "//evil.example", &csrf)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hidden(&answer.text, "next").as_deref(), Some("/ops/"));
    let csrf = hidden(&answer.text, "csrf").unwrap();
    let answer = client.post_login(ADA.0, "wrong", good, &csrf).await;
    assert_eq!(hidden(&answer.text, "next").as_deref(), Some(good));

    let total = seen.assert_no_5xx();
    println!(
        "redirects: {} hostile next values, {total} responses, in {:?}",
        HOSTILE_NEXT.len(),
        began.elapsed()
    );
}

// ─── 3. CSRF ──────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_on_actions_logout_and_login() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    for key in ["c-page", "c-api", "c-bulk", "c-bulk-api", "c-origin"] {
        pending(&tracker, key).await;
    }
    let app = login_app(&tracker);
    let seen = Seen::default();
    let mut ada = Client::new(&app, "198.51.100.40", &seen);
    let token = ada.logged_in(ADA).await;
    let wrong = format!("{}x", &token[..token.len() - 1]);
    let action = [("x-requested-with", "tasktrail")];

    // Each action endpoint: no token, a wrong one, an empty one, the token
    // in the wrong place (a form field, the query), the right one from
    // another origin: 403, the run untouched. Then the right one: 200.
    let endpoints: [(&str, &str, &str); 4] = [
        ("c-page", "/ops/runs/c-page/cancel", ""),
        ("c-api", "/ops/api/runs/c-api/cancel", ""),
        (
            "c-bulk",
            "/ops/runs/bulk",
            "action=cancel&scope=selected&key=c-bulk&confirmed=1",
        ),
        (
            "c-bulk-api",
            "/ops/api/runs/bulk",
            r#"{"action": "cancel", "keys": ["c-bulk-api"]}"#,
        ),
    ];
    for (key, uri, body) in endpoints {
        let content_type = if body.starts_with('{') {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        let base = [action[0], ("content-type", content_type)];
        let attempts: Vec<(String, Headers, String)> = vec![
            ("no token".into(), base.to_vec(), body.to_owned()),
            (
                "wrong token".into(),
                [&base[..], &[("x-csrf-token", wrong.as_str())]].concat(),
                body.to_owned(),
            ),
            (
                "empty token".into(),
                [&base[..], &[("x-csrf-token", "")]].concat(),
                body.to_owned(),
            ),
            (
                "token in the body".into(),
                base.to_vec(),
                if body.is_empty() || body.starts_with('{') {
                    format!("csrf={token}")
                } else {
                    format!("{body}&csrf={token}")
                },
            ),
            (
                "right token, foreign origin".into(),
                [
                    &base[..],
                    &[
                        ("x-csrf-token", token.as_str()),
                        ("origin", "https://evil.example"),
                    ],
                ]
                .concat(),
                body.to_owned(),
            ),
            (
                "right token, foreign referer".into(),
                [
                    &base[..],
                    &[
                        ("x-csrf-token", token.as_str()),
                        ("referer", "https://evil.example/ops/runs"),
                    ],
                ]
                .concat(),
                body.to_owned(),
            ),
            (
                "right token, origin null".into(),
                [
                    &base[..],
                    &[("x-csrf-token", token.as_str()), ("origin", "null")],
                ]
                .concat(),
                body.to_owned(),
            ),
        ];
        for (what, headers, body) in attempts {
            let answer = ada.send(Method::POST, uri, &headers, &body).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{uri}, {what}: {}",
                answer.text
            );
            assert_eq!(
                status_in_db(&tracker, key).await,
                "pending",
                "{uri}, {what}"
            );
        }
        // The token with the query string is not the header either.
        let answer = ada
            .send(Method::POST, &format!("{uri}?csrf={token}"), &base, body)
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}?csrf=");
        // The right token, same origin: done.
        let headers = [
            &base[..],
            &[
                ("x-csrf-token", token.as_str()),
                ("origin", "http://localhost:8080"),
            ],
        ]
        .concat();
        let answer = ada.send(Method::POST, uri, &headers, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
        assert_eq!(status_in_db(&tracker, key).await, "cancelled", "{uri}");
    }
    // DELETE is state-changing too.
    let answer = ada
        .send(Method::DELETE, "/ops/api/runs/c-page", &action, "")
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(status_in_db(&tracker, "c-page").await, "cancelled");
    let answer = ada
        .send(
            Method::DELETE,
            "/ops/api/runs/c-page",
            &[action[0], ("x-csrf-token", token.as_str())],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_eq!(status_in_db(&tracker, "c-page").await, "gone");

    // Another user's token is not this session's.
    let mut otto = Client::new(&app, "198.51.100.41", &seen);
    let otto_token = otto.logged_in(OTTO).await;
    assert_ne!(otto_token, token);
    let answer = ada
        .htmx_post("/ops/runs/c-origin/cancel", Some(&otto_token), &[])
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(status_in_db(&tracker, "c-origin").await, "pending");

    // Logout: without the token, with a wrong one, from another origin:
    // 403, and the session still works.
    let logout_form = "application/x-www-form-urlencoded";
    for (body, extra) in [
        (String::new(), None),
        (format!("csrf={wrong}"), None),
        (format!("csrf={otto_token}"), None),
        ("csrf=".to_owned(), None),
        (String::new(), Some(("x-csrf-token", wrong.as_str()))),
    ] {
        let mut headers = vec![("content-type", logout_form)];
        headers.extend(extra);
        let answer = ada.send(Method::POST, "/ops/logout", &headers, &body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "logout with {body:?}");
        assert!(SetCookie::named(&answer.headers, "tasktrail_session").is_none());
        assert_eq!(ada.get("/ops/runs").await.status, StatusCode::OK);
    }
    // GET does not log out.
    let answer = ada.get(&format!("/ops/logout?csrf={token}")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(ada.get("/ops/runs").await.status, StatusCode::OK);
    // The right token logs out: the cookie is removed, the pages closed.
    let stale = ada.jar.clone();
    let answer = ada
        .send(
            Method::POST,
            "/ops/logout",
            &[("content-type", logout_form)],
            &format!("csrf={token}"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), Some("/ops/login?out=1"));
    let removal = SetCookie::named(&answer.headers, "tasktrail_session").unwrap();
    assert_eq!(removal.attr("max-age"), Some("0"));
    assert_eq!(removal.attr("path"), Some("/ops"));
    assert!(!ada.jar.0.contains_key("tasktrail_session"));
    assert_eq!(ada.get("/ops/runs").await.status, StatusCode::SEE_OTHER);
    // A copy of the old cookie is refused too: logging out revokes the
    // session on this instance until it would have expired.
    let mut replay = ada.clone();
    replay.jar = stale;
    assert_eq!(replay.get("/ops/runs").await.status, StatusCode::SEE_OTHER);

    // The login form: without its cookie, with a mismatched token, with
    // the token of another form, or with no token at all: 403, no session.
    let mut eve = Client::new(&app, "198.51.100.42", &seen);
    let (_, csrf) = eve.login_page(None).await;
    let login_cookie = eve.jar.clone();
    let mut other = Client::new(&app, "198.51.100.42", &seen);
    let (_, other_csrf) = other.login_page(None).await;
    let cases: [(&str, Jar, String); 5] = [
        ("no login cookie", Jar::default(), csrf.clone()),
        ("mismatched token", login_cookie.clone(), format!("{csrf}A")),
        ("another form's token", login_cookie.clone(), other_csrf),
        ("no token", login_cookie.clone(), String::new()),
        (
            "the session token as the login token",
            login_cookie.clone(),
            token.clone(),
        ),
    ];
    for (what, jar, csrf) in cases {
        eve.jar = jar;
        let answer = eve.post_login(ADA.0, ADA.1, "/ops/runs", &csrf).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "login, {what}");
        assert!(
            SetCookie::named(&answer.headers, "tasktrail_session").is_none(),
            "login, {what}: a session cookie"
        );
        assert!(!eve.jar.0.contains_key("tasktrail_session"));
    }
    // The login cookie of another key is not this dashboard's.
    let elsewhere = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(2))
        .router();
    let mut foreign = Client::new(&elsewhere, "198.51.100.42", &seen);
    let (_, foreign_csrf) = foreign.login_page(None).await;
    eve.jar = foreign.jar.clone();
    let answer = eve
        .post_login(ADA.0, ADA.1, "/ops/runs", &foreign_csrf)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(SetCookie::named(&answer.headers, "tasktrail_session").is_none());
    // And with the right pair, it works.
    eve.jar = login_cookie;
    let answer = eve.post_login(ADA.0, ADA.1, "/ops/runs", &csrf).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);

    let total = seen.assert_no_5xx();
    println!("csrf: {total} responses, no 5xx, in {:?}", began.elapsed());
}

// ─── 4. Cookies ───────────────────────────────────────────────────────────

/// Flips one base64 character in the middle of `value`.
fn tampered(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let mid = chars.len() / 2;
    let at = (mid..chars.len())
        .find(|&i| chars[i].is_ascii_alphanumeric())
        .expect("an alphanumeric character");
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_tampered_foreign_expired_and_their_attributes() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .session_ttl(Duration::from_secs(1))
        .router();
    let long = login_app(&tracker);
    let secure_app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .secure_cookies(true)
        .router();
    let plain_app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .secure_cookies(false)
        .router();
    let other_key = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(3))
        .router();
    let seen = Seen::default();

    // Attributes: the login cookie and the session cookie (`Secure` by
    // default for a remote client).
    for (app, secure, max_age) in [
        (&plain_app, false, "43200"),
        (&long, true, "43200"),
        (&secure_app, true, "43200"),
    ] {
        let mut client = Client::new(app, "198.51.100.50", &seen);
        let (page, csrf) = client.login_page(None).await;
        let login = SetCookie::named(&page.headers, "tasktrail_login").unwrap();
        let answer = client.post_login(ADA.0, ADA.1, "/ops/", &csrf).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        let session = SetCookie::named(&answer.headers, "tasktrail_session").unwrap();
        for (cookie, max_age) in [(&login, "1800"), (&session, max_age)] {
            assert!(cookie.attrs.contains_key("httponly"), "{cookie:?}");
            assert_eq!(cookie.attr("samesite"), Some("Lax"), "{cookie:?}");
            assert_eq!(cookie.attr("path"), Some("/ops"), "{cookie:?}");
            assert_eq!(cookie.attr("max-age"), Some(max_age), "{cookie:?}");
            assert_eq!(cookie.attrs.contains_key("secure"), secure, "{cookie:?}");
            assert!(!cookie.attrs.contains_key("domain"), "{cookie:?}");
            // Encrypted: neither the JSON, the role nor the token shows.
            assert!(!cookie.value.contains("admin"), "{cookie:?}");
            assert!(!cookie.value.contains('{'), "{cookie:?}");
            assert!(!cookie.value.contains("%7B"), "{cookie:?}");
            assert!(!cookie.value.contains(&csrf), "{cookie:?}");
        }
        // The removed login cookie is scoped the same way.
        let gone = SetCookie::named(&answer.headers, "tasktrail_login").unwrap();
        assert_eq!(gone.attr("max-age"), Some("0"));
        assert_eq!(gone.attr("path"), Some("/ops"));
        assert_eq!(gone.attrs.contains_key("secure"), secure);
        assert_eq!(client.get("/ops/runs").await.status, StatusCode::OK);
    }

    // A tampered cookie: logged out.
    let mut client = Client::new(&long, "198.51.100.51", &seen);
    client.logged_in(ADA).await;
    let good = client.jar.0["tasktrail_session"].clone();
    let mut forged = client.clone();
    for value in [
        tampered(&good),
        good[..good.len() - 4].to_owned(),
        format!("{good}AAAA"),
        String::new(),
        "eyJ1c2VyIjp7ImlkIjoiYWRhIn19".to_owned(),
        r#"{"user":{"id":"ada","name":"ada","role":"admin"},"expires":99999999999,"csrf":"x"}"#
            .to_owned(),
    ] {
        forged
            .jar
            .0
            .insert("tasktrail_session".to_owned(), value.clone());
        let answer = forged.get("/ops/runs").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "cookie {value:?}");
        assert!(answer.location().unwrap().starts_with("/ops/login?next="));
        let answer = forged
            .send(
                Method::POST,
                "/ops/api/runs/secret-run-7f3a/cancel",
                &[("x-requested-with", "tasktrail"), ("x-csrf-token", "x")],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "cookie {value:?}");
    }
    // Two session cookies, the first forged: still not let in by the
    // forged one (whichever the jar reads, a valid session or none).
    let answer = client
        .send(
            Method::GET,
            "/ops/api/runs",
            &[("cookie", &format!("tasktrail_session={}", tampered(&good)))],
            "",
        )
        .await;
    assert!(
        matches!(answer.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
        "{}",
        answer.status
    );
    // The untouched cookie still works.
    assert_eq!(client.get("/ops/runs").await.status, StatusCode::OK);

    // A cookie made under another key: logged out.
    let mut elsewhere = Client::new(&other_key, "198.51.100.52", &seen);
    elsewhere.logged_in(ADA).await;
    let mut moved = Client::new(&long, "198.51.100.52", &seen);
    moved.jar = elsewhere.jar.clone();
    let answer = moved.get("/ops/runs").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        moved.get("/ops/api/runs").await.status,
        StatusCode::UNAUTHORIZED
    );
    // The login cookie is not a session cookie either (same key, other
    // name).
    let mut swapped = Client::new(&long, "198.51.100.52", &seen);
    let (_, _) = swapped.login_page(None).await;
    let login_value = swapped.jar.0["tasktrail_login"].clone();
    swapped
        .jar
        .0
        .insert("tasktrail_session".to_owned(), login_value);
    assert_eq!(swapped.get("/ops/runs").await.status, StatusCode::SEE_OTHER);

    // An expired session: logged out (also on the API and for actions).
    let mut ttl1 = Client::new(&app, "198.51.100.50", &seen);
    let (_, csrf) = ttl1.login_page(None).await;
    let answer = ttl1.post_login(OTTO.0, OTTO.1, "/ops/runs", &csrf).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let session = SetCookie::named(&answer.headers, "tasktrail_session").unwrap();
    assert_eq!(session.attr("max-age"), Some("1"));
    assert_eq!(ttl1.get("/ops/runs").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let answer = ttl1.get("/ops/runs").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        next_param(answer.location().unwrap()).as_deref(),
        Some("/ops/runs")
    );
    assert_eq!(
        ttl1.get("/ops/api/runs").await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = ttl1
        .htmx_post("/ops/runs/secret-run-7f3a/cancel", Some("x"), &[])
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.header("hx-redirect").is_some());
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");

    let total = seen.assert_no_5xx();
    println!(
        "cookies: {total} responses, no 5xx, in {:?}",
        began.elapsed()
    );
}

// ─── 5. Brute force ───────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_is_throttled_per_client_and_per_user() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let app = login_app(&tracker);
    let seen = Seen::default();

    // Five wrong passwords for ada: 401.
    let mut attacker = Client::new(&app, "203.0.113.66", &seen);
    let (_, mut csrf) = attacker.login_page(None).await;
    for i in 0..5 {
        let answer = attacker
            .attempt(ADA.0, &format!("guess {i}"), &mut csrf)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(answer.header("retry-after").is_none());
    }
    // Then 429 with Retry-After, even with the right password, and even
    // for the same user spelled otherwise.
    for (user, password) in [
        (ADA.0, "guess 6"),
        (ADA.0, ADA.1),
        ("ADA", ADA.1),
        (" ada ", ADA.1),
    ] {
        let answer = attacker.attempt(user, password, &mut csrf).await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{user:?} / {password:?}"
        );
        let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&wait), "Retry-After {wait}");
        assert!(
            SetCookie::named(&answer.headers, "tasktrail_session").is_none(),
            "no session while throttled"
        );
    }
    // The same client, another user: blocked too (per client).
    let answer = attacker.attempt(OTTO.0, OTTO.1, &mut csrf).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // Another client, the attacked user: blocked (per user), even with
    // the right password.
    let mut ada = Client::new(&app, "198.51.100.61", &seen);
    let answer = ada.login(ADA, "/ops/").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    // Another client, another user: not blocked.
    let mut otto = Client::new(&app, "198.51.100.60", &seen);
    let answer = otto.login(OTTO, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    // The wait is short at first: after it, the right password works.
    tokio::time::sleep(Duration::from_millis(wait * 1_000 + 150)).await;
    let answer = ada.login(ADA, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);

    // Concurrent guesses cannot all slip past the check before the first
    // failure is counted: each from its own address, for one user.
    let mut attempts = Vec::new();
    for i in 0..12 {
        let mut client = Client::new(&app, &format!("192.0.2.{}", 10 + i), &seen);
        attempts.push(async move {
            let (_, csrf) = client.login_page(None).await;
            client
                .post_login(VIC.0, &format!("parallel guess {i}"), "/ops/", &csrf)
                .await
                .status
        });
    }
    let statuses = futures::future::join_all(attempts).await;
    let tried = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // On a busy machine some wait longer than a login waits for a free
    // password check and are answered 503 (busy, not checked): also safe.
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(tried + throttled + busy, statuses.len(), "{statuses:?}");
    assert!(
        tried <= 5,
        "{tried} concurrent guesses were checked against the password: {statuses:?}"
    );

    // Password spraying from one client: a successful login (as the
    // attacker's own account) does not reset the client's failures.
    let mut sprayer = Client::new(&app, "203.0.113.77", &seen);
    let (_, mut csrf) = sprayer.login_page(None).await;
    for user in ["u1", "u2", "u3", "u4"] {
        let answer = sprayer.attempt(user, "Winter2025!", &mut csrf).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{user}");
    }
    let mut own = Client::new(&app, "203.0.113.77", &seen);
    let answer = own.login(OTTO, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let answer = sprayer.attempt("u5", "Winter2025!", &mut csrf).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = sprayer.attempt("u6", "Winter2025!", &mut csrf).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the sixth failure from one client in a row, a success in between"
    );

    let total = seen.assert_no_5xx();
    println!(
        "brute force: concurrent {statuses:?}; {total} responses, no 5xx, in {:?}",
        began.elapsed()
    );
}

// ─── 6. Roles ─────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_operators_act() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    pending(&tracker, "r-otto").await;
    pending(&tracker, "r-otto-page").await;
    let app = login_app(&tracker);
    let seen = Seen::default();

    let mut vic = Client::new(&app, "198.51.100.70", &seen);
    let token = vic.logged_in(VIC).await;
    // No buttons, no bulk form.
    let run = vic.get("/ops/runs/secret-run-7f3a").await;
    assert_eq!(run.status, StatusCode::OK);
    assert!(
        run.text.contains(SECRET_MESSAGE),
        "the viewer reads the run"
    );
    assert!(!run.text.contains("hx-post"), "{}", run.text);
    assert!(!run.text.contains("data-action="), "{}", run.text);
    let list = vic.get("/ops/runs").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text.contains(SECRET_KEY));
    assert!(!list.text.contains("hx-post"), "{}", list.text);
    assert!(!list.text.contains("/runs/bulk"), "{}", list.text);
    assert!(!list.text.contains("id=\"bulk\""), "{}", list.text);
    assert!(!list.text.contains("name=\"key\""), "{}", list.text);
    let overview = vic.get("/ops/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(!overview.text.contains("hx-post"));
    // Refused everywhere, with a valid token.
    let with_token = [
        ("x-requested-with", "tasktrail"),
        ("x-csrf-token", token.as_str()),
    ];
    for action in ["cancel", "retry"] {
        let uri = format!("/ops/api/runs/{SECRET_KEY}/{action}");
        let answer = vic.send(Method::POST, &uri, &with_token, "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(
            answer.json()["error"].as_str().unwrap().contains("viewer"),
            "{}",
            answer.text
        );
    }
    for action in ["cancel", "retry", "delete"] {
        let uri = format!("/ops/runs/{SECRET_KEY}/{action}");
        let answer = vic.htmx_post(&uri, Some(&token), &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{uri}: {}",
            answer.text
        );
    }
    let answer = vic
        .send(
            Method::DELETE,
            &format!("/ops/api/runs/{SECRET_KEY}"),
            &with_token,
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = vic
        .send(
            Method::POST,
            "/ops/api/runs/bulk",
            &[
                with_token[0],
                with_token[1],
                ("content-type", "application/json"),
            ],
            r#"{"action": "cancel", "keys": ["secret-run-7f3a"]}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let answer = vic
        .send(
            Method::POST,
            "/ops/api/runs/bulk",
            &[
                with_token[0],
                with_token[1],
                ("content-type", "application/json"),
            ],
            r#"{"action": "cancel", "filter": ""}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    for pairs in [
        &[
            ("action", "cancel"),
            ("scope", "selected"),
            ("key", SECRET_KEY),
            ("confirmed", "1"),
        ][..],
        &[("action", "cancel"), ("scope", "matching"), ("filter", "")][..],
    ] {
        let answer = vic.htmx_post("/ops/runs/bulk", Some(&token), pairs).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{pairs:?}");
    }
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");
    // Reading: the API, the live streams, the logs.
    for uri in [
        "/ops/api/runs",
        "/ops/api/runs/secret-run-7f3a",
        "/ops/api/metrics",
        "/ops/api/events",
        "/ops/api/logs",
        "/ops/api/logs/events",
        "/ops/logs",
        "/ops/metrics",
    ] {
        let answer = vic.get(uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
    }
    let events = vic.get("/ops/api/events").await;
    assert_eq!(
        events
            .header("content-type")
            .map(|c| c.starts_with("text/event-stream")),
        Some(true)
    );
    // A viewer cannot make itself an operator: the role is in the
    // encrypted cookie, and the API does not take it from a header.
    let answer = vic
        .send(
            Method::POST,
            "/ops/api/runs/secret-run-7f3a/cancel",
            &[with_token[0], with_token[1], ("x-forwarded-role", "admin")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // The operator: buttons, and the actions work.
    let mut otto = Client::new(&app, "198.51.100.71", &seen);
    let token = otto.logged_in(OTTO).await;
    let run = otto.get("/ops/runs/r-otto-page").await;
    assert!(run.text.contains("hx-post"), "{}", run.text);
    let list = otto.get("/ops/runs").await;
    assert!(list.text.contains("id=\"bulk\""));
    let answer = otto
        .send(
            Method::POST,
            "/ops/api/runs/r-otto/cancel",
            &[
                ("x-requested-with", "tasktrail"),
                ("x-csrf-token", token.as_str()),
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(status_in_db(&tracker, "r-otto").await, "cancelled");
    let answer = otto
        .htmx_post("/ops/runs/r-otto-page/cancel", Some(&token), &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(status_in_db(&tracker, "r-otto-page").await, "cancelled");

    // Every one of those actions is in the audit trail with its user and
    // outcome: the viewer's refused, the operator's done.
    let trail = |key: &'static str| {
        let db = tracker.db().clone();
        async move {
            tasktrail::auth::audit::for_target(&db, key, 50)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.user_id, e.action, e.outcome))
                .collect::<Vec<_>>()
        }
    };
    let otto_api = trail("r-otto").await;
    assert_eq!(otto_api[0], ("otto".into(), "cancel".into(), "done".into()));
    let otto_page = trail("r-otto-page").await;
    assert_eq!(
        otto_page[0],
        ("otto".into(), "cancel".into(), "done".into())
    );
    let refused = trail(SECRET_KEY).await;
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|(user, _, outcome)| user == "vic" && outcome == "refused"),
        "{refused:?}"
    );
    let page = otto.get("/ops/runs/r-otto-page").await.text;
    assert!(
        page.contains("<td>otto</td><td>cancel</td><td class=\"outcome\">done</td>"),
        "{page}"
    );

    let total = seen.assert_no_5xx();
    println!("roles: {total} responses, no 5xx, in {:?}", began.elapsed());
}

// ─── 7. Without a login form ──────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_default_noauth_and_header_auth() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    pending(&tracker, "h-operator").await;
    let seen = Seen::default();
    let uris = [
        "/ops",
        "/ops/",
        "/ops/runs",
        "/ops/runs/secret-run-7f3a",
        "/ops/api/runs",
        "/ops/api/events",
        "/ops/api/logs",
        "/ops/metrics",
        "/ops/assets/app.css",
        "/ops/assets/htmx.min.js",
        "/ops/assets/theme.css",
    ];

    // The default: loopback only.
    let default = with_logs(Dashboard::new(Ops::default(), tracker.clone())).router();
    for peer in [
        "203.0.113.5",
        "10.0.0.5",
        "::ffff:203.0.113.5",
        "2001:db8::1",
    ] {
        let mut remote = Client::new(&default, peer, &seen);
        for uri in uris {
            for method in [Method::GET, Method::HEAD] {
                let answer = remote.send(method.clone(), uri, &[], "").await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{peer} {method} {uri}"
                );
                assert!(!answer.text.contains(SECRET_KEY));
            }
        }
        let answer = remote
            .send(
                Method::POST,
                "/ops/api/runs/secret-run-7f3a/cancel",
                &[("x-requested-with", "tasktrail")],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        // Loopback-looking headers change nothing.
        let answer = remote
            .send(
                Method::GET,
                "/ops/runs",
                &[
                    ("x-forwarded-for", "127.0.0.1"),
                    ("x-real-ip", "127.0.0.1"),
                    ("forwarded", "for=127.0.0.1"),
                    ("host", "localhost"),
                ],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    // Without the peer's address: refused too.
    let mut unknown = Client::new(&default, "127.0.0.1", &seen);
    unknown.peer = None;
    assert_eq!(unknown.get("/ops/runs").await.status, StatusCode::FORBIDDEN);
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");
    // DNS rebinding: a page whose own name now points at 127.0.0.1 sends
    // its name as the host; the loopback default refuses it.
    let mut rebound = Client::new(&default, "127.0.0.1", &seen);
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
    ] {
        let answer = rebound
            .send(Method::GET, "/ops/api/runs", &[("host", host)], "")
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}");
        assert!(!answer.text.contains(SECRET_KEY), "{host}");
    }
    for peer in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
        let mut local = Client::new(&default, peer, &seen);
        for uri in uris {
            let answer = local.get(uri).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{peer} {uri}: {}",
                answer.text
            );
        }
    }

    // NoAuth::anyone: served beyond loopback.
    let anyone = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(NoAuth::anyone())
        .router();
    let mut remote = Client::new(&anyone, "203.0.113.5", &seen);
    for uri in uris {
        let answer = remote.get(uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
    }
    assert_eq!(remote.get("/ops/login").await.status, StatusCode::NOT_FOUND);
    // …but still not from another site.
    let answer = remote
        .send(
            Method::POST,
            "/ops/api/runs/secret-run-7f3a/cancel",
            &[
                ("x-requested-with", "tasktrail"),
                ("origin", "https://evil.example"),
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = remote
        .send(
            Method::POST,
            "/ops/api/runs/secret-run-7f3a/cancel",
            &[],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");
    // Read-only for everyone.
    let readers = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(NoAuth::anyone().role(Role::Viewer))
        .router();
    let mut reader = Client::new(&readers, "203.0.113.5", &seen);
    let answer = reader
        .send(
            Method::POST,
            "/ops/api/runs/secret-run-7f3a/cancel",
            &[("x-requested-with", "tasktrail")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // HeaderAuth: believed only from the proxy.
    let proxy = "10.0.0.5";
    let proxied = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(
            HeaderAuth::new("x-forwarded-user", [proxy.parse().unwrap()])
                .role_header("x-forwarded-role"),
        )
        .router();
    let mut via_proxy = Client::new(&proxied, proxy, &seen);
    let mut direct = Client::new(&proxied, "10.0.0.6", &seen);
    let mut loopback = Client::new(&proxied, "127.0.0.1", &seen);
    let user = [("x-forwarded-user", "ada")];
    let answer = via_proxy.send(Method::GET, "/ops/runs", &user, "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.contains("ada"));
    for client in [&mut direct, &mut loopback] {
        for uri in ["/ops/runs", "/ops/api/runs", "/ops/api/events"] {
            let answer = client.send(Method::GET, uri, &user, "").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(!answer.text.contains(SECRET_KEY));
        }
        let answer = client
            .send(
                Method::POST,
                "/ops/api/runs/h-operator/cancel",
                &[
                    ("x-forwarded-user", "ada"),
                    ("x-forwarded-role", "admin"),
                    ("x-requested-with", "tasktrail"),
                ],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // From the proxy without the header: 401; no login form.
    assert_eq!(
        via_proxy.get("/ops/runs").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        via_proxy.get("/ops/login").await.status,
        StatusCode::NOT_FOUND
    );
    // Empty, blank, control characters, too long, twice: refused.
    let long = "a".repeat(300);
    for name in ["", "   ", "\t", "ada\tadmin", "ada\t\tx", long.as_str()] {
        let answer = via_proxy
            .send(
                Method::GET,
                "/ops/api/runs",
                &[("x-forwarded-user", name)],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "user {name:?}");
    }
    let answer = via_proxy
        .send(
            Method::GET,
            "/ops/api/runs",
            &[("x-forwarded-user", "mallory"), ("x-forwarded-user", "ada")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "two user headers");
    // Non-ASCII bytes in the header (obs-text): refused, no 5xx.
    let mut request = Request::builder()
        .uri("/ops/api/runs")
        .header(
            "x-forwarded-user",
            axum::http::HeaderValue::from_bytes(b"ad\xe9").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(addr(proxy)));
    let response = proxied.clone().oneshot(request).await.unwrap();
    seen.record(
        &Method::GET,
        "/ops/api/runs (obs-text user)",
        response.status(),
    );
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Roles: none said → viewer; an unknown one → viewer; operator acts.
    let cancel = "/ops/api/runs/h-operator/cancel";
    let mark = ("x-requested-with", "tasktrail");
    for role in [None, Some("root"), Some("viewer"), Some("")] {
        let mut headers = vec![("x-forwarded-user", "ada"), mark];
        headers.extend(role.map(|r| ("x-forwarded-role", r)));
        let answer = via_proxy.send(Method::POST, cancel, &headers, "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "role {role:?}");
        assert!(answer.text.contains("viewer"), "{}", answer.text);
    }
    let answer = via_proxy
        .send(
            Method::POST,
            cancel,
            &[
                ("x-forwarded-user", "ada"),
                ("x-forwarded-role", "operator"),
                ("x-forwarded-role", "admin"),
                mark,
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "two role headers");
    assert_eq!(status_in_db(&tracker, "h-operator").await, "pending");
    let page = via_proxy
        .send(
            Method::GET,
            "/ops/runs/h-operator",
            &[
                ("x-forwarded-user", "otto"),
                ("x-forwarded-role", "Operator"),
            ],
            "",
        )
        .await;
    assert!(page.text.contains("otto"));
    assert!(page.text.contains("hx-post"), "the operator's buttons");
    assert!(
        !page.text.contains("X-CSRF-Token"),
        "no session, no session token"
    );
    // A proxy's user acts without a token, but not from another origin.
    let operator = [
        ("x-forwarded-user", "otto"),
        ("x-forwarded-role", "operator"),
        mark,
    ];
    let answer = via_proxy
        .send(
            Method::POST,
            cancel,
            &[&operator[..], &[("origin", "https://evil.example")]].concat(),
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(status_in_db(&tracker, "h-operator").await, "pending");
    let answer = via_proxy.send(Method::POST, cancel, &operator, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(status_in_db(&tracker, "h-operator").await, "cancelled");

    let total = seen.assert_no_5xx();
    println!(
        "without a login form: {total} responses, no 5xx, in {:?}",
        began.elapsed()
    );
}

// ─── The backend's own routes ─────────────────────────────────────────────

/// A backend with a bearer-like header and routes of its own (an OAuth
/// callback, say).
struct Sso;

impl tasktrail::auth::AuthBackend for Sso {
    fn authenticate<'a>(
        &'a self,
        request: &'a tasktrail::auth::RequestInfo<'a>,
    ) -> futures::future::BoxFuture<'a, Option<tasktrail::auth::User>> {
        let ok = request
            .headers
            .get("x-test-token")
            .is_some_and(|v| v == "letmein");
        Box::pin(async move { ok.then(|| tasktrail::auth::User::new("sso-user", Role::Operator)) })
    }

    fn has_login_form(&self) -> bool {
        false
    }

    fn routes(&self) -> Option<axum::Router> {
        Some(axum::Router::new().route(
            "/callback",
            axum::routing::get(|| async { "callback reached" }),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_routes_are_open_and_nothing_else() {
    let (tracker, _g) = tracker().await;
    let app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(Sso)
        .router();
    let seen = Seen::default();
    let mut client = Client::new(&app, "198.51.100.90", &seen);

    // The callback answers without a user ("allowed without a user").
    let answer = client.get("/ops/auth/callback").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "callback reached");
    // The rest stays closed, also through the open prefix.
    for path in [
        "/ops/runs",
        "/ops/auth",
        "/ops/auth/",
        "/ops/auth/../runs",
        "/ops/auth/..%2Fruns",
        "/ops/auth/%2e%2e/runs",
        "/ops/auth/callback/../../runs",
        "/ops/auth/callback%2F..%2F..%2Fruns",
        "/ops/auth/../api/runs",
        "/ops/auth/%2e%2e/api/runs/secret-run-7f3a",
        "/ops/auth/../api/events",
        "/ops/auth/../api/runs/secret-run-7f3a/cancel",
        "/auth/callback/../../ops/runs",
        "/ops/authx/runs",
    ] {
        for method in [Method::GET, Method::HEAD, Method::POST] {
            let answer = client
                .send(
                    method.clone(),
                    path,
                    &[("x-requested-with", "tasktrail")],
                    "",
                )
                .await;
            assert_closed(&method, path, &answer);
        }
    }
    assert_eq!(
        client.get("/ops/api/runs").await.status,
        StatusCode::UNAUTHORIZED
    );
    // With the backend's credential: in, and acting.
    let token = [("x-test-token", "letmein")];
    let answer = client.send(Method::GET, "/ops/runs", &token, "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.contains(SECRET_KEY));
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");
    seen.assert_no_5xx();
}

// ─── 8. The loopback default behind a proxy or a tunnel ───────────────────

/// What a reverse proxy, a sidecar or a tunnel on the same host sends from
/// 127.0.0.1, header for header as each sends it by default or in its
/// documented set-up.
fn proxied() -> Vec<(&'static str, Headers<'static>)> {
    vec![
        (
            // `proxy_pass http://127.0.0.1:8080;` with the usual lines:
            // `proxy_set_header Host $proxy_host; X-Real-IP $remote_addr;
            // X-Forwarded-For $proxy_add_x_forwarded_for;
            // X-Forwarded-Proto $scheme;`
            "nginx",
            vec![
                ("host", "127.0.0.1:8080"),
                ("x-real-ip", "203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("connection", "close"),
            ],
        ),
        (
            "nginx, X-Real-IP only",
            vec![("host", "127.0.0.1:8080"), ("x-real-ip", "203.0.113.9")],
        ),
        (
            "nginx, X-Forwarded-For only",
            vec![
                ("host", "localhost:8080"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        ),
        (
            // `reverse_proxy 127.0.0.1:8080 { header_up Host {upstream_hostport} }`
            "Caddy, upstream Host",
            vec![
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "dash.example.com"),
            ],
        ),
        (
            // Caddy's default keeps the client's Host.
            "Caddy, default",
            vec![
                ("host", "dash.example.com"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "dash.example.com"),
            ],
        ),
        (
            "Traefik",
            vec![
                ("host", "localhost:8080"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-host", "dash.example.com"),
                ("x-forwarded-port", "443"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-server", "traefik-7d9f"),
                ("x-real-ip", "203.0.113.9"),
            ],
        ),
        (
            "Apache mod_proxy",
            vec![
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-host", "dash.example.com"),
                ("x-forwarded-server", "dash.example.com"),
            ],
        ),
        (
            "RFC 7239",
            vec![
                ("host", "127.0.0.1:8080"),
                (
                    "forwarded",
                    "for=203.0.113.9;proto=https;host=dash.example.com",
                ),
            ],
        ),
        (
            "X-Forwarded-Host only",
            vec![
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-host", "dash.example.com"),
            ],
        ),
        (
            "an Envoy sidecar",
            vec![
                ("host", "localhost:8080"),
                ("x-forwarded-proto", "http"),
                ("x-request-id", "5f1c2f0e-0000-4000-8000-000000000000"),
            ],
        ),
        (
            "cloudflared",
            vec![
                ("host", "localhost:8080"),
                ("cf-connecting-ip", "203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_default_refuses_what_a_proxy_forwards() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let seen = Seen::default();
    let default = with_logs(Dashboard::new(Ops::default(), tracker.clone())).router();
    let cancel = format!("/ops/api/runs/{SECRET_KEY}/cancel");
    let mark = ("x-requested-with", "tasktrail");

    // Every proxy, from 127.0.0.1: refused on pages, the API and actions,
    // with a message that names the header and what to configure.
    for (proxy, headers) in proxied() {
        let mut client = Client::new(&default, "127.0.0.1", &seen);
        for (method, uri) in [
            (Method::GET, "/ops/runs"),
            (Method::GET, "/ops/api/runs"),
            (Method::GET, "/ops/api/events"),
            (Method::POST, cancel.as_str()),
        ] {
            let headers = [&headers[..], &[mark]].concat();
            let answer = client.send(method.clone(), uri, &headers, "").await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{proxy}: {method} {uri}: {}",
                answer.text
            );
            assert!(!answer.text.contains(SECRET_KEY), "{proxy}: {uri}");
            if headers
                .iter()
                .any(|(k, _)| k.starts_with("x-forwarded") || *k == "forwarded")
            {
                assert!(
                    answer.text.contains("proxy"),
                    "{proxy}: {uri}: says why: {}",
                    answer.text
                );
                assert!(
                    answer.text.contains(".auth(")
                        && answer.text.contains("allow_remote_without_auth"),
                    "{proxy}: {uri}: says what to configure: {}",
                    answer.text
                );
            }
        }
    }
    // The four headers the issue names, each alone, in any case.
    for (name, value) in [
        ("Forwarded", "for=203.0.113.9"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Host", "dash.example.com"),
        ("X-Real-IP", "203.0.113.9"),
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=\"[::1]\""),
    ] {
        for peer in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let mut client = Client::new(&default, peer, &seen);
            let answer = client
                .send(Method::GET, "/ops/runs", &[(name, value)], "")
                .await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{peer} {name}");
            assert!(
                answer.text.to_lowercase().contains(&name.to_lowercase()),
                "{peer} {name}: names the header: {}",
                answer.text
            );
        }
    }
    assert_eq!(status_in_db(&tracker, SECRET_KEY).await, "pending");

    // A browser on loopback (what the quickstart serves) sends none of
    // them: in, and it acts.
    let browser: Headers = vec![
        ("host", "localhost:8080"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "navigate"),
        ("referer", "http://localhost:8080/ops/"),
    ];
    let mut local = Client::new(&default, "127.0.0.1", &seen);
    let answer = local.send(Method::GET, "/ops/runs", &browser, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.text.contains(SECRET_KEY));
    pending(&tracker, "p-local").await;
    let answer = local
        .send(
            Method::POST,
            "/ops/api/runs/p-local/cancel",
            &[mark, ("origin", "http://localhost:8080")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    // An SSH tunnel (`ssh -L 8080:127.0.0.1:8080 host`) forwards bytes: the
    // browser at the other end names `localhost:8080` and sshd connects from
    // 127.0.0.1, exactly as a local browser. Nothing tells them apart (the
    // documented limit: whoever can open the tunnel can log in to the host).
    let mut tunnel = Client::new(&default, "127.0.0.1", &seen);
    let answer = tunnel.send(Method::GET, "/ops/runs", &browser, "").await;
    assert_eq!(answer.status, StatusCode::OK);
    // A tunnel whose listening end is exposed (`ssh -L 0.0.0.0:8080:…`,
    // `ssh -R` with GatewayPorts) is reached by browsers elsewhere under
    // another name: the Host check refuses them.
    for host in [
        "laptop.lan:8080",
        "192.168.1.20:8080",
        "bastion.example.com",
    ] {
        let answer = tunnel
            .send(Method::GET, "/ops/api/runs", &[("host", host)], "")
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}");
        assert!(!answer.text.contains(SECRET_KEY));
    }

    // Opting out of loopback mode: the same proxied requests are served,
    // to a backend's users or (explicitly) to anyone.
    let opted_out = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .allow_remote_without_auth()
        .trusted_proxies(["127.0.0.1".parse().unwrap()])
        .router();
    let header_auth = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(HeaderAuth::new(
            "x-forwarded-user",
            ["127.0.0.1".parse().unwrap()],
        ))
        .trusted_proxies(["127.0.0.1".parse().unwrap()])
        .router();
    for (proxy, headers) in proxied() {
        let mut client = Client::new(&opted_out, "127.0.0.1", &seen);
        let answer = client
            .send(Method::GET, "/ops/api/runs", &headers, "")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{proxy}: {}", answer.text);
        let mut client = Client::new(&header_auth, "127.0.0.1", &seen);
        let headers = [&headers[..], &[("x-forwarded-user", "ada")]].concat();
        let answer = client
            .send(Method::GET, "/ops/api/runs", &headers, "")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{proxy}: {}", answer.text);
    }

    let total = seen.assert_no_5xx();
    println!(
        "loopback behind a proxy: {total} responses, no 5xx, in {:?}",
        began.elapsed()
    );
}

// ─── 9. Login throttling behind a proxy ───────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttle_finds_the_client_behind_trusted_proxies() {
    let began = Instant::now();
    let (tracker, _g) = tracker().await;
    let seen = Seen::default();
    let proxy = "10.0.0.1";
    let app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .trusted_proxies([proxy.parse().unwrap()])
        .router();
    let via = |client: &str| Client::new(&app, proxy, &seen).with("x-forwarded-for", client);

    /// Five failures for five unknown names, so that only the client's
    /// count can block: answers the client's form token.
    async fn five_failures(client: &mut Client, tag: &str) -> String {
        let (_, mut csrf) = client.login_page(None).await;
        for i in 0..5 {
            let answer = client
                .attempt(&format!("{tag}-{i}"), "Winter2025!", &mut csrf)
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{tag} {i}");
        }
        csrf
    }

    // Mallory, behind the proxy, sprays five names: her address waits.
    let mut mallory = via("203.0.113.5");
    let mut csrf = five_failures(&mut mallory, "spray").await;
    let answer = mallory.attempt("spray-5", "Winter2025!", &mut csrf).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // …also when she writes addresses of her own in front of the proxy's.
    let mut forged = via("198.51.100.99, 203.0.113.5");
    let answer = forged.login(("spray-6", "x"), "/ops/").await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.text
    );
    // Everyone else behind the same proxy logs in: one bucket per client,
    // not one for the proxy.
    let mut ada = via("198.51.100.8");
    let answer = ada.login(ADA, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let mut otto = Client::new(&app, proxy, &seen)
        .with("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https");
    assert_eq!(
        otto.login(OTTO, "/ops/").await.status,
        StatusCode::SEE_OTHER
    );
    // From a peer that is not a trusted proxy, the header is the client's
    // own word: ignored, the peer is the client.
    let mut direct = Client::new(&app, "198.51.100.20", &seen).with("x-forwarded-for", "192.0.2.1");
    let mut csrf = five_failures(&mut direct, "direct").await;
    direct.extra = vec![("x-forwarded-for", "192.0.2.2".to_owned())];
    let answer = direct.attempt("direct-5", "x", &mut csrf).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    // IPv6: one bucket per /64, so a client cannot take a fresh address
    // from its network for every guess.
    for i in 1..=5 {
        let mut client = Client::new(&app, &format!("2001:db8:1:2::{i}"), &seen);
        let (_, mut csrf) = client.login_page(None).await;
        let answer = client
            .attempt(&format!("v6-{i}"), "Winter2025!", &mut csrf)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "v6 {i}");
    }
    let mut same_net = Client::new(&app, "2001:db8:1:2:ffff:ffff:ffff:fffe", &seen);
    let answer = same_net.login(("v6-6", "x"), "/ops/").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "same /64");
    let mut same_net_via_proxy = via("2001:db8:1:2::abcd");
    let answer = same_net_via_proxy.login(("v6-7", "x"), "/ops/").await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "same /64, behind the proxy"
    );
    let mut next_net = Client::new(&app, "2001:db8:1:3::1", &seen);
    let answer = next_net.login(VIC, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "another /64");

    // Without the peer's address (a router driven without ConnectInfo):
    // no shared "unknown" bucket that five failures would close for all.
    let mut nobody = Client::new(&app, "127.0.0.1", &seen);
    nobody.peer = None;
    five_failures(&mut nobody, "nopeer").await;
    let mut otto = Client::new(&app, "127.0.0.1", &seen);
    otto.peer = None;
    let answer = otto.login(OTTO, "/ops/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    // The per-user count still holds without an address.
    let (_, mut csrf) = nobody.login_page(None).await;
    for i in 0..5 {
        let answer = nobody
            .attempt(VIC.0, &format!("guess {i}"), &mut csrf)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = nobody.attempt(VIC.0, VIC.1, &mut csrf).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    let total = seen.assert_no_5xx();
    println!(
        "throttle behind a proxy: {total} responses, no 5xx, in {:?}",
        began.elapsed()
    );
}

// ─── 10. Password checks: bounded, and never on an async worker ───────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_at_once_are_bounded_by_the_cores() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (tracker, _g) = tracker().await;
    let seen = Seen::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A check that holds its place until released: the first `cores`
    // attempts fill every place.
    let entered = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let backend = {
        let (entered, release) = (entered.clone(), release.clone());
        SimpleAuth::verify(move |name, password| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let _place = release.acquire().await.ok()?;
                (name == ADA.0 && password == ADA.1)
                    .then(|| tasktrail::auth::User::new(ADA.0, Role::Admin))
            }
        })
    };
    let app = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(backend)
        .session_key(key_of(1))
        .router();

    let mut held = Vec::new();
    for i in 0..cores {
        let mut client = Client::new(&app, &format!("192.0.2.{}", 100 + i), &seen);
        let (_, csrf) = client.login_page(None).await;
        held.push(tokio::spawn(async move {
            client
                .post_login(&format!("held-{i}"), "guess", "/ops/", &csrf)
                .await
                .status
        }));
    }
    let waited = Instant::now();
    while entered.load(Ordering::SeqCst) < cores {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "{} of {cores} checks started",
            entered.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every place taken: one more is turned away with 503 and Retry-After,
    // before it reaches the backend.
    let mut late = Client::new(&app, "192.0.2.250", &seen);
    let (_, mut csrf) = late.login_page(None).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        late.attempt(ADA.0, ADA.1, &mut csrf),
    )
    .await
    .expect("a login beyond the bound waited for a place instead of being refused");
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    let wait: u64 = answer
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(answer.text.contains("busy"), "{}", answer.text);
    assert!(SetCookie::named(&answer.headers, "tasktrail_session").is_none());
    assert_eq!(
        entered.load(Ordering::SeqCst),
        cores,
        "the backend was not asked"
    );
    // Released, the held ones end; the turned-away one was not counted as
    // a failure and logs in.
    release.add_permits(cores + 10);
    for status in futures::future::join_all(held).await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let answer = late.attempt(ADA.0, ADA.1, &mut csrf).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    seen.assert_no_5xx_but(StatusCode::SERVICE_UNAVAILABLE);
}

/// A future that remembers how long its longest `poll` took.
struct Timed<F> {
    inner: std::pin::Pin<Box<F>>,
    longest: Duration,
}

impl<F: std::future::Future> std::future::Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let began = Instant::now();
        let poll = self.inner.as_mut().poll(cx);
        let took = began.elapsed();
        self.longest = self.longest.max(took);
        poll.map(|out| (out, self.longest))
    }
}

/// The hash an unknown name is checked against is made when the backend is
/// built: the first login of an unknown user must not hash on the async
/// worker that serves it (which stalls every other request on it).
#[tokio::test]
async fn the_dummy_hash_is_made_with_the_backend() {
    let (tracker, _g) = tracker().await;
    LazyLock::force(&HASHES);
    let seen = Seen::default();
    let app = login_app(&tracker);
    let mut client = Client::new(&app, "198.51.100.71", &seen);
    let (_, csrf) = client.login_page(None).await;
    let hash = (0..3)
        .map(|_| {
            let began = Instant::now();
            hash_password("what one hash takes");
            began.elapsed()
        })
        .min()
        .unwrap();
    let login = Timed {
        inner: Box::pin(client.post_login("nobody-at-all", "guess", "/ops/", &csrf)),
        longest: Duration::ZERO,
    };
    let (answer, longest) = login.await;
    println!("an unknown user's login: longest poll {longest:?}; one argon2 hash {hash:?}");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        longest < hash / 2,
        "the login's longest poll took {longest:?}, one argon2 hash {hash:?}: it hashed on the worker"
    );
}

// ─── 11. Logging out: by time, per user ───────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_users_older_sessions_and_a_new_login_works_at_once() {
    let (tracker, _g) = tracker().await;
    let app = login_app(&tracker);
    let seen = Seen::default();
    let logout = |token: &str| format!("csrf={token}");
    let form = [("content-type", "application/x-www-form-urlencoded")];

    // Ada on two machines, and otto.
    let mut laptop = Client::new(&app, "198.51.100.80", &seen);
    laptop.logged_in(ADA).await;
    let mut desktop = Client::new(&app, "198.51.100.81", &seen);
    let token = desktop.logged_in(ADA).await;
    let mut otto = Client::new(&app, "198.51.100.82", &seen);
    otto.logged_in(OTTO).await;
    let copy = desktop.jar.clone();
    let answer = desktop
        .send(Method::POST, "/ops/logout", &form, &logout(&token))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    // The logged-out session (and a copy of its cookie) and ada's older
    // one are refused on this instance; otto is not touched.
    let mut stolen = desktop.clone();
    stolen.jar = copy;
    for client in [&mut desktop, &mut stolen, &mut laptop] {
        assert_eq!(client.get("/ops/runs").await.status, StatusCode::SEE_OTHER);
        assert_eq!(
            client.get("/ops/api/runs").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(otto.get("/ops/runs").await.status, StatusCode::OK);

    // Logging in and out in a loop: every new session works at once (in
    // the same second as the logout before it), every old one is refused.
    for round in 0..15 {
        let mut client = Client::new(&app, "198.51.100.83", &seen);
        let token = client.logged_in(ADA).await;
        let copy = client.jar.clone();
        assert_eq!(
            client.get("/ops/api/runs").await.status,
            StatusCode::OK,
            "round {round}"
        );
        let answer = client
            .send(Method::POST, "/ops/logout", &form, &logout(&token))
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "round {round}");
        client.jar = copy;
        assert_eq!(
            client.get("/ops/api/runs").await.status,
            StatusCode::UNAUTHORIZED,
            "round {round}"
        );
    }
    let mut again = Client::new(&app, "198.51.100.84", &seen);
    again.logged_in(ADA).await;
    assert_eq!(again.get("/ops/runs").await.status, StatusCode::OK);
    seen.assert_no_5xx();
}

// ─── 12. Secure cookies by default ────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_secure_unless_plain_http_on_loopback() {
    let (tracker, _g) = tracker().await;
    let seen = Seen::default();
    let proxy = "10.0.0.1";
    let auto = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .trusted_proxies([proxy.parse().unwrap()])
        .router();
    let plain = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .secure_cookies(false)
        .router();
    let always = with_logs(Dashboard::new(Ops::default(), tracker.clone()))
        .auth(users())
        .session_key(key_of(1))
        .secure_cookies(true)
        .router();

    /// Logs in and answers whether the login cookie and the session
    /// cookie were `Secure` (they must agree), and the removed login
    /// cookie too.
    async fn secure(mut client: Client, who: (&str, &str)) -> bool {
        let (page, csrf) = client.login_page(None).await;
        let login = SetCookie::named(&page.headers, "tasktrail_login").unwrap();
        let answer = client.post_login(who.0, who.1, "/ops/", &csrf).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        let session = SetCookie::named(&answer.headers, "tasktrail_session").unwrap();
        let gone = SetCookie::named(&answer.headers, "tasktrail_login").unwrap();
        let flags = [&login, &session, &gone].map(|c| c.attrs.contains_key("secure"));
        assert!(
            flags.iter().all(|f| *f == flags[0]),
            "{login:?} {session:?} {gone:?}"
        );
        // And the session works (as a browser that kept the cookie).
        assert_eq!(client.get("/ops/runs").await.status, StatusCode::OK);
        flags[0]
    }

    let cases: Vec<(&str, Client, bool)> = vec![
        (
            "by default, a remote client",
            Client::new(&auto, "198.51.100.90", &seen),
            true,
        ),
        (
            "by default, behind an untrusted proxy that claims http",
            Client::new(&auto, "198.51.100.91", &seen).with("x-forwarded-proto", "http"),
            true,
        ),
        (
            "by default, a trusted proxy that says https",
            Client::new(&auto, proxy, &seen)
                .with("x-forwarded-for", "203.0.113.10")
                .with("x-forwarded-proto", "https"),
            true,
        ),
        (
            "by default, a trusted proxy that says http",
            Client::new(&auto, proxy, &seen)
                .with("x-forwarded-for", "203.0.113.11")
                .with("x-forwarded-proto", "http"),
            false,
        ),
        (
            "by default, RFC 7239 from a trusted proxy",
            Client::new(&auto, proxy, &seen).with("forwarded", "for=203.0.113.12;proto=http"),
            false,
        ),
        (
            "by default, plain HTTP on loopback (development)",
            Client::new(&auto, "127.0.0.1", &seen),
            false,
        ),
        (
            "by default, loopback through a proxy that is not trusted",
            Client::new(&auto, "127.0.0.1", &seen).with("x-forwarded-for", "203.0.113.13"),
            true,
        ),
        (
            "by default, loopback under another name",
            Client::new(&auto, "127.0.0.1", &seen).with("host", "dash.example.com"),
            true,
        ),
        (
            "secure_cookies(false)",
            Client::new(&plain, "198.51.100.92", &seen),
            false,
        ),
        (
            "secure_cookies(true) on loopback",
            Client::new(&always, "127.0.0.1", &seen),
            true,
        ),
    ];
    for (what, client, expected) in cases {
        let user = if expected { ADA } else { OTTO };
        assert_eq!(secure(client, user).await, expected, "{what}");
    }

    // A browser on a plain-HTTP page elsewhere than loopback would drop a
    // Secure cookie and come back logged out, in a loop: the login says
    // why and what to set instead.
    let mut lan = Client::new(&auto, "10.1.2.3", &seen);
    let (_, csrf) = lan.login_page(None).await;
    let answer = lan
        .send(
            Method::POST,
            "/ops/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "http://10.1.2.4:8080"),
                ("host", "10.1.2.4:8080"),
            ],
            &form(&[("username", ADA.0), ("password", ADA.1), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("HTTPS"), "{}", answer.text);
    assert!(
        answer.text.contains("secure_cookies(false)"),
        "{}",
        answer.text
    );
    assert!(SetCookie::named(&answer.headers, "tasktrail_session").is_none());
    seen.assert_no_5xx();
}
