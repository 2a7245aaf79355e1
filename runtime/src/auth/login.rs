//! The login page, the login form's submission and logging out.

use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::gate::{AuthState, ClientInfo, safe_next};
use crate::auth::session::{self, LOGIN_COOKIE, SESSION_COOKIE, Session};
use crate::dashboard::pages::LinkBase;
use crate::dashboard::{DashboardConfig, Shared};

/// How long a login form stays valid.
const FORM_TTL_SECONDS: i64 = 30 * 60;
/// How long a login waits for a free place to check its password before
/// it is answered 503.
const CHECK_WAIT: Duration = Duration::from_millis(500);

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: String,
    prefix: String,
    next: String,
    csrf: String,
    username: String,
    error: Option<String>,
    note: Option<String>,
}

fn auth_of<C: DashboardConfig>(shared: &Shared<C>) -> Option<&AuthState> {
    shared.auth.as_deref()
}

/// The client as the gate saw it (it always runs before these handlers);
/// without it, no address and `Secure` cookies unless configured off.
fn client_of(auth: &AuthState, client: Option<Extension<ClientInfo>>) -> ClientInfo {
    client.map_or(
        ClientInfo {
            addr: None,
            secure: auth.secure_cookies.unwrap_or(true),
        },
        |Extension(client)| client,
    )
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "this dashboard has no login form: it takes its users from elsewhere",
    )
        .into_response()
}

/// Renders the form with a fresh login token (in an encrypted cookie and
/// in the form).
#[allow(clippy::too_many_arguments)]
fn form_page(
    auth: &AuthState,
    secure: bool,
    title: &str,
    links: &str,
    next: String,
    username: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    form_page_with(
        auth, secure, title, links, next, username, error, None, status,
    )
}

/// [`form_page`] with a note above the form (say, "You have logged out.").
#[allow(clippy::too_many_arguments)]
fn form_page_with(
    auth: &AuthState,
    secure: bool,
    title: &str,
    links: &str,
    next: String,
    username: String,
    error: Option<String>,
    note: Option<String>,
    status: StatusCode,
) -> Response {
    let token = session::random_token();
    let page = LoginPage {
        title: title.to_owned(),
        prefix: links.to_owned(),
        next,
        csrf: token.clone(),
        username,
        error,
        note,
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response();
        }
    };
    let cookie = session::set_cookie(
        &auth.key,
        LOGIN_COOKIE,
        token,
        cookie_path(links),
        FORM_TTL_SECONDS,
        secure,
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn cookie_path(links: &str) -> &str {
    if links.is_empty() { "/" } else { links }
}

fn next_of(raw: &str, links: &str) -> String {
    let next = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    safe_next(&next, links).unwrap_or_else(|| format!("{links}/"))
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(to) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, to);
    }
    response
}

/// `GET {prefix}/login?next=…`
pub(crate) async fn login_form<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    client: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
    let client = client_of(auth, client);
    if !auth.backend.has_login_form() {
        return not_found();
    }
    let next = next_of(raw.as_deref().unwrap_or(""), &links.0);
    if session::read(&headers, &auth.key).is_some() {
        return redirect(&next);
    }
    let out = raw
        .as_deref()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "out" && v == "1"));
    form_page_with(
        auth,
        client.secure,
        &shared.settings.title,
        &links.0,
        next,
        String::new(),
        None,
        out.then(|| "You have logged out.".to_owned()),
        StatusCode::OK,
    )
}

