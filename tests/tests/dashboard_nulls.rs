//! NULLs in sort columns and in `updated_at`: every page of the list, in
//! every sortable column and both directions, shows every row exactly once
//! with NULLs last; "every matching" bulk actions reach every row; the live
//! stream keeps going when rows have no `updated_at`; and the keyset
//! predicate still walks an index — on a SQLite file, in-memory SQLite and
//! PostgreSQL.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, NotSet, Set, Statement, TransactionTrait, TryGetable,
};
use serde_json::{Value, json};
use tasktrail::dashboard::query::{ListQuery, list};
use tasktrail::{Dashboard, DashboardConfig, DashboardSettings, Event, TrackingConfig};
use tasktrail_tests::{Backend, backends, call_api, connect, sse_events};
use tower::ServiceExt;

/// A table another tool writes to as well: everything but the id and the
/// key may be NULL.
mod nullable_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "nullable_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: Option<String>,
        pub status: Option<String>,
        pub message: Option<String>,
        pub progress_payload: Option<f64>,
        pub user_label: Option<String>,
        pub cleaned_up: Option<bool>,
        pub created_at: Option<DateTimeUtc>,
        pub updated_at: Option<DateTimeUtc>,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failed_at: Option<DateTimeUtc>,
        pub attempts: Option<i32>,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use nullable_run::Model as Run;

tasktrail::dashboard! {
    struct Nullable<nullable_run::Entity> {
        url_prefix: "/ops",
        page_size: 4,
        actions: [delete],
    }
}

const ROWS: i64 = 23;

/// A sort value, for the expected order.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum V {
    I(i64),
    F(f64),
    B(bool),
    S(String),
    T(DateTime<Utc>),
}

fn value_of(run: &Run, field: &str) -> Option<V> {
    match field {
        "id" => Some(V::I(run.id)),
        "task_key" => Some(V::S(run.task_key.clone())),
        "task_name" => run.task_name.clone().map(V::S),
        "status" => run.status.clone().map(V::S),
        "message" => run.message.clone().map(V::S),
        "progress_payload" => run.progress_payload.map(V::F),
        "user_label" => run.user_label.clone().map(V::S),
        "cleaned_up" => run.cleaned_up.map(V::B),
        "created_at" => run.created_at.map(V::T),
        "updated_at" => run.updated_at.map(V::T),
        "started_at" => run.started_at.map(V::T),
        "completed_at" => run.completed_at.map(V::T),
        "failed_at" => run.failed_at.map(V::T),
        "attempts" => run.attempts.map(|n| V::I(n.into())),
        "note" => run.note.clone().map(V::S),
        other => panic!("no field {other}"),
    }
}

/// Row `i`: each nullable column NULL in a third of the rows (a different
/// third per column), values shared by pairs of rows (ties broken by the
/// key).
fn row(i: i64) -> nullable_run::ActiveModel {
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).unwrap();
    fn pick<T>(i: i64, column: i64, v: T) -> Option<T> {
        ((i + column) % 3 != 0).then_some(v)
    }
    let text = |column: i64| pick(i, column, format!("v{:02}", (i / 2) % 7));
    let time = |column: i64| pick(i, column, t0 + chrono::Duration::seconds(i / 2));
    nullable_run::ActiveModel {
        id: Set(i + 1),
        task_key: Set(format!("n-{i:02}")),
        task_name: Set(text(0)),
        status: Set(pick(
            i,
            1,
            ["success", "failed", "pending"][(i % 3) as usize].to_owned(),
        )),
        message: Set(text(2)),
        progress_payload: Set(pick(i, 3, (i / 2) as f64 * 2.5)),
        user_label: Set(text(4)),
        cleaned_up: Set(pick(i, 5, i % 2 == 0)),
        created_at: Set(time(6)),
        updated_at: Set(time(7)),
        started_at: Set(time(8)),
        completed_at: Set(time(9)),
        failed_at: Set(time(10)),
        attempts: Set(pick(i, 11, (i / 2) as i32)),
        note: Set(text(12)),
    }
}

async fn seed(db: &sea_orm::DatabaseConnection) -> Vec<Run> {
    tasktrail::schema::create::<Run>(db).await.unwrap();
    nullable_run::Entity::insert_many((0..ROWS).map(row))
        .exec(db)
        .await
        .unwrap();
    nullable_run::Entity::find().all(db).await.unwrap()
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Every page of `query`, in order.
async fn all_pages(
    db: &sea_orm::DatabaseConnection,
    settings: &DashboardSettings,
    query: &str,
) -> Vec<String> {
    let mut query = ListQuery::parse::<Run>(settings, &pairs(query)).unwrap();
    let mut keys = Vec::new();
    for _ in 0..=ROWS {
        let page = list::<Run>(db, settings, &query).await.unwrap();
        assert!(page.rows.len() as u64 <= query.limit);
        keys.extend(page.rows.into_iter().map(|r| r.task_key));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return keys,
        }
    }
    panic!("more pages than rows: {keys:?}");
}

