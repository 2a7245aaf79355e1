//! Task kinds (the distinct task names) and stuck runs: the numbers of one
//! kind — runs per status, success rate, duration p50 / p95 / p99, last
//! run, runs and failures per hour — and which runs in progress look stuck.
//!
//! Every read is served by an index (the `(task_name, created_at, status)`
//! index of [`schema::indexes`](crate::schema::indexes)): the distinct names
//! by a loose index scan, a kind's counts and hours from the index alone,
//! its durations from a bounded sample of its newest ended runs. Results
//! are cached like the overview's numbers (`stats_max_age`): a fresh value
//! is served as it is, a stale one while one background task computes the
//! next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Offset, TimeDelta, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};

use crate::config::{Encode, Role, TrackingConfig, column_value, value_text, value_time};
use crate::dashboard::api::value_json;
use crate::dashboard::cache::{Cached, Counted};
use crate::dashboard::pages::Zone;
use crate::dashboard::search::{qualified_table, quote_for};
use crate::dashboard::stats::{Hour, json_time, status_is, times};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

/// The most kinds listed; past it the list says it is cut.
pub(crate) const MAX_KINDS: usize = 1_000;

/// The longest name looked up (a longer one is no kind: never queried).
pub(crate) const MAX_NAME_CHARS: usize = 1_000;

/// The most runs in progress examined for stuck ones (the oldest).
pub(crate) const STUCK_SCAN: u64 = 1_000;

/// The newest runs of a kind its durations are taken from (the ended
/// ones among them).
pub(crate) const KIND_SAMPLE: u64 = 5_000;

/// Hours in a kind's chart.
const HOURS: i64 = 24;

/// The cached kind names, each kind's numbers and the stuck runs.
pub(crate) struct KindsCache {
    max_age: Duration,
    names: Arc<Cached<TaskNames>>,
    kinds: Mutex<HashMap<String, Arc<Cached<KindStats>>>>,
    stuck: Arc<Cached<Stuck>>,
}

impl KindsCache {
    pub(crate) fn new(max_age: Duration) -> Self {
        KindsCache {
            // A kind's numbers and the stuck runs read a kind's whole index
            // range and a sample of its durations: at 1,000,000 runs,
            // renewing them every 2 s (the overview's age) kept about half
            // a core busy while anyone looked at the list. They are
            // renewed every 30 s at most; `stats_max_age(0)` still means
            // computed for each request.
            max_age: if max_age.is_zero() {
                max_age
            } else {
                max_age.max(KIND_MAX_AGE)
            },
            names: Arc::new(Cached::new("the task kinds")),
            kinds: Mutex::default(),
            stuck: Arc::new(Cached::new("the stuck runs")),
        }
    }
}

/// The distinct task names, in order.
#[derive(Debug, Default)]
pub(crate) struct TaskNames {
    pub names: Vec<String>,
    /// More than [`MAX_KINDS`] exist: the list holds the first.
    pub truncated: bool,
}

/// The distinct task names of the runs table (at most [`MAX_KINDS`]),
/// cached for `stats_max_age`: what the kind pages, the overview and the
/// search's name matching read. Empty when no task name is mapped.
pub(crate) async fn cached_task_names<C: DashboardConfig>(
    shared: &Shared<C>,
) -> Result<Arc<Counted<TaskNames>>, DbErr> {
    let owned = shared.clone();
    Cached::get(
        &shared.kinds.names,
        shared.kinds.max_age,
        move || async move { distinct_names::<C::Model>(owned.tracker.db()).await },
    )
    .await
}

