//! The HTML pages (askama templates in `runtime/templates/`, every value
//! escaped) and the embedded assets.

use askama::Template;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::config::{Role, TrackingConfig, column_value};
use crate::dashboard::api::{ApiError, find_run, query_pairs, value_json};
use crate::dashboard::query::{ListQuery, filter_fields, list};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

/// What every page's frame shows.
pub(crate) struct Layout {
    pub(crate) title: String,
    pub(crate) header_title: String,
    pub(crate) description: String,
    pub(crate) prefix: String,
    pub(crate) poll_ms: u128,
    pub(crate) key_field: &'static str,
    pub(crate) actions: ActionsView,
    /// Whether the dashboard has a log storage (a Logs page).
    pub(crate) logs: bool,
    /// Who is looking: name and role, when the dashboard has users.
    pub(crate) user: Option<(String, &'static str)>,
    /// The session's CSRF token, sent back by htmx and the logout form.
    pub(crate) csrf: String,
    /// Whether to show the logout button.
    pub(crate) logout: bool,
    /// The time zone every shown time is in (`UTC`, `UTC+02:00`, …).
    pub(crate) zone: String,
}

/// Which action buttons the pages show.
pub(crate) struct ActionsView {
    pub(crate) cancel: bool,
    pub(crate) retry: bool,
    pub(crate) delete: bool,
    pub(crate) any: bool,
}

impl Layout {
    pub(crate) fn of<C: DashboardConfig>(
        shared: &Shared<C>,
        links: &LinkBase,
        identity: &crate::auth::Identity,
    ) -> Self {
        let s = &shared.settings;
        Layout {
            title: s.title.clone(),
            header_title: s.header_title.clone(),
            description: s.description.clone(),
            prefix: links.0.clone(),
            poll_ms: s.poll_interval.as_millis(),
            key_field: C::Model::field(Role::Key).map_or("", |f| f.field),
            logs: shared.logs.is_some(),
            user: identity
                .user
                .as_ref()
                .map(|u| (u.name.clone(), u.role.as_str())),
            csrf: identity.csrf.clone().unwrap_or_default(),
            logout: identity.logs_in,
            zone: Zone::of(&s.time_zone).label(),
            actions: {
                let on = !s.read_only && identity.role.may_act();
                let (cancel, retry, delete) = (
                    on && s.actions.cancel,
                    on && s.actions.retry,
                    on && s.actions.delete,
                );
                ActionsView {
                    cancel,
                    retry,
                    delete,
                    any: cancel || retry || delete,
                }
            },
        }
    }
}

/// The prefix as links use it: `""` for `/`.
fn prefix(url_prefix: &str) -> String {
    url_prefix.trim_end_matches('/').to_owned()
}

/// Where the dashboard's links point: its prefix, behind the prefix a
/// trusted reverse proxy announced with `X-Forwarded-Prefix`.
#[derive(Clone, Debug)]
pub(crate) struct LinkBase(pub String);

impl LinkBase {
    /// The links for a request from `peer` with `headers`.
    pub(crate) fn of(
        url_prefix: &str,
        trusted: &[std::net::IpAddr],
        peer: Option<std::net::IpAddr>,
        headers: &HeaderMap,
    ) -> LinkBase {
        let own = prefix(url_prefix);
        let forwarded = peer
            .filter(|ip| trusted.contains(ip))
            .and_then(|_| headers.get("x-forwarded-prefix"))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|p| crate::dashboard::check_prefix(p).is_ok());
        match forwarded {
            Some(outer) => LinkBase(format!("{}{own}", prefix(outer))),
            None => LinkBase(own),
        }
    }
}

pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "tasktrail dashboard: a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// A page-level error: the API's message as a plain page.
fn error_page(err: ApiError) -> Response {
    err.into_plain_response()
}

struct StatusCount {
    status: &'static str,
    label: &'static str,
    count: u64,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    counts: Vec<StatusCount>,
    total: u64,
    success_rate: Option<String>,
    /// The list filtered by one status, without the status: `…/runs?status=`.
    status_href: Option<String>,
    /// p50, p95 and over how many runs.
    durations: Option<(String, String, usize)>,
    chart: Option<crate::dashboard::stats::Chart>,
    running: Vec<Row>,
    running_columns: Vec<&'static str>,
    /// The task kinds and the stuck runs.
    kinds: crate::dashboard::kind_pages::OverviewKinds,
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Pending => "Pending",
        Status::InProgress => "In progress",
        Status::Success => "Succeeded",
        Status::Failed => "Failed",
        Status::Cancelled => "Cancelled",
        Status::Interrupted => "Interrupted",
        Status::Unknown => "Unknown",
    }
}

