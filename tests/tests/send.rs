//! Every public future of the runtime is `Send` for `Send` inputs, so it can
//! be awaited inside `tokio::spawn` and inside an axum handler — the two
//! places an application starts work.
//!
//! This is a compile-time test: each call below is awaited inside
//! `tokio::spawn` (which requires `Send + 'static`), so a future that holds
//! something `!Send` across an `.await` stops this file from compiling. The
//! inputs are deliberately `Send` but not `Sync` where the API takes them by
//! reference or by value (an error type with a `Cell`, a result that is a
//! `Cell`): a future that keeps a *reference* to them across an await would
//! be `!Send`. The calls also run, on a real SQLite file, so each one is
//! exercised, not only type-checked.
//!
//! [`every_public_async_api_is_listed`] reads `runtime/src` and fails when a
//! public async function (or one returning a future) appears that is not in
//! [`PUBLIC_ASYNC`]: add the new one to the list *and* to a check below.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};
use tasktrail::auth::{
    AuthBackend, HeaderAuth, NoAuth, RequestInfo, Role, SimpleAuth, User, hash_password,
};
use tasktrail::dashboard::query::{ListQuery, list};
use tasktrail::logs::{DbLogOptions, DbLogStorage, LogQuery, LogStorage, MemoryLogStorage};
use tasktrail::{
    DashboardConfig, Event, Progress, Retention, RunHandle, Task, TaskContext, TrackingConfig,
};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, connect};
use tower::ServiceExt;

/// Every public async function of the runtime, and every public function
/// or trait method that returns a future: `(file under runtime/src, name)`.
/// Each is awaited inside `tokio::spawn` below (the comment says where).
const PUBLIC_ASYNC: &[(&str, &str)] = &[
    // tracker_and_run_futures_are_send
    ("lifecycle/tracker.rs", "lifecycle"),
    ("lifecycle/tracker.rs", "lifecycle_all"),
    ("lifecycle/tracker.rs", "write"),
    ("lifecycle/tracker.rs", "flush"),
    ("lifecycle/handle.rs", "create"),
    ("lifecycle/handle.rs", "start"),
    ("lifecycle/handle.rs", "run"),
    ("lifecycle/handle.rs", "emit"),
    ("lifecycle/handle.rs", "progress"),
    ("lifecycle/handle.rs", "progress_with_message"),
    ("lifecycle/handle.rs", "message"),
    ("lifecycle/handle.rs", "complete"),
    ("lifecycle/handle.rs", "fail"),
    ("lifecycle/handle.rs", "finish"),
    ("lifecycle/handle.rs", "cancel"),
    ("lifecycle/handle.rs", "cancel_with"),
    ("lifecycle/handle.rs", "cleanup"),
    ("run/spawn.rs", "spawn"),
    ("run/spawn.rs", "into_future"),
    ("run/registry.rs", "submit"),
    ("run/registry.rs", "retry"),
    ("run/registry.rs", "retry_with"),
    ("run/registry.rs", "retry_or_enqueue"),
    // The crate-private `Enqueue` trait (apalis retries): a `BoxFuture`,
    // `Send` by its type.
    ("run/registry.rs", "enqueue"),
    ("apalis.rs", "enqueue"),
    // The crate-private `PageRow` trait (how a page of runs is read): a
    // `BoxFuture`, `Send` by its type.
    ("dashboard/query.rs", "fetch"),
    ("dashboard/run_rows.rs", "fetch"),
    ("run/registry.rs", "run"),
    ("run/context.rs", "cancelled"),
    ("run/maintenance.rs", "recover"),
    ("run/maintenance.rs", "cancel"),
    ("run/maintenance.rs", "shutdown"),
    ("run/retention.rs", "purge"),
    // schema_futures_are_send
    ("schema.rs", "create"),
    ("schema.rs", "create_run_tables"),
    ("schema.rs", "create_log_table"),
    ("schema.rs", "drop_run_tables"),
    ("schema.rs", "create_feed_table"),
    ("schema.rs", "drop_feed_table"),
    ("schema.rs", "drop"),
    ("run/store.rs", "create_tables"),
    ("run/store.rs", "drop_tables"),
    ("auth/audit.rs", "create_table"),
    ("auth/audit.rs", "for_target"),
    ("auth/audit.rs", "recent"),
    ("dashboard/query.rs", "list"),
    ("dashboard/query.rs", "count"),
    ("schema.rs", "create_search_index"),
    ("schema.rs", "create_search_index_on"),
    ("schema.rs", "drop_search_index"),
    // log_storage_futures_are_send
    ("logs/db.rs", "create_table"),
    ("logs/db.rs", "new"),
    ("logs/db.rs", "with_options"),
    ("logs/db.rs", "flush"),
    ("logs/db.rs", "purge_before"),
    ("logs/db.rs", "query"),
    ("logs/memory.rs", "query"),
    ("logs/record.rs", "query"),
    ("logs/db.rs", "trace"),
    ("logs/memory.rs", "trace"),
    ("logs/record.rs", "trace"),
    // auth_backend_futures_are_send
    ("auth/mod.rs", "authenticate"),
    ("auth/mod.rs", "login"),
    ("auth/backends.rs", "login"),
    ("auth/backends.rs", "authenticate"),
    // schema_futures_are_send
    ("auth/audit.rs", "purge"),
    ("sqlite.rs", "connect"),
    // Crate-private: not reachable by users, listed so the scan is exact.
    ("run/recorder.rs", "run"),
    ("writer/mod.rs", "flush"),
    ("writer/mod.rs", "write"),
    ("writer/mod.rs", "write_all"),
    ("writer/mod.rs", "record"),
    ("run/registry.rs", "start"),
    // The change feed's reader: awaited on spawned tasks inside the crate
    // (the feed's reader, the dashboard's follower, the cancel watcher),
    // which compiles only for `Send` futures.
    ("feed/hub.rs", "after"),
    ("feed/hub.rs", "changed"),
    ("feed/hub.rs", "now"),
];