/// The distinct names by a loose index scan of the index by name: on
/// SQLite and PostgreSQL a recursive query that seeks the next larger name
/// (one index probe per kind, whatever the table's size); on MySQL a
/// `GROUP BY` the index serves ("using index for group-by").
pub(crate) async fn distinct_names<M: TrackingConfig>(
    db: &sea_orm::DatabaseConnection,
) -> Result<TaskNames, DbErr> {
    let Some(name) = M::binding(Role::Name).map(|b| b.column) else {
        return Ok(TaskNames::default());
    };
    let backend = db.get_database_backend();
    let table = qualified_table::<M>(backend);
    let col = quote_for(backend, sea_orm::IdenStatic::as_str(&name));
    let limit = MAX_KINDS + 1;
    let sql = match backend {
        // SQLite stops the recursion at the LIMIT of its recursive part.
        DbBackend::Sqlite => format!(
            "WITH RECURSIVE kinds(name) AS (SELECT MIN({col}) FROM {table} UNION ALL \
             SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > kinds.name) FROM kinds \
             WHERE kinds.name IS NOT NULL LIMIT {limit}) \
             SELECT name FROM kinds WHERE name IS NOT NULL"
        ),
        // PostgreSQL computes the recursive part as the outer query reads.
        DbBackend::Postgres => format!(
            "WITH RECURSIVE kinds(name) AS (SELECT MIN({col})::text FROM {table} UNION ALL \
             SELECT (SELECT MIN({col})::text FROM {table} WHERE {col} > kinds.name) FROM kinds \
             WHERE kinds.name IS NOT NULL) \
             SELECT name FROM kinds WHERE name IS NOT NULL LIMIT {limit}"
        ),
        _ => format!(
            "SELECT {col} AS name FROM {table} WHERE {col} IS NOT NULL \
             GROUP BY {col} ORDER BY {col} LIMIT {limit}"
        ),
    };
    #[derive(FromQueryResult)]
    struct Row {
        name: Option<String>,
    }
    let rows: Result<Vec<Row>, DbErr> =
        Box::pin(Row::find_by_statement(Statement::from_string(backend, sql)).all(db)).await;
    let mut names: Vec<String> = rows?.into_iter().filter_map(|r| r.name).collect();
    let truncated = names.len() > MAX_KINDS;
    names.truncate(MAX_KINDS);
    Ok(TaskNames { names, truncated })
}

/// Whether `name` is a kind: one of the cached names (or, past
/// [`MAX_KINDS`] of them, a run has it). A name with a NUL or longer than
/// [`MAX_NAME_CHARS`] is none, without asking the database.
pub(crate) async fn is_kind<C: DashboardConfig>(
    shared: &Shared<C>,
    name: &str,
) -> Result<bool, DbErr> {
    if name.contains('\0') || name.chars().count() > MAX_NAME_CHARS {
        return Ok(false);
    }
    let names = cached_task_names(shared).await?;
    if names.names.iter().any(|n| n == name) {
        return Ok(true);
    }
    if !names.truncated {
        return Ok(false);
    }
    let Some(filter) = name_is::<C::Model>(name) else {
        return Ok(false);
    };
    let select = <C::Model as TrackingConfig>::Entity::find()
        .select_only()
        .column_as(Expr::val(1), "one")
        .filter(filter)
        .limit(1)
        .into_json();
    let found: Result<Option<serde_json::Value>, DbErr> =
        Box::pin(select.one(shared.tracker.db())).await;
    Ok(found?.is_some())
}

/// `task_name = name`, when a name is mapped.
fn name_is<M: TrackingConfig>(name: &str) -> Option<sea_orm::Condition> {
    let col = M::binding(Role::Name)?.column;
    Some(
        sea_orm::Condition::all()
            .add(Expr::col(col).eq(col.save_as(Expr::val(Value::from(name.to_owned()))))),
    )
}

/// `at` as the `role` column stores it.
fn time_value<M: TrackingConfig>(role: Role, at: DateTime<Utc>) -> Option<Value> {
    let binding = M::binding(role)?;
    Some(match binding.encode {
        Encode::Time(encode) => encode(at),
        _ => Value::from(at),
    })
}

/// Duration percentiles over a sample.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Durations {
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    /// How many ended runs they are taken over.
    pub sample: usize,
}

/// One kind's numbers at one moment.
#[derive(Debug)]
pub(crate) struct KindStats {
    pub counts: Vec<(Status, u64)>,
    /// Every run of the kind.
    pub runs: u64,
    /// Over the runs that succeeded or failed among the kind's newest
    /// [`KIND_SAMPLE`].
    pub durations: Option<Durations>,
    /// The newest run's creation time.
    pub last_run: Option<DateTime<Utc>>,
    /// The last 24 hours in the dashboard's time zone, oldest first (its
    /// whole hours); empty without a creation time.
    pub hours: Vec<Hour>,
}

