//! The dashboard as an `axum::Router`.

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};

#[cfg(feature = "openapi")]
use crate::dashboard::openapi;
use crate::dashboard::{
    DashboardConfig, DashboardSettings, actions, api, export, forms, gate, kind_pages, live,
    log_pages, pages, start, stats,
};
use crate::lifecycle::Tracker;

/// What every handler shares.
pub(crate) struct SharedInner<C: DashboardConfig> {
    pub settings: DashboardSettings,
    pub tracker: Tracker<C::Model>,
    pub stats: stats::StatsCache,
    /// The task names and index facts searches are planned with.
    pub search: super::search::SearchCache,
    /// The task kinds' names and numbers and the stuck runs.
    pub kinds: crate::dashboard::kinds::KindsCache,
    pub logs: Option<Arc<dyn crate::logs::LogStorage>>,
    #[cfg(feature = "auth")]
    pub auth: Option<Arc<crate::auth::AuthState>>,
    /// The live stream's follower of the change feed.
    pub live: live::Live,
    /// Whether the JSON list may read each run as one value (SQLite; turned
    /// off if this SQLite has no JSON functions): `run_rows`.
    pub run_rows: std::sync::atomic::AtomicBool,
}

/// A cheap handle on [`SharedInner`].
pub(crate) type Shared<C> = Arc<SharedInner<C>>;

/// Builds the dashboard's router from a `dashboard!` configuration and the
/// tracker of the same entity.
///
/// ```no_run
/// # tasktrail::dashboard! { struct Ops<task_run::Entity> {} }
/// # mod task_run {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
/// #     #[sea_orm(table_name = "task_runs")]
/// #     pub struct Model {
/// #         #[sea_orm(primary_key)]
/// #         pub id: i64,
/// #         #[sea_orm(unique)]
/// #         pub task_key: String,
/// #         pub status: String,
/// #     }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// # async fn demo(tracker: task_run::Tracker) -> std::io::Result<()> {
/// let app = axum::Router::new().merge(tasktrail::Dashboard::new(Ops::default(), tracker).router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
/// # }
/// ```
pub struct Dashboard<C: DashboardConfig> {
    config: C,
    tracker: Tracker<C::Model>,
    remote_without_auth: bool,
    trusted_proxies: Vec<std::net::IpAddr>,
    stats_max_age: std::time::Duration,
    search_window: u64,
    answer_within: std::time::Duration,
    logs: Option<Arc<dyn crate::logs::LogStorage>>,
    #[cfg(feature = "auth")]
    auth: Option<Arc<dyn crate::auth::AuthBackend>>,
    #[cfg(feature = "auth")]
    session_key: Option<crate::auth::SessionKey>,
    #[cfg(feature = "auth")]
    secure_cookies: Option<bool>,
    #[cfg(feature = "auth")]
    session_ttl: std::time::Duration,
    audit_retention: Option<std::time::Duration>,
}

/// `settings` with the sizes and intervals that a struct literal can set
/// out of range (a settings file is validated) brought within it: a page of
/// 1 to 1,000 runs; a poll interval of at least 100 ms (zero made pages and
/// live streams poll in a loop) and at most 2^31 - 1 ms (a longer browser
/// timer fires at once, in a loop).
fn in_range(mut settings: crate::DashboardSettings) -> crate::DashboardSettings {
    settings.page_size = settings.page_size.clamp(1, 1_000);
    settings.poll_interval = settings.poll_interval.clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_millis(i32::MAX as u64),
    );
    settings
}

impl<C: DashboardConfig> Dashboard<C> {
    /// A dashboard showing `tracker`'s runs with `config`.
    pub fn new(config: C, tracker: Tracker<C::Model>) -> Self {
        Dashboard {
            config,
            tracker,
            remote_without_auth: false,
            trusted_proxies: Vec::new(),
            stats_max_age: std::time::Duration::from_secs(2),
            search_window: super::search::DEFAULT_WINDOW,
            answer_within: DEFAULT_ANSWER_WITHIN,
            logs: None,
            #[cfg(feature = "auth")]
            auth: None,
            #[cfg(feature = "auth")]
            session_key: None,
            #[cfg(feature = "auth")]
            secure_cookies: None,
            #[cfg(feature = "auth")]
            session_ttl: std::time::Duration::from_secs(12 * 3_600),
            audit_retention: Some(crate::auth::audit::DEFAULT_RETENTION),
        }
    }