/// `GET {prefix}/`
pub(crate) async fn overview<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
) -> Response {
    let snapshot = match crate::dashboard::stats::snapshot(&shared).await {
        Ok(snapshot) => snapshot,
        Err(err) => return error_page(err.into()),
    };
    let running = match crate::dashboard::stats::running::<C::Model>(&shared, 20).await {
        Ok(rows) => rows,
        Err(err) => return error_page(err.into()),
    };
    let zone = Zone::of(&shared.settings.time_zone);
    let base = links.0.clone();
    let kinds = match crate::dashboard::kind_pages::overview_kinds(&shared, &base).await {
        Ok(kinds) => kinds,
        Err(err) => return error_page(err),
    };
    // Linked only when the list can filter by status.
    let status_field = C::Model::field(Role::Status).map(|f| f.field);
    let status_href = status_field
        .filter(|f| filter_fields::<C::Model>(&shared.settings).contains(f))
        .map(|f| format!("{base}/runs?{f}="));
    let running_fields: Vec<_> = [
        Role::Key,
        Role::Name,
        Role::Progress,
        Role::Message,
        Role::StartedAt,
    ]
    .into_iter()
    .filter_map(C::Model::field)
    .collect();
    render(&OverviewPage {
        kinds,
        layout: Layout::of(&shared, &links, &identity),
        counts: snapshot
            .counts
            .iter()
            .map(|(s, count)| StatusCount {
                status: s.as_str(),
                label: status_label(*s),
                count: *count,
            })
            .collect(),
        total: snapshot.total(),
        success_rate: snapshot
            .success_rate()
            .map(|r| format!("{:.1}%", r * 100.0)),
        status_href,
        durations: snapshot
            .durations
            .map(|(p50, p95, n)| (human_duration(p50), human_duration(p95), n)),
        chart: crate::dashboard::stats::chart(&snapshot.hourly, |t| zone.format(t, "%H:%M")),
        running_columns: running_fields.iter().map(|f| f.label).collect(),
        running: running
            .iter()
            .map(|row| table_row(row, &running_fields, &base, zone))
            .collect(),
    })
}

struct Column {
    label: &'static str,
    sort_href: String,
    arrow: &'static str,
}

struct Cell {
    text: String,
    class: String,
    field: &'static str,
    /// `status`, `progress` or `message`: cells live updates rewrite.
    kind: &'static str,
    number: f64,
}

struct Row {
    key: String,
    href: String,
    cells: Vec<Cell>,
    /// In progress and stuck (the list's badge).
    stuck: bool,
}

/// Which live-updated kind a field is, if any.
fn live_kind(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Status) => "status",
        Some(Role::Progress) => "progress",
        Some(Role::Message) => "message",
        _ => "",
    }
}

/// The percent a progress text such as `40%` shows; 0 for any other
/// field (the page draws a bar for progress cells only).
fn percent(role: Option<Role>, text: &str) -> f64 {
    if role != Some(Role::Progress) {
        return 0.0;
    }
    text.trim_end_matches('%').trim().parse().unwrap_or(0.0)
}

/// A fractional percent as `{x:.0}%` writes it (ties to even), without
/// the exact float formatting (its slow path) for the usual 0 – 100.
fn whole_percent(x: f64) -> String {
    if x.is_sign_positive() && x < 1e15 {
        format!("{}%", x.round_ties_even() as i64)
    } else {
        format!("{x:.0}%")
    }
}

struct FilterOption {
    value: String,
    selected: bool,
    count: Option<u64>,
}

struct FilterView {
    field: &'static str,
    label: &'static str,
    value: String,
    options: Vec<FilterOption>,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    layout: Layout,
    search: String,
    /// What the search read, and whether only part of the runs.
    search_note: Option<(String, bool)>,
    /// `50+ runs`, or the count when this is the last page: never counted
    /// past the page.
    shown: String,
    time: Option<TimeView>,
    filters: Vec<FilterView>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    next_href: Option<String>,
    /// The `sort` parameter the filter form keeps.
    sort: Option<String>,
    /// Whether any filter or search is applied.
    filtered: bool,
    /// The filters and search as a query string, for "every run matching".
    filter_state: String,
    /// Whether this is a page after the first.
    after: bool,
    first_href: String,
    /// The list's state as a query string, for the export links.
    export_query: String,
    /// Only stuck runs are listed (`stuck=true`).
    stuck_only: bool,
}

