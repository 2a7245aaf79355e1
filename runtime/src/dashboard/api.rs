//! The JSON API: the runs list (the same filters and pagination as the
//! page), one run, and the overview's counts.

use std::borrow::Cow;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::{Map, Value as JsonValue, json};

use crate::config::{Encode, Role, TrackingConfig, column_value, find_one};
use crate::dashboard::query::{ListQuery, Page, QueryError, list, list_rows};
use crate::dashboard::run_rows::{self, RunRow};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

/// A JSON response with `<`, `>` and `&` written as `\u003c`, `\u003e`,
/// `\u0026` (they can only occur inside JSON strings, so the value is the
/// same), so that no run text can close a `<script>` or be sniffed as HTML.
pub(crate) struct SafeJson(pub JsonValue);

/// Escapes `<`, `>` and `&` as it writes JSON: in strings, and in raw JSON
/// kept as text (where they can only be inside strings too).
struct HtmlSafe;

impl HtmlSafe {
    fn write_safe<W: ?Sized + std::io::Write>(writer: &mut W, text: &str) -> std::io::Result<()> {
        let bytes = text.as_bytes();
        let mut start = 0;
        for i in memchr::memchr3_iter(b'<', b'>', b'&', bytes) {
            let escaped: &[u8] = match bytes[i] {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                _ => b"\\u0026",
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(escaped)?;
            start = i + 1;
        }
        writer.write_all(&bytes[start..])
    }
}

impl serde_json::ser::Formatter for HtmlSafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        Self::write_safe(writer, fragment)
    }

    fn write_raw_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        Self::write_safe(writer, fragment)
    }
}

/// `value` as JSON text with `<`, `>` and `&` escaped (see [`SafeJson`]),
/// in one pass.
pub(crate) fn safe_json_bytes(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, HtmlSafe);
    value
        .serialize(&mut serializer)
        .expect("JSON values always serialize");
    out
}

/// `value` as JSON text with `<`, `>` and `&` escaped (see [`SafeJson`]).
pub(crate) fn safe_json_text(value: &JsonValue) -> String {
    String::from_utf8(safe_json_bytes(value)).expect("serde_json writes UTF-8")
}

/// A response of `value` as safe JSON (see [`SafeJson`]).
pub(crate) fn safe_json_response(value: &impl serde::Serialize) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        safe_json_bytes(value),
    )
        .into_response()
}

impl IntoResponse for SafeJson {
    fn into_response(self) -> Response {
        safe_json_response(&self.0)
    }
}

/// A column value as JSON: timestamps in RFC 3339.
pub(crate) fn value_json(value: &sea_orm::Value) -> JsonValue {
    use sea_orm::Value as V;
    match value {
        V::ChronoDateTimeUtc(Some(t)) => JsonValue::String(t.to_rfc3339()),
        V::ChronoDateTimeWithTimeZone(Some(t)) => JsonValue::String(t.to_rfc3339()),
        V::ChronoDateTimeLocal(Some(t)) => JsonValue::String(t.to_rfc3339()),
        V::ChronoDateTime(Some(t)) => {
            JsonValue::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
        V::ChronoDate(Some(d)) => JsonValue::String(d.to_string()),
        V::ChronoTime(Some(t)) => JsonValue::String(t.to_string()),
        other => sea_orm::sea_query::sea_value_to_json_value(other),
    }
}

/// An API error: a status and a message, as `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl ApiError {
    /// The error as a plain-text page (for the HTML routes).
    pub(crate) fn into_plain_response(self) -> Response {
        let status = self.status;
        let mut response = (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            self.message,
        )
            .into_response();
        retry_after(status, &mut response);
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, err.to_string())
    }
}

/// A database error as an answer, classified by its backend
/// ([`crate::db_error`]): 503 only when the database is unreachable or busy;
/// 400 when it refused a value the request carried; 500 otherwise (the
/// schema does not match the entity, a permission: the server's log has the
/// detail). The database's own text is logged, never sent.
impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        if crate::db_error::is_transient(&err) {
            tracing::warn!(error = %err, "tasktrail dashboard: the database did not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the runs database did not answer; try again",
            )
        } else if crate::db_error::is_bad_value(&err) {
            tracing::info!(error = %err, "tasktrail dashboard: the database refused a value of the request");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request holds a value the runs database cannot compare or store",
            )
        } else {
            tracing::error!(error = %err, "tasktrail dashboard: the database refused a query");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the runs database refused the query; the server's log has the detail",
            )
        }
    }
}

