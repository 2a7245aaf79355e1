//! The runs list's query layer: parameters checked (400-worthy errors, never
//! a failed query), filters, search, sort, and keyset pagination that stays
//! stable while rows are inserted — on a SQLite file, in-memory SQLite and
//! PostgreSQL.

use std::collections::HashSet;

use chrono::{Duration, TimeZone, Utc};
use tasktrail::DashboardConfig;
use tasktrail::dashboard::query::{ListQuery, list};
use tasktrail::{DashboardSettings, Event};
use tasktrail_tests::entities::task_run;
use tasktrail_tests::{Backend, TestDb, backends, connect};

tasktrail::dashboard! {
    struct Ops<task_run::Entity> {
        filters: [status, task_name, cleaned_up],
        search: [task_name, message],
        sort: created_at desc,
        page_size: 7,
    }
}

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn parse(settings: &DashboardSettings, query: &str) -> Result<ListQuery, String> {
    ListQuery::parse::<task_run::Model>(settings, &pairs(query)).map_err(|e| e.to_string())
}

fn name_of(i: i64) -> &'static str {
    if i % 2 == 0 { "import" } else { "export" }
}

fn message_of(i: i64) -> String {
    match i % 5 {
        0 => "Reading DUNE.csv".to_owned(),
        1 => "100% done".to_owned(),
        2 => "<script>alert(1)</script> \"quoted\" ünïcödé".to_owned(),
        _ => format!("step {i}"),
    }
}

/// The message a seeded run ends with: `fail` replaces it.
fn final_message_of(i: i64) -> String {
    if i % 4 != 3 && i % 3 == 1 {
        "boom".to_owned()
    } else {
        message_of(i)
    }
}

/// The keys, newest first, of the seeded runs whose name or final message
/// contains `text` (case-insensitively).
fn matching(text: &str) -> Vec<String> {
    (0..30)
        .rev()
        .filter(|i| {
            let hay = format!("{} {}", name_of(*i), final_message_of(*i)).to_lowercase();
            hay.contains(&text.to_lowercase())
        })
        .map(|i| format!("run-{i:03}"))
        .collect()
}

async fn seed(tracker: &task_run::Tracker, from: i64, n: i64) {
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).unwrap();
    for i in from..from + n {
        let key = format!("run-{i:03}");
        let at = t0 + Duration::seconds(i);
        let (name, message) = (name_of(i), message_of(i));
        tracker
            .lifecycle(Event::create(&key).name(name).message(message).at(at))
            .await
            .unwrap();
        let end = match i % 3 {
            0 => Event::complete(&key),
            1 => Event::fail(&key, "boom"),
            _ => Event::cancel(&key),
        };
        if i % 4 != 3 {
            tracker.lifecycle(end.at(at)).await.unwrap();
        }
    }
}

/// Every page of `query`, in order.
async fn all_pages(
    db: &sea_orm::DatabaseConnection,
    settings: &DashboardSettings,
    query: &str,
) -> Vec<String> {
    let query = parse(settings, query).unwrap();
    all_rows(db, settings, query)
        .await
        .into_iter()
        .map(|r| r.task_key)
        .collect()
}

/// The rows of every page of `query`, in order.
async fn all_rows(
    db: &sea_orm::DatabaseConnection,
    settings: &DashboardSettings,
    mut query: ListQuery,
) -> Vec<task_run::Model> {
    let mut rows = Vec::new();
    loop {
        let page = list::<task_run::Model>(db, settings, &query).await.unwrap();
        assert!(page.rows.len() as u64 <= query.limit);
        rows.extend(page.rows);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return rows,
        }
    }
}

/// A table of 30 seeded runs on `backend`.
async fn seeded(
    backend: Backend,
) -> (
    sea_orm::DatabaseConnection,
    TestDb,
    task_run::Tracker,
    DashboardSettings,
) {
    let (db, guard) = connect(backend).await;
    tasktrail::schema::create::<task_run::Model>(&db)
        .await
        .unwrap();
    let tracker = task_run::Tracker::new(db.clone());
    seed(&tracker, 0, 30).await;
    (db, guard, tracker, Ops::default().settings())
}

