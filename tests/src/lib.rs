//! The integration-test harness: real SQLite files and in-memory databases,
//! and a real PostgreSQL server started for the test process.
//!
//! PostgreSQL: set `TASKTRAIL_TEST_PG_URL` to use a running server (each test
//! gets a fresh database in it). Otherwise the harness finds Debian's
//! PostgreSQL binaries (installing the `postgresql` package with apt-get when
//! it runs as root and they are missing), runs `initdb` in a temporary
//! directory — as the `postgres` user when the process is root, since initdb
//! refuses root — and starts a server on a free loopback port. A watchdog
//! shell stops the server and removes its directory when the test process
//! exits.
//!
//! The dashboard's end-to-end tests drive a headless Chromium through
//! chromedriver: see [`browser`].

#![allow(missing_docs)]

pub mod browser;
#[cfg(doctest)]
pub mod docs;
pub mod entities;
pub use tasktrail_harness::{mysql, pg};
pub mod sql_capture;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// `layer` over a registry, as one thread's default subscriber
/// (`tracing::subscriber::set_default`), with sea-orm's own spans left out,
/// as the docs' filter (`info,sqlx=warn`) leaves out their `trace` level.
///
/// Under a thread-local default those spans broke tests: sqlx's SQLite
/// worker thread holds the span its statement was sent in (sea-orm's
/// `execute`, under its `execute_raw`) and may drop it last, and the
/// registry then lets go of the parent through *that* thread's default
/// subscriber — the process's global one, which either never closes the
/// parent (so a run's span stays open) or, when a test installed a global
/// registry, panics on an id it does not know (the worker thread dies and
/// the writes it held wait forever). A test that needs every thread's
/// spans installs a global subscriber instead.
pub fn thread_subscriber<L>(layer: L) -> impl tracing::Subscriber + Send + Sync + 'static
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::TRACE)
        .with_target("sea_orm", tracing_subscriber::filter::LevelFilter::OFF)
        .with_target("sqlx", tracing::Level::WARN);
    tracing_subscriber::registry().with(layer).with(filter)
}

/// The backends every lifecycle scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SqliteFile,
    SqliteMemory,
    Postgres,
    /// MariaDB 10.11 (the harness's own server), through the `mysql`
    /// feature.
    MariaDb,
}

/// A connection to a fresh, empty database of `backend`. Keep the returned
/// guard alive as long as the connection (it owns the SQLite file).
pub async fn connect(backend: Backend) -> (DatabaseConnection, TestDb) {
    match backend {
        Backend::SqliteFile => {
            let dir = tempfile::tempdir().expect("a temp dir for the SQLite file");
            let url = sqlite_url(&dir);
            let db = Database::connect(url.clone())
                .await
                .expect("open the SQLite file");
            (
                db,
                TestDb {
                    url,
                    _dir: Some(dir),
                },
            )
        }
        Backend::SqliteMemory => {
            let url = "sqlite::memory:".to_owned();
            let db = Database::connect(url.clone())
                .await
                .expect("open in-memory SQLite");
            (db, TestDb { url, _dir: None })
        }
        Backend::Postgres => {
            let url = pg::fresh_database().await;
            let db = Database::connect(url.clone())
                .await
                .expect("connect to the test PostgreSQL");
            (db, TestDb { url, _dir: None })
        }
        Backend::MariaDb => {
            let url = mysql::fresh_database().await;
            let db = Database::connect(url.clone())
                .await
                .expect("connect to the test MariaDB");
            (db, TestDb { url, _dir: None })
        }
    }
}

/// A second, independent connection pool to the same database.
pub async fn second_pool(test: &TestDb, max_connections: u32) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(test.url.clone());
    opts.max_connections(max_connections);
    Database::connect(opts).await.expect("a second pool")
}

/// Keeps a test database alive.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// `sqlite://<dir>/tasktrail.sqlite?mode=rwc`.
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tasktrail.sqlite").display()
    )
}

/// Runs one scenario on every backend: `backends!(name)` expects an
/// `async fn name(backend: Backend)` in scope and makes a test per backend.
#[macro_export]
macro_rules! backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() {
                super::$name($crate::Backend::SqliteFile).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_memory() {
                super::$name($crate::Backend::SqliteMemory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name($crate::Backend::MariaDb).await;
            }
        }
    )*};
}

/// [`backends!`] for scenarios with a second instance (another pool on
/// the same database): a SQLite file, PostgreSQL and MariaDB (an in-memory
/// SQLite database belongs to one connection).
#[macro_export]
macro_rules! shared_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() {
                super::$name($crate::Backend::SqliteFile).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name($crate::Backend::MariaDb).await;
            }
        }
    )*};
}

/// Two pools on one fresh PostgreSQL database, connected as the docs show:
/// what two instances (processes) would have.
pub async fn two_pools_postgres() -> (DatabaseConnection, DatabaseConnection) {
    let url = pg::fresh_database().await;
    let one = Database::connect(&url).await.expect("connect");
    let two = Database::connect(&url).await.expect("connect");
    (one, two)
}

/// A database server of the test's own, to stop and start (an outage):
/// PostgreSQL or MariaDB.
pub enum DedicatedServer {
    Postgres(pg::Instance),
    MariaDb(mysql::Instance),
}