/// The time-range part of the filter form.
struct TimeView {
    /// The field's label.
    label: &'static str,
    /// The preset chosen: `""` (any time), `1h`, `24h`, `7d`, or `custom`.
    since: String,
    from: String,
    to: String,
    /// The zone custom times are read in.
    zone: String,
}

impl TimeView {
    fn of<M: TrackingConfig>(
        query: &ListQuery,
        field: Option<&'static str>,
        zone: Zone,
    ) -> Option<Self> {
        let field = M::FIELDS.iter().find(|f| Some(f.field) == field)?;
        let range = query.time.as_ref();
        Some(TimeView {
            label: field.label,
            since: range
                .and_then(|r| r.since.clone())
                .or_else(|| {
                    range
                        .filter(|r| r.from_text.is_some() || r.to_text.is_some())
                        .map(|_| "custom".to_owned())
                })
                .unwrap_or_default(),
            from: range.and_then(|r| r.from_text.clone()).unwrap_or_default(),
            to: range.and_then(|r| r.to_text.clone()).unwrap_or_default(),
            zone: zone.label(),
        })
    }
}

/// The list's columns: the configured fields, or the mapped roles' fields.
fn column_fields<M: TrackingConfig>(
    columns: &[String],
) -> Vec<&'static crate::config::FieldInfo<crate::config::ColumnOf<M>>> {
    if columns.is_empty() {
        [
            Role::Key,
            Role::Name,
            Role::Status,
            Role::Progress,
            Role::User,
            Role::CreatedAt,
        ]
        .into_iter()
        .filter_map(M::field)
        .collect()
    } else {
        columns
            .iter()
            .filter_map(|c| M::FIELDS.iter().find(|f| f.field == c))
            .collect()
    }
}

/// `text` as one URL path segment: everything but RFC 3986's unreserved
/// characters percent-encoded (so `/`, `?`, `#`, `+` and spaces survive).
pub(crate) fn path_segment(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, SEGMENT).to_string()
}

fn url(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

/// `2026-12-06 21:04:05` (or with `T` between date and time): the digits
/// of a wall-clock time to the second, without a format pattern.
pub(crate) struct DateTimeText(pub chrono::NaiveDateTime, pub u8);

impl DateTimeText {
    /// The 19 bytes, for a year of four digits (`None` otherwise): written
    /// into a buffer and handed on in one piece, for each `{:02}` through
    /// the formatter was most of a JSON page's time columns.
    pub(crate) fn bytes(&self) -> Option<[u8; 19]> {
        use chrono::{Datelike as _, Timelike as _};
        let t = self.0;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = *b"0000-00-00 00:00:00";
        let two = |out: &mut [u8; 19], at: usize, n: u32| {
            out[at] = b'0' + (n / 10) as u8;
            out[at + 1] = b'0' + (n % 10) as u8;
        };
        two(&mut out, 0, year / 100);
        two(&mut out, 2, year % 100);
        two(&mut out, 5, t.month());
        two(&mut out, 8, t.day());
        out[10] = self.1;
        two(&mut out, 11, t.hour());
        two(&mut out, 14, t.minute());
        two(&mut out, 17, t.second());
        Some(out)
    }
}

impl std::fmt::Display for DateTimeText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(bytes) = self.bytes() {
            // ASCII digits and separators only.
            return f.write_str(std::str::from_utf8(&bytes).map_err(|_| std::fmt::Error)?);
        }
        // Years outside 0 – 9999 as chrono writes them (`+12345`, `-0044`).
        let sep = char::from(self.1);
        write!(f, "{}", self.0.format(&format!("%Y-%m-%d{sep}%H:%M:%S")))
    }
}

/// How times are shown: `UTC`, the server's local zone, or a fixed offset.
#[derive(Clone, Copy)]
pub(crate) enum Zone {
    Utc,
    Local,
    Fixed(chrono::FixedOffset),
}

impl Zone {
    pub(crate) fn of(name: &str) -> Zone {
        match name {
            "local" => Zone::Local,
            "UTC" => Zone::Utc,
            offset => offset
                .parse::<chrono::FixedOffset>()
                .map_or(Zone::Utc, Zone::Fixed),
        }
    }

