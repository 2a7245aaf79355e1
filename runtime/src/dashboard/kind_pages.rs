//! The task-kind pages: `GET {prefix}/kinds/{name}` (runs, success rate,
//! durations, last run, runs and failures per hour as an SVG), its JSON
//! twin `GET {prefix}/api/kinds/{name}`, `GET {prefix}/api/kinds` (the
//! kinds), and the kinds and stuck runs the overview shows.

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::config::{Role, TrackingConfig};
use crate::dashboard::api::{ApiError, SafeJson};
use crate::dashboard::kinds::{self, KindStats};
use crate::dashboard::pages::{Layout, LinkBase, Zone, human_duration, path_segment, render};
use crate::dashboard::query::filter_fields;
use crate::dashboard::stats::{Chart, chart};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

/// Kinds the overview shows with their numbers; the others by name.
const OVERVIEW_KINDS: usize = 20;

/// `name` for a message: at most 100 characters.
fn shown(name: &str) -> String {
    let mut text: String = name.chars().take(100).collect();
    if text.len() < name.len() {
        text.push('…');
    }
    text
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no task kind is named `{}`", shown(name)),
    )
}

/// `{base}/kinds/{name}`.
fn kind_href(base: &str, name: &str) -> String {
    format!("{base}/kinds/{}", path_segment(name))
}

/// The runs list filtered by kind `name`, when the list filters by name.
fn list_href<C: DashboardConfig>(shared: &Shared<C>, base: &str, name: &str) -> Option<String> {
    let field = C::Model::field(Role::Name)?.field;
    if !filter_fields::<C::Model>(&shared.settings).contains(&field) {
        return None;
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(field, name)
        .finish();
    Some(format!("{base}/runs?{query}"))
}

fn rate(stats: &KindStats) -> Option<String> {
    stats.success_rate().map(|r| format!("{:.1}%", r * 100.0))
}

/// One kind in the overview's table.
pub(crate) struct KindRow {
    pub(crate) name: String,
    pub(crate) href: String,
    pub(crate) list_href: Option<String>,
    /// Runs, failed and in progress: none while the kind's numbers are
    /// first computed.
    pub(crate) runs: Option<u64>,
    pub(crate) failed: Option<u64>,
    pub(crate) running: Option<u64>,
    pub(crate) success_rate: Option<String>,
    pub(crate) p95: Option<String>,
}

/// What the overview shows of the kinds and the stuck runs.
pub(crate) struct OverviewKinds {
    pub(crate) kinds: Vec<KindRow>,
    /// The kinds past [`OVERVIEW_KINDS`], by name: `(name, href)`.
    pub(crate) more: Vec<(String, String)>,
    /// More kinds exist than were listed.
    pub(crate) truncated: bool,
    /// Stuck runs: how many, whether more may be, the list of them.
    pub(crate) stuck: usize,
    pub(crate) stuck_more: bool,
    pub(crate) stuck_href: String,
}

/// The overview's kinds and stuck runs.
pub(crate) async fn overview_kinds<C: DashboardConfig>(
    shared: &Shared<C>,
    base: &str,
) -> Result<OverviewKinds, ApiError> {
    let names = kinds::cached_task_names(shared).await?;
    let mut rows = Vec::new();
    for name in names.names.iter().take(OVERVIEW_KINDS) {
        let counted = kinds::kind_stats_now_or_later(shared, name).await?;
        let stats = counted.as_deref().map(|c| &**c);
        let number = |f: &dyn Fn(&KindStats) -> u64| stats.map(f);
        rows.push(KindRow {
            href: kind_href(base, name),
            list_href: list_href(shared, base, name),
            runs: number(&|s| s.runs),
            failed: number(&|s| s.count(Status::Failed)),
            running: number(&|s| s.count(Status::InProgress)),
            success_rate: stats.and_then(rate),
            p95: stats
                .and_then(|s| s.durations)
                .map(|d| human_duration(d.p95)),
            name: name.clone(),
        });
    }
    let more = names
        .names
        .iter()
        .skip(OVERVIEW_KINDS)
        .map(|n| (n.clone(), kind_href(base, n)))
        .collect();
    let stuck = kinds::stuck_runs(shared).await?;
    Ok(OverviewKinds {
        kinds: rows,
        more,
        truncated: names.truncated,
        stuck: stuck.keys.len(),
        stuck_more: stuck.truncated,
        stuck_href: format!("{base}/runs?stuck=true"),
    })
}

/// One hour of a kind's chart, for the table beside it.
struct HourView {
    label: String,
    runs: u64,
    failed: u64,
}

#[derive(Template)]
#[template(path = "kind.html")]
struct KindPage {
    layout: Layout,
    name: String,
    list_href: Option<String>,
    runs: u64,
    counts: Vec<(&'static str, u64)>,
    success_rate: Option<String>,
    /// p50, p95, p99 and over how many runs.
    durations: Option<(String, String, String, usize)>,
    last_run: Option<String>,
    chart: Option<Chart>,
    hours: Vec<HourView>,
    /// The zone the hours are in.
    zone: String,
    /// When the numbers were counted (they are cached), in that zone.
    counted_at: String,
    /// How many of the newest runs the durations are taken from.
    sample_limit: u64,
    /// The form that starts a run of this kind, when it is registered in
    /// this process and the user may act.
    start_href: Option<String>,
}

/// `GET {prefix}/kinds/{name}`
pub(crate) async fn page<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(name): Path<String>,
) -> Response {
    let stats = match stats_of(&shared, &name).await {
        Ok(stats) => stats,
        Err(err) => return err.into_plain_response(),
    };
    let zone = Zone::of(&shared.settings.time_zone);
    let label = |t: chrono::DateTime<chrono::Utc>| zone.format(t, "%H:%M");
    let layout = Layout::of(&shared, &links, &identity);
    let start_href = (!shared.settings.read_only
        && identity.role.may_act()
        && crate::dashboard::start::startable_kinds(&shared).contains(&name))
    .then(|| crate::dashboard::start::form_url(&links, &name));
    render(&KindPage {
        layout,
        start_href,
        list_href: list_href(&shared, &links.0, &name),
        runs: stats.runs,
        counts: stats
            .counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), *n))
            .collect(),
        success_rate: rate(&stats),
        durations: stats.durations.map(|d| {
            (
                human_duration(d.p50),
                human_duration(d.p95),
                human_duration(d.p99),
                d.sample,
            )
        }),
        last_run: stats.last_run.map(|t| zone.show(t)),
        chart: chart(&stats.hours, label).map(|mut c| {
            c.summary = format!("Runs of {} per hour: {}", shown(&name), c.summary);
            c
        }),
        hours: stats
            .hours
            .iter()
            .map(|h| HourView {
                label: h.start.map(label).unwrap_or_default(),
                runs: h.total,
                failed: h.failed,
            })
            .collect(),
        zone: shared.settings.time_zone.clone(),
        counted_at: zone.show(stats.at),
        sample_limit: kinds::KIND_SAMPLE,
        name,
    })
}