async fn list_query(backend: Backend) {
    let (db, _g, tracker, settings) = seeded(backend).await;

    // Malformed parameters are errors with a message, before any query.
    for (query, message) in [
        ("colour=red", "`colour`: not a filter of this list"),
        ("status=done", "`done` is not a status"),
        ("limit=0", "0 is not between 1 and 1000"),
        ("limit=ten", "`ten` is not a whole number"),
        ("limit=5&limit=6", "`limit`: given more than once"),
        ("sort=nope", "`nope` is not a field of the runs"),
        ("sort=-task_args", "cannot be sorted by `task_args`"),
        ("after=not-a-cursor", "not a cursor from this list"),
        ("cleaned_up=maybe", "`maybe` is not `true` or `false`"),
    ] {
        let err = parse(&settings, query).expect_err(query);
        assert!(err.contains(message), "{query}: {err}");
    }

    // Newest first, 7 per page, every run exactly once.
    let keys = all_pages(&db, &settings, "").await;
    let expected: Vec<String> = (0..30).rev().map(|i| format!("run-{i:03}")).collect();
    assert_eq!(keys, expected);

    // Filters: values of one field are ORed, fields are ANDed.
    let keys = all_pages(
        &db,
        &settings,
        "status=failed&status=cancelled&task_name=import",
    )
    .await;
    let expected: Vec<String> = (0..30)
        .rev()
        .filter(|i| i % 2 == 0 && i % 4 != 3 && i % 3 != 0)
        .map(|i| format!("run-{i:03}"))
        .collect();
    assert_eq!(keys, expected);
    let keys = all_pages(&db, &settings, "status=in_progress").await;
    assert!(keys.is_empty());
    let pending = all_pages(&db, &settings, "status=pending").await;
    assert_eq!(pending.len(), (0..30).filter(|i| i % 4 == 3).count());

    // Search: case-insensitive, in the search fields, `%` taken literally.
    for text in [
        "dune",
        "DUNE.CSV",
        "%",
        "<script>",
        "ünïcödé",
        "\"quoted\"",
        "xport",
    ] {
        let keys = all_pages(&db, &settings, &format!("q={text}")).await;
        assert_eq!(keys, matching(text), "q={text}");
        assert!(!keys.is_empty(), "q={text}");
    }
    // `%` and `_` are literal, not wildcards.
    assert_eq!(matching("%").len(), 4);
    assert!(all_pages(&db, &settings, "q=_").await.is_empty());

    // Sort by name ascending; ties broken by key, still every run once.
    let keys = all_pages(&db, &settings, "sort=task_name").await;
    let mut expected: Vec<(String, String)> = (0..30)
        .map(|i| {
            let name = if i % 2 == 0 { "import" } else { "export" };
            (name.to_owned(), format!("run-{i:03}"))
        })
        .collect();
    expected.sort();
    assert_eq!(
        keys,
        expected.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    );

    // Paging while rows are inserted: the next page continues right after
    // the last row shown; nothing shown repeats, nothing is skipped.
    let query = parse(&settings, "").unwrap();
    let first = list::<task_run::Model>(&db, &settings, &query)
        .await
        .unwrap();
    let shown: Vec<String> = first.rows.iter().map(|r| r.task_key.clone()).collect();
    assert_eq!(shown.first().map(String::as_str), Some("run-029"));
    seed(&tracker, 30, 10).await; // newer than everything
    let mut query = query;
    query.after = first.next.clone();
    let second = list::<task_run::Model>(&db, &settings, &query)
        .await
        .unwrap();
    let second: Vec<String> = second.rows.iter().map(|r| r.task_key.clone()).collect();
    let expected: Vec<String> = (16..=22).rev().map(|i| format!("run-{i:03}")).collect();
    assert_eq!(second, expected);
    let all: HashSet<&String> = shown.iter().chain(&second).collect();
    assert_eq!(all.len(), shown.len() + second.len());

    // The URL state round-trips.
    let query = parse(&settings, "status=failed&q=dune&sort=-task_name").unwrap();
    let again = ListQuery::parse::<task_run::Model>(&settings, &query.to_pairs()).unwrap();
    assert_eq!(again, query);
}

backends!(list_query);

/// `reads`: the list reads the fields asked for, the key, the status and
/// the sort field; every other field that may be NULL comes back empty,
/// and the pages are the same runs in the same order.
async fn list_reads_only_what_is_asked(backend: Backend) {
    let (db, _g, _tracker, settings) = seeded(backend).await;

    // Sorted by a field that may be NULL and is not read.
    for sort in ["sort=-completed_at", "sort=failed_at", ""] {
        let full = parse(&settings, sort).unwrap();
        let mut lean = full.clone();
        lean.reads = Some(vec!["task_name", "user_label"]);
        let full_rows = all_rows(&db, &settings, full).await;
        let lean_rows = all_rows(&db, &settings, lean).await;
        assert_eq!(full_rows.len(), 30, "{sort}");
        assert_eq!(lean_rows.len(), full_rows.len(), "{sort}");
        for (full, lean) in full_rows.iter().zip(&lean_rows) {
            assert_eq!(lean.task_key, full.task_key, "{sort}");
            assert_eq!(lean.task_name, full.task_name);
            assert_eq!(lean.status, full.status);
            assert_eq!(lean.user_label, full.user_label);
            assert_eq!(lean.created_at, full.created_at);
            match sort {
                "sort=-completed_at" => assert_eq!(lean.completed_at, full.completed_at),
                "sort=failed_at" => assert_eq!(lean.failed_at, full.failed_at),
                _ => {}
            }
            // Not asked for: empty, though the run has one.
            assert!(full.message.is_some());
            assert_eq!(lean.message, None);
        }
    }
}

backends!(list_reads_only_what_is_asked);