/// How long a client should wait before trying again after a 503.
const RETRY_AFTER_SECONDS: u32 = 2;

/// A 503 tells the client when to try again.
fn retry_after(status: StatusCode, response: &mut Response) {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, SafeJson(json!({ "error": self.message }))).into_response();
        retry_after(status, &mut response);
        response
    }
}

/// The query string as decoded pairs; a malformed one is a 400.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// A run as JSON: every field of the model under its name.
pub(crate) fn run_json<M: TrackingConfig>(row: &M) -> JsonValue {
    serde_json::to_value(RunJson(row)).expect("a run always serializes")
}

/// A run serialized as JSON without building a [`JsonValue`] first (what
/// the list and the export write): every field of the model under its
/// name, the status as tasktrail's name whatever the column stores, JSON
/// kept as text written as JSON, times in RFC 3339.
pub(crate) struct RunJson<'a, M>(pub &'a M);

impl<M: TrackingConfig> serde::Serialize for RunJson<'_, M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_run::<M, S>(serializer, |index| {
            Cow::Owned(column_value::<M::Entity>(self.0, M::FIELDS[index].column))
        })
    }
}

/// A run read as one value ([`RunRow`]) serialized as [`RunJson`]
/// serializes its model.
pub(crate) struct RunRowJson<'a, M>(pub &'a RunRow, pub std::marker::PhantomData<M>);

impl<M: TrackingConfig> serde::Serialize for RunRowJson<'_, M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_run::<M, S>(serializer, |index| Cow::Borrowed(&self.0.values[index]))
    }
}

/// Writes a run: `value(i)` is the value of field `i` of `M::FIELDS`, as
/// sea-orm's `ModelTrait::get` gives it.
fn serialize_run<'v, M: TrackingConfig, S: serde::Serializer>(
    serializer: S,
    value: impl Fn(usize) -> Cow<'v, sea_orm::Value>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(M::FIELDS.len()))?;
    for (index, field) in M::FIELDS.iter().enumerate() {
        let value = value(index);
        match (field.role, value.as_ref()) {
            (Some(Role::Status), _) => match M::decode_status(value.as_ref().clone()) {
                Some(status) => map.serialize_entry(field.field, status.as_str())?,
                None => map.serialize_entry(field.field, &ColumnJson(&value))?,
            },
            (Some(Role::Args | Role::Kwargs | Role::Result), sea_orm::Value::String(Some(t))) => {
                match serde_json::from_str::<&serde_json::value::RawValue>(t) {
                    Ok(raw) => map.serialize_entry(field.field, raw)?,
                    Err(_) => map.serialize_entry(field.field, t.as_str())?,
                }
            }
            _ => map.serialize_entry(field.field, &ColumnJson(&value))?,
        }
    }
    map.end()
}

/// A column value serialized as [`value_json`] makes it, without the
/// intermediate value for the common types.
struct ColumnJson<'a>(&'a sea_orm::Value);

impl serde::Serialize for ColumnJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use sea_orm::Value as V;
        match self.0 {
            V::String(Some(s)) => serializer.serialize_str(s),
            V::Bool(Some(b)) => serializer.serialize_bool(*b),
            V::TinyInt(Some(n)) => serializer.serialize_i8(*n),
            V::SmallInt(Some(n)) => serializer.serialize_i16(*n),
            V::Int(Some(n)) => serializer.serialize_i32(*n),
            V::BigInt(Some(n)) => serializer.serialize_i64(*n),
            V::TinyUnsigned(Some(n)) => serializer.serialize_u8(*n),
            V::SmallUnsigned(Some(n)) => serializer.serialize_u16(*n),
            V::Unsigned(Some(n)) => serializer.serialize_u32(*n),
            V::BigUnsigned(Some(n)) => serializer.serialize_u64(*n),
            V::ChronoDateTimeUtc(Some(t)) => serializer.collect_str(&Rfc3339(*t)),
            V::Json(Some(json)) => json.serialize(serializer),
            value if *value == value.as_null() => serializer.serialize_unit(),
            other => value_json(other).serialize(serializer),
        }
    }
}