    /// A wall-clock time in this zone as UTC; `None` when the time does
    /// not exist there (skipped by a change to summer time).
    pub(crate) fn to_utc(self, t: chrono::NaiveDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::TimeZone as _;
        match self {
            Zone::Utc => Some(t.and_utc()),
            Zone::Local => chrono::Local
                .from_local_datetime(&t)
                .earliest()
                .map(|t| t.to_utc()),
            Zone::Fixed(offset) => offset.from_local_datetime(&t).single().map(|t| t.to_utc()),
        }
    }

    /// How the pages name the zone: `UTC`, `UTC+02:00`, or the server's
    /// local zone with its current offset.
    pub(crate) fn label(self) -> String {
        match self {
            Zone::Utc => "UTC".to_owned(),
            Zone::Local => format!("local time (UTC{})", chrono::Local::now().format("%:z")),
            Zone::Fixed(offset) => format!("UTC{offset}"),
        }
    }

    /// `t` as this zone's wall clock.
    fn wall(self, t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Local => t.with_timezone(&chrono::Local).naive_local(),
            Zone::Fixed(offset) => t.with_timezone(&offset).naive_local(),
        }
    }

    /// `2026-12-06 21:04:05`: written field by field, for this is every
    /// time cell of every page (chrono's `format` parses its pattern
    /// again for each value).
    pub(crate) fn show(self, t: chrono::DateTime<chrono::Utc>) -> String {
        DateTimeText(self.wall(t), b' ').to_string()
    }

    /// With milliseconds, for log lines.
    pub(crate) fn show_precise(self, t: chrono::DateTime<chrono::Utc>) -> String {
        use chrono::Timelike as _;
        let w = self.wall(t);
        // A leap second's nanoseconds run past 1,000,000,000.
        let millis = (w.nanosecond() / 1_000_000).min(999);
        format!("{}.{millis:03}", DateTimeText(w, b' '))
    }

    pub(crate) fn format(self, t: chrono::DateTime<chrono::Utc>, format: &str) -> String {
        match self {
            Zone::Utc => t.format(format).to_string(),
            Zone::Local => t.with_timezone(&chrono::Local).format(format).to_string(),
            Zone::Fixed(offset) => t.with_timezone(&offset).format(format).to_string(),
        }
    }
}

/// A value as the page shows it, and whether it is formatted JSON.
fn display<M: TrackingConfig>(
    row: &M,
    field: &crate::config::FieldInfo<crate::config::ColumnOf<M>>,
    zone: Zone,
) -> (String, bool) {
    use sea_orm::Value as V;
    let value = column_value::<M::Entity>(row, field.column);
    if field.role == Some(Role::Status) {
        let status = M::decode_status(value).map_or("unknown", |s| s.as_str());
        return (status.to_owned(), false);
    }
    if let Some(t) = crate::config::value_time(&value) {
        return (zone.show(t), false);
    }
    let json_text = matches!(field.role, Some(Role::Args | Role::Kwargs | Role::Result));
    match value {
        // Text is shown as it is (JSON kept as text, formatted, below).
        V::String(Some(s)) if !json_text => return (s, false),
        V::Float(Some(x)) if field.role == Some(Role::Progress) => {
            return (whole_percent(f64::from(x)), false);
        }
        V::Double(Some(x)) if field.role == Some(Role::Progress) => {
            return (whole_percent(x), false);
        }
        // An integer progress column holds the percent, rounded.
        V::SmallInt(Some(n)) if field.role == Some(Role::Progress) => {
            return (format!("{n}%"), false);
        }
        V::Int(Some(n)) if field.role == Some(Role::Progress) => {
            return (format!("{n}%"), false);
        }
        V::BigInt(Some(n)) if field.role == Some(Role::Progress) => {
            return (format!("{n}%"), false);
        }
        _ => {}
    }
    match value_json(&value) {
        serde_json::Value::Null => (String::new(), false),
        serde_json::Value::String(s) => {
            // JSON kept as text is shown formatted.
            if json_text && let Ok(json) = serde_json::from_str::<serde_json::Value>(&s) {
                return (serde_json::to_string_pretty(&json).unwrap_or(s), true);
            }
            (s, false)
        }
        json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)) => (
            serde_json::to_string_pretty(&json).unwrap_or_default(),
            true,
        ),
        other => (other.to_string(), false),
    }
}

