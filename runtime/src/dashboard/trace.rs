//! The run page's trace: the spans a run opened (recorded by
//! [`TaskLogLayer`](crate::logs::TaskLogLayer) into the log storage) as a
//! waterfall, one row per span, with the run's log lines placed on it; and
//! its JSON twin, `GET {prefix}/api/runs/{key}/trace`.
//!
//! Server-rendered SVG: every bar's offset and width are `x` / `width`
//! attributes (allowed by a strict CSP, unlike `style`), indentation is a
//! class.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use crate::config::{Role, TrackingConfig, column_value, value_time};
use crate::dashboard::api::{ApiError, SafeJson, find_run};
use crate::dashboard::pages::{Zone, human_duration};
use crate::dashboard::{DashboardConfig, Shared};
use crate::logs::{LogQuery, LogRecord, MAX_QUERY_LIMIT, SPAN_FIELD, SpanRecord, Trace};

/// The SVG's width in user units: offsets and widths are on this scale.
const SCALE: f64 = 1_000.0;

/// Indentation stops deepening here (the deepest `depth-N` class).
const MAX_DEPTH: usize = 16;

/// The run page's trace section.
pub(crate) struct TraceView {
    /// Whether the dashboard has a log storage that keeps spans.
    pub available: bool,
    /// The run's row first, then its spans depth first.
    pub rows: Vec<RowView>,
    /// Spans the run opened that were not recorded.
    pub dropped: u64,
    /// The whole waterfall's time, as people read it.
    pub total: String,
    /// The JSON twin's URL.
    pub api: String,
}

impl TraceView {
    /// Whether any span is shown (beyond the run's own row).
    pub fn has_spans(&self) -> bool {
        self.rows.len() > 1
    }
}

/// One row of the waterfall.
pub(crate) struct RowView {
    /// The span's id; 0 for the run's row.
    pub id: u64,
    pub parent: u64,
    pub depth: usize,
    pub name: String,
    pub target: String,
    pub fields: String,
    pub duration: String,
    /// Still open when the run ended (or now).
    pub open: bool,
    pub x: String,
    pub width: String,
    pub ticks: Vec<TickView>,
}

/// A log line on its row.
pub(crate) struct TickView {
    pub x: String,
    pub level: String,
    pub title: String,
}

/// What a run's trace is made of, read once for the page and the API.
struct Parts {
    trace: Trace,
    logs: Vec<LogRecord>,
    run_start: Option<DateTime<Utc>>,
    run_end: Option<DateTime<Utc>>,
}

async fn parts<C: DashboardConfig>(
    shared: &Shared<C>,
    row: &C::Model,
    key: &str,
) -> Result<Option<Parts>, ApiError> {
    let Some(storage) = shared.logs.as_deref() else {
        return Ok(None);
    };
    let Some(trace) = storage.trace(key).await? else {
        return Ok(None);
    };
    let logs = storage
        .query(LogQuery::new().run(key).limit(MAX_QUERY_LIMIT))
        .await?;
    let time = |role: Role| {
        let field = C::Model::field(role)?;
        value_time(&column_value::<<C::Model as TrackingConfig>::Entity>(
            row,
            field.column,
        ))
    };
    Ok(Some(Parts {
        trace,
        logs,
        run_start: time(Role::StartedAt).or_else(|| time(Role::CreatedAt)),
        run_end: time(Role::CompletedAt).or_else(|| time(Role::FailedAt)),
    }))
}

/// The span a log line was emitted in, if it names one.
fn span_of(line: &LogRecord) -> Option<u64> {
    line.fields
        .iter()
        .find(|(k, _)| k == SPAN_FIELD)
        .and_then(|(_, v)| v.as_u64())
}

/// The spans in waterfall order (each after its parent, siblings by
/// start), with their depth; a span whose parent is missing hangs under
/// the run.
fn ordered(spans: &[SpanRecord]) -> Vec<(&SpanRecord, usize)> {
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.id).collect();
    let mut children: HashMap<u64, Vec<&SpanRecord>> = HashMap::new();
    for span in spans {
        let parent = span.parent.filter(|p| ids.contains(p) && *p != span.id);
        children.entry(parent.unwrap_or(0)).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| (s.start, s.id));
    }
    let mut out = Vec::with_capacity(spans.len());
    // Depth first without recursion; a cycle cannot loop: each span is
    // taken once.
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(&SpanRecord, usize)> = children
        .get(&0)
        .map(|l| l.iter().rev().map(|s| (*s, 0)).collect())
        .unwrap_or_default();
    while let Some((span, depth)) = stack.pop() {
        if !seen.insert(span.id) {
            continue;
        }
        out.push((span, depth));
        if let Some(list) = children.get(&span.id) {
            stack.extend(list.iter().rev().map(|s| (*s, depth + 1)));
        }
    }
    out
}