    /// Reverse proxies whose forwarding headers are believed: from one of
    /// them, `X-Forwarded-Prefix: /app` makes the pages link to
    /// `/app{url_prefix}/…`, `X-Forwarded-For` (or `Forwarded: for=`) names
    /// the client the login throttle counts, and `X-Forwarded-Proto` (or
    /// `Forwarded: proto=`) says whether cookies are `Secure`. The headers
    /// are ignored from any other peer, and `X-Forwarded-Prefix` when it is
    /// not a plain path.
    ///
    /// Without an auth backend this changes nothing about who may connect:
    /// the dashboard still answers loopback clients only, and refuses a
    /// request that came through a proxy.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Who may use the dashboard: users from `backend` (a login form, a
    /// proxy header, a token of your own, or [`NoAuth::anyone`]), each with
    /// a role. With a backend the dashboard answers beyond loopback; see
    /// [`auth`](crate::auth).
    ///
    /// [`NoAuth::anyone`]: crate::auth::NoAuth::anyone
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn auth(mut self, backend: impl crate::auth::AuthBackend) -> Self {
        self.auth = Some(Arc::new(backend));
        self
    }

    /// The key of the session cookies. Instances behind a load balancer
    /// need the same one. Without it, a random key is made at start (and a
    /// warning logged): sessions end when the process restarts.
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn session_key(mut self, key: crate::auth::SessionKey) -> Self {
        self.session_key = Some(key);
        self
    }

