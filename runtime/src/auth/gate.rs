//! The gate in front of every dashboard route: who is asking, and whether
//! they may.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::session::{self, Session, SessionKey};
use crate::auth::throttle::Throttle;
use crate::auth::{AuthBackend, Identity, RequestInfo};
use crate::dashboard::pages::LinkBase;

/// The dashboard's authentication settings, and what it remembers.
pub(crate) struct AuthState {
    pub backend: Arc<dyn AuthBackend>,
    pub key: SessionKey,
    /// `Some`: cookies are `Secure` or not, as set; `None`: decided per
    /// request ([`AuthState::client`]).
    pub secure_cookies: Option<bool>,
    pub session_ttl: Duration,
    pub throttle: Throttle,
    /// The reverse proxies whose forwarding headers are believed.
    pub trusted: Arc<[IpAddr]>,
    /// One place per password check running at once (a check is an argon2
    /// hash: about 19 MiB and tens of milliseconds of a core).
    pub checks: Arc<tokio::sync::Semaphore>,
    /// Per user id: sessions issued until `before` (Unix microseconds) were
    /// logged out, on this instance; the entry can go after `until` (Unix
    /// seconds), when every such session has expired.
    revoked: std::sync::Mutex<Revocations>,
    /// The routes' own base (`""` when nested): what is stripped from a
    /// request's path to find the route.
    pub base: String,
}

#[derive(Default)]
struct Revocations {
    users: std::collections::HashMap<String, Revoked>,
    /// The size past which expired entries are swept (twice the size after
    /// the last sweep: each entry is swept over a constant number of times).
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Revoked {
    before: i64,
    until: i64,
}

/// Unix microseconds.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl AuthState {
    pub(crate) fn new(
        backend: Arc<dyn AuthBackend>,
        key: SessionKey,
        secure_cookies: Option<bool>,
        session_ttl: Duration,
        trusted: Arc<[IpAddr]>,
        base: String,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AuthState {
            backend,
            key,
            secure_cookies,
            session_ttl,
            throttle: Throttle::default(),
            trusted,
            checks: Arc::new(tokio::sync::Semaphore::new(cores)),
            revoked: Default::default(),
            base,
        }
    }

    fn revocations(&self) -> std::sync::MutexGuard<'_, Revocations> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `session` was logged out (it, or a later session of its
    /// user).
    pub(crate) fn is_revoked(&self, session: &Session) -> bool {
        self.revocations()
            .users
            .get(&session.user.id)
            .is_some_and(|r| session.issued <= r.before)
    }

    /// Refuses `session`, and every session of its user issued before it,
    /// from now on (until they would have expired anyway). One entry per
    /// user, however often they log out.
    pub(crate) fn revoke(&self, session: &Session) {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.session_ttl.as_secs()).unwrap_or(i64::MAX);
        let until = session
            .expires
            .max((session.issued / 1_000_000).saturating_add(ttl));
        let mut revoked = self.revocations();
        let entry = revoked
            .users
            .entry(session.user.id.clone())
            .or_insert(Revoked {
                before: i64::MIN,
                until: i64::MIN,
            });
        entry.before = entry.before.max(session.issued);
        entry.until = entry.until.max(until);
        if revoked.users.len() > revoked.sweep_at.max(1_024) {
            revoked.users.retain(|_, r| r.until > now);
            revoked.sweep_at = 2 * revoked.users.len();
        }
    }

    /// When a session of `user_id` made now is issued: now, and always
    /// after the user's last logout on this instance (so that a login
    /// right after a logout is not refused with it).
    pub(crate) fn issue_time(&self, user_id: &str) -> i64 {
        let now = now_micros();
        match self.revocations().users.get(user_id) {
            Some(r) => now.max(r.before.saturating_add(1)),
            None => now,
        }
    }

    /// What the dashboard can tell of the client of a request: its address
    /// (through the trusted proxies) and whether its cookies are `Secure`.
    ///
    /// Unless set with `secure_cookies`, they are, except when a trusted
    /// proxy says the client came over plain HTTP, or for plain HTTP on
    /// loopback (a loopback peer naming a loopback host, without any proxy
    /// header: a development set-up, whose cookies never leave the
    /// machine).
    pub(crate) fn client(&self, request: &Request) -> ClientInfo {
        use crate::auth::client;
        let peer = peer(request);
        let headers = request.headers();
        let addr = client::client_addr(peer, headers, &self.trusted);
        let secure = self.secure_cookies.unwrap_or_else(|| {
            if client::is_trusted(peer, &self.trusted)
                && let Some(https) = client::forwarded_https(headers)
            {
                return https;
            }
            let development = peer.is_some_and(client::is_loopback)
                && client::local_host(request)
                && client::proxy_header(headers).is_none();
            !development
        });
        ClientInfo { addr, secure }
    }
}

