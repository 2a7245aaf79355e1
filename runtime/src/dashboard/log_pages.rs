//! The dashboard's logs: the `logs` page, the run page's logs panel, the
//! JSON API and the live tail (server-sent events), over the
//! [`LogStorage`](crate::logs::LogStorage) given to
//! [`Dashboard::log_storage`](crate::Dashboard::log_storage).

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;

use crate::dashboard::api::{ApiError, SafeJson, query_pairs};
use crate::dashboard::pages::{Layout, LinkBase, Zone, path_segment, render};
use crate::dashboard::{DashboardConfig, Shared};
use crate::logs::{LogLevel, LogQuery, LogRecord, LogStorage, LogStorageError, MAX_QUERY_LIMIT};

/// Lines a page shows by default.
const DEFAULT_LIMIT: usize = 200;

/// How often a live tail looks for new lines.
const TAIL_POLL: Duration = Duration::from_millis(300);

/// The database storage's errors are classified like the runs' (see
/// `From<DbErr> for ApiError`); another storage's own failure is a 503.
impl From<LogStorageError> for ApiError {
    fn from(err: LogStorageError) -> Self {
        match err {
            LogStorageError::Db(err) => ApiError::from(err),
            err => {
                tracing::error!(error = %err, "tasktrail dashboard: the log storage failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the log storage did not answer; try again",
                )
            }
        }
    }
}

fn storage<C: DashboardConfig>(shared: &Shared<C>) -> Result<&dyn LogStorage, ApiError> {
    shared.logs.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this dashboard has no log storage (see `Dashboard::log_storage`)",
        )
    })
}

/// The query parameters of the logs page, API and tail: `run`, `level`,
/// `q`, `since`, `until` (RFC 3339), `after` (a line id), `limit`.
fn parse_query(raw: Option<&str>) -> Result<LogQuery, ApiError> {
    let bad = |name: &str, why: String| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("`{name}`: {why}"))
    };
    let time = |name: &str, value: &str| {
        chrono::DateTime::parse_from_rfc3339(value)
            .map(|t| t.to_utc())
            .map_err(|_| bad(name, format!("`{value}` is not an RFC 3339 time")))
    };
    let mut query = LogQuery::new().limit(DEFAULT_LIMIT);
    for (name, value) in query_pairs(raw) {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "run" => query.run_key = Some(value),
            "level" => {
                query.min_level = Some(
                    value
                        .parse::<LogLevel>()
                        .map_err(|e| bad("level", e.to_string()))?,
                );
            }
            "q" => {
                if value.chars().count() > 200 {
                    return Err(bad("q", "longer than 200 characters".into()));
                }
                query.contains = Some(value);
            }
            "since" => query.since = Some(time("since", &value)?),
            "until" => query.until = Some(time("until", &value)?),
            "after" => {
                query.after_id = Some(
                    value
                        .parse()
                        .map_err(|_| bad("after", format!("`{value}` is not a line id")))?,
                );
            }
            "limit" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad("limit", format!("`{value}` is not a whole number")))?;
                if n == 0 || n > MAX_QUERY_LIMIT {
                    return Err(bad("limit", format!("must be 1 to {MAX_QUERY_LIMIT}")));
                }
                query.limit = n;
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter `{other}`; expected run, level, q, since, until, after or limit"
                    ),
                ));
            }
        }
    }
    Ok(query)
}

/// A line as the pages show it.
pub(crate) struct LineView {
    pub id: u64,
    pub at: String,
    pub level: &'static str,
    pub target: String,
    pub message: String,
    pub run: Option<(String, String)>,
    pub fields: String,
}

pub(crate) fn line_view(record: &LogRecord, zone: Zone, base: &str) -> LineView {
    LineView {
        id: record.id,
        at: zone.show_precise(record.at),
        level: record.level.as_str(),
        target: record.target.to_string(),
        message: record.message.clone(),
        run: record
            .run_key
            .as_deref()
            .map(|key| (key.to_owned(), format!("{base}/runs/{}", path_segment(key)))),
        fields: if record.fields.is_empty() {
            String::new()
        } else {
            record
                .fields
                .iter()
                // The trace view's link from a line to its span.
                .filter(|(k, _)| k != crate::logs::SPAN_FIELD)
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        },
    }
}

/// A line as the live tail sends it: the JSON API's form plus what the
/// page shows (time in the dashboard's zone, the run's link).
fn line_json(record: &LogRecord, zone: Zone, base: &str) -> serde_json::Value {
    let view = line_view(record, zone, base);
    let mut json = record.to_json();
    json["shown_at"] = view.at.into();
    json["run_href"] = view.run.map(|(_, href)| href).into();
    json["fields_text"] = view.fields.into();
    json
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    layout: Layout,
    run: String,
    level: String,
    q: String,
    limit: usize,
    levels: [&'static str; 5],
    lines: Vec<LineView>,
    /// The tail's URL: the same filters, after the newest line shown.
    tail: String,
    filtered: bool,
}

/// The live tail's URL for `query`, starting after line `after`.
pub(crate) fn tail_url(base: &str, query: &LogQuery, after: u64) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    if let Some(run) = &query.run_key {
        pairs.append_pair("run", run);
    }
    if let Some(level) = query.min_level {
        pairs.append_pair("level", level.as_str());
    }
    if let Some(q) = &query.contains {
        pairs.append_pair("q", q);
    }
    pairs.append_pair("after", &after.to_string());
    format!("{base}/api/logs/events?{}", pairs.finish())
}