fn fields_text(fields: &[(std::borrow::Cow<'static, str>, serde_json::Value)]) -> String {
    fields
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn duration_text(d: chrono::TimeDelta) -> String {
    let d = d.to_std().unwrap_or_default();
    if d < std::time::Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        human_duration(d)
    }
}

fn build(parts: Parts, zone: Zone, api: String) -> TraceView {
    let Parts {
        trace,
        logs,
        run_start,
        run_end,
    } = parts;
    let now = Utc::now();
    let span_end = |s: &SpanRecord| s.end.unwrap_or(run_end.unwrap_or(now)).max(s.start);
    // The range: the run's own times, widened to what it recorded.
    let start = trace
        .spans
        .iter()
        .map(|s| s.start)
        .chain(logs.iter().map(|l| l.at))
        .chain(run_start)
        .min()
        .unwrap_or(now);
    let end = trace
        .spans
        .iter()
        .map(span_end)
        .chain(logs.iter().map(|l| l.at))
        .chain(run_end)
        .max()
        .unwrap_or(start)
        .max(start);
    let total_us = (end - start).num_microseconds().unwrap_or(i64::MAX).max(1) as f64;
    let place = |t: DateTime<Utc>| {
        let us = (t - start).num_microseconds().unwrap_or(0) as f64;
        (us / total_us * SCALE).clamp(0.0, SCALE)
    };
    let mut ticks: HashMap<u64, Vec<TickView>> = HashMap::new();
    let ids: std::collections::HashSet<u64> = trace.spans.iter().map(|s| s.id).collect();
    // Oldest first, so later ticks draw over earlier ones.
    for line in logs.iter().rev() {
        let row = span_of(line).filter(|s| ids.contains(s)).unwrap_or(0);
        ticks.entry(row).or_default().push(TickView {
            x: format!("{:.3}", (place(line.at) - 1.0).max(0.0)),
            level: line.level.as_str().to_ascii_lowercase(),
            title: format!(
                "{} {} {}",
                zone.show_precise(line.at),
                line.level,
                line.message
            ),
        });
    }
    let mut rows = vec![RowView {
        id: 0,
        parent: 0,
        depth: 0,
        name: "run".to_owned(),
        target: String::new(),
        fields: String::new(),
        duration: duration_text(end - start),
        open: run_end.is_none(),
        x: "0".to_owned(),
        width: format!("{SCALE}"),
        ticks: ticks.remove(&0).unwrap_or_default(),
    }];
    for (span, depth) in ordered(&trace.spans) {
        let x = place(span.start);
        let width = (place(span_end(span)) - x).max(0.5).min(SCALE - x);
        rows.push(RowView {
            id: span.id,
            parent: span.parent.unwrap_or(0),
            depth: (depth + 1).min(MAX_DEPTH),
            name: span.name.to_string(),
            target: span.target.to_string(),
            fields: fields_text(&span.fields),
            duration: match span.duration() {
                Some(d) => duration_text(d),
                None => "still open".to_owned(),
            },
            open: span.end.is_none(),
            x: format!("{x:.3}"),
            width: format!("{width:.3}"),
            ticks: ticks.remove(&span.id).unwrap_or_default(),
        });
    }
    TraceView {
        available: true,
        rows,
        dropped: trace.dropped,
        total: duration_text(end - start),
        api,
    }
}

/// The run page's trace section for run `key` (whose row is `row`). A
/// storage that fails shows an empty trace (and is logged), like the logs
/// panel.
pub(crate) async fn view<C: DashboardConfig>(
    shared: &Shared<C>,
    row: &C::Model,
    key: &str,
    zone: Zone,
    base: &str,
) -> TraceView {
    let api = format!(
        "{base}/api/runs/{}/trace",
        crate::dashboard::pages::path_segment(key)
    );
    let empty = |available| TraceView {
        available,
        rows: Vec::new(),
        dropped: 0,
        total: String::new(),
        api: api.clone(),
    };
    match parts(shared, row, key).await {
        Ok(Some(parts)) => build(parts, zone, api),
        Ok(None) => empty(false),
        Err(_) => {
            tracing::warn!("tasktrail dashboard: the run's trace could not be read");
            empty(true)
        }
    }
}

/// `GET {prefix}/api/runs/{key}/trace`: `{"run", "spans": [...], "logs":
/// [...], "dropped", "start", "end"}`; each span with its log lines' ids,
/// each line with its span (`null`: directly in the run).
pub(crate) async fn api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Path(key): Path<String>,
) -> Result<SafeJson, ApiError> {
    let row = find_run::<C::Model>(&shared, &key).await?;
    let Some(parts) = parts(&shared, &row, &key).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this dashboard has no log storage that keeps spans (see `Dashboard::log_storage`)",
        ));
    };
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut by_span: HashMap<u64, Vec<u64>> = HashMap::new();
    let logs: Vec<serde_json::Value> = parts
        .logs
        .iter()
        .rev()
        .map(|line| {
            let span = span_of(line);
            by_span.entry(span.unwrap_or(0)).or_default().push(line.id);
            serde_json::json!({
                "id": line.id,
                "at": at(line.at),
                "level": line.level.as_str(),
                "message": line.message,
                "span": span,
            })
        })
        .collect();
    let spans: Vec<serde_json::Value> = parts
        .trace
        .spans
        .iter()
        .map(|span| {
            let mut json = span.to_json();
            json["logs"] = by_span.remove(&span.id).unwrap_or_default().into();
            json
        })
        .collect();
    Ok(SafeJson(serde_json::json!({
        "run": key,
        "spans": spans,
        "logs": logs,
        "dropped": parts.trace.dropped,
        "run_started_at": parts.run_start.map(at),
        "run_ended_at": parts.run_end.map(at),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_come_after_their_parents_with_depth() {
        let t = Utc::now();
        let spans = vec![
            SpanRecord::new("r", 3, "grandchild", t).parent(2),
            SpanRecord::new("r", 1, "parent", t),
            SpanRecord::new("r", 2, "child", t).parent(1),
            SpanRecord::new("r", 4, "sibling", t + chrono::TimeDelta::seconds(1)),
            SpanRecord::new("r", 5, "orphan", t).parent(99),
            SpanRecord::new("r", 6, "self", t).parent(6),
        ];
        let order: Vec<(&str, usize)> = ordered(&spans)
            .into_iter()
            .map(|(s, d)| (&*s.name, d))
            .collect();
        assert_eq!(
            order,
            [
                ("parent", 0),
                ("child", 1),
                ("grandchild", 2),
                ("orphan", 0),
                ("self", 0),
                ("sibling", 0)
            ]
        );
    }
}
