//! The session cookie: who is logged in, until when, and their CSRF token,
//! encrypted and authenticated with the dashboard's key.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Key, PrivateCookieJar};
use base64::Engine as _;
use cookie::{Cookie, SameSite};

use crate::auth::User;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "tasktrail_session";
/// The login form's CSRF cookie (before there is a session).
pub(crate) const LOGIN_COOKIE: &str = "tasktrail_login";

/// The key that encrypts and signs session cookies (AES-256-GCM).
///
/// Give every instance behind a load balancer the same key
/// ([`from_secret`](Self::from_secret)), or a session made by one is
/// refused by the others. Without one, the dashboard makes a random key at
/// start (and warns): sessions then end when the process restarts.
#[derive(Clone)]
pub struct SessionKey(pub(crate) Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    /// A key derived from `secret`: at least 32 random bytes (say, 64 hex
    /// characters from a secret store).
    ///
    /// # Panics
    /// When `secret` is shorter than 32 bytes.
    pub fn from_secret(secret: &[u8]) -> Self {
        assert!(
            secret.len() >= 32,
            "a session secret needs at least 32 bytes ({} given)",
            secret.len()
        );
        SessionKey(Key::derive_from(secret))
    }

    /// A random key.
    pub fn generate() -> Self {
        SessionKey(Key::generate())
    }
}

/// What the session cookie holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Session {
    pub user: User,
    /// Unix seconds after which the session is refused.
    pub expires: i64,
    /// The token state-changing requests must send back.
    pub csrf: String,
    /// When it was issued, in Unix microseconds (0 in a cookie made before
    /// there was this field): logging out refuses the user's sessions
    /// issued until then.
    #[serde(default)]
    pub issued: i64,
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two tokens in constant time.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The valid, unexpired session in `headers`, if any. A cookie that was
/// tampered with, made with another key or expired is ignored.
pub(crate) fn read(headers: &HeaderMap, key: &SessionKey) -> Option<Session> {
    let jar = PrivateCookieJar::from_headers(headers, key.0.clone());
    let cookie = jar.get(SESSION_COOKIE)?;
    let session: Session = serde_json::from_str(cookie.value()).ok()?;
    (session.expires > chrono::Utc::now().timestamp()).then_some(session)
}

/// The login form's CSRF token, if its cookie is valid.
pub(crate) fn read_login_token(headers: &HeaderMap, key: &SessionKey) -> Option<String> {
    let jar = PrivateCookieJar::from_headers(headers, key.0.clone());
    jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value for `name` = `value` (encrypted), scoped to
/// `path`, expiring after `max_age` seconds (0 removes it).
pub(crate) fn set_cookie(
    key: &SessionKey,
    name: &'static str,
    value: String,
    path: &str,
    max_age: i64,
    secure: bool,
) -> axum::http::HeaderValue {
    let mut cookie = Cookie::new(name, value);
    cookie.set_path(if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    });
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(secure);
    cookie.set_max_age(cookie::time::Duration::seconds(max_age));
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(&key.0).add(cookie);
    let encoded = jar
        .delta()
        .next()
        .map(|c| c.encoded().to_string())
        .unwrap_or_default();
    axum::http::HeaderValue::from_str(&encoded).expect("an encoded cookie is a valid header value")
}