/// A time written as [`chrono::DateTime::to_rfc3339`] writes it, without
/// the `String`: the runs of a page have five times each.
pub(crate) struct Rfc3339(pub chrono::DateTime<chrono::Utc>);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::Timelike as _;
        let t = self.0.naive_utc();
        // A leap second is written as second 60 (the digits show 59).
        let (leap, nanos) = match t.nanosecond() {
            n if n >= 1_000_000_000 => (true, n - 1_000_000_000),
            n => (false, n),
        };
        let digits = crate::dashboard::pages::DateTimeText(t, b'T');
        let Some(date) = digits.bytes() else {
            // A year of more than four digits, or before year 0.
            return write!(f, "{}", self.0.to_rfc3339());
        };
        // Built in one buffer and written once: a page of runs has five
        // times each, and the formatter's padding per field cost more
        // than the rest of the JSON.
        let mut out = [0u8; 19 + 10 + 6];
        out[..19].copy_from_slice(&date);
        if leap {
            out[17..19].copy_from_slice(b"60");
        }
        let mut len = 19;
        // As many digits as the fraction needs, in groups of three.
        let (fraction, places) = match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
            n if n % 1_000 == 0 => (n / 1_000, 6),
            n => (n, 9),
        };
        if places > 0 {
            out[len] = b'.';
            let mut rest = fraction;
            for i in (0..places).rev() {
                out[len + 1 + i] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            len += 1 + places;
        }
        out[len..len + 6].copy_from_slice(b"+00:00");
        len += 6;
        f.write_str(std::str::from_utf8(&out[..len]).map_err(|_| std::fmt::Error)?)
    }
}

/// `GET {prefix}/api/runs`
pub(crate) async fn runs<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let settings = &shared.settings;
    let mut query = ListQuery::parse::<C::Model>(settings, &query_pairs(raw.as_deref()))?;
    query
        .plan::<C::Model>(shared.tracker.db(), settings, &shared.search)
        .await?;
    if query.stuck {
        query.keys = Some(
            crate::dashboard::kinds::stuck_runs(&shared)
                .await?
                .keys
                .clone(),
        );
    }
    let db = shared.tracker.db();
    /// The page, read as one value per run or through the model.
    enum Rows<M> {
        OneValue(Page<RunRow>),
        Models(Page<M>),
    }
    // On SQLite, each run as one value (see `run_rows`), unless a value
    // needs the model.
    let mut rows = None;
    if run_rows::readable::<C::Model>(db, &shared.run_rows) {
        let projection = run_rows::projection::<C::Model>();
        match list_rows::<C::Model, RunRow>(db, settings, &query, projection).await {
            Ok(page) => rows = Some(Rows::OneValue(page)),
            Err(err) if run_rows::falls_back(&err, &shared.run_rows) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let rows = match rows {
        Some(rows) => rows,
        None => Rows::Models(list::<C::Model>(db, settings, &query).await?),
    };
    let search = match (&query.search, &query.route) {
        (Some(term), Some(route)) => json!({
            "route": route.kind(),
            "bounded": route.bounded(),
            "note": route.note(term),
        }),
        _ => JsonValue::Null,
    };
    #[derive(serde::Serialize)]
    #[serde(bound = "R: serde::Serialize")]
    struct RunsPage<R> {
        runs: Vec<R>,
        next: Option<String>,
        limit: u64,
        search: JsonValue,
    }
    Ok(match rows {
        Rows::OneValue(page) => safe_json_response(&RunsPage {
            runs: page
                .rows
                .iter()
                .map(|row| RunRowJson::<C::Model>(row, std::marker::PhantomData))
                .collect(),
            next: page.next,
            limit: query.limit,
            search,
        }),
        Rows::Models(page) => safe_json_response(&RunsPage {
            runs: page.rows.iter().map(RunJson).collect(),
            next: page.next,
            limit: query.limit,
            search,
        }),
    })
}

/// `GET {prefix}/api/runs/{key}`
pub(crate) async fn run<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let row = find_run::<C::Model>(&shared, &key).await?;
    Ok(safe_json_response(&RunJson(&row)))
}