/// `POST {prefix}/login` with `username`, `password`, `next`, `csrf`.
pub(crate) async fn login_submit<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    client: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
    let client = client_of(auth, client);
    let secure = client.secure;
    if !auth.backend.has_login_form() {
        return not_found();
    }
    let (mut username, mut password, mut next, mut csrf) =
        (String::new(), String::new(), String::new(), String::new());
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "username" => username = v.trim().to_owned(),
            "password" => password = v.into_owned(),
            "next" => next = v.into_owned(),
            "csrf" => csrf = v.into_owned(),
            _ => {}
        }
    }
    let next = safe_next(&next, &links.0).unwrap_or_else(|| format!("{}/", links.0));
    let title = &shared.settings.title;
    let form_token = session::read_login_token(&headers, &auth.key);
    if !form_token.is_some_and(|t| session::same_token(&t, &csrf)) {
        return form_page(
            auth,
            secure,
            title,
            &links.0,
            next,
            username,
            Some("The form expired. Please try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    if username.is_empty() || username.len() > 256 || password.len() > 1_024 {
        return form_page(
            auth,
            secure,
            title,
            &links.0,
            next,
            username,
            Some("Enter your user name and password.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    if secure && crate::auth::client::plain_http_page(&headers) {
        return form_page(
            auth,
            secure,
            title,
            &links.0,
            next,
            username,
            Some(
                "This dashboard's session cookie is Secure (sent over HTTPS only), and this page \
                 came over plain HTTP, so your browser would drop it and you would stay logged \
                 out. Serve the dashboard over HTTPS, or, on a network where plain HTTP is \
                 acceptable, call .secure_cookies(false) on the Dashboard."
                    .into(),
            ),
            StatusCode::BAD_REQUEST,
        );
    }
    let shown = client
        .addr
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    if client.addr.is_none() {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "tasktrail dashboard: the server does not tell the client's address \
                 (serve with into_make_service_with_connect_info::<SocketAddr>()): \
                 logins are throttled per user name only"
            );
        });
    }
    // Per client (an IPv6 client by its /64), and per user name. Without an
    // address, per user name only: one bucket for every client would let
    // five wrong passwords lock everyone out.
    let client_key: Vec<String> = client
        .addr
        .map(|ip| format!("ip:{}", crate::auth::client::bucket(ip)))
        .into_iter()
        .collect();
    let user_key = [format!("user:{}", username.to_lowercase())];
    let keys = [&client_key[..], &user_key[..]].concat();
    let throttled = |wait: Duration, username: String, next: String| {
        let seconds = wait.as_secs().max(1);
        tracing::warn!(user = %username, client = %shown, "tasktrail dashboard: login throttled");
        let mut response = form_page(
            auth,
            secure,
            title,
            &links.0,
            next,
            username,
            Some(format!(
                "Too many failed logins. Try again in {seconds} second{}.",
                if seconds == 1 { "" } else { "s" }
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    };
    // A throttled client waits in no queue.
    if let Some(wait) = auth.throttle.wait(&keys) {
        return throttled(wait, username, next);
    }
    // At most one password check per core at once: each is an argon2 hash
    // (about 19 MiB and tens of milliseconds), and a spray of attempts
    // from many addresses must not take every core and gigabytes.
    let permit = match tokio::time::timeout(CHECK_WAIT, auth.checks.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            tracing::warn!(user = %username, client = %shown, "tasktrail dashboard: login refused, every password check busy");
            let mut response = form_page(
                auth,
                secure,
                title,
                &links.0,
                next,
                username,
                Some("The server is busy checking other logins. Try again in a second.".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            return response;
        }
    };
    // Checked and counted at once: see `Throttle::begin`.
    if let Err(wait) = auth.throttle.begin(&keys) {
        return throttled(wait, username, next);
    }
    let user = auth.backend.login(&username, &password).await;
    drop(permit);
    match user {
        Some(user) => {
            auth.throttle.succeeded(&user_key, &client_key);
            tracing::info!(user = %user.id, role = %user.role, client = %shown, "tasktrail dashboard: logged in");
            let ttl = auth.session_ttl.as_secs() as i64;
            let session = Session {
                issued: auth.issue_time(&user.id),
                user,
                expires: chrono::Utc::now().timestamp() + ttl,
                csrf: session::random_token(),
            };
            let value = serde_json::to_string(&session).unwrap_or_default();
            let mut response = redirect(&next);
            let path = cookie_path(&links.0);
            response.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(&auth.key, SESSION_COOKIE, value, path, ttl, secure),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(&auth.key, LOGIN_COOKIE, String::new(), path, 0, secure),
            );
            response
        }
        None => {
            auth.throttle.confirm_failed(&keys);
            tracing::warn!(user = %username, client = %shown, "tasktrail dashboard: failed login");
            form_page(
                auth,
                secure,
                title,
                &links.0,
                next,
                username,
                Some("Wrong user name or password.".into()),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

/// `POST {prefix}/logout` with the session's `csrf`: ends the session.
pub(crate) async fn logout<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    client: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
    let secure = client_of(auth, client).secure;
    let login = format!("{}/login?out=1", links.0);
    let Some(current) = session::read(&headers, &auth.key).filter(|s| !auth.is_revoked(s)) else {
        return redirect(&login);
    };
    let sent = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .or_else(|| {
            headers
                .get(crate::auth::gate::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if !session::same_token(&sent, &current.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and try again",
        )
            .into_response();
    }
    tracing::info!(user = %current.user.id, "tasktrail dashboard: logged out");
    // The cookie may have been copied: this instance refuses it from now,
    // with every older session of the user.
    auth.revoke(&current);
    let mut response = redirect(&login);
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            &auth.key,
            SESSION_COOKIE,
            String::new(),
            cookie_path(&links.0),
            0,
            secure,
        ),
    );
    response
}