/// A run as a table row of `fields`, linking to its page.
fn table_row<M: TrackingConfig>(
    row: &M,
    fields: &[&'static crate::config::FieldInfo<crate::config::ColumnOf<M>>],
    base: &str,
    zone: Zone,
) -> Row {
    let key_field = M::field(Role::Key).expect("a key is mapped");
    let (key, _) = display(row, key_field, zone);
    Row {
        href: format!("{base}/runs/{}", path_segment(&key)),
        stuck: false,
        key,
        cells: fields
            .iter()
            .map(|f| {
                let (text, _) = display(row, f, zone);
                let class = if f.role == Some(Role::Status) {
                    format!("status status-{text}")
                } else {
                    String::new()
                };
                Cell {
                    number: percent(f.role, &text),
                    text,
                    class,
                    field: f.field,
                    kind: live_kind(f.role),
                }
            })
            .collect(),
    }
}

/// `GET {prefix}/runs`
pub(crate) async fn runs<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    RawQuery(raw): RawQuery,
) -> Response {
    let settings = &shared.settings;
    let pairs = query_pairs(raw.as_deref());
    // An empty value from the filter form means "any".
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, v)| !(v.is_empty() && k != "q"))
        .collect();
    // The form's time preset: "from – to" means the two times; any other
    // preset wins over times left in the form.
    let preset = pairs
        .iter()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.clone());
    let pairs: Vec<(String, String)> = match preset.as_deref() {
        Some("custom") => pairs.into_iter().filter(|(k, _)| k != "since").collect(),
        Some(_) => pairs
            .into_iter()
            .filter(|(k, _)| k != "from" && k != "to")
            .collect(),
        None => pairs,
    };
    let mut query = match ListQuery::parse::<C::Model>(settings, &pairs) {
        Ok(q) => q,
        Err(err) => return error_page(err.into()),
    };
    if let Err(err) = query
        .plan::<C::Model>(shared.tracker.db(), settings, &shared.search)
        .await
    {
        return error_page(err.into());
    }
    let stuck = match crate::dashboard::kinds::stuck_runs(&shared).await {
        Ok(stuck) => stuck,
        Err(err) => return error_page(err.into()),
    };
    if query.stuck {
        query.keys = Some(stuck.keys.clone());
    }
    let fields = column_fields::<C::Model>(&settings.columns);
    query.reads = Some(fields.iter().map(|f| f.field).collect());
    let page = match list::<C::Model>(shared.tracker.db(), settings, &query).await {
        Ok(page) => page,
        Err(err) => return error_page(err.into()),
    };
    let counts = match crate::dashboard::stats::snapshot(&shared).await {
        Ok(snapshot) => snapshot.counts.clone(),
        Err(err) => return error_page(err.into()),
    };
    let base = links.0.clone();
    let list_path = format!("{base}/runs");
    let state = query.to_pairs();
    let sort = pairs
        .iter()
        .find(|(k, _)| k == "sort")
        .map(|(_, v)| v.clone());
    let filtered = !query.filters.is_empty() || query.search.is_some() || query.time.is_some();
    let filter_state = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in state.iter().filter(|(k, _)| k != "sort") {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let first_href = url(&list_path, &state);
    let export_query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &state {
            q.append_pair(k, v);
        }
        q.finish()
    };

    let zone = Zone::of(&settings.time_zone);
    let columns = fields
        .iter()
        .map(|f| {
            let current = query.sort == f.field;
            let descending = current && !query.descending;
            let mut pairs: Vec<(String, String)> =
                state.iter().filter(|(k, _)| k != "sort").cloned().collect();
            let sign = if descending { "-" } else { "" };
            pairs.push(("sort".into(), format!("{sign}{}", f.field)));
            Column {
                label: f.label,
                sort_href: url(&list_path, &pairs),
                arrow: match (current, query.descending) {
                    (true, true) => " ↓",
                    (true, false) => " ↑",
                    _ => "",
                },
            }
        })
        .collect();
    let rows = page
        .rows
        .iter()
        .map(|row| {
            let mut row = table_row(row, &fields, &base, zone);
            row.stuck = stuck.contains(&row.key);
            row
        })
        .collect();
    let time_field = crate::dashboard::query::time_field::<C::Model>(settings);
    let filters = filter_fields::<C::Model>(settings)
        .into_iter()
        .filter(|name| Some(*name) != time_field)
        .filter_map(|name| C::Model::FIELDS.iter().find(|f| f.field == name))
        .map(|f| {
            let chosen: Vec<&String> = query
                .filters
                .iter()
                .filter(|flt| flt.field == f.field)
                .flat_map(|flt| &flt.values)
                .collect();
            let options = if f.role == Some(Role::Status) {
                counts
                    .iter()
                    .map(|(s, n)| FilterOption {
                        value: s.as_str().to_owned(),
                        selected: chosen.iter().any(|c| c.as_str() == s.as_str()),
                        count: Some(*n),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            FilterView {
                field: f.field,
                label: f.label,
                value: chosen.first().map(|s| s.to_string()).unwrap_or_default(),
                options,
            }
        })
        .collect();
    let rows_len = page.rows.len();
    let page_has_more = page.next.is_some();
    let next_href = page.next.map(|next| {
        let mut pairs = state.clone();
        pairs.push(("after".into(), next));
        url(&list_path, &pairs)
    });
    let search_note = match (&query.search, &query.route) {
        (Some(term), Some(route)) => Some((route.note(term), route.bounded())),
        _ => None,
    };
    let shown = if page_has_more {
        format!("{}+ runs", rows_len)
    } else {
        format!("{rows_len} run{}", if rows_len == 1 { "" } else { "s" })
    };
    let time = TimeView::of::<C::Model>(&query, time_field, zone);
    render(&RunsPage {
        layout: Layout::of(&shared, &links, &identity),
        search: query.search.clone().unwrap_or_default(),
        search_note,
        shown,
        time,
        filters,
        columns,
        rows,
        next_href,
        sort,
        filtered,
        filter_state,
        after: query.after.is_some(),
        first_href,
        export_query,
        stuck_only: query.stuck,
    })
}

struct TimelineItem {
    label: &'static str,
    at: String,
    /// Time since the run was created.
    after: Option<String>,
}

/// A duration as people read it: `850 ms`, `12.4 s`, `3 min 20 s`, `2 h 5 min`.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3_600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3_600, s / 60 % 60)
    }
}

