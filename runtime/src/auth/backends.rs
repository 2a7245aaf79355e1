//! The built-in backends.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use futures::future::BoxFuture;

use crate::auth::{AuthBackend, RequestInfo, Role, User};

/// An argon2id hash of `password` (a PHC string, `$argon2id$v=19$…`) with a
/// random salt, for [`SimpleAuth::user`].
///
/// ```
/// let hash = tasktrail::auth::hash_password("correct horse battery staple");
/// assert!(hash.starts_with("$argon2id$"));
/// ```
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 hashes any password with its default parameters")
        .to_string()
}

type Verify = Arc<dyn Fn(String, String) -> BoxFuture<'static, Option<User>> + Send + Sync>;

#[derive(Clone)]
struct Account {
    hash: String,
    user: User,
}

/// A login form checked against users you list with argon2 password
/// hashes, or against a callback of yours (a database lookup, say).
///
/// ```
/// use tasktrail::auth::{Role, SimpleAuth, User, hash_password};
/// let auth = SimpleAuth::new()
///     .user("ada", &hash_password("s3cret"), Role::Admin)
///     .user("bob", &hash_password("hunter2"), Role::Viewer);
/// // or: SimpleAuth::verify(|name, password| async move { lookup(name, password).await })
/// # let _ = auth;
/// ```
#[derive(Clone, Default)]
pub struct SimpleAuth {
    accounts: Arc<HashMap<String, Account>>,
    verify: Option<Verify>,
    /// The hash unknown names are checked against, so that they take as
    /// long as known ones (no user enumeration by timing): made with the
    /// first user's parameters when that user is added, never by a login.
    dummy: Option<Arc<str>>,
}

impl std::fmt::Debug for SimpleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.accounts.keys().collect();
        names.sort();
        f.debug_struct("SimpleAuth")
            .field("users", &names)
            .field("verify", &self.verify.is_some())
            .finish()
    }
}

/// A hash of a password nobody has, made with the algorithm, version and
/// parameters of `like` (so that checking it costs what checking `like`
/// costs).
fn dummy_like(like: &PasswordHash) -> String {
    let algorithm = Algorithm::try_from(like.algorithm.as_str()).unwrap_or_default();
    let version = like
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let params = Params::try_from(like).unwrap_or_default();
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source");
    Argon2::new(algorithm, version, params)
        .hash_password(&secret)
        .or_else(|_| Argon2::default().hash_password(&secret))
        .expect("argon2 hashes with its default parameters")
        .to_string()
}

impl SimpleAuth {
    /// No users yet.
    pub fn new() -> Self {
        SimpleAuth::default()
    }

    /// Adds user `name` with an argon2 PHC `hash` (from [`hash_password`]
    /// or any argon2 tool) and `role`.
    ///
    /// The first user added also makes the hash that unknown names are
    /// checked against (one argon2 hash, with that user's parameters), so
    /// that no login has to.
    ///
    /// # Panics
    /// When `hash` is not a PHC string: a configuration mistake, caught at
    /// start-up rather than at the first login.
    pub fn user(mut self, name: &str, hash: &str, role: Role) -> Self {
        let parsed = PasswordHash::new(hash);
        assert!(
            parsed.is_ok(),
            "SimpleAuth::user({name:?}): the hash is not an argon2 PHC string (make one with tasktrail::auth::hash_password)"
        );
        if let (None, Ok(parsed)) = (&self.dummy, &parsed) {
            self.dummy = Some(dummy_like(parsed).into());
        }
        Arc::make_mut(&mut self.accounts).insert(
            name.to_owned(),
            Account {
                hash: hash.to_owned(),
                user: User::new(name, role),
            },
        );
        self
    }