impl KindStats {
    pub(crate) fn count(&self, status: Status) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// Successes among runs that succeeded or failed.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        let (ok, failed) = (self.count(Status::Success), self.count(Status::Failed));
        (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
    }
}

/// The cache of kind `name`'s numbers.
fn kind_slot<C: DashboardConfig>(shared: &Shared<C>, name: &str) -> Arc<Cached<KindStats>> {
    let mut kinds = shared.kinds.kinds.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded by the kinds there are; forget them all past that.
    if kinds.len() > 4 * MAX_KINDS {
        kinds.clear();
    }
    kinds
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(Cached::new("a task kind's numbers")))
        .clone()
}

/// The numbers of kind `name` (which must be a kind: see [`is_kind`]).
pub(crate) async fn kind_stats<C: DashboardConfig>(
    shared: &Shared<C>,
    name: &str,
) -> Result<Arc<Counted<KindStats>>, DbErr> {
    let slot = kind_slot(shared, name);
    let owned = shared.clone();
    let name = name.to_owned();
    Cached::get(&slot, shared.kinds.max_age, move || async move {
        compute_kind::<C>(&owned, &name).await
    })
    .await
}

/// The numbers of kind `name` without waiting: the cached ones (stale ones
/// start their refresh), or none yet while they are computed in the
/// background — what the overview shows, so that it never waits on every
/// kind. With `stats_max_age` zero, computed now.
pub(crate) async fn kind_stats_now_or_later<C: DashboardConfig>(
    shared: &Shared<C>,
    name: &str,
) -> Result<Option<Arc<Counted<KindStats>>>, DbErr> {
    if shared.kinds.max_age.is_zero() {
        return kind_stats(shared, name).await.map(Some);
    }
    let slot = kind_slot(shared, name);
    let owned = shared.clone();
    let name = name.to_owned();
    Ok(Cached::peek(
        &slot,
        shared.kinds.max_age,
        move || async move { compute_kind::<C>(&owned, &name).await },
    ))
}

/// The offset of the dashboard's zone now.
fn zone_offset(zone: Zone, now: DateTime<Utc>) -> chrono::FixedOffset {
    match zone {
        Zone::Utc => Utc.fix(),
        Zone::Local => chrono::Local
            .offset_from_utc_datetime(&now.naive_utc())
            .fix(),
        Zone::Fixed(offset) => offset,
    }
}

/// The start of the first of the last 24 whole hours of `zone`, in UTC.
pub(crate) fn first_hour(zone: Zone, now: DateTime<Utc>) -> DateTime<Utc> {
    let offset = TimeDelta::seconds(i64::from(zone_offset(zone, now).local_minus_utc()));
    let local = now + offset;
    let this_hour = local.duration_trunc(TimeDelta::hours(1)).unwrap_or(local);
    this_hour - offset - TimeDelta::hours(HOURS - 1)
}

async fn compute_kind<C: DashboardConfig>(
    shared: &Shared<C>,
    name: &str,
) -> Result<KindStats, DbErr> {
    type M<C> = <C as DashboardConfig>::Model;
    let Some(is_name) = name_is::<M<C>>(name) else {
        return Ok(KindStats {
            counts: Vec::new(),
            runs: 0,
            durations: None,
            last_run: None,
            hours: Vec::new(),
        });
    };
    let (counts, runs) = counts::<M<C>>(shared, is_name.clone()).await?;
    let created = M::<C>::binding(Role::CreatedAt).map(|b| b.column);
    let last_run = match created {
        Some(created) => times::<M<C>>(shared, &[created], is_name.clone(), Some(created), 1)
            .await?
            .into_iter()
            .next()
            .and_then(|row| row[0]),
        None => None,
    };
    let zone = Zone::of(&shared.settings.time_zone);
    let hours = hours::<M<C>>(shared, is_name.clone(), first_hour(zone, Utc::now())).await?;
    let durations = durations::<M<C>>(shared, is_name).await?;
    Ok(KindStats {
        counts,
        runs,
        durations,
        last_run,
        hours,
    })
}