/// The run's timestamps in order, each with the time since creation.
fn timeline<M: TrackingConfig>(row: &M, zone: Zone) -> Vec<TimelineItem> {
    let mut items: Vec<(&'static str, chrono::DateTime<chrono::Utc>)> = [
        (Role::CreatedAt, "Created"),
        (Role::StartedAt, "Started"),
        (Role::CompletedAt, "Completed"),
        (Role::FailedAt, "Failed"),
        (Role::UpdatedAt, "Last written"),
    ]
    .into_iter()
    .filter_map(|(role, label)| {
        let field = M::field(role)?;
        let at = crate::config::value_time(&column_value::<M::Entity>(row, field.column))?;
        Some((label, at))
    })
    .collect();
    items.sort_by_key(|(_, at)| *at);
    let start = items.first().map(|(_, at)| *at);
    items
        .into_iter()
        .map(|(label, at)| TimelineItem {
            label,
            at: zone.show(at),
            after: start
                .and_then(|s| (at - s).to_std().ok())
                .filter(|d| !d.is_zero())
                .map(human_duration),
        })
        .collect()
}

struct FieldView {
    label: &'static str,
    field: &'static str,
    text: String,
    json: bool,
    kind: &'static str,
    number: f64,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    key: String,
    status: String,
    status_field: &'static str,
    fields: Vec<FieldView>,
    /// `{prefix}/runs/{key}`, where the action buttons post.
    action_base: String,
    /// Whether the run has ended (which buttons apply).
    ended: bool,
    timeline: Vec<TimelineItem>,
    /// The run's newest log lines and the live tail's URL, when the
    /// dashboard has a log storage.
    logs: Option<(Vec<crate::dashboard::log_pages::LineView>, String)>,
    /// What was done to the run from the dashboard, newest first.
    audit: Vec<AuditView>,
    /// Its changes from the feed, oldest first.
    history: Vec<HistoryView>,
    /// Its spans as a waterfall, with its log lines on them.
    trace: crate::dashboard::trace::TraceView,
    /// Why the run looks stuck, if it is in progress and does.
    stuck: Option<String>,
}

/// One change of the run, as its history shows it.
struct HistoryView {
    at: String,
    kind: String,
    /// The status once it was written.
    status: String,
    /// The lifecycle rules kept the status (an event after the run ended).
    ignored: bool,
    actor: String,
    instance: String,
}