/// The numbers of kind `name`, or 404.
async fn stats_of<C: DashboardConfig>(
    shared: &Shared<C>,
    name: &str,
) -> Result<std::sync::Arc<crate::dashboard::cache::Counted<KindStats>>, ApiError> {
    if !kinds::is_kind(shared, name).await? {
        return Err(not_found(name));
    }
    Ok(kinds::kind_stats(shared, name).await?)
}

/// `GET {prefix}/api/kinds/{name}`
pub(crate) async fn api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Path(name): Path<String>,
) -> Result<SafeJson, ApiError> {
    let stats = stats_of(&shared, &name).await?;
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let statuses: serde_json::Map<String, serde_json::Value> = stats
        .counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    Ok(SafeJson(json!({
        "name": name,
        "runs": stats.runs,
        "statuses": statuses,
        "succeeded": stats.count(Status::Success),
        "failed": stats.count(Status::Failed),
        "success_rate": stats.success_rate(),
        "durations": stats.durations.map(|d| json!({
            "p50_ms": ms(d.p50),
            "p95_ms": ms(d.p95),
            "p99_ms": ms(d.p99),
            "sample": d.sample,
        })),
        "last_run": stats.last_run.map(|t| t.to_rfc3339()),
        "hours": stats.hours.iter().map(|h| json!({
            "start": h.start.map(|t| t.to_rfc3339()),
            "runs": h.total,
            "failed": h.failed,
        })).collect::<Vec<_>>(),
        "time_zone": shared.settings.time_zone,
        "as_of": stats.as_of(),
        "page": kind_href(&links.0, &name),
        "runs_list": list_href(&shared, &links.0, &name),
    })))
}

/// `GET {prefix}/api/kinds`
pub(crate) async fn list_api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
) -> Result<SafeJson, ApiError> {
    let names = kinds::cached_task_names(&shared).await?;
    Ok(SafeJson(json!({
        "kinds": names.names.iter().map(|n| json!({
            "name": n,
            "page": kind_href(&links.0, n),
            "api": format!("{}/api/kinds/{}", links.0, path_segment(n)),
            "runs_list": list_href(&shared, &links.0, n),
        })).collect::<Vec<_>>(),
        "truncated": names.truncated,
    })))
}