pub(crate) async fn find_run<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
    key: &str,
) -> Result<M, ApiError> {
    let (key_col, encode_key) = crate::config::key_encoder::<M>();
    let select = M::Entity::find().filter(key_col.eq(encode_key(key)));
    find_one(select, shared.tracker.db())
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run has the key `{key}`")))
}

/// `GET {prefix}/api/metrics`: runs per status.
pub(crate) async fn metrics<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
) -> Result<SafeJson, ApiError> {
    let snapshot = crate::dashboard::stats::snapshot(&shared).await?;
    let mut by_status = Map::new();
    for (status, n) in &snapshot.counts {
        by_status.insert(status.as_str().to_owned(), json!(n));
    }
    let durations = snapshot.durations.map(|(p50, p95, n)| {
        json!({ "p50_seconds": p50.as_secs_f64(), "p95_seconds": p95.as_secs_f64(), "runs": n })
    });
    let hourly: Vec<JsonValue> = snapshot
        .hourly
        .iter()
        .map(|h| {
            json!({
                "hour": h.start.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "runs": h.total,
                "failed": h.failed,
            })
        })
        .collect();
    Ok(SafeJson(json!({
        "total": snapshot.total(),
        "by_status": by_status,
        "success_rate": snapshot.success_rate(),
        "durations_24h": durations,
        "runs_per_hour_24h": hourly,
        "as_of": snapshot.as_of(),
        "age_seconds": snapshot.age().as_secs_f64(),
    })))
}