impl DedicatedServer {
    /// Starts a server of `backend`'s kind (PostgreSQL or MariaDB).
    pub fn launch(backend: Backend) -> DedicatedServer {
        match backend {
            Backend::Postgres => {
                DedicatedServer::Postgres(pg::Instance::launch().expect("a dedicated PostgreSQL"))
            }
            Backend::MariaDb => {
                DedicatedServer::MariaDb(mysql::Instance::launch().expect("a dedicated MariaDB"))
            }
            other => panic!("{other:?} has no server to stop"),
        }
    }

    /// A fresh database on it; its URL.
    pub async fn fresh_database(&self) -> String {
        match self {
            DedicatedServer::Postgres(i) => pg::create_database(&i.admin_url()).await,
            DedicatedServer::MariaDb(i) => mysql::create_database(&i.admin_url()).await,
        }
    }

    /// Stops the server (open connections are cut).
    pub fn stop(&self) {
        match self {
            DedicatedServer::Postgres(i) => i.stop(),
            DedicatedServer::MariaDb(i) => i.stop(),
        }
        .expect("stop the server")
    }

    /// Starts it again and waits until it answers.
    pub fn start(&self) {
        match self {
            DedicatedServer::Postgres(i) => i.start(),
            DedicatedServer::MariaDb(i) => i.start(),
        }
        .expect("start the server")
    }
}

/// Two pools on one fresh MariaDB database.
pub async fn two_pools_mariadb() -> (DatabaseConnection, DatabaseConnection) {
    let url = mysql::fresh_database().await;
    let one = Database::connect(&url).await.expect("connect");
    let two = Database::connect(&url).await.expect("connect");
    (one, two)
}

/// Two pools on the SQLite file `path` (made if missing), connected as the
/// docs show (`tasktrail::sqlite::connect`).
pub async fn two_pools_sqlite(path: &std::path::Path) -> (DatabaseConnection, DatabaseConnection) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let one = tasktrail::sqlite::connect(&url).await.expect("connect");
    let two = tasktrail::sqlite::connect(&url).await.expect("connect");
    (one, two)
}

/// A `tracing_subscriber` writer that keeps what is written, for tests that
/// read logs.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Reads SSE frames from `body` until `want` events arrived (or 5 s).
pub async fn sse_events(body: &mut axum::body::Body, want: usize) -> Vec<(String, String)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while events.len() < want {
        let frame = tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(body)).await;
        let Ok(Some(Ok(frame))) = frame else { break };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        events.extend(take_sse_events(&mut text));
    }
    events
}

/// The whole events at the start of `text` (`(id, data)`, those with
/// data), taken out of it.
fn take_sse_events(text: &mut String) -> Vec<(String, String)> {
    let mut events = Vec::new();
    while let Some(end) = text.find("\n\n") {
        let block: String = text.drain(..end + 2).collect();
        let mut id = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_owned();
            }
        }
        if !data.is_empty() {
            events.push((id, data));
        }
    }
    events
}

/// The events of a server-sent event stream as they come: `(id, data)`,
/// in order, read by a task of their own until the stream ends or the
/// returned collector is dropped.
pub struct SseCollector {
    events: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SseCollector {
    /// Starts reading `body`.
    pub fn start(mut body: axum::body::Body) -> Self {
        let events: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let mut text = String::new();
            while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
                sink.lock().unwrap().extend(take_sse_events(&mut text));
            }
        });
        SseCollector { events, task }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<(String, String)> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `n` events came (at most `timeout`); returns them all.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.len() >= n || tokio::time::Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SseCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sets the `updated_at` of the `task_runs` row `key` to `at`: a run last
/// written then (`updated_at` is the time of a write, so a test of the
/// retention backdates the runs it seeds).
pub async fn backdate(db: &DatabaseConnection, key: &str, at: chrono::DateTime<chrono::Utc>) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entities::task_run::Entity::update_many()
        .col_expr(
            entities::task_run::Column::UpdatedAt,
            sea_orm::sea_query::Expr::val(at),
        )
        .filter(entities::task_run::Column::TaskKey.eq(key))
        .exec(db)
        .await
        .expect("backdate a run");
}

/// The events of one whole run, in order: create, start, two progress
/// writes, complete (the feed tests' unit of work).
pub fn run_events(key: &str) -> [tasktrail::Event; 5] {
    use tasktrail::Event;
    [
        Event::create(key).name("feed"),
        Event::start(key),
        Event::progress(key, 30.0),
        Event::progress(key, 60.0),
        Event::complete(key),
    ]
}

/// Sends `method uri` with `headers` through `app` from a loopback peer and
/// returns the status and the JSON body (`Null` when it is not JSON).
pub async fn call_api(
    app: &axum::Router,
    method: axum::http::Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (axum::http::StatusCode, serde_json::Value) {
    let (status, text) = call_text(app, method, uri, headers).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// [`call_api`] for pages: the status and the body as text.
pub async fn call_text(
    app: &axum::Router,
    method: axum::http::Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(axum::body::Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The `task_runs` row of run `key`, if there is one.
pub async fn find_run(db: &DatabaseConnection, key: &str) -> Option<entities::task_run::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entities::task_run::Entity::find()
        .filter(entities::task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .expect("read a run")
}