    /// Whether the session and login cookies are `Secure` (sent over HTTPS
    /// only). By default they are, except when a trusted proxy says the
    /// client came over plain HTTP (`X-Forwarded-Proto: http`, see
    /// [`trusted_proxies`](Self::trusted_proxies)), and for plain HTTP on
    /// loopback (a loopback client asking for `localhost` or `127.0.0.1`
    /// without any proxy header: a development set-up). `true` makes them
    /// `Secure` always; `false` never, for a dashboard served over plain
    /// HTTP beyond loopback (where a browser drops `Secure` cookies: the
    /// login form says so and refuses to log in).
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = Some(secure);
        self
    }

    /// How long a login lasts: 12 hours by default. Taken as at most 400
    /// days (what browsers keep a cookie for), so `Duration::MAX` is the
    /// longest login, never one born expired.
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn session_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.session_ttl = ttl.min(std::time::Duration::from_secs(400 * 86_400));
        self
    }

    /// Where the runs' log lines are (the storage a
    /// [`TaskLogLayer`](crate::logs::TaskLogLayer) writes to): adds the Logs
    /// page, a logs panel with a live tail on every run's page, and the logs
    /// API.
    pub fn log_storage(mut self, storage: Arc<dyn crate::logs::LogStorage>) -> Self {
        self.logs = Some(storage);
        self
    }

    /// How old the overview's numbers (runs per status, durations, runs
    /// per hour; also the list's filter counts and `/metrics`) may be before
    /// they are computed again: 2 s by default. Past it, the old numbers are
    /// still served while a background task computes new ones, so no
    /// request waits on counting a big table. Zero computes them for every
    /// request.
    pub fn stats_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.stats_max_age = max_age;
        self
    }

    /// How many of the newest runs a search reads when no index answers it
    /// (a term that is not a run key or part of a task name, without the
    /// text index of [`schema::create_search_index`], or shorter than 3
    /// characters): 100,000 by default. The page says when a search was
    /// bounded so. See [`search`](crate::dashboard::search).
    ///
    /// [`schema::create_search_index`]: crate::schema::create_search_index
    pub fn search_window(mut self, runs: u64) -> Self {
        self.search_window = runs.max(1);
        self
    }

    /// How long a request may take to be answered before the dashboard
    /// gives up on the database and answers 503 with a message and
    /// `Retry-After` (a page as text, the API as JSON): 5 s by default.
    ///
    /// It bounds what a request waits for when the database is down: a
    /// connection pool keeps trying to connect for its whole acquire timeout
    /// (sqlx's default: 30 s) before it reports an error. A streamed answer
    /// (the live streams, an export) is bounded until it starts, not while
    /// it streams. Zero is taken as 1 ms.
    pub fn answer_within(mut self, limit: std::time::Duration) -> Self {
        self.answer_within = limit.max(std::time::Duration::from_millis(1));
        self
    }

    /// How long the audit trail keeps its entries: 365 days by default
    /// ([`DEFAULT_RETENTION`](crate::auth::audit::DEFAULT_RETENTION));
    /// `None` keeps them for ever. Older entries are deleted when the
    /// router is built and then every `retention_interval` of the tracker,
    /// together with the runs older than the `retention_days` setting.
    pub fn audit_retention(mut self, keep: Option<std::time::Duration>) -> Self {
        self.audit_retention = keep;
        self
    }

    /// Serves the dashboard to clients beyond loopback without any
    /// authentication. Only for networks where everyone may see and act on
    /// every run.
    pub fn allow_remote_without_auth(mut self) -> Self {
        self.remote_without_auth = true;
        self
    }

    /// The routes under the configuration's `url_prefix`, to `merge` into
    /// an app. The overview answers at the prefix with and without a
    /// trailing slash.
    pub fn router(self) -> Router {
        let prefix = self.config.settings().url_prefix;
        let base = prefix.trim_end_matches('/').to_owned();
        self.build(&base)
    }

    /// The routes relative to the root, to `nest` at any path: the pages'
    /// links follow the path they are nested at (axum's `NestedPath`), not
    /// the configuration's `url_prefix`.
    ///
    /// ```no_run
    /// # fn demo(dashboard: tasktrail::Dashboard<impl tasktrail::DashboardConfig>) {
    /// let app: axum::Router = axum::Router::new().nest("/admin/jobs", dashboard.routes());
    /// # }
    /// ```
    pub fn routes(self) -> Router {
        self.build("")
    }

    fn build(self, base: &str) -> Router {
        let shared: Shared<C> = Arc::new(SharedInner {
            settings: in_range(self.config.settings()),
            tracker: self.tracker,
            stats: stats::StatsCache::new(self.stats_max_age),
            search: super::search::SearchCache::new(self.search_window),
            kinds: crate::dashboard::kinds::KindsCache::new(self.stats_max_age),
            live: live::Live::default(),
            run_rows: std::sync::atomic::AtomicBool::new(true),
            logs: self.logs,
            #[cfg(feature = "auth")]
            auth: self.auth.clone().map(|backend| {
                let key = self.session_key.clone().unwrap_or_else(|| {
                    if backend.has_login_form() {
                        tracing::warn!(
                            "tasktrail dashboard: no session key given (Dashboard::session_key): \
                             using a random one, so sessions end when this process restarts and \
                             are not shared with other instances"
                        );
                    }
                    crate::auth::SessionKey::generate()
                });
                Arc::new(crate::auth::AuthState::new(
                    backend,
                    key,
                    self.secure_cookies,
                    self.session_ttl,
                    self.trusted_proxies.clone().into(),
                    base.to_owned(),
                ))
            }),
        });
        crate::dashboard::retention::start(
            &shared,
            crate::dashboard::retention::Policy {
                runs_days: shared.settings.retention_days,
                audit: self.audit_retention,
            },
        );
        let url_prefix = shared.settings.url_prefix.clone();
        let trusted: Arc<[std::net::IpAddr]> = self.trusted_proxies.into();
        let links = move |request: axum::extract::Request, next: axum::middleware::Next| {
            let url_prefix = url_prefix.clone();
            let trusted = trusted.clone();
            async move {
                let mut request = request;
                let peer = request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip());
                let nested = request
                    .extensions()
                    .get::<axum::extract::NestedPath>()
                    .map(|n| n.as_str().to_owned());
                let own = nested.as_deref().unwrap_or(&url_prefix);
                let base = pages::LinkBase::of(own, &trusted, peer, request.headers());
                request.extensions_mut().insert(base);
                next.run(request).await
            }
        };
        let at = |path: &str| format!("{base}{path}");
        let mut router = Router::new().route(&at("/"), get(pages::overview::<C>));
        if !base.is_empty() {
            router = router.route(base, get(pages::overview::<C>));
        }
        let router = router
            .route(&at("/runs"), get(pages::runs::<C>))
            .route(&at("/runs/{key}"), get(pages::run::<C>))
            .route(&at("/assets/app.css"), get(pages::app_css))
            .route(&at("/assets/app.js"), get(pages::app_js))
            .route(&at("/assets/htmx.min.js"), get(pages::htmx_js))
            .route(&at("/assets/icon.svg"), get(pages::icon_svg))
            .route(&at("/runs/bulk"), post(forms::bulk_form::<C>))
            .route(&at("/runs/{key}/{action}"), post(forms::run_action::<C>))
            .route(&at("/api/runs/bulk"), post(actions::bulk_api::<C>))
            .route(&at("/assets/theme.css"), get(pages::theme_css::<C>))
            .route(
                &at("/assets/theme.js"),
                get(crate::dashboard::theme::theme_js),
            )
            .route(&at("/api/runs"), get(api::runs::<C>))
            .route(
                &at("/api/runs/{key}"),
                get(api::run::<C>).delete(actions::delete::<C>),
            )
            .route(&at("/api/runs/{key}/cancel"), post(actions::cancel::<C>))
            .route(&at("/api/runs/{key}/retry"), post(actions::retry::<C>))
            .route(&at("/api/runs/{key}/trace"), get(super::trace::api::<C>))
            .route(&at("/api/metrics"), get(api::metrics::<C>))
            .route(&at("/kinds/{name}"), get(kind_pages::page::<C>))
            .route(&at("/api/kinds"), get(kind_pages::list_api::<C>))
            .route(&at("/api/kinds/{name}"), get(kind_pages::api::<C>))
            .route(&at("/metrics"), get(api::prometheus::<C>))
            .route(&at("/api/events"), get(live::events::<C>))
            .route(&at("/logs"), get(log_pages::page::<C>))
            .route(&at("/api/logs"), get(log_pages::api::<C>))
            .route(&at("/api/logs/events"), get(log_pages::events::<C>))
            // Issue 16, items 6 and 7: runs started from the page, export.
            .route(
                &at("/kinds/{name}/start"),
                get(start::form::<C>).post(start::submit::<C>),
            )
            .route(&at("/api/kinds/{name}/runs"), post(start::api::<C>))
            .route(&at("/api/runs/export.csv"), get(export::csv::<C>))
            .route(&at("/api/runs/export.jsonl"), get(export::jsonl::<C>))
            // Any other path under the API: a JSON 404 (behind the same
            // gates), not the app's fallback.
            .route(&at("/api/"), any(api_not_found))
            .route(&at("/api/{*rest}"), any(api_not_found));
        #[cfg(feature = "auth")]
        let router = router
            .route(
                &at("/login"),
                get(crate::auth::login_form::<C>).post(crate::auth::login_submit::<C>),
            )
            .route(&at("/logout"), post(crate::auth::logout::<C>));
        #[cfg(feature = "openapi")]
        let router = router.route(&at("/api/openapi.json"), get(openapi::openapi::<C>));
        let router = router.with_state(shared.clone());
        let api_prefix: Arc<str> = at("/api/").into();
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let api_prefix = api_prefix.clone();
                async move { super::input::refuse_nul(&api_prefix, request, next).await }
            },
        ));
        // Innermost first: who is asking (which needs the links), then the
        // links, then the headers every response carries; the loopback
        // check (without a backend) before anything.
        #[cfg(feature = "auth")]
        let router = match shared.auth.clone() {
            Some(auth) => {
                let mut router = router;
                if let Some(extra) = auth.backend.routes() {
                    router = router.nest(&at("/auth"), extra);
                }
                router.layer(axum::middleware::from_fn_with_state(
                    auth,
                    crate::auth::gate,
                ))
            }
            None => router.layer(axum::middleware::from_fn(gate::local_identity)),
        };
        #[cfg(not(feature = "auth"))]
        let router = router.layer(axum::middleware::from_fn(gate::local_identity));
        // Around everything that may wait for the database (the handlers,
        // the sessions of the auth gate).
        let limit = self.answer_within;
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                answer_within(limit, request, next)
            },
        ));
        let router = router
            .layer(axum::middleware::from_fn(links))
            .layer(axum::middleware::from_fn(security_headers));
        #[cfg(feature = "auth")]
        let open = self.remote_without_auth || self.auth.is_some();
        #[cfg(not(feature = "auth"))]
        let open = self.remote_without_auth;
        let router = if open {
            router
        } else {
            router.layer(axum::middleware::from_fn(gate::loopback_only))
        };
        // Outermost: every refusal under the API, the gates' included, is
        // JSON.
        let api: Arc<str> = format!("{base}/api").into();
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                api_errors(api.clone(), request, next)
            },
        ))
    }
}