/// Awaits `future` on another tokio task. Compiles only if the future is
/// `Send + 'static`: the check this file is about.
async fn on_task<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future).await.expect("the task did not panic")
}

/// Asserts at compile time that a value (a future) is `Send`.
fn assert_send<T: Send>(_: &T) {}

/// A task error that can be sent to another thread but not shared between
/// threads (`Box<dyn Error + Send>` is another such type).
#[derive(Debug)]
struct SendOnlyError(Cell<u32>);

impl fmt::Display for SendOnlyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error #{}", self.0.get())
    }
}

impl std::error::Error for SendOnlyError {}

struct Import;

impl Task for Import {
    const NAME: &'static str = "import";
    type Args = Vec<String>;
    type Output = usize;
    type Error = String;

    async fn run(&self, ctx: TaskContext, args: Vec<String>) -> Result<usize, String> {
        ctx.progress_with_message(50.0, "half way");
        Ok(args.len())
    }
}

async fn setup() -> (
    task_run::Tracker,
    DatabaseConnection,
    tasktrail_tests::TestDb,
) {
    let (db, guard) = connect(Backend::SqliteFile).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .expect("create the schema");
    (task_run::Tracker::new(db.clone()), db, guard)
}

async fn status_of(db: &DatabaseConnection, key: &str) -> (String, Option<String>) {
    let row = task_run::Entity::find()
        .filter(task_run::Column::TaskKey.eq(key))
        .one(db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("no row for {key}"));
    (row.status, row.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_and_run_futures_are_send() {
    let (tracker, db, _guard) = setup().await;

    // The issue's case: `begin(..).run(..)` inside `tokio::spawn`, with an
    // error that is `Send` but not `Sync`, a result that is not `Sync`, and a
    // panic.
    let t = tracker.clone();
    let failed = on_task(async move {
        t.begin("import")
            .key("run-err")
            .run(|run| async move {
                run.progress(10.0).await;
                Err::<u32, _>(SendOnlyError(Cell::new(7)))
            })
            .await
            .is_err()
    })
    .await;
    assert!(failed);
    assert_eq!(
        status_of(&db, "run-err").await,
        ("failed".into(), Some("error #7".into()))
    );
    let t = tracker.clone();
    let value = on_task(async move {
        t.begin("import")
            .key("run-ok")
            .run(|_run| async { Ok::<_, SendOnlyError>(Cell::new(3)) })
            .await
            .map(Cell::into_inner)
            .ok()
    })
    .await;
    assert_eq!(value, Some(3));
    let t = tracker.clone();
    let panicked = on_task(async move {
        t.begin("import")
            .key("run-panic")
            .run(|_run| async {
                if true {
                    panic!("out of ink");
                }
                Ok::<(), String>(())
            })
            .await
            .is_err()
    })
    .await;
    assert!(panicked);
    assert_eq!(
        status_of(&db, "run-panic").await,
        ("failed".into(), Some("panicked: out of ink".into()))
    );

    // The builder and every handle method.
    let t = tracker.clone();
    let key = on_task(async move {
        let queued = t.begin("report").key("h-created").create().await;
        queued.cancel().await;
        let run = t.begin("report").key("h").start().await;
        run.start().await;
        run.emit(Event::progress("ignored", 5.0)).await;
        run.progress(Progress::new(20.0).with_text("a fifth")).await;
        run.message(String::from("working")).await;
        run.progress_with_message(30.0, String::from("a third"))
            .await;
        let error: Box<dyn std::error::Error + Send> = Box::new(SendOnlyError(Cell::new(1)));
        let failing = t.begin("report").key("h-fail").start().await;
        failing.fail(&error).await;
        failing.fail(SendOnlyError(Cell::new(2))).await;
        let finished = t.begin("report").key("h-finish").start().await;
        finished
            .finish(&Err::<Cell<u8>, _>(SendOnlyError(Cell::new(3))))
            .await;
        finished
            .finish(&Ok::<_, SendOnlyError>(Cell::new(4u8)))
            .await;
        run.complete(&Cell::new(5u8)).await;
        run.cleanup().await;
        let other = RunHandle::attach(&t, "h-created");
        other.cancel_with(String::from("not needed")).await;
        run.key().to_owned()
    })
    .await;
    assert_eq!(status_of(&db, &key).await.0, "success");
    assert_eq!(
        status_of(&db, "h-fail").await,
        ("failed".into(), Some("error #1".into())) // the first ending stays
    );

    // The tracker's own calls.
    let t = tracker.clone();
    on_task(async move {
        t.lifecycle(Event::create("low").name("low")).await.unwrap();
        t.write(&Event::start("low")).await.unwrap();
        let all = t
            .lifecycle_all([Event::progress("low", 10.0), Event::progress("low", 20.0)])
            .await;
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        assert!(t.flush(Duration::from_secs(1)).await);
    })
    .await;

    // Spawning, awaiting a spawned run, task kinds, retry, cancel.
    tracker.register(Import);
    let t = tracker.clone();
    let (spawned, submitted, retried) = on_task(async move {
        let args = Cell::new([1, 2]); // `Serialize`, `Send`, not `Sync`
        let run = t
            .spawn("sum", &args, |ctx| async move {
                let _ = &ctx;
                Ok::<_, SendOnlyError>(Cell::new(3))
            })
            .await
            .unwrap();
        let spawned = run.await.unwrap().into_inner();
        let run = t
            .begin("sum")
            .spawn(|ctx| async move {
                tokio::select! {
                    stop = ctx.cancelled() => Err(stop),
                    () = tokio::time::sleep(Duration::from_secs(30)) => Ok(()),
                }
            })
            .await
            .unwrap();
        let key = run.key().to_owned();
        t.cancel(&key, Some("stop".into())).await.unwrap();
        assert!(run.into_future().await.is_err());
        let run = t
            .submit::<Import>(vec!["a".into(), "b".into()])
            .await
            .unwrap();
        let key = run.key().to_owned();
        let submitted = run.await.unwrap();
        let again = t.retry(&key).await.unwrap().await.unwrap();
        let adjusted = t
            .retry_with(&key, |b| b.actor(&"ada"))
            .await
            .unwrap()
            .await
            .unwrap();
        let built = t
            .begin(Import::NAME)
            .submit::<Import>(vec!["c".into()])
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!((again, adjusted, built), (2.into(), 2.into(), 1));
        let enqueued = t.retry_or_enqueue(&key).await.unwrap();
        assert_ne!(
            enqueued, key,
            "a local kind is spawned again under a new key"
        );
        (spawned, submitted, 2)
    })
    .await;
    assert_eq!((spawned, submitted, retried), (3, 2, 2));

    // Maintenance: recover, purge, shutdown (last: it closes the tracker).
    let t = tracker.clone();
    on_task(async move {
        t.recover().await.unwrap();
        t.purge(&Retention::days(30)).await.unwrap();
        let report = t.shutdown(Duration::from_secs(5)).await;
        assert!(report.flushed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_futures_are_send() {
    let (db, guard) = connect(Backend::SqliteFile).await;
    let url = guard.url.clone();
    on_task(async move {
        let db = tasktrail::sqlite::connect(&url).await.unwrap();
        let db2 = tasktrail::sqlite::SqliteSetup::new(url)
            .connect()
            .await
            .unwrap();
        db.close().await.unwrap();
        db2.close().await.unwrap();
    })
    .await;
    let d = db.clone();
    on_task(async move {
        tasktrail::schema::create::<task_run::Model>(&d)
            .await
            .unwrap();
        tasktrail::schema::create_run_tables(&d).await.unwrap();
        tasktrail::schema::create_log_table(&d).await.unwrap();
        tasktrail::schema::create_feed_table(&d).await.unwrap();
        tasktrail::run::store::create_tables(&d).await.unwrap();
        tasktrail::auth::audit::create_table(&d).await.unwrap();
        // Inside a transaction too: `&impl ConnectionTrait`.
        let txn = d.begin().await.unwrap();
        tasktrail::schema::create::<task_run::Model>(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert!(
            tasktrail::auth::audit::for_target(&d, "k", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            tasktrail::auth::audit::recent(&d, 10)
                .await
                .unwrap()
                .is_empty()
        );
        tasktrail::auth::audit::purge(&d, Duration::from_secs(60))
            .await
            .unwrap();
        let settings = Ops::default().settings();
        let query = ListQuery::parse::<task_run::Model>(&settings, &[]).unwrap();
        let page = list::<task_run::Model>(&d, &settings, &query)
            .await
            .unwrap();
        assert!(page.rows.is_empty());
        let n = tasktrail::dashboard::query::count::<task_run::Model>(&d, &settings, &query)
            .await
            .unwrap();
        assert_eq!(n, 0);
        tasktrail::schema::create_search_index::<task_run::Model>(&d)
            .await
            .unwrap();
        tasktrail::schema::create_search_index_on::<task_run::Model>(&d, &["message"])
            .await
            .unwrap();
        tasktrail::schema::drop_search_index::<task_run::Model>(&d)
            .await
            .unwrap();
        tasktrail::run::store::drop_tables(&d).await.unwrap();
        tasktrail::schema::drop_run_tables(&d).await.unwrap();
        tasktrail::schema::drop_feed_table(&d).await.unwrap();
        tasktrail::schema::drop::<task_run::Model>(&d)
            .await
            .unwrap();
    })
    .await;
}

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_storage_futures_are_send() {
    let (db, _guard) = connect(Backend::SqliteFile).await;
    let memory = Arc::new(MemoryLogStorage::new(10));
    let stored = on_task(async move {
        tasktrail::logs::create_table(&db).await.unwrap();
        let logs = DbLogStorage::new(db.clone()).await.unwrap();
        let logs = DbLogStorage::with_options(db.clone(), DbLogOptions::new())
            .await
            .map(|_| logs)
            .unwrap();
        logs.append(tasktrail::logs::LogRecord::new(
            tasktrail::logs::LogLevel::Info,
            "hello",
        ));
        assert!(logs.flush(Duration::from_secs(10)).await);
        let lines = logs.query(LogQuery::new()).await.unwrap().len();
        logs.trace("no-such-run").await.unwrap();
        logs.purge_before(chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap();
        lines
    })
    .await;
    assert_eq!(stored, 1);
    let m = memory.clone();
    on_task(async move {
        m.query(LogQuery::new()).await.unwrap();
        // Through `Arc<T>` and `dyn LogStorage`.
        LogStorage::query(&m, LogQuery::new()).await.unwrap();
        m.trace("no-such-run").await.unwrap();
        LogStorage::trace(&m, "no-such-run").await.unwrap();
        let dynamic: Arc<dyn LogStorage> = m;
        dynamic.query(LogQuery::new()).await.unwrap();
        dynamic.trace("no-such-run").await.unwrap();
    })
    .await;
}

/// A backend of the user's own, written as the trait is declared.
struct Token;

impl AuthBackend for Token {
    fn authenticate<'a>(
        &'a self,
        request: &'a RequestInfo<'a>,
    ) -> futures::future::BoxFuture<'a, Option<User>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            request
                .headers
                .get("authorization")
                .map(|_| User::new("bot", Role::Viewer))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_backend_futures_are_send() {
    let found = on_task(async move {
        let method = Method::GET;
        let uri: Uri = "/ops".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "ada".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        let request = RequestInfo {
            method: &method,
            uri: &uri,
            headers: &headers,
            peer: Some([127, 0, 0, 1].into()),
        };
        let simple = SimpleAuth::new().user("ada", &hash_password("pw"), Role::Admin);
        let verify = SimpleAuth::verify(|name, password| async move {
            (password == "pw").then(|| User::new(name, Role::Viewer))
        });
        let header = HeaderAuth::new("x-user", [[127, 0, 0, 1].into()]);
        let backends: Vec<Box<dyn AuthBackend>> = vec![
            Box::new(simple.clone()),
            Box::new(verify),
            Box::new(header.clone()),
            Box::new(NoAuth::anyone()),
            Box::new(Token),
        ];
        let mut found = Vec::new();
        for backend in &backends {
            found.push(backend.login("ada", "pw").await.map(|u| u.id));
            found.push(backend.authenticate(&request).await.map(|u| u.id));
        }
        assert!(simple.login("ada", "pw").await.is_some());
        assert!(header.authenticate(&request).await.is_some());
        assert!(NoAuth::anyone().authenticate(&request).await.is_some());
        found
    })
    .await;
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        found,
        [
            some("ada"),
            None,
            some("ada"),
            None,
            None,
            some("ada"),
            None,
            some("anyone"),
            None,
            some("bot")
        ]
    );
}

/// The same checks for any tracked model, not only `task_run`: generic code
/// (a library of the user's that takes `Tracker<M>`) sees `Send` futures too.
#[allow(dead_code)]
fn futures_are_send_for_every_model<M: TrackingConfig>(
    tracker: tasktrail::Tracker<M>,
    db: DatabaseConnection,
    settings: tasktrail::DashboardSettings,
) {
    assert_send(&tracker.lifecycle(Event::start("k")));
    assert_send(&tracker.write(&Event::start("k")));
    assert_send(&tracker.flush(Duration::ZERO));
    assert_send(&tracker.lifecycle_all(vec![Event::start("k")]));
    assert_send(&tracker.begin("n").create());
    assert_send(&tracker.begin("n").start());
    assert_send(
        &tracker
            .begin("n")
            .run(|_run| async { Err::<Cell<u8>, _>(SendOnlyError(Cell::new(1))) }),
    );
    assert_send(
        &tracker
            .begin("n")
            .spawn(|_ctx| async { Ok::<_, SendOnlyError>(Cell::new(1)) }),
    );
    assert_send(&tracker.spawn("n", &Cell::new(1), |_ctx| async { Ok::<_, String>(()) }));
    assert_send(&tracker.submit::<Import>(Vec::new()));
    assert_send(&tracker.begin("n").submit::<Import>(Vec::new()));
    assert_send(&tracker.retry("k"));
    assert_send(&tracker.retry_with("k", |b| b));
    assert_send(&tracker.retry_or_enqueue("k"));
    assert_send(&tracker.recover());
    assert_send(&tracker.cancel("k", None));
    assert_send(&tracker.shutdown(Duration::ZERO));
    assert_send(&tracker.purge(&Retention::days(1)));
    let run = RunHandle::attach(&tracker, "k");
    let error = SendOnlyError(Cell::new(1));
    assert_send(&run.emit(Event::start("k")));
    assert_send(&run.start());
    assert_send(&run.progress(1.0));
    assert_send(&run.message("m"));
    assert_send(&run.progress_with_message(1.0, "m"));
    assert_send(&run.complete(&Cell::new(1)));
    assert_send(&run.fail(&error));
    assert_send(&run.finish(&Err::<Cell<u8>, _>(SendOnlyError(Cell::new(1)))));
    assert_send(&run.cancel());
    assert_send(&run.cancel_with("r"));
    assert_send(&run.cleanup());
    assert_send(&tasktrail::schema::create::<M>(&db));
    assert_send(&tasktrail::schema::drop::<M>(&db));
    let query = ListQuery::parse::<M>(&settings, &[]).unwrap();
    assert_send(&list::<M>(&db, &settings, &query));
}

/// The most common place to start work: an axum handler. `Router::route`
/// accepts a handler only if its future is `Send`.
async fn import_books(State(tracker): State<task_run::Tracker>) -> Result<String, StatusCode> {
    let error = SendOnlyError(Cell::new(9));
    let run = tracker.begin("import_books").key("from-axum").start().await;
    run.progress(Progress::ratio(1, 2)).await;
    run.fail(&error).await;
    let books = tracker
        .begin("import_books")
        .actor(&"ada")
        .run(|run| async move {
            run.progress(50.0).await;
            Ok::<_, SendOnlyError>(2)
        })
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!("imported {books} books"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_handler_records_runs() {
    let (tracker, db, _guard) = setup().await;
    let app = Router::new()
        .route("/import", post(import_books))
        .with_state(tracker);
    let response = app
        .oneshot(
            axum::http::Request::post("/import")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        status_of(&db, "from-axum").await,
        ("failed".into(), Some("error #9".into()))
    );
}

/// `(file, name)` of every function in `runtime/src` that is `pub async fn`,
/// or not crate-private and returns a future (`BoxFuture`, `impl Future`,
/// `IntoFuture`).
fn scan_runtime() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src");
    let mut found = BTreeSet::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read runtime/src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let file = path
                .strip_prefix(&root)
                .expect("under runtime/src")
                .to_string_lossy()
                .replace('\\', "/");
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                if line.starts_with("//") {
                    continue;
                }
                let Some(at) = line.find("fn ") else { continue };
                let head = &line[..at];
                if !(head.is_empty()
                    || head.ends_with(' ')
                        && head
                            .split_whitespace()
                            .all(|w| ["pub", "async", "const", "unsafe"].contains(&w)))
                {
                    continue;
                }
                let name: String = line[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // The signature: up to the body or the `;`.
                let mut signature = String::new();
                for next in &lines[i..] {
                    signature.push_str(next);
                    signature.push(' ');
                    if next.ends_with('{') || next.ends_with(';') || next.starts_with('{') {
                        break;
                    }
                }
                let is_pub = head.split_whitespace().any(|w| w == "pub");
                let is_async = head.split_whitespace().any(|w| w == "async");
                let returns = signature.split_once("->").map_or("", |(_, r)| r);
                let returns_future = ["BoxFuture", "impl Future", "IntoFuture"]
                    .iter()
                    .any(|f| returns.contains(f));
                if (is_async && is_pub) || returns_future {
                    found.insert((file.clone(), name));
                }
            }
        }
    }
    found
}

#[test]
fn every_public_async_api_is_listed() {
    let found = scan_runtime();
    let listed: BTreeSet<(String, String)> = PUBLIC_ASYNC
        .iter()
        .map(|(f, n)| ((*f).to_owned(), (*n).to_owned()))
        .collect();
    let missing: Vec<_> = found.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "runtime/src has public futures not checked here: {missing:?}; \
         listed but no longer found: {stale:?}. Add each new one to PUBLIC_ASYNC \
         and await it inside `on_task` in this file."
    );
}

/// A run's futures stay small: each spawned task copies its future into
/// place, and a thousand runs in flight hold a thousand of them
/// (BENCHMARKS.md, "Throughput": copying and faulting in larger futures cost
/// more than a tenth of the bench's CPU). The bounds leave room for compiler
/// changes; before the writer's and the lifecycle's futures were trimmed the
/// sizes were 1,472 (`lifecycle`), 1,040 (`progress`) and 3,936 bytes (a
/// two-progress `run`).
#[tokio::test]
async fn run_futures_stay_small() {
    let (tracker, db, _test) = setup().await;
    let lifecycle = tracker.lifecycle(Event::start("small-1"));
    assert!(
        size_of_val(&lifecycle) <= 320,
        "lifecycle: {}",
        size_of_val(&lifecycle)
    );
    drop(lifecycle);
    let run = tracker.begin("small").start().await;
    let progress = run.progress(30.0);
    assert!(
        size_of_val(&progress) <= 320,
        "progress: {}",
        size_of_val(&progress)
    );
    progress.await;
    let complete = run.complete(&1);
    assert!(
        size_of_val(&complete) <= 320,
        "complete: {}",
        size_of_val(&complete)
    );
    complete.await;
    let whole = tracker.begin("small").run(|run| async move {
        run.progress(30.0).await;
        run.progress(60.0).await;
        Ok::<_, String>(1)
    });
    assert!(size_of_val(&whole) <= 1_536, "run: {}", size_of_val(&whole));
    assert_eq!(whole.await.expect("the run"), 1);
    let started = tracker.begin("small").start();
    assert!(
        size_of_val(&started) <= 768,
        "start: {}",
        size_of_val(&started)
    );
    let key = started.await.key().to_owned();
    assert_eq!(status_of(&db, &key).await.0, "in_progress");
}
