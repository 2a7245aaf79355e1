//! Who may use the dashboard, and what they may do.
//!
//! An [`AuthBackend`] says who a request comes from: from a login form
//! ([`SimpleAuth`]: users with argon2 password hashes, or a verify callback
//! such as a database lookup), from a reverse proxy's header
//! ([`HeaderAuth`], trusted only from the proxies' addresses), from
//! anything else you implement (a bearer token, say), or nobody at all
//! ([`NoAuth::anyone`], the explicit opt-out). Give it to
//! [`Dashboard::auth`](crate::Dashboard::auth); without one, the dashboard
//! answers loopback clients only.
//!
//! Logged-in users get an encrypted, signed session cookie (AES-256-GCM,
//! from the `cookie` crate through axum-extra), HttpOnly, SameSite=Lax,
//! Secure (except for plain HTTP on loopback, unless configured), with an
//! expiry; every state-changing request must carry the session's CSRF
//! token. Each user has a [`Role`]: viewers read, operators act on runs,
//! admins too.
//!
//! The backends, the login form and the session cookie come with the cargo
//! feature `auth` (on by default). With `dashboard` alone, the dashboard
//! answers loopback clients only (or everyone, after
//! [`Dashboard::allow_remote_without_auth`](crate::Dashboard::allow_remote_without_auth)),
//! and the build has no argon2, cookie or session code.

pub mod audit;
#[cfg(feature = "auth")]
mod backends;
pub(crate) mod client;
#[cfg(feature = "auth")]
mod gate;
#[cfg(feature = "auth")]
mod login;
#[cfg(feature = "auth")]
mod session;
#[cfg(feature = "auth")]
mod throttle;

#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub use backends::{HeaderAuth, NoAuth, SimpleAuth, hash_password};
#[cfg(feature = "auth")]
pub(crate) use gate::{AuthState, gate};
#[cfg(feature = "auth")]
pub(crate) use login::{login_form, login_submit, logout};
#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub use session::SessionKey;

#[cfg(feature = "auth")]
use std::net::IpAddr;

#[cfg(feature = "auth")]
use axum::http::{HeaderMap, Method, Uri};
#[cfg(feature = "auth")]
use futures::future::BoxFuture;

/// Who a request comes from, for the handlers.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// The user; `None` when the dashboard has no auth backend (loopback
    /// clients only, who may do everything the configuration allows).
    pub user: Option<User>,
    /// What they may do.
    pub role: Role,
    /// Their session's CSRF token, when they came with a session.
    pub csrf: Option<String>,
    /// Whether there is a login form (and so a logout button).
    pub logs_in: bool,
}

impl Identity {
    /// A loopback client of a dashboard without an auth backend.
    pub(crate) fn local() -> Self {
        Identity {
            user: None,
            role: Role::Admin,
            csrf: None,
            logs_in: false,
        }
    }
}

/// What a user may do.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything; acts on nothing.
    Viewer,
    /// Also cancels, retries and deletes runs.
    Operator,
    /// Everything an operator does (and whatever later needs more).
    Admin,
}

impl Role {
    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may cancel, retry and delete runs.
    pub fn may_act(self) -> bool {
        self >= Role::Operator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role; expected viewer, operator or admin"
            )),
        }
    }
}

/// Someone using the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// A stable id (a user name, an email, a database id).
    pub id: String,
    /// What the pages show.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

impl User {
    /// A user whose name is their id.
    pub fn new(id: impl Into<String>, role: Role) -> Self {
        let id = id.into();
        User {
            name: id.clone(),
            id,
            role,
        }
    }

    /// The same user with another display name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// The parts of a request a backend may look at.
#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
#[derive(Debug)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (path relative to the server).
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The peer's address, when the server passes it on.
    pub peer: Option<IpAddr>,
}

/// Tells the dashboard who a request comes from.
///
/// Implement [`authenticate`](Self::authenticate) for identities that come
/// with each request (a header set by a proxy, a bearer token), and
/// [`login`](Self::login) for a login form; the dashboard keeps a form
/// login in its session cookie. See the "Authentication" guide for a
/// bearer-token backend.
#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub trait AuthBackend: Send + Sync + 'static {
    /// The user a request carries by itself, if any (checked when it has no
    /// valid session).
    fn authenticate<'a>(&'a self, request: &'a RequestInfo<'a>) -> BoxFuture<'a, Option<User>> {
        let _ = request;
        Box::pin(async { None })
    }

    /// The user these credentials belong to, if they are right.
    fn login<'a>(&'a self, username: &'a str, password: &'a str) -> BoxFuture<'a, Option<User>> {
        let _ = (username, password);
        Box::pin(async { None })
    }

    /// Whether the dashboard shows a login form (backends whose users come
    /// with each request have none).
    fn has_login_form(&self) -> bool {
        true
    }

    /// Whether the dashboard may answer clients beyond loopback without any
    /// user ([`NoAuth::anyone`] only).
    fn allows_anyone(&self) -> bool {
        false
    }

    /// Routes of the backend's own (an OAuth callback, say), merged under
    /// the dashboard's prefix and allowed without a user.
    fn routes(&self) -> Option<axum::Router> {
        None
    }
}