/// The order the list must show: values in the asked direction, ties by
/// key in the same direction, NULLs last.
fn expected(rows: &[Run], field: &str, descending: bool) -> Vec<String> {
    let mut sorted: Vec<&Run> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        let (va, vb) = (value_of(a, field), value_of(b, field));
        let by_value = match (&va, &vb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) => x.partial_cmp(y).unwrap(),
        };
        let order = by_value.then_with(|| a.task_key.cmp(&b.task_key));
        if descending { order.reverse() } else { order }
    });
    sorted.into_iter().map(|r| r.task_key.clone()).collect()
}

fn sortable_fields(settings: &DashboardSettings) -> Vec<&'static str> {
    Run::FIELDS
        .iter()
        .map(|f| f.field)
        .filter(|f| ListQuery::parse::<Run>(settings, &pairs(&format!("sort={f}"))).is_ok())
        .collect()
}

async fn pages_with_nulls(backend: Backend) {
    let (db, _g) = connect(backend).await;
    let rows = seed(&db).await;
    let settings = Nullable::default().settings();
    let fields = sortable_fields(&settings);
    assert_eq!(fields.len(), 15, "{fields:?}");
    for field in fields {
        for descending in [false, true] {
            let sign = if descending { "-" } else { "" };
            for limit in [1, 4, 10] {
                let keys =
                    all_pages(&db, &settings, &format!("sort={sign}{field}&limit={limit}")).await;
                let unique: HashSet<&String> = keys.iter().collect();
                assert_eq!(
                    unique.len(),
                    keys.len(),
                    "{sign}{field}, {limit}: a row twice: {keys:?}"
                );
                assert_eq!(
                    keys,
                    expected(&rows, field, descending),
                    "sort={sign}{field}&limit={limit}"
                );
            }
        }
    }

    // "Every matching" reaches every row, sorted by a column with NULLs.
    let tracker = nullable_run::Tracker::new(db.clone());
    let app = Dashboard::new(Nullable::default(), tracker).router();
    // The overview's total counts every row, those with a NULL status
    // too (it counted only the rows with a known status).
    let (status, metrics) = call_api(&app, Method::GET, "/ops/api/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    assert_eq!(metrics["total"], ROWS, "{metrics}");
    let known: u64 = metrics["by_status"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(known < ROWS as u64, "{metrics}");
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/ops/api/runs/bulk")
        .header("x-requested-with", "tasktrail")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "action": "delete", "filter": "sort=-started_at" }).to_string(),
        ))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let done = body["done"].as_array().unwrap().len();
    let skipped = body["skipped"].as_array().unwrap().len();
    assert_eq!(done + skipped, ROWS as usize, "{body}");
    let ended = rows
        .iter()
        .filter(|r| matches!(r.status.as_deref(), Some("success" | "failed")))
        .count();
    assert_eq!(done, ended, "{body}");
}

/// Live updates with rows that have no `updated_at`: first a table where
/// every row lacks one, then one where some do.
async fn live_with_nulls(backend: Backend) {
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<Run>(&db).await.unwrap();
    let tracker = nullable_run::Tracker::new(db.clone());
    let app = Dashboard::new(Nullable::default(), tracker.clone()).router();
    let open = || {
        let app = app.clone();
        async move {
            let mut request = Request::get("/ops/api/events").body(Body::empty()).unwrap();
            request.extensions_mut().insert(ConnectInfo(
                "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
            ));
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body()
        }
    };
    let untimed = nullable_run::ActiveModel {
        id: NotSet,
        updated_at: Set(None),
        ..row(100)
    };
    nullable_run::Entity::insert(untimed)
        .exec(&db)
        .await
        .unwrap();
    for (round, key) in ["live-1", "live-2"].into_iter().enumerate() {
        if round == 1 {
            // Rows with and without `updated_at`; on PostgreSQL a NULL
            // sorts first in `DESC`.
            let rows = (0..ROWS).map(|i| nullable_run::ActiveModel {
                id: NotSet,
                ..row(i)
            });
            nullable_run::Entity::insert_many(rows)
                .exec(&db)
                .await
                .unwrap();
        }
        let mut body = open().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tracker
            .lifecycle(Event::start(key).name("import"))
            .await
            .unwrap();
        let events = sse_events(&mut body, 1).await;
        let keys: Vec<String> = events
            .iter()
            .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap()["task_key"].to_string())
            .collect();
        assert_eq!(keys, [format!("\"{key}\"")], "round {round}");
    }
}

backends!(pages_with_nulls, live_with_nulls);