/// The run's changes with the status each left, replaying the lifecycle
/// rules the upsert applies (the feed holds the events, not the rows).
fn history(changes: Vec<crate::feed::ChangeRow>, zone: Zone) -> Vec<HistoryView> {
    let mut current: Option<Status> = None;
    changes
        .into_iter()
        .map(|c| {
            let target = match c.kind.as_str() {
                "create" => Some(Status::Pending),
                "start" | "progress" => Some(Status::InProgress),
                "complete" => Some(Status::Success),
                "fail" => Some(Status::Failed),
                "cancel" => Some(Status::Cancelled),
                "interrupt" => Some(Status::Interrupted),
                _ => None,
            };
            let mut ignored = false;
            match (target, c.kind.as_str()) {
                (_, "delete") => current = None,
                (Some(to), _) => {
                    if current.is_none_or(|from| !to.blocked_from().contains(&from)) {
                        current = Some(to);
                    } else {
                        // A late `create` fills in what is missing: no
                        // refusal to show.
                        ignored = to != Status::Pending;
                    }
                }
                _ => {}
            }
            HistoryView {
                at: chrono::DateTime::from_timestamp_millis(c.at_ms)
                    .map(|t| zone.show_precise(t))
                    .unwrap_or_default(),
                status: if c.kind == "delete" {
                    "deleted".to_owned()
                } else {
                    current.map(|s| s.as_str().to_owned()).unwrap_or_default()
                },
                kind: c.kind,
                ignored,
                actor: c.actor.unwrap_or_default(),
                instance: c.instance.unwrap_or_default(),
            }
        })
        .collect()
}

/// One audit entry as the run page shows it.
struct AuditView {
    at: String,
    user: String,
    action: String,
    outcome: String,
    detail: String,
}

/// `GET {prefix}/runs/{key}`
pub(crate) async fn run<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(key): Path<String>,
) -> Response {
    let row = match find_run::<C::Model>(&shared, &key).await {
        Ok(row) => row,
        Err(err) => return error_page(err),
    };
    let status_field = C::Model::field(Role::Status).expect("a status is mapped");
    let zone = Zone::of(&shared.settings.time_zone);
    let (status, _) = display(&row, status_field, zone);
    let fields = C::Model::FIELDS
        .iter()
        .map(|f| {
            let (text, json) = display(&row, f, zone);
            FieldView {
                label: f.label,
                field: f.field,
                number: percent(f.role, &text),
                kind: if json { "" } else { live_kind(f.role) },
                text,
                json,
            }
        })
        .collect();
    let key_path = path_segment(&key);
    let logs = match &shared.logs {
        Some(storage) => {
            let query = crate::logs::LogQuery::new().run(key.clone()).limit(200);
            let lines = storage.query(query.clone()).await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "tasktrail dashboard: the log storage failed");
                Vec::new()
            });
            let after = match lines.first() {
                Some(line) => line.id,
                None => crate::dashboard::log_pages::latest_id(&shared).await,
            };
            let tail = crate::dashboard::log_pages::tail_url(&links.0, &query, after);
            let lines = lines
                .iter()
                .map(|l| crate::dashboard::log_pages::line_view(l, zone, &links.0))
                .collect();
            Some((lines, tail))
        }
        None => None,
    };
    let audit = crate::auth::audit::for_target(shared.tracker.db(), &key, 50)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "tasktrail dashboard: the audit trail could not be read");
            Vec::new()
        })
        .into_iter()
        .map(|e| AuditView {
            at: chrono::DateTime::from_timestamp_millis(e.at_ms)
                .map(|t| zone.show(t))
                .unwrap_or_default(),
            user: e.user_name,
            action: e.action,
            outcome: e.outcome,
            detail: e.detail,
        })
        .collect();
    let history = crate::feed::of_run(
        shared.tracker.db(),
        &shared.tracker.inner().scope,
        &key,
        200,
    )
    .await
    .map(|changes| history(changes, zone))
    .unwrap_or_else(|err| {
        tracing::warn!(error = %err, "tasktrail dashboard: the run's changes could not be read");
        Vec::new()
    });
    let trace = crate::dashboard::trace::view(&shared, &row, &key, zone, &links.0).await;
    let stuck = crate::dashboard::kinds::row_stuck(&shared, &row, chrono::Utc::now())
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "tasktrail dashboard: the run's kind could not be read");
            None
        });
    render(&RunPage {
        stuck,
        audit,
        history,
        logs,
        trace,
        layout: Layout::of(&shared, &links, &identity),
        action_base: format!("{}/runs/{key_path}", links.0),
        ended: crate::dashboard::actions::status_of(&row).is_some_and(|s| s.is_terminal()),
        timeline: timeline(&row, zone),
        key,
        status,
        status_field: status_field.field,
        fields,
    })
}

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");
const HTMX_JS: &str = include_str!("../../assets/htmx.min.js");
const ICON_SVG: &str = include_str!("../../assets/icon.svg");