/// What the dashboard can tell of a request's client (see
/// [`AuthState::client`]), for the login handlers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientInfo {
    /// Its address, when the server says who the peer is.
    pub addr: Option<IpAddr>,
    /// Whether the cookies set for it are `Secure`.
    pub secure: bool,
}

/// The header state-changing requests of a session carry its token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Whether `next` is a path under `base` that a redirect may go to: a
/// plain absolute path, no scheme or host (`//`, `\`, `https:`), no dot
/// segments, no control characters, also once percent-decoded; no
/// whitespace as sent (an encoded space, `%20`, is a plain character of a
/// run key or a search).
pub(crate) fn safe_next(next: &str, base: &str) -> Option<String> {
    fn plain(path: &str, base: &str, decoded: bool) -> bool {
        let under = base.is_empty() || path == base || path.starts_with(&format!("{base}/"));
        path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && !path
                .chars()
                .any(|c| c.is_control() || (!decoded && c.is_whitespace()))
            && !path
                .split(['/', '?', '#'])
                .any(|segment| segment == ".." || segment == ".")
            && under
    }
    if next.len() > 2_000 || !plain(next, base, false) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(next)
        .decode_utf8()
        .ok()?;
    // Decoding twice catches double encoding (`%252F%252F…`).
    let twice = percent_encoding::percent_decode_str(&decoded)
        .decode_utf8()
        .ok()?;
    (plain(&decoded, base, true) && plain(&twice, base, true)).then(|| next.to_owned())
}

/// Whether an `Origin` (or, without one, a `Referer`) names another host
/// than the request's own: its `Host`, or over HTTP/2 (which has no `Host`
/// header) the authority of its URI.
fn cross_origin(request: &Request) -> bool {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            let authority = request.uri().authority()?.as_str();
            authority.rsplit('@').next()
        });
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match source {
        None => false,
        Some(source) => {
            let rest = source.split_once("://").map(|(_, rest)| rest);
            let source_host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
            host.is_none() || source_host != host
        }
    }
}