/// Runs per status (every status, zero included) and every run, from one
/// grouped query, so that a run changing status meanwhile is counted
/// exactly once. A run whose stored status means nothing to tasktrail (a
/// NULL, or a string another application wrote) counts in the second
/// number only.
pub(crate) async fn status_counts<M: TrackingConfig>(
    shared: &Shared<impl DashboardConfig<Model = M>>,
) -> Result<(Vec<(Status, u64)>, u64), DbErr> {
    use sea_orm::QuerySelect;
    let status_col = M::binding(Role::Status).expect("a status is mapped").column;
    let Some(Encode::Status(encode, _)) = M::binding(Role::Status).map(|b| b.encode) else {
        unreachable!("the status has a status encoder")
    };
    /// One group: the status as text (whatever the column's type) and its
    /// count.
    #[derive(sea_orm::FromQueryResult)]
    struct Group {
        status: Option<String>,
        n: i64,
    }
    // MySQL casts to `CHAR`, the others to `text`.
    let text = match shared.tracker.db().get_database_backend() {
        sea_orm::DbBackend::MySql => "char",
        _ => "text",
    };
    let select = M::Entity::find()
        .select_only()
        .column_as(Expr::col(status_col).cast_as(text), "status")
        // Every row, NULL statuses included (`COUNT(status)` skips them).
        .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "n")
        .group_by(status_col);
    let groups: Result<Vec<Group>, DbErr> =
        Box::pin(select.into_model::<Group>().all(shared.tracker.db())).await;
    let groups = groups?;
    let rows = groups.iter().map(|g| u64::try_from(g.n).unwrap_or(0)).sum();
    // Each status as the column stores it, as text, to match the groups.
    let counts = Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Unknown)
        .map(|status| {
            // An entity may store two statuses alike (say `interrupted` as
            // `error`): the rows count for the one the value reads back as.
            if M::decode_status(encode(status)) != Some(status) {
                return (status, 0);
            }
            let stored = match value_json(&encode(status)) {
                JsonValue::String(text) => text,
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

/// `GET {prefix}/metrics`: the overview's counts and the tracker's counters
/// in Prometheus' text format.
pub(crate) async fn prometheus<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    let snapshot = crate::dashboard::stats::snapshot(&shared).await?;
    let counts = &snapshot.counts;
    let table = {
        use sea_orm::EntityName;
        <C::Model as TrackingConfig>::Entity::default()
            .table_name()
            .to_owned()
    };
    let stats = shared.tracker.stats();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP tasktrail_runs Runs in the table, by status.");
    let _ = writeln!(out, "# TYPE tasktrail_runs gauge");
    for (status, n) in counts {
        let _ = writeln!(
            out,
            "tasktrail_runs{{table=\"{table}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tasktrail_runs_age_seconds How long ago the numbers of runs above were counted (they are cached for the dashboard's stats_max_age; while the database cannot be read, the last counted stay)."
    );
    let _ = writeln!(out, "# TYPE tasktrail_runs_age_seconds gauge");
    let _ = writeln!(
        out,
        "tasktrail_runs_age_seconds{{table=\"{table}\"}} {}",
        snapshot.age().as_secs_f64()
    );
    if let Some((p50, p95, _)) = snapshot.durations {
        let _ = writeln!(
            out,
            "# HELP tasktrail_run_duration_seconds Durations of the runs created in the last 24 hours that succeeded or failed."
        );
        let _ = writeln!(out, "# TYPE tasktrail_run_duration_seconds gauge");
        for (q, d) in [("0.5", p50), ("0.95", p95)] {
            let _ = writeln!(
                out,
                "tasktrail_run_duration_seconds{{table=\"{table}\",quantile=\"{q}\"}} {}",
                d.as_secs_f64()
            );
        }
    }
    for (name, kind, help, value) in [
        (
            "tasktrail_writes_total",
            "counter",
            "Lifecycle statements written.",
            stats.writes,
        ),
        (
            "tasktrail_write_errors_total",
            "counter",
            "Lifecycle statements that failed (each retry counts).",
            stats.write_errors,
        ),
        (
            "tasktrail_queued_total",
            "counter",
            "Events that went to the retry queue.",
            stats.queued,
        ),
        (
            "tasktrail_queue_length",
            "gauge",
            "Events waiting in the retry queue.",
            stats.queue_len,
        ),
        (
            "tasktrail_dropped_total",
            "counter",
            "Events dropped because the retry queue was full.",
            stats.dropped,
        ),
        (
            "tasktrail_refused_total",
            "counter",
            "Events refused (invalid, or refused by the database).",
            stats.refused,
        ),
        (
            "tasktrail_hook_errors_total",
            "counter",
            "Formatter and completion hooks that failed.",
            stats.hook_errors + stats.completion_hook_errors,
        ),
        (
            "tasktrail_running",
            "gauge",
            "Runs spawned by this instance that have not ended.",
            stats.running,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{table=\"{table}\"}} {value}");
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::{Rfc3339, safe_json_bytes};
    use chrono::TimeZone as _;

    #[test]
    fn times_are_written_as_chrono_writes_rfc3339() {
        let base = chrono::Utc.with_ymd_and_hms(2026, 12, 6, 21, 4, 5).unwrap();
        let mut times = vec![
            base,
            chrono::Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap(),
            base + chrono::Duration::milliseconds(120),
            base + chrono::Duration::microseconds(120_001),
            base + chrono::Duration::nanoseconds(7),
        ];
        // A leap second: 23:59:60.5.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        times.push(leap);
        // Years outside four digits take chrono's own path.
        times.push(chrono::Utc.with_ymd_and_hms(12345, 6, 7, 8, 9, 10).unwrap());
        times.push(chrono::Utc.with_ymd_and_hms(-44, 3, 15, 12, 0, 0).unwrap());
        times.push(chrono::Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap());
        times.push(
            chrono::Utc
                .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .unwrap(),
        );
        // Spread over centuries, with fractions of every precision.
        for i in 0..5_000_i64 {
            let fraction = match i % 4 {
                0 => 0,
                1 => (i * 7) % 1_000 * 1_000_000,
                2 => (i * 7_919) % 1_000_000 * 1_000,
                _ => (i * 104_729) % 1_000_000_000,
            };
            times.push(
                chrono::Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap()
                    + chrono::Duration::seconds(i * 1_299_827)
                    + chrono::Duration::nanoseconds(fraction),
            );
        }
        for t in times {
            assert_eq!(Rfc3339(t).to_string(), t.to_rfc3339());
        }
    }

    #[test]
    fn json_for_pages_escapes_markup_characters() {
        let text = "a<b>&c</script>é";
        let out = String::from_utf8(safe_json_bytes(&text)).unwrap();
        assert_eq!(out, r#""a\u003cb\u003e\u0026c\u003c/script\u003eé""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, text);
    }
}