/// `GET {prefix}/assets/icon.svg`: the pages' icon.
pub(crate) async fn icon_svg(headers: HeaderMap) -> Response {
    asset(&headers, "image/svg+xml", ICON_SVG.to_owned())
}

/// `GET {prefix}/assets/htmx.min.js`: htmx 2, embedded.
pub(crate) async fn htmx_js(headers: HeaderMap) -> Response {
    asset(
        &headers,
        "text/javascript; charset=utf-8",
        HTMX_JS.to_owned(),
    )
}

/// `GET {prefix}/assets/app.js`
pub(crate) async fn app_js(headers: HeaderMap) -> Response {
    asset(
        &headers,
        "text/javascript; charset=utf-8",
        APP_JS.to_owned(),
    )
}

/// Serves `body` with a content-hash ETag; a matching `If-None-Match` gets
/// 304.
pub(crate) fn asset(headers: &HeaderMap, content_type: &'static str, body: String) -> Response {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a valid header"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, must-revalidate"),
    );
    response
}

/// `GET {prefix}/assets/app.css`
pub(crate) async fn app_css(headers: HeaderMap) -> Response {
    asset(&headers, "text/css; charset=utf-8", APP_CSS.to_owned())
}

/// `GET {prefix}/assets/theme.css`: the accent colour (checked to be
/// `#rgb` / `#rrggbb`) and the colours derived from it for both themes
/// (see [`theme`](crate::dashboard::theme)), so that no page needs an
/// inline style.
pub(crate) async fn theme_css<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    headers: HeaderMap,
) -> Response {
    let colour = &shared.settings.accent_colour;
    let colour = if crate::dashboard::check_colour(colour).is_ok() {
        colour.as_str()
    } else {
        "#2563eb"
    };
    asset(
        &headers,
        "text/css; charset=utf-8",
        crate::dashboard::theme::css(colour),
    )
}

#[cfg(test)]
mod tests {
    use super::Zone;
    use chrono::TimeZone as _;

    #[test]
    fn whole_percent_writes_what_the_float_format_writes() {
        let mut values = vec![
            0.0,
            0.5,
            1.5,
            2.5,
            49.5,
            50.5,
            99.5,
            100.0,
            0.499_999_999_999_999_94,
            33.333,
            66.6,
            1e14 + 0.5,
            1e15,
            1e300,
            -0.0,
            -0.4,
            -1.5,
            f64::NAN,
            f64::INFINITY,
        ];
        values.extend((0..=2000).map(|i| f64::from(i) / 20.0));
        for x in values {
            assert_eq!(super::whole_percent(x), format!("{x:.0}%"), "{x}");
        }
    }

    #[test]
    fn times_are_shown_as_chrono_formats_them() {
        let zones = [
            Zone::Utc,
            Zone::Local,
            Zone::of("+05:30"),
            Zone::of("-08:00"),
        ];
        let times = [
            chrono::Utc.with_ymd_and_hms(2026, 12, 6, 21, 4, 5).unwrap(),
            chrono::Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::milliseconds(7),
            chrono::Utc
                .with_ymd_and_hms(2024, 2, 29, 23, 59, 59)
                .unwrap()
                + chrono::Duration::microseconds(999_999),
            chrono::Utc.with_ymd_and_hms(12345, 6, 7, 8, 9, 10).unwrap(),
            chrono::Utc.with_ymd_and_hms(-44, 3, 15, 12, 0, 0).unwrap(),
            chrono::Utc
                .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .unwrap(),
        ];
        for zone in zones {
            for t in times {
                assert_eq!(zone.show(t), zone.format(t, "%Y-%m-%d %H:%M:%S"));
                assert_eq!(
                    zone.show_precise(t),
                    zone.format(t, "%Y-%m-%d %H:%M:%S%.3f")
                );
            }
        }
    }
}