/// Runs per status among the rows matching `filter`, and all of them.
async fn counts<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    filter: sea_orm::Condition,
) -> Result<(Vec<(Status, u64)>, u64), DbErr> {
    let status_col = M::binding(Role::Status).expect("a status is mapped").column;
    let Some(Encode::Status(encode, _)) = M::binding(Role::Status).map(|b| b.encode) else {
        unreachable!("the status has a status encoder")
    };
    #[derive(FromQueryResult)]
    struct Group {
        status: Option<String>,
        n: i64,
    }
    let text = match shared.tracker.db().get_database_backend() {
        DbBackend::MySql => "char",
        _ => "text",
    };
    let select = M::Entity::find()
        .select_only()
        .column_as(Expr::col(status_col).cast_as(text), "status")
        .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "n")
        .filter(filter)
        .group_by(status_col);
    let groups: Result<Vec<Group>, DbErr> =
        Box::pin(select.into_model::<Group>().all(shared.tracker.db())).await;
    let groups = groups?;
    let rows = groups.iter().map(|g| u64::try_from(g.n).unwrap_or(0)).sum();
    let counts = Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Unknown)
        .map(|status| {
            if M::decode_status(encode(status)) != Some(status) {
                return (status, 0);
            }
            let stored = match value_json(&encode(status)) {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            let n = groups
                .iter()
                .filter(|g| g.status.as_deref() == Some(stored.as_str()))
                .map(|g| u64::try_from(g.n).unwrap_or(0))
                .sum();
            (status, n)
        })
        .collect();
    Ok((counts, rows))
}

/// Runs and failures per hour from `first` among the rows matching
/// `filter`: one statement per hour, each a range of an index by creation
/// time (the kind's, or the creation time's for the overview); a `CASE`
/// per hour over the whole day costs every row 48 comparisons.
pub(crate) async fn hours<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    filter: sea_orm::Condition,
    first: DateTime<Utc>,
) -> Result<Vec<Hour>, DbErr> {
    let Some(created) = M::binding(Role::CreatedAt).map(|b| b.column) else {
        return Ok(Vec::new());
    };
    let at = |i: i64| {
        let value = time_value::<M>(Role::CreatedAt, first + TimeDelta::hours(i))
            .expect("a creation time is mapped");
        created.save_as(Expr::val(value))
    };
    let failed = Expr::case(status_is::<M>(&[Status::Failed]), Expr::val(1));
    let db = shared.tracker.db();
    let mut out = Vec::with_capacity(HOURS as usize);
    for i in 0..HOURS {
        let select = M::Entity::find()
            .select_only()
            .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "runs")
            .column_as(Expr::expr(failed.clone()).count(), "failed")
            .filter(filter.clone())
            .filter(Expr::col(created).gte(at(i)))
            .filter(Expr::col(created).lt(at(i + 1)));
        // Read by name and type: SQLite's JSON rows leave out expressions.
        let statement = sea_orm::QueryTrait::build(&select, db.get_database_backend());
        let row: Result<Option<sea_orm::QueryResult>, DbErr> =
            Box::pin(db.query_one_raw(statement)).await;
        let row = row?;
        let number = |key: &str| -> u64 {
            row.as_ref()
                .and_then(|r| r.try_get::<i64>("", key).ok())
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0)
        };
        out.push(Hour {
            start: Some(first + TimeDelta::hours(i)),
            total: number("runs"),
            failed: number("failed"),
        });
    }
    Ok(out)
}