/// The plan of every statement `list` sends for `query`, as the backend's
/// `EXPLAIN` tells it.
async fn plans<M: TrackingConfig>(
    db: &sea_orm::DatabaseConnection,
    settings: &DashboardSettings,
    query: &ListQuery,
) -> Vec<String> {
    let seen: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let mut watched = db.clone();
    let sink = seen.clone();
    watched.set_metric_callback(move |info| sink.lock().unwrap().push(info.statement.clone()));
    list::<M>(&watched, settings, query).await.unwrap();
    let statements = seen.lock().unwrap().clone();
    assert!(!statements.is_empty());
    let mut out = Vec::new();
    for statement in statements {
        let backend = db.get_database_backend();
        let prefix = match backend {
            DbBackend::Sqlite => "EXPLAIN QUERY PLAN ",
            _ => "EXPLAIN ",
        };
        let explain = Statement {
            sql: format!("{prefix}{}", statement.sql),
            ..statement.clone()
        };
        let txn = db.begin().await.unwrap();
        if backend == DbBackend::Postgres {
            // A handful of rows: without this a sequential scan is cheaper.
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
        }
        let rows = txn.query_all_raw(explain).await.unwrap();
        let text: Vec<String> = match backend {
            DbBackend::Sqlite => rows
                .iter()
                .map(|r| String::try_get(r, "", "detail").unwrap())
                .collect(),
            // MySQL: what the statement did, not its plan (MariaDB's
            // `EXPLAIN` of a prepared statement plans without the `LIMIT`'s
            // value): the session's handler counters after running it.
            // `rnd_next` counts rows of a table scan, `Sort_rows` rows
            // sorted; an index read shows as `read_key` / `read_last` /
            // `read_next` / `read_prev`, one per row.
            DbBackend::MySql => {
                drop(rows);
                txn.execute_unprepared("FLUSH STATUS").await.unwrap();
                txn.query_all_raw(statement.clone()).await.unwrap();
                let counters = txn
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_rnd_next', \
                         'Handler_read_key', 'Handler_read_first', 'Handler_read_last', \
                         'Handler_read_next', 'Handler_read_prev', 'Sort_rows')",
                    ))
                    .await
                    .unwrap();
                counters
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            String::try_get(r, "", "Variable_name").unwrap(),
                            String::try_get(r, "", "Value").unwrap()
                        )
                    })
                    .collect()
            }
            _ => rows
                .iter()
                .map(|r| String::try_get(r, "", "QUERY PLAN").unwrap())
                .collect(),
        };
        txn.rollback().await.unwrap();
        out.push(format!("{}\n{}", statement.sql, text.join("\n")));
    }
    out
}

async fn keyset_uses_the_index(backend: Backend) {
    let (db, _g) = connect(backend).await;
    seed(&db).await;
    // `schema::create` made `ix_nullable_runs_created_at`; a deployment
    // that sorts by `completed_at` adds its own.
    // On MySQL, an index the dashboard pages by ends with the key (as
    // `schema::create` makes its own; the guide says so): InnoDB sorts
    // every row in range without it, the others only a page's ties.
    let columns = if db.get_database_backend() == DbBackend::MySql {
        "completed_at, task_key"
    } else {
        "completed_at"
    };
    db.execute_unprepared(&format!(
        "CREATE INDEX ix_nullable_runs_completed_at ON nullable_runs ({columns})"
    ))
    .await
    .unwrap();
    let settings = Nullable::default().settings();
    for sort in ["-created_at", "created_at", "-completed_at", "completed_at"] {
        let column = sort.trim_start_matches('-');
        let index = format!("ix_nullable_runs_{column}");
        let mut query =
            ListQuery::parse::<Run>(&settings, &pairs(&format!("sort={sort}&limit=3"))).unwrap();
        // The first page, a page deep in the non-NULL values, and one among
        // the NULLs.
        let mut seen_pages = 0;
        loop {
            for plan in plans::<Run>(&db, &settings, &query).await {
                check_plan(
                    &plan,
                    "nullable_runs",
                    &index,
                    &format!("sort={sort}, page {seen_pages}"),
                );
            }
            let page = list::<Run>(&db, &settings, &query).await.unwrap();
            seen_pages += 1;
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen_pages, 8, "sort={sort}");
    }
}