/// `GET {prefix}/logs`
pub(crate) async fn page<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        let storage = storage(&shared)?;
        let query = parse_query(raw.as_deref())?;
        let lines = storage.query(query.clone()).await?;
        Ok::<_, ApiError>((query, lines))
    }
    .await;
    let (query, lines) = match result {
        Ok(found) => found,
        Err(err) => return err.into_plain_response(),
    };
    let zone = Zone::of(&shared.settings.time_zone);
    let base = links.0.clone();
    let newest = lines.first().map_or(0, |l| l.id);
    // A tail that starts from now, even when the page shows no line.
    let after = if newest == 0 {
        latest_id(&shared).await
    } else {
        newest
    };
    render(&LogsPage {
        layout: Layout::of(&shared, &links, &identity),
        run: query.run_key.clone().unwrap_or_default(),
        level: query
            .min_level
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default(),
        q: query.contains.clone().unwrap_or_default(),
        limit: query.limit,
        levels: LogLevel::ALL.map(LogLevel::as_str),
        tail: tail_url(&base, &query, after),
        filtered: query.run_key.is_some() || query.min_level.is_some() || query.contains.is_some(),
        lines: lines.iter().map(|l| line_view(l, zone, &base)).collect(),
    })
}

/// The id of the newest line in the storage (0 when empty).
pub(crate) async fn latest_id<C: DashboardConfig>(shared: &Shared<C>) -> u64 {
    match &shared.logs {
        Some(storage) => storage
            .query(LogQuery::new().limit(1))
            .await
            .ok()
            .and_then(|l| l.first().map(|l| l.id))
            .unwrap_or(0),
        None => 0,
    }
}

/// `GET {prefix}/api/logs`: `{"lines": [...], "stats": {...}}`, newest first.
pub(crate) async fn api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    RawQuery(raw): RawQuery,
) -> Result<SafeJson, ApiError> {
    let storage = storage(&shared)?;
    let query = parse_query(raw.as_deref())?;
    let lines = storage.query(query).await?;
    let stats = storage.stats();
    Ok(SafeJson(serde_json::json!({
        "lines": lines.iter().map(LogRecord::to_json).collect::<Vec<_>>(),
        "stats": {
            "stored": stats.stored,
            "appended": stats.appended,
            "dropped": stats.dropped,
            "pending": stats.pending,
            "written": stats.written,
            "refused": stats.refused,
        },
    })))
}

/// `GET {prefix}/api/logs/events`: the lines after `after` (or
/// `Last-Event-ID`) that match the filters, oldest first, as `log` events;
/// then each new one as it arrives.
pub(crate) async fn events<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut query = match storage(&shared).and_then(|_| parse_query(raw.as_deref())) {
        Ok(query) => query,
        Err(err) => return err.into_response(),
    };
    if let Some(resume) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        match resume.parse() {
            Ok(id) => query.after_id = Some(id),
            Err(_) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "`Last-Event-ID` is not a line id")
                    .into_response();
            }
        }
    }
    if query.after_id.is_none() {
        query.after_id = Some(latest_id(&shared).await);
    }
    query.limit = 500;
    let zone = Zone::of(&shared.settings.time_zone);
    Sse::new(tail(shared, query, zone, links.0))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn tail<C: DashboardConfig>(
    shared: Shared<C>,
    query: LogQuery,
    zone: Zone,
    base: String,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let state = (
        shared,
        query,
        std::collections::VecDeque::<LogRecord>::new(),
    );
    futures::stream::unfold(state, move |(shared, mut query, mut pending)| {
        let base = base.clone();
        async move {
            loop {
                if let Some(line) = pending.pop_front() {
                    query.after_id = Some(line.id);
                    let data =
                        crate::dashboard::api::safe_json_text(&line_json(&line, zone, &base));
                    let event = Event::default()
                        .event("log")
                        .id(line.id.to_string())
                        .data(data);
                    return Some((Ok(event), (shared, query, pending)));
                }
                let storage = shared.logs.as_ref()?;
                match storage.query(query.clone()).await {
                    // Newest first from the storage; sent oldest first.
                    Ok(lines) if !lines.is_empty() => pending.extend(lines.into_iter().rev()),
                    Ok(_) => tokio::time::sleep(TAIL_POLL).await,
                    Err(err) => {
                        tracing::warn!(error = %err, "tasktrail dashboard: the log tail failed to read");
                        tokio::time::sleep(TAIL_POLL * 10).await;
                    }
                }
            }
        }
    })
}