/// p50, p95 and p99 of the durations of the kind's newest ended runs.
async fn durations<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    filter: sea_orm::Condition,
) -> Result<Option<Durations>, DbErr> {
    let column = |role| M::binding(role).map(|b| b.column);
    let Some(start) = column(Role::StartedAt).or(column(Role::CreatedAt)) else {
        return Ok(None);
    };
    let ends: Vec<_> = [Role::CompletedAt, Role::FailedAt, Role::UpdatedAt]
        .into_iter()
        .filter_map(column)
        .collect();
    if ends.is_empty() {
        return Ok(None);
    }
    // The kind's newest runs by its index (name, then time), the ended ones
    // kept here: with the statuses in the `WHERE`, planners pick the index
    // by status and read every ended run of every kind.
    let status_col = M::binding(Role::Status).expect("a status is mapped").column;
    let Some(Encode::Status(encode, _)) = M::binding(Role::Status).map(|b| b.encode) else {
        unreachable!("the status has a status encoder")
    };
    let ended: Vec<String> = [Status::Success, Status::Failed]
        .into_iter()
        .map(|s| match value_json(&encode(s)) {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        })
        .collect();
    let text = match shared.tracker.db().get_database_backend() {
        DbBackend::MySql => "char",
        _ => "text",
    };
    let mut columns = vec![start];
    columns.extend(&ends);
    let mut select = M::Entity::find().select_only().filter(filter);
    for (i, col) in columns.iter().enumerate() {
        select = select.column_as(*col, format!("c{i}"));
    }
    select = select.column_as(Expr::col(status_col).cast_as(text), "st");
    if let Some(created) = column(Role::CreatedAt) {
        select = select.order_by(created, Order::Desc);
    }
    let rows: Result<Vec<serde_json::Value>, DbErr> = Box::pin(
        select
            .limit(KIND_SAMPLE)
            .into_json()
            .all(shared.tracker.db()),
    )
    .await;
    let mut samples: Vec<Duration> = rows?
        .iter()
        .filter(|row| {
            row.get("st")
                .and_then(|s| s.as_str())
                .is_some_and(|s| ended.iter().any(|e| e == s))
        })
        .filter_map(|row| {
            let time = |i: usize| row.get(format!("c{i}")).and_then(json_time);
            let start = time(0)?;
            let end = (1..columns.len()).find_map(time)?;
            (end - start).to_std().ok()
        })
        .collect();
    Ok(percentiles(&mut samples))
}

/// The nearest-rank percentiles of `samples` (sorted in place).
pub(crate) fn percentiles(samples: &mut [Duration]) -> Option<Durations> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Some(Durations {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        sample: samples.len(),
    })
}

/// Why a run in progress is stuck, if it is: no write for `after`, or
/// running longer than three times its kind's p95 and at least `after`.
/// `after` zero: never.
pub(crate) fn stuck_reason(
    now: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    last_write: Option<DateTime<Utc>>,
    p95: Option<Duration>,
    after: Duration,
) -> Option<String> {
    if after.is_zero() {
        return None;
    }
    let human = crate::dashboard::pages::human_duration;
    if let Some(quiet) = last_write.and_then(|t| (now - t).to_std().ok())
        && quiet >= after
    {
        return Some(format!("no write for {}", human(quiet)));
    }
    let running = start.and_then(|t| (now - t).to_std().ok())?;
    let p95 = p95?;
    let limit = Ord::max(p95.saturating_mul(3), after);
    (running > limit).then(|| {
        format!(
            "running for {}, over three times its kind's p95 duration ({})",
            human(running),
            human(p95)
        )
    })
}

/// Why `row` is stuck, if it is in progress and stuck.
pub(crate) async fn row_stuck<C: DashboardConfig>(
    shared: &Shared<C>,
    row: &C::Model,
    now: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    let after = shared.settings.stuck_after;
    if after.is_zero() || crate::dashboard::actions::status_of(row) != Some(Status::InProgress) {
        return Ok(None);
    }
    let time = |role| {
        C::Model::binding(role).and_then(|b| {
            value_time(&column_value::<<C::Model as TrackingConfig>::Entity>(
                row, b.column,
            ))
        })
    };
    let start = time(Role::StartedAt).or(time(Role::CreatedAt));
    let last_write = time(Role::UpdatedAt);
    let name = C::Model::binding(Role::Name).and_then(|b| {
        value_text(column_value::<<C::Model as TrackingConfig>::Entity>(
            row, b.column,
        ))
    });
    // The kind's p95 only matters past `after`.
    let p95 = match (&name, start) {
        (Some(name), Some(start)) if (now - start).to_std().is_ok_and(|d| d > after) => {
            kind_stats(shared, name).await?.durations.map(|d| d.p95)
        }
        _ => None,
    };
    Ok(stuck_reason(now, start, last_write, p95, after))
}

