//! The overview's numbers — runs per status, durations p50 / p95 and runs
//! per hour over the last 24 hours — computed from the runs table and kept
//! in a small cache, so that pages stay fast on big tables.
//!
//! Cached for the dashboard's `stats_max_age` as [`cache`](super::cache)
//! says: a fresh snapshot as it is, a stale one while the next is computed
//! in the background; with `stats_max_age` zero every request computes its
//! own.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Value,
};

use crate::config::{Encode, Role, TrackingConfig};
use crate::dashboard::api::status_counts;
use crate::dashboard::cache::{Cached, Counted};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

/// The most ended runs the duration percentiles are taken over.
pub(crate) const DURATION_SAMPLE: u64 = 10_000;

/// Runs created in one hour.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hour {
    /// The hour's start.
    pub start: Option<DateTime<Utc>>,
    pub total: u64,
    pub failed: u64,
}

/// The overview's numbers at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub counts: Vec<(Status, u64)>,
    /// Every run, whatever its status: a status that means nothing to
    /// tasktrail (a table another application wrote) counts here only.
    pub rows: u64,
    /// p50 and p95 of the durations of runs that ended in success or
    /// failure among those created in the last 24 hours, and how many.
    pub durations: Option<(Duration, Duration, usize)>,
    /// The last 24 hours, oldest first; empty without a creation time.
    pub hourly: Vec<Hour>,
}

impl Snapshot {
    pub(crate) fn count(&self, status: Status) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    pub(crate) fn total(&self) -> u64 {
        self.rows
    }

    /// Successes among runs that succeeded or failed.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        let (ok, failed) = (self.count(Status::Success), self.count(Status::Failed));
        (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
    }
}

/// The cached snapshot.
pub(crate) struct StatsCache {
    max_age: Duration,
    snapshot: Arc<Cached<Snapshot>>,
}

impl StatsCache {
    pub(crate) fn new(max_age: Duration) -> Self {
        StatsCache {
            max_age,
            snapshot: Arc::new(Cached::new("the overview's numbers")),
        }
    }
}

/// The current snapshot (see the module's doc for how fresh).
pub(crate) async fn snapshot<C: DashboardConfig>(
    shared: &Shared<C>,
) -> Result<Arc<Counted<Snapshot>>, DbErr> {
    let owned = shared.clone();
    Cached::get(
        &shared.stats.snapshot,
        shared.stats.max_age,
        move || async move { compute(&owned).await },
    )
    .await
}

async fn compute<C: DashboardConfig>(shared: &Shared<C>) -> Result<Snapshot, DbErr> {
    let (counts, rows) = status_counts::<C::Model>(shared).await?;
    let now = Utc::now();
    let hourly = hourly(shared, now).await?;
    let durations = durations::<C::Model>(shared, now).await?;
    Ok(Snapshot {
        counts,
        rows,
        durations,
        hourly,
    })
}

/// The status column compared with `status`, as the column stores it.
pub(crate) fn status_is<M: TrackingConfig>(statuses: &[Status]) -> sea_orm::Condition {
    let binding = M::binding(Role::Status).expect("a status is mapped");
    let Encode::Status(encode, _) = binding.encode else {
        unreachable!("the status has a status encoder")
    };
    let col = binding.column;
    let mut any = sea_orm::Condition::any();
    for status in statuses {
        any = any.add(Expr::col(col).eq(col.save_as(Expr::val(encode(*status)))));
    }
    any
}

/// `column >= at`, with `at` encoded as the timestamp column stores it.
fn since<M: TrackingConfig>(role: Role, at: DateTime<Utc>) -> Option<sea_orm::Condition> {
    let binding = M::binding(role)?;
    let value = match binding.encode {
        Encode::Time(encode) => encode(at),
        _ => Value::from(at),
    };
    let col = binding.column;
    Some(sea_orm::Condition::all().add(Expr::col(col).gte(col.save_as(Expr::val(value)))))
}

/// A timestamp as JSON (`into_json` gives text on SQLite and PostgreSQL).
pub(crate) fn json_time(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.to_utc());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    None
}

/// The values of `columns` for at most `limit` rows matching `filter`, as
/// times. Always bounded: the overview once read a whole day's rows here.
pub(crate) async fn times<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    columns: &[crate::config::ColumnOf<M>],
    filter: sea_orm::Condition,
    order: Option<crate::config::ColumnOf<M>>,
    limit: u64,
) -> Result<Vec<Vec<Option<DateTime<Utc>>>>, DbErr> {
    let mut select = M::Entity::find().select_only().filter(filter).limit(limit);
    for (i, col) in columns.iter().enumerate() {
        select = select.column_as(*col, format!("c{i}"));
    }
    if let Some(order) = order {
        select = select.order_by(order, Order::Desc);
    }
    let rows: Result<Vec<serde_json::Value>, DbErr> =
        Box::pin(select.into_json().all(shared.tracker.db())).await;
    Ok(rows?
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| row.get(format!("c{i}")).and_then(json_time))
                .collect()
        })
        .collect())
}