/// Any other path under `{prefix}/api/`.
async fn api_not_found(uri: axum::http::Uri) -> api::ApiError {
    api::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!(
            "no API route is `{}`; `api/openapi.json` lists them",
            uri.path()
        ),
    )
}

/// [`Dashboard::answer_within`]'s default.
pub(crate) const DEFAULT_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers 503 (with `Retry-After`) when `next` has not answered within
/// `limit`: the database did not answer. The handler's future is dropped;
/// a write it had handed to the tracker goes on in the tracker's writer.
async fn answer_within(
    limit: std::time::Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                ?limit,
                "tasktrail dashboard: a request was not answered in time; the database did not answer"
            );
            api::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the runs database did not answer within {} ms; try again",
                    limit.as_millis()
                ),
            )
            .into_plain_response()
        }
    }
}

/// The longest error body [`api_errors`] reads to wrap it.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Makes every 4xx and 5xx answer under `api` (the API's path, `{base}/api`)
/// `{"error": "…"}` with `application/json`: a refusal of a gate (loopback,
/// authentication, CSRF), axum's own (405, a path that does not decode)
/// and any other that is not JSON yet. The message is the refusal's text,
/// or says what the status means; other headers (`Allow`, `Retry-After`,
/// `HX-Redirect`) are kept.
async fn api_errors(
    api: Arc<str>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let path = request.uri().path();
    let under = path
        .strip_prefix(&*api)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !under || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("another method");
        format!("this route does not take {method}; it takes {allowed}")
    } else {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    };
    let json = api::SafeJson(serde_json::json!({ "error": message })).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &json_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    axum::response::Response::from_parts(parts, json_body)
}

/// A strict Content-Security-Policy (no inline script or style: the pages
/// use none), no framing, no sniffing, and no caching of dynamic responses.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
