//! The login page, the login form's submission and logging out.

use std::net::SocketAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::gate::{AuthState, safe_next};
use crate::auth::session::{self, LOGIN_COOKIE, SESSION_COOKIE, Session};
use crate::dashboard::pages::LinkBase;
use crate::dashboard::{DashboardConfig, Shared};

/// How long a login form stays valid.
const FORM_TTL_SECONDS: i64 = 30 * 60;

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

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "this dashboard has no login form: it takes its users from elsewhere",
    )
        .into_response()
}

/// Renders the form with a fresh login token (in an encrypted cookie and
/// in the form).
fn form_page(
    auth: &AuthState,
    title: &str,
    links: &str,
    next: String,
    username: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    form_page_with(auth, title, links, next, username, error, None, status)
}

/// [`form_page`] with a note above the form (say, "You have logged out.").
#[allow(clippy::too_many_arguments)]
fn form_page_with(
    auth: &AuthState,
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
        auth.secure_cookies,
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
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
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
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
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
            title,
            &links.0,
            next,
            username,
            Some("Enter your user name and password.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let client = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(a))| a.ip().to_string(),
    );
    let keys = [
        format!("ip:{client}"),
        format!("user:{}", username.to_lowercase()),
    ];
    // Checked and counted at once: see `Throttle::begin`.
    if let Err(wait) = auth.throttle.begin(&keys) {
        let seconds = wait.as_secs().max(1);
        tracing::warn!(user = %username, client = %client, "tasktrail dashboard: login throttled");
        let mut response = form_page(
            auth,
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
        return response;
    }
    match auth.backend.login(&username, &password).await {
        Some(user) => {
            let (client_key, user_key) = keys.split_at(1);
            auth.throttle.succeeded(user_key, client_key);
            tracing::info!(user = %user.id, role = %user.role, client = %client, "tasktrail dashboard: logged in");
            let ttl = auth.session_ttl.as_secs() as i64;
            let session = Session {
                user,
                expires: chrono::Utc::now().timestamp() + ttl,
                csrf: session::random_token(),
            };
            let value = serde_json::to_string(&session).unwrap_or_default();
            let mut response = redirect(&next);
            let path = cookie_path(&links.0);
            response.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(
                    &auth.key,
                    SESSION_COOKIE,
                    value,
                    path,
                    ttl,
                    auth.secure_cookies,
                ),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(
                    &auth.key,
                    LOGIN_COOKIE,
                    String::new(),
                    path,
                    0,
                    auth.secure_cookies,
                ),
            );
            response
        }
        None => {
            auth.throttle.confirm_failed(&keys);
            tracing::warn!(user = %username, client = %client, "tasktrail dashboard: failed login");
            form_page(
                auth,
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(auth) = auth_of(&shared) else {
        return not_found();
    };
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
    // The cookie may have been copied: this instance refuses it from now.
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
            auth.secure_cookies,
        ),
    );
    response
}