    /// Checks credentials with `verify`, which answers the user they
    /// belong to, or `None`.
    pub fn verify<F, Fut>(verify: F) -> Self
    where
        F: Fn(String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<User>> + Send + 'static,
    {
        SimpleAuth {
            accounts: Arc::default(),
            verify: Some(Arc::new(move |name, password| {
                Box::pin(verify(name, password))
            })),
            dummy: None,
        }
    }
}

impl AuthBackend for SimpleAuth {
    fn login<'a>(&'a self, username: &'a str, password: &'a str) -> BoxFuture<'a, Option<User>> {
        Box::pin(async move {
            if let Some(verify) = &self.verify {
                return verify(username.to_owned(), password.to_owned()).await;
            }
            let account = self.accounts.get(username);
            let hash = match (account, &self.dummy) {
                (Some(account), _) => account.hash.clone(),
                (None, Some(dummy)) => dummy.to_string(),
                // No users at all: nothing to find out by timing.
                (None, None) => return None,
            };
            let password = password.to_owned();
            // argon2 takes tens of milliseconds: off the async workers.
            let ok = tokio::task::spawn_blocking(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false);
            match account {
                Some(account) if ok => Some(account.user.clone()),
                _ => None,
            }
        })
    }
}

/// Identity from a header a reverse proxy sets after authenticating the
/// user (`X-Forwarded-User`, `Remote-User`, …), believed only from the
/// proxies' addresses. There is no login form: the proxy logs users in.
/// A request that carries the user header, or the role header, more than
/// once is refused (the proxy must replace them, not append).
///
/// ```
/// use tasktrail::auth::{HeaderAuth, Role};
/// let auth = HeaderAuth::new("x-forwarded-user", ["10.0.0.5".parse().unwrap()])
///     .role_header("x-forwarded-role")
///     .default_role(Role::Viewer);
/// # let _ = auth;
/// ```
#[derive(Clone, Debug)]
pub struct HeaderAuth {
    header: String,
    role_header: Option<String>,
    default_role: Role,
    trusted: Vec<IpAddr>,
}

impl HeaderAuth {
    /// Users named by `header`, from requests whose peer is one of
    /// `trusted_proxies`; they are viewers unless said otherwise.
    pub fn new(header: &str, trusted_proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        HeaderAuth {
            header: header.to_ascii_lowercase(),
            role_header: None,
            default_role: Role::Viewer,
            trusted: trusted_proxies.into_iter().collect(),
        }
    }

    /// The role comes from this header (`viewer`, `operator`, `admin`);
    /// an unknown value gives the default role.
    pub fn role_header(mut self, header: &str) -> Self {
        self.role_header = Some(header.to_ascii_lowercase());
        self
    }

    /// The role of users whose role the proxy does not say.
    pub fn default_role(mut self, role: Role) -> Self {
        self.default_role = role;
        self
    }
}

impl AuthBackend for HeaderAuth {
    fn authenticate<'a>(&'a self, request: &'a RequestInfo<'a>) -> BoxFuture<'a, Option<User>> {
        let user = (|| {
            let peer = request.peer?;
            if !self.trusted.contains(&peer) {
                return None;
            }
            // Exactly one name, at most one role: a proxy that appends to a
            // header the client sent, instead of replacing it, would
            // otherwise let the client's value be read first.
            let name = single(request.headers, &self.header)?;
            let name = name.to_str().ok()?.trim();
            if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                return None;
            }
            let role = match &self.role_header {
                Some(h) if request.headers.contains_key(h) => single(request.headers, h)?
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(self.default_role),
                _ => self.default_role,
            };
            Some(User::new(name, role))
        })();
        Box::pin(async move { user })
    }

    fn has_login_form(&self) -> bool {
        false
    }
}

/// The value of `name` when the request carries it exactly once.
fn single<'h>(
    headers: &'h axum::http::HeaderMap,
    name: &str,
) -> Option<&'h axum::http::HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// No authentication at all: everyone is `role`, from anywhere. The
/// explicit opt-out, for networks where everyone may see and act on every
/// run.
#[derive(Clone, Debug)]
pub struct NoAuth {
    role: Role,
}

impl NoAuth {
    /// Everyone is an admin.
    pub fn anyone() -> Self {
        NoAuth { role: Role::Admin }
    }

    /// Everyone has `role` instead (say, read-only for everyone).
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}

impl AuthBackend for NoAuth {
    fn authenticate<'a>(&'a self, _request: &'a RequestInfo<'a>) -> BoxFuture<'a, Option<User>> {
        let user = User::new("anyone", self.role);
        Box::pin(async move { Some(user) })
    }

    fn has_login_form(&self) -> bool {
        false
    }

    fn allows_anyone(&self) -> bool {
        true
    }
}
