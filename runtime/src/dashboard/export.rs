//! The runs list as a file: every run matching the list's filters, as CSV
//! or as JSON lines, streamed page by page with the list's own keyset
//! pagination — no cap, and memory bounded by one page whatever the count.
//!
//! - `GET {prefix}/api/runs/export.csv?{list query}`
//! - `GET {prefix}/api/runs/export.jsonl?{list query}`
//!
//! The query is the list's (filters, `q`, `sort` and whatever else
//! [`ListQuery`] reads), without `after` and `limit`: an export starts at
//! the first run and ends at the last. Each run is what the JSON API shows
//! for it (`run_json`); CSV has one column per field, in the model's order,
//! a text cell that a spreadsheet would read as a formula (starting with
//! `=`, `+`, `-`, `@`, a tab or a carriage return) written with a leading
//! `'`.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as JsonValue;

use crate::config::TrackingConfig;
use crate::dashboard::api::{ApiError, RunJson, query_pairs, run_json, safe_json_bytes};
use crate::dashboard::query::{ListQuery, MAX_LIMIT, Page, list};
use crate::dashboard::{DashboardConfig, Shared};

/// The rows read per query (and written per chunk of the body).
const EXPORT_PAGE: u64 = MAX_LIMIT;

/// A file format of the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }
}

/// `GET {prefix}/api/runs/export.csv`
pub(crate) async fn csv<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    export(shared, raw.as_deref(), Format::Csv).await
}

/// `GET {prefix}/api/runs/export.jsonl`
pub(crate) async fn jsonl<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    export(shared, raw.as_deref(), Format::JsonLines).await
}

/// The list query of an export: the list's parameters (an empty value, as
/// the filter form sends for "any", is no filter), without `after` and
/// `limit`.
pub(crate) fn export_query<C: DashboardConfig>(
    shared: &Shared<C>,
    raw: Option<&str>,
) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(raw)
        .into_iter()
        .filter(|(k, v)| !(v.is_empty() && k != "q"))
        .collect();
    if let Some((k, _)) = pairs.iter().find(|(k, _)| k == "after" || k == "limit") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "query parameter `{k}`: an export takes every matching run from the first, so it takes no `{k}`"
            ),
        ));
    }
    let mut query = ListQuery::parse::<C::Model>(&shared.settings, &pairs)?;
    query.limit = EXPORT_PAGE;
    Ok(query)
}

/// Where the stream is.
struct Cursor<C: DashboardConfig> {
    shared: Shared<C>,
    query: ListQuery,
    format: Format,
    /// The page read but not yet written (the first one, read before
    /// answering so that its errors are a proper status).
    ready: Option<Page<C::Model>>,
    /// Whether the CSV header is still to write.
    header: bool,
    /// Whether the last page has been written (or an error ended it).
    done: bool,
}

async fn export<C: DashboardConfig>(
    shared: Shared<C>,
    raw: Option<&str>,
    format: Format,
) -> Result<Response, ApiError> {
    let query = export_query(&shared, raw)?;
    let first = list::<C::Model>(shared.tracker.db(), &shared.settings, &query).await?;
    let cursor = Cursor {
        shared,
        query,
        format,
        ready: Some(first),
        header: format == Format::Csv,
        done: false,
    };
    let stream = futures::stream::unfold(cursor, next_chunk::<C>);
    let file = format!(
        "runs-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The next chunk of the body: one page of runs, read with the list's
/// keyset pagination.
async fn next_chunk<C: DashboardConfig>(
    mut cursor: Cursor<C>,
) -> Option<(Result<Bytes, std::io::Error>, Cursor<C>)> {
    if cursor.done {
        return None;
    }
    let page = match cursor.ready.take() {
        Some(page) => page,
        None => {
            let read = list::<C::Model>(
                cursor.shared.tracker.db(),
                &cursor.shared.settings,
                &cursor.query,
            )
            .await;
            match read {
                Ok(page) => page,
                Err(err) => {
                    // The status is sent: the body ends early, which the
                    // client sees as a broken transfer.
                    tracing::error!(error = %err, "tasktrail dashboard: an export stopped: reading a page failed");
                    cursor.done = true;
                    return Some((
                        Err(std::io::Error::other("reading the runs failed")),
                        cursor,
                    ));
                }
            }
        }
    };
    let mut out = String::with_capacity(page.rows.len() * 256);
    if cursor.header {
        cursor.header = false;
        csv_header::<C::Model>(&mut out);
    }
    for row in &page.rows {
        match cursor.format {
            Format::Csv => csv_row::<C::Model>(&run_json::<C::Model>(row), &mut out),
            Format::JsonLines => {
                // Straight from the row, as the API's list writes it.
                let line = safe_json_bytes(&RunJson(row));
                out.push_str(std::str::from_utf8(&line).expect("serde_json writes UTF-8"));
                out.push('\n');
            }
        }
    }
    match page.next {
        Some(next) => cursor.query.after = Some(next),
        None => cursor.done = true,
    }
    Some((Ok(Bytes::from(out)), cursor))
}

fn csv_header<M: TrackingConfig>(out: &mut String) {
    for (i, field) in M::FIELDS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(&JsonValue::String(field.field.to_owned()), out);
    }
    out.push_str("\r\n");
}

fn csv_row<M: TrackingConfig>(json: &JsonValue, out: &mut String) {
    for (i, field) in M::FIELDS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(json.get(field.field).unwrap_or(&JsonValue::Null), out);
    }
    out.push_str("\r\n");
}

/// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line
/// break (quotes doubled); a text a spreadsheet would run as a formula
/// prefixed with `'`. NULL is an empty cell; JSON values their JSON text.
pub(crate) fn csv_cell(value: &JsonValue, out: &mut String) {
    let (text, is_text): (Cow<'_, str>, bool) = match value {
        JsonValue::Null => (Cow::Borrowed(""), false),
        JsonValue::String(s) => (Cow::Borrowed(s.as_str()), true),
        JsonValue::Number(n) => (Cow::Owned(n.to_string()), false),
        JsonValue::Bool(b) => (Cow::Borrowed(if *b { "true" } else { "false" }), false),
        other => (Cow::Owned(other.to_string()), true),
    };
    let formula = is_text && text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted =
        text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quoted {
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;
    use serde_json::json;

    fn cell(v: serde_json::Value) -> String {
        let mut out = String::new();
        csv_cell(&v, &mut out);
        out
    }

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell(json!("plain")), "plain");
        assert_eq!(cell(json!(null)), "");
        assert_eq!(cell(json!(-3)), "-3");
        assert_eq!(cell(json!(true)), "true");
        assert_eq!(cell(json!("a,b")), "\"a,b\"");
        assert_eq!(cell(json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(cell(json!("two\nlines")), "\"two\nlines\"");
        assert_eq!(cell(json!("=1+1")), "'=1+1");
        assert_eq!(cell(json!("+1")), "'+1");
        assert_eq!(cell(json!("-1")), "'-1");
        assert_eq!(cell(json!("@SUM(A1)")), "'@SUM(A1)");
        assert_eq!(
            cell(json!("=HYPERLINK(\"x\",\"y\")")),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(cell(json!({"a": [1, 2]})), "\"{\"\"a\"\":[1,2]}\"");
    }
}