fn deny(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

/// The gate: finds the user (a valid session cookie, else the backend),
/// sends those without one to the login page (401 with `HX-Redirect` for
/// htmx requests, 303 for pages, 401 for the API), and checks that every
/// state-changing request of a session carries its CSRF token and comes
/// from the dashboard's own origin.
pub(crate) async fn gate(
    State(auth): State<Arc<AuthState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let route = path
        .strip_prefix(auth.base.as_str())
        .unwrap_or(&path)
        .to_owned();
    // The login form, logging out (which checks its own token), the assets,
    // and the backend's own routes (`AuthBackend::routes`, nested at
    // `/auth`: "allowed without a user").
    let open = route == "/login"
        || route == "/logout"
        || route.starts_with("/assets/")
        || route.starts_with("/auth/");
    let links = request
        .extensions()
        .get::<LinkBase>()
        .map(|l| l.0.clone())
        .unwrap_or_else(|| auth.base.clone());
    let client = auth.client(&request);
    request.extensions_mut().insert(client);

    let session: Option<Session> =
        session::read(request.headers(), &auth.key).filter(|s| !auth.is_revoked(s));
    let identity = match session {
        Some(session) => Some(Identity {
            role: session.user.role,
            user: Some(session.user),
            csrf: Some(session.csrf),
            logs_in: auth.backend.has_login_form(),
        }),
        None => {
            let info = RequestInfo {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
                peer: peer(&request),
            };
            auth.backend.authenticate(&info).await.map(|user| Identity {
                role: user.role,
                user: Some(user),
                csrf: None,
                logs_in: false,
            })
        }
    };

    let Some(identity) = identity else {
        if open {
            return next.run(request).await;
        }
        if !auth.backend.has_login_form() {
            return deny(
                StatusCode::UNAUTHORIZED,
                "not authenticated: this dashboard takes its users from a reverse proxy",
            );
        }
        let htmx = request.headers().contains_key("hx-request");
        let api = route.starts_with("/api/") || route == "/metrics";
        if htmx {
            // Back to the page the user is on, after logging in.
            let current = request
                .headers()
                .get("hx-current-url")
                .and_then(|v| v.to_str().ok())
                .and_then(|url| url.split_once("://").map(|(_, rest)| rest))
                .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
                .and_then(|p| safe_next(&p, &links))
                .unwrap_or_else(|| format!("{links}/"));
            let mut response = deny(StatusCode::UNAUTHORIZED, "log in first");
            if let Ok(to) = HeaderValue::from_str(&login_url(&links, &current)) {
                response.headers_mut().insert("hx-redirect", to);
            }
            return response;
        }
        if api || !matches!(*request.method(), Method::GET | Method::HEAD) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": "log in first" })),
            )
                .into_response();
        }
        let here = match request.uri().query() {
            Some(q) => format!("{links}{route}?{q}"),
            None => format!("{links}{route}"),
        };
        let here = safe_next(&here, &links).unwrap_or_else(|| format!("{links}/"));
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(to) = HeaderValue::from_str(&login_url(&links, &here)) {
            response.headers_mut().insert(header::LOCATION, to);
        }
        return response;
    };

    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes && !open {
        if cross_origin(&request) {
            return deny(StatusCode::FORBIDDEN, "cross-origin requests are refused");
        }
        if let Some(token) = &identity.csrf {
            let sent = request
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session::same_token(sent, token) {
                return deny(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: reload the page and try again",
                );
            }
        }
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// `{links}/login?next=…`
pub(crate) fn login_url(links: &str, next: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", next);
    format!("{links}/login?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::{cross_origin, safe_next};
    use axum::extract::Request;

    #[test]
    fn logging_out_in_a_loop_keeps_the_record_small() {
        use super::AuthState;
        use crate::auth::session::{Session, SessionKey, random_token};
        use crate::auth::{NoAuth, Role, User};
        let auth = AuthState::new(
            std::sync::Arc::new(NoAuth::anyone()),
            SessionKey::generate(),
            None,
            std::time::Duration::from_secs(3_600),
            std::sync::Arc::new([]),
            String::new(),
        );
        let now = chrono::Utc::now().timestamp();
        let (ada, bob) = (
            User::new("ada", Role::Admin),
            User::new("bob", Role::Viewer),
        );
        let bobs = Session {
            user: bob,
            expires: now + 3_600,
            csrf: random_token(),
            issued: auth.issue_time("bob"),
        };
        for _ in 0..5_000 {
            let session = Session {
                user: ada.clone(),
                expires: now + 3_600,
                csrf: random_token(),
                issued: auth.issue_time("ada"),
            };
            assert!(!auth.is_revoked(&session));
            auth.revoke(&session);
            assert!(auth.is_revoked(&session));
        }
        assert!(!auth.is_revoked(&bobs), "another user's session");
        let fresh = Session {
            user: ada,
            expires: now + 3_600,
            csrf: random_token(),
            issued: auth.issue_time("ada"),
        };
        assert!(!auth.is_revoked(&fresh), "a login after the last logout");
        let kept = auth.revocations().users.len();
        assert!(kept <= 1, "{kept} revocations kept for one user");
    }

    #[test]
    fn origin_against_host_or_the_http2_authority() {
        let request = |uri: &str, headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method("POST").uri(uri);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        let same = [("host", "dash.example"), ("origin", "http://dash.example")];
        assert!(!cross_origin(&request("/ops/x", &same)));
        let evil = [("host", "dash.example"), ("origin", "https://evil.example")];
        assert!(cross_origin(&request("/ops/x", &evil)));
        // HTTP/2: no Host header, the authority in the URI.
        let h2 = [("origin", "https://dash.example:8443")];
        assert!(!cross_origin(&request(
            "https://dash.example:8443/ops/x",
            &h2
        )));
        assert!(cross_origin(&request("https://evil.example/ops/x", &h2)));
        // Neither: refused when there is an Origin.
        assert!(cross_origin(&request("/ops/x", &h2)));
        assert!(!cross_origin(&request("/ops/x", &[])));
    }

    #[test]
    fn next_is_a_plain_path_under_the_prefix() {
        for ok in [
            "/ops",
            "/ops/",
            "/ops/runs?status=failed",
            "/ops/runs/a%20b",
        ] {
            assert_eq!(safe_next(ok, "/ops").as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/ops",
            "//evil.example/ops",
            "/\\evil.example",
            "/ops/../admin",
            "/ops/./x",
            "/ops-evil",
            "/opsx/runs",
            "ops/runs",
            "/ops/%2e%2e/admin",
            "/ops/%252e%252e/admin",
            "/%2F%2Fevil.example",
            "/ops/%5Cevil",
            "/ops/\nSet-Cookie:x",
            "/ops/%0d%0aSet-Cookie:x",
            "/ops/%09/evil",
            "/ops/ x",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(bad, "/ops"), None, "{bad}");
        }
        assert_eq!(safe_next("/runs", "").as_deref(), Some("/runs"));
        assert_eq!(safe_next("//evil", ""), None);
    }
}