/// The plan reads `index`, never the whole table, and sorts only the rows
/// that share a value (the rows without one, for the `IS NULL` statement).
fn check_plan(plan: &str, table: &str, index: &str, what: &str) {
    if std::env::var_os("TASKTRAIL_SHOW_PLANS").is_some() {
        eprintln!("-- {what}\n{plan}\n");
    }
    if plan.contains("Handler_read_rnd_next") {
        // MySQL's counters (see `plans`): no row of a table scan, none
        // sorted, and the page read through an index.
        let counter = |name: &str| -> u64 {
            plan.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{what}: no {name} in {plan}"))
        };
        assert_eq!(counter("Handler_read_rnd_next"), 0, "{what}: {plan}");
        assert_eq!(counter("Sort_rows"), 0, "{what}: {plan}");
        let read: u64 = [
            "Handler_read_key",
            "Handler_read_first",
            "Handler_read_last",
            "Handler_read_next",
            "Handler_read_prev",
        ]
        .iter()
        .map(|n| counter(n))
        .sum();
        assert!(read > 0, "{what}: nothing read through an index\n{plan}");
        let _ = (table, index);
        return;
    }
    assert!(plan.contains(index), "{what}: {plan}");
    let lines: Vec<&str> = plan.lines().skip(1).map(str::trim).collect();
    assert!(
        !lines.contains(&format!("SCAN {table}").as_str())
            && !plan.contains("Seq Scan")
            && !plan.contains(&format!("table {table} type ALL")),
        "{what}: {plan}"
    );
    if !plan.lines().next().unwrap_or_default().contains("IS NULL") {
        assert!(
            !lines.contains(&"USE TEMP B-TREE FOR ORDER BY") && !plan.contains("Using filesort"),
            "{what}: {plan}"
        );
    }
}

/// The benchmark's case: `created_at` declared `NOT NULL`, sorted newest
/// first, first and deep pages.
async fn keyset_not_null_uses_the_index(backend: Backend) {
    use tasktrail_tests::entities::task_run;
    let (db, _g) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    // Enough rows that the planner weighs a sort of all of them against
    // the index (SQLite estimates a table's size from its pages). MariaDB
    // reads a page of 200 rows of 20,000 by a scan and a sort (cheaper
    // there); of 200,000 rows, by the index. Its rows are made by the
    // server (its sequence engine), and the first pages checked.
    let mariadb = backend == Backend::MariaDb;
    let many: i64 = if mariadb { 0 } else { 2_000 };
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).unwrap();
    for chunk in (0..many).collect::<Vec<_>>().chunks(500) {
        task_run::Entity::insert_many(chunk.iter().map(|i| task_run::ActiveModel {
            task_key: Set(format!("t-{i:05}")),
            task_name: Set("import".into()),
            status: Set("success".into()),
            cleaned_up: Set(false),
            created_at: Set(t0 + chrono::Duration::seconds(i / 2)),
            updated_at: Set(t0),
            ..Default::default()
        }))
        .exec(&db)
        .await
        .unwrap();
    }
    if mariadb {
        db.execute_unprepared(
            "INSERT INTO task_runs (task_key, task_name, status, cleaned_up, created_at, updated_at) \
             SELECT CONCAT('t-', LPAD(seq, 6, '0')), 'import', 'success', 0, \
             '2026-09-21 00:00:00' + INTERVAL (seq DIV 2) SECOND, '2026-09-21 00:00:00' \
             FROM seq_0_to_199999",
        )
        .await
        .unwrap();
        db.execute_unprepared("ANALYZE TABLE task_runs")
            .await
            .unwrap();
    }
    tasktrail::dashboard! { struct Plain<task_run::Entity> { url_prefix: "/ops" } }
    let settings = Plain::default().settings();
    for sort in ["-created_at", "created_at"] {
        let mut query = ListQuery::parse::<task_run::Model>(
            &settings,
            &pairs(&format!("sort={sort}&limit=200")),
        )
        .unwrap();
        let mut seen_pages = 0;
        loop {
            let plans = plans::<task_run::Model>(&db, &settings, &query).await;
            assert_eq!(plans.len(), 1, "one statement for a NOT NULL column");
            check_plan(
                &plans[0],
                "task_runs",
                "ix_task_runs_created_at",
                &format!("sort={sort}, page {seen_pages}"),
            );
            // The index ends with the key: the page's order is the
            // index's, with no sort of any part of it (SQLite's temporary
            // B-tree for the last term; PostgreSQL's incremental sort on
            // the first page, where a deep page of this small table may
            // be planned as a bitmap scan and a sort of its 125 rows;
            // MySQL's `Sort_rows` is checked above).
            assert!(
                !plans[0].contains("TEMP B-TREE"),
                "sort={sort}, page {seen_pages}: {}",
                plans[0]
            );
            if plans[0].contains("Index Scan") && seen_pages == 0 {
                assert!(
                    !plans[0].contains("Sort"),
                    "sort={sort}, first page: {}",
                    plans[0]
                );
            }
            let page = list::<task_run::Model>(&db, &settings, &query)
                .await
                .unwrap();
            seen_pages += 1;
            match page.next {
                Some(next) if !(mariadb && seen_pages == 5) => query.after = Some(next),
                _ => break,
            }
        }
        assert_eq!(seen_pages, if mariadb { 5 } else { 10 }, "sort={sort}");
    }
}

backends!(keyset_uses_the_index, keyset_not_null_uses_the_index);
