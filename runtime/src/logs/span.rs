//! What a recorded span is: the trace view's unit (a tracing span opened
//! inside a run, below the run's own span).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::logs::LogLevel;

/// The field of a captured log line that names the span it was emitted in
/// (the span's [`SpanRecord::id`] within its run), set by [`TaskLogLayer`]
/// for an event inside a recorded span; absent for an event directly in the
/// run's span. The log viewer hides it; the trace view places the line on
/// its span's row with it.
///
/// [`TaskLogLayer`]: crate::logs::TaskLogLayer
pub const SPAN_FIELD: &str = "tasktrail.span";

/// The most bytes of a span's fields kept (as their JSON text); further
/// fields are dropped and a `…` field with the count of dropped ones added.
pub const MAX_SPAN_FIELDS_BYTES: usize = 4_096;

/// One span opened inside a run: its place in the run's tree, its name and
/// fields, and when it opened and closed.
///
/// ```
/// use tasktrail::logs::SpanRecord;
/// let span = SpanRecord::new("run-1", 1, "fetch", chrono::Utc::now()).field("url", "https://example.com");
/// assert_eq!(span.parent, None);
/// assert!(span.end.is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpanRecord {
    /// The key of the run it was opened in.
    pub run_key: Arc<str>,
    /// Its number within the run, from 1, in the order spans opened.
    pub id: u64,
    /// The span it was opened in; `None` when directly under the run's span.
    pub parent: Option<u64>,
    /// The span's name.
    pub name: Cow<'static, str>,
    /// The span's target (usually its module path).
    pub target: Cow<'static, str>,
    /// The span's level.
    pub level: LogLevel,
    /// Its fields, in order, as the log lines' are (values recorded later
    /// with `Span::record` included); at most [`MAX_SPAN_FIELDS_BYTES`].
    pub fields: Vec<(Cow<'static, str>, serde_json::Value)>,
    /// When it was opened.
    pub start: DateTime<Utc>,
    /// When it closed; `None` when it was still open as its run ended.
    pub end: Option<DateTime<Utc>>,
}

impl SpanRecord {
    /// Span `id` of run `run_key`, named `name`, opened at `start`, directly
    /// under the run's span, still open, without fields.
    pub fn new(
        run_key: impl AsRef<str>,
        id: u64,
        name: impl Into<Cow<'static, str>>,
        start: DateTime<Utc>,
    ) -> Self {
        SpanRecord {
            run_key: Arc::from(run_key.as_ref()),
            id,
            parent: None,
            name: name.into(),
            target: Cow::Borrowed(""),
            level: LogLevel::Info,
            fields: Vec::new(),
            start,
            end: None,
        }
    }

    /// The same span, opened inside span `parent`.
    pub fn parent(mut self, parent: u64) -> Self {
        self.parent = Some(parent);
        self
    }

    /// The same span, closed at `end`.
    pub fn end(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self
    }

    /// The same span with `target`.
    pub fn target(mut self, target: impl Into<Cow<'static, str>>) -> Self {
        self.target = target.into();
        self
    }

    /// The same span at `level`.
    pub fn level(mut self, level: LogLevel) -> Self {
        self.level = level;
        self
    }

    /// The same span with one more field.
    pub fn field(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// How long it was open, when it closed.
    pub fn duration(&self) -> Option<chrono::TimeDelta> {
        self.end.map(|end| end - self.start)
    }

    /// The fields as one JSON object.
    pub fn fields_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    /// The span as JSON: `id`, `parent`, `name`, `target`, `level`,
    /// `fields`, `start` and `end` (RFC 3339, microseconds),
    /// `duration_ms`.
    pub fn to_json(&self) -> serde_json::Value {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        serde_json::json!({
            "id": self.id,
            "parent": self.parent,
            "name": self.name,
            "target": self.target,
            "level": self.level.as_str(),
            "fields": self.fields_json(),
            "start": at(self.start),
            "end": self.end.map(at),
            "duration_ms": self.duration().map(|d| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1_000.0),
        })
    }
}

/// The spans a storage holds for one run.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Trace {
    /// Its spans, by id.
    pub spans: Vec<SpanRecord>,
    /// Spans the run opened that were not recorded: over the layer's
    /// [`max_spans_per_run`](crate::logs::TaskLogLayer::max_spans_per_run).
    pub dropped: u64,
}

impl Trace {
    /// A trace of `spans` (sorted by id here) with `dropped` spans left out.
    pub fn new(mut spans: Vec<SpanRecord>, dropped: u64) -> Self {
        spans.sort_by_key(|s| s.id);
        Trace { spans, dropped }
    }
}

/// `fields` cut to [`MAX_SPAN_FIELDS_BYTES`] of JSON text: the first fields
/// that fit, then `"…": <how many were left out>`.
pub(crate) fn bound_fields(fields: &mut Vec<(Cow<'static, str>, serde_json::Value)>) {
    let mut used = 0;
    let mut keep = fields.len();
    for (i, (k, v)) in fields.iter_mut().enumerate() {
        // A long string value is cut first, so one huge field does not
        // push out every other.
        if let serde_json::Value::String(s) = v
            && s.len() > MAX_SPAN_FIELDS_BYTES / 4
        {
            let mut cut = MAX_SPAN_FIELDS_BYTES / 4;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        used += k.len() + json_len(v) + 4;
        if used > MAX_SPAN_FIELDS_BYTES {
            keep = i;
            break;
        }
    }
    if keep < fields.len() {
        let left_out = fields.len() - keep;
        fields.truncate(keep);
        fields.push((Cow::Borrowed("…"), left_out.into()));
    }
}

fn json_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len() + 2,
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => 8,
        other => other.to_string().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded() {
        let mut fields: Vec<(Cow<'static, str>, serde_json::Value)> = (0..2_000)
            .map(|i| (Cow::Owned(format!("f{i}")), serde_json::Value::from(i)))
            .collect();
        fields.insert(0, (Cow::Borrowed("big"), "é".repeat(10_000).into()));
        bound_fields(&mut fields);
        let text = serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
        .to_string();
        assert!(text.len() <= MAX_SPAN_FIELDS_BYTES + 64, "{}", text.len());
        assert_eq!(fields.last().unwrap().0, "…");
        assert!(fields[0].1.as_str().unwrap().ends_with('…'));
        let mut small = vec![(Cow::Borrowed("a"), serde_json::Value::from(1))];
        bound_fields(&mut small);
        assert_eq!(small.len(), 1);
    }
}