/// The stuck runs among the oldest [`STUCK_SCAN`] in progress.
#[derive(Debug, Default)]
pub(crate) struct Stuck {
    /// Their keys, oldest first.
    pub keys: Vec<String>,
    /// The same keys, for [`Stuck::contains`]: a page of 50 rows asks 50
    /// times, and a scan of up to [`STUCK_SCAN`] keys each time was a
    /// tenth of the list page's CPU under load.
    set: std::collections::HashSet<String>,
    /// As many runs in progress as were examined: more may be stuck.
    pub truncated: bool,
}

impl Stuck {
    /// Whether the run with this key is stuck.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }
}

/// The least time a kind's numbers and the stuck runs are kept.
pub(crate) const KIND_MAX_AGE: Duration = Duration::from_secs(30);

/// The stuck runs, cached for `stats_max_age` (at least [`KIND_MAX_AGE`]).
pub(crate) async fn stuck_runs<C: DashboardConfig>(
    shared: &Shared<C>,
) -> Result<Arc<Counted<Stuck>>, DbErr> {
    let owned = shared.clone();
    Cached::get(
        &shared.kinds.stuck,
        shared.kinds.max_age,
        move || async move { compute_stuck::<C>(&owned).await },
    )
    .await
}

async fn compute_stuck<C: DashboardConfig>(shared: &Shared<C>) -> Result<Stuck, DbErr> {
    if shared.settings.stuck_after.is_zero() {
        return Ok(Stuck::default());
    }
    let mut select = <C::Model as TrackingConfig>::Entity::find()
        .filter(status_is::<C::Model>(&[Status::InProgress]));
    if let Some(created) = C::Model::binding(Role::CreatedAt) {
        select = select.order_by(created.column, Order::Asc);
    }
    let rows = crate::config::find_all(select.limit(STUCK_SCAN), shared.tracker.db()).await?;
    let truncated = rows.len() as u64 >= STUCK_SCAN;
    let now = Utc::now();
    let key_col = C::Model::binding(Role::Key)
        .expect("a key is mapped")
        .column;
    let mut keys = Vec::new();
    for row in &rows {
        if row_stuck(shared, row, now).await?.is_some()
            && let Some(key) = value_text(column_value::<<C::Model as TrackingConfig>::Entity>(
                row, key_col,
            ))
        {
            keys.push(key);
        }
    }
    Ok(Stuck {
        set: keys.iter().cloned().collect(),
        keys,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn stuck_by_silence_or_by_three_p95() {
        let now = t("2026-12-01T12:00:00Z");
        let min = Duration::from_secs(600);
        // Written a minute ago, running 5 min, p95 1 min: 5 < max(3, 10) min.
        let recent = Some(t("2026-12-01T11:59:00Z"));
        let start = Some(t("2026-12-01T11:55:00Z"));
        let p95 = Some(Duration::from_secs(60));
        assert_eq!(stuck_reason(now, start, recent, p95, min), None);
        // Running 11 min: over both.
        let start = Some(t("2026-12-01T11:49:00Z"));
        assert!(
            stuck_reason(now, start, recent, p95, min)
                .unwrap()
                .contains("p95")
        );
        // p95 of 5 min: 3 × p95 = 15 min > 11 min.
        assert_eq!(
            stuck_reason(now, start, recent, Some(Duration::from_secs(300)), min),
            None
        );
        // No write for 10 min.
        let quiet = Some(t("2026-12-01T11:50:00Z"));
        assert!(
            stuck_reason(now, start, quiet, None, min)
                .unwrap()
                .contains("no write")
        );
        // Zero: never.
        assert_eq!(stuck_reason(now, start, quiet, p95, Duration::ZERO), None);
    }

    #[test]
    fn hours_start_on_the_zones_whole_hours() {
        let now = t("2026-12-01T12:40:00Z");
        assert_eq!(first_hour(Zone::Utc, now), t("2026-11-30T13:00:00Z"));
        let india = Zone::of("+05:30");
        // 18:10 there: its hour began 12:30 UTC; 23 hours before that.
        assert_eq!(first_hour(india, now), t("2026-11-30T13:30:00Z"));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
        let d = percentiles(&mut samples).unwrap();
        assert_eq!(
            (d.p50, d.p95, d.p99, d.sample),
            (
                Duration::from_secs(51),
                Duration::from_secs(95),
                Duration::from_secs(99),
                100
            )
        );
        assert!(percentiles(&mut []).is_none());
    }
}