/// Runs and failures per hour over the last 24 whole hours of the
/// dashboard's time zone: a count per hour, as the kind pages take theirs.
/// It once read every row of the day, so each refresh read more as the
/// table grew (74,000 rows, 1.3–2.4 s, after 20 minutes of issue 17's
/// soak) and the process's memory grew with it.
async fn hourly<C: DashboardConfig>(
    shared: &Shared<C>,
    now: DateTime<Utc>,
) -> Result<Vec<Hour>, DbErr> {
    let zone = crate::dashboard::pages::Zone::of(&shared.settings.time_zone);
    crate::dashboard::kinds::hours::<C::Model>(
        shared,
        sea_orm::Condition::all(),
        crate::dashboard::kinds::first_hour(zone, now),
    )
    .await
}

async fn durations<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    now: DateTime<Utc>,
) -> Result<Option<(Duration, Duration, usize)>, DbErr> {
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
    let mut filter =
        sea_orm::Condition::all().add(status_is::<M>(&[Status::Success, Status::Failed]));
    let order = column(Role::CreatedAt);
    if let Some(recent) = since::<M>(Role::CreatedAt, now - TimeDelta::hours(24)) {
        filter = filter.add(recent);
    }
    let mut columns = vec![start];
    columns.extend(&ends);
    let mut samples: Vec<Duration> = times::<M>(shared, &columns, filter, order, DURATION_SAMPLE)
        .await?
        .into_iter()
        .filter_map(|row| {
            let start = row[0]?;
            let end = row[1..].iter().flatten().next()?;
            (*end - start).to_std().ok()
        })
        .collect();
    if samples.is_empty() {
        return Ok(None);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(Some((at(0.50), at(0.95), samples.len())))
}

/// The runs in progress, newest first (not cached: they move).
pub(crate) async fn running<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    limit: u64,
) -> Result<Vec<M>, DbErr> {
    let mut select = M::Entity::find().filter(status_is::<M>(&[Status::InProgress]));
    if let Some(created) = M::binding(Role::CreatedAt) {
        select = select.order_by(created.column, Order::Desc);
    }
    crate::config::find_all(select.limit(limit), shared.tracker.db()).await
}

/// One bar of the runs-per-hour chart, in SVG user units.
pub(crate) struct Bar {
    pub x: u32,
    pub width: u32,
    /// The whole bar (every run).
    pub y: u32,
    pub height: u32,
    /// Its failed part, drawn at the bottom.
    pub failed_y: u32,
    pub failed_height: u32,
    pub title: String,
}

/// An hour label under the chart.
pub(crate) struct Tick {
    pub x: u32,
    pub text: String,
}

/// The runs-per-hour chart, laid out for the template.
pub(crate) struct Chart {
    pub width: u32,
    pub height: u32,
    /// The baseline's y.
    pub base: u32,
    pub max: u64,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub summary: String,
}

/// Lays out `hours` as bars; `show` formats an hour's start.
pub(crate) fn chart(hours: &[Hour], show: impl Fn(DateTime<Utc>) -> String) -> Option<Chart> {
    if hours.is_empty() {
        return None;
    }
    const WIDTH: u32 = 720;
    const PLOT: u32 = 120;
    const TOP: u32 = 18;
    let slot = WIDTH / hours.len() as u32;
    let max = hours.iter().map(|h| h.total).max().unwrap_or(0);
    let scale = |n: u64| -> u32 {
        if max == 0 {
            0
        } else {
            // At least one unit for a non-empty hour, so it shows.
            ((n as f64 / max as f64 * PLOT as f64).round() as u32).clamp(u32::from(n > 0), PLOT)
        }
    };
    let base = TOP + PLOT;
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let height = scale(h.total);
            let failed_height = Ord::min(scale(h.failed), height);
            let when = h.start.map(&show).unwrap_or_default();
            Bar {
                x: i as u32 * slot + 2,
                width: slot - 4,
                y: base - height,
                height,
                failed_y: base - failed_height,
                failed_height,
                title: format!("{when}: {} runs, {} failed", h.total, h.failed),
            }
        })
        .collect();
    let ticks = hours
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 == 0 || *i == hours.len() - 1)
        .map(|(i, h)| Tick {
            x: i as u32 * slot + slot / 2,
            text: h.start.map(&show).unwrap_or_default(),
        })
        .collect();
    let total: u64 = hours.iter().map(|h| h.total).sum();
    let failed: u64 = hours.iter().map(|h| h.failed).sum();
    Some(Chart {
        width: WIDTH,
        height: base + 20,
        base,
        max,
        bars,
        ticks,
        summary: format!(
            "{total} runs in the last 24 hours, {failed} failed; at most {max} in one hour."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::json_time;
    use serde_json::json;

    #[test]
    fn times_in_every_text_form_the_backends_give() {
        let want = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:20:30.5Z")
            .unwrap()
            .to_utc();
        for text in [
            "2026-11-23T10:20:30.5Z",
            "2026-11-23T10:20:30.500+00:00",
            "2026-11-23 10:20:30.5+00:00",
            "2026-11-23 10:20:30.5",
            "2026-11-23T10:20:30.500",
            "2026-11-23 12:20:30.5+02:00",
        ] {
            assert_eq!(json_time(&json!(text)), Some(want), "{text}");
        }
        assert_eq!(json_time(&json!(12)), None);
        assert_eq!(json_time(&json!("yesterday")), None);
    }
}
