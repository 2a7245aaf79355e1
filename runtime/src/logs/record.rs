//! What a stored log line is, and how storages are asked for lines.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::logs::{SpanRecord, Trace};

/// A log line's level, ordered by severity (`Trace` < … < `Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `TRACE`
    Trace,
    /// `DEBUG`
    Debug,
    /// `INFO`
    Info,
    /// `WARN`
    Warn,
    /// `ERROR`
    Error,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    /// The severity as a number, 0 (`Trace`) to 4 (`Error`): how the
    /// database storage keeps it.
    pub fn severity(self) -> i16 {
        self as i16
    }

    /// The level of severity `n` (see [`severity`](Self::severity)).
    pub fn from_severity(n: i16) -> Option<LogLevel> {
        LogLevel::ALL.get(usize::try_from(n).ok()?).copied()
    }
}

impl From<tracing::Level> for LogLevel {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of `trace`, `debug`, `info`, `warn`,
/// `error` (in any case).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a log level; expected trace, debug, info, warn or error")]
pub struct ParseLevelError(pub String);

impl FromStr for LogLevel {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseLevelError(s.to_owned()))
    }
}

/// One captured log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// Its position in its storage, increasing; `0` until a storage has
    /// taken it.
    pub id: u64,
    /// When it was emitted.
    pub at: DateTime<Utc>,
    /// Its level.
    pub level: LogLevel,
    /// The event's target (usually its module path).
    pub target: Cow<'static, str>,
    /// The event's message.
    pub message: String,
    /// The key of the run it was emitted in, if any.
    pub run_key: Option<Arc<str>>,
    /// The event's other fields, in order.
    pub fields: Vec<(Cow<'static, str>, serde_json::Value)>,
}

impl LogRecord {
    /// A line at `level` with `message`, now, outside any run.
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        LogRecord {
            id: 0,
            at: Utc::now(),
            level,
            target: Cow::Borrowed(""),
            message: message.into(),
            run_key: None,
            fields: Vec::new(),
        }
    }

    /// The same line, emitted in run `key`.
    pub fn in_run(mut self, key: impl AsRef<str>) -> Self {
        self.run_key = Some(Arc::from(key.as_ref()));
        self
    }

    /// The same line with `target`.
    pub fn target(mut self, target: impl Into<Cow<'static, str>>) -> Self {
        self.target = target.into();
        self
    }

    /// The same line with one more field.
    pub fn field(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The same line, emitted at `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
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

    /// The line as JSON: `id`, `at` (RFC 3339), `level`, `target`,
    /// `message`, `run_key`, `fields`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": self.level.as_str(),
            "target": self.target,
            "message": self.message,
            "run_key": self.run_key.as_deref(),
            "fields": self.fields_json(),
        })
    }
}

/// The most lines one query returns.
pub const MAX_QUERY_LIMIT: usize = 5_000;

/// Which lines a storage returns: all conditions hold; newest first, at
/// most `limit`.
///
/// ```
/// use tasktrail::logs::{LogLevel, LogQuery};
/// let query = LogQuery::new().run("run-1").min_level(LogLevel::Warn).contains("timeout").limit(50);
/// assert_eq!(query.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LogQuery {
    /// Only lines of this run.
    pub run_key: Option<String>,
    /// Only lines at least this severe.
    pub min_level: Option<LogLevel>,
    /// Only lines whose message contains this text (case-insensitive).
    pub contains: Option<String>,
    /// Only lines emitted at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines emitted before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only lines stored after the one with this id (a live tail's cursor).
    pub after_id: Option<u64>,
    /// At most this many lines (capped at [`MAX_QUERY_LIMIT`]).
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            run_key: None,
            min_level: None,
            contains: None,
            since: None,
            until: None,
            after_id: None,
            limit: 100,
        }
    }
}

impl LogQuery {
    /// Every line, newest first, 100 at most.
    pub fn new() -> Self {
        LogQuery::default()
    }

    /// Only lines of run `key`.
    pub fn run(mut self, key: impl Into<String>) -> Self {
        self.run_key = Some(key.into());
        self
    }

    /// Only lines at least as severe as `level`.
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = Some(level);
        self
    }

    /// Only lines whose message contains `text`, ignoring case.
    pub fn contains(mut self, text: impl Into<String>) -> Self {
        self.contains = Some(text.into());
        self
    }

    /// Only lines emitted at or after `at`.
    pub fn since(mut self, at: DateTime<Utc>) -> Self {
        self.since = Some(at);
        self
    }

    /// Only lines emitted before `at`.
    pub fn until(mut self, at: DateTime<Utc>) -> Self {
        self.until = Some(at);
        self
    }

    /// Only lines stored after the line `id`.
    pub fn after(mut self, id: u64) -> Self {
        self.after_id = Some(id);
        self
    }

    /// At most `limit` lines (capped at [`MAX_QUERY_LIMIT`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.min(MAX_QUERY_LIMIT);
        self
    }

    /// Whether `record` meets every condition but the limit; a storage of
    /// your own can filter with it. `contains_lower` is `contains`
    /// lower-cased once per query.
    pub fn matches(&self, record: &LogRecord, contains_lower: Option<&str>) -> bool {
        if let Some(key) = &self.run_key
            && record.run_key.as_deref() != Some(key.as_str())
        {
            return false;
        }
        if self.min_level.is_some_and(|min| record.level < min) {
            return false;
        }
        if self.since.is_some_and(|t| record.at < t) || self.until.is_some_and(|t| record.at >= t) {
            return false;
        }
        if self.after_id.is_some_and(|id| record.id <= id) {
            return false;
        }
        match contains_lower {
            Some(text) => contains_ignoring_case(&record.message, text),
            None => true,
        }
    }
}

/// Whether `haystack` contains `needle_lower` (already lower-case),
/// ignoring case, without allocating when both are ASCII.
fn contains_ignoring_case(haystack: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle_lower.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle_lower.as_bytes());
        return h
            .windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    haystack.to_lowercase().contains(needle_lower)
}

/// What a storage has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Lines it holds now, when it knows without counting (the memory
    /// storage does; the database storage does not).
    pub stored: Option<u64>,
    /// Lines handed to it.
    pub appended: u64,
    /// Lines it let go: the oldest lines a full ring buffer overwrote, or
    /// lines a full write queue refused.
    pub dropped: u64,
    /// Lines waiting to be written.
    pub pending: u64,
    /// Lines written to their final place.
    pub written: u64,
    /// Lines the database refused for good (and that were dropped, each
    /// logged): a constraint of the table's, say. The other lines of their
    /// batch are written.
    pub refused: u64,
}

/// A storage could not answer a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStorageError {
    /// The database storage's database failed.
    #[error("the log database failed: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Another storage's own failure.
    #[error("the log storage failed: {0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Where captured log lines go, and where the dashboard reads them.
///
/// `append` is called on the thread that emitted the event, so it must not
/// block on I/O: queue the line and write it elsewhere. `query` returns
/// lines newest first; [`LogQuery::matches`] does the filtering for a
/// storage that holds lines in memory. See the "Logs" guide for a storage
/// of your own.
pub trait LogStorage: Send + Sync + 'static {
    /// Takes one line. Never blocks; a storage that cannot keep it counts
    /// it as dropped.
    fn append(&self, record: LogRecord);

    /// The lines `query` selects, newest first.
    fn query(
        &self,
        query: LogQuery,
    ) -> futures::future::BoxFuture<'_, Result<Vec<LogRecord>, LogStorageError>>;

    /// What it has done so far.
    fn stats(&self) -> LogStats;

    /// Takes one span of a run (see [`SpanRecord`]), when it closed or its
    /// run ended. Never blocks, like [`append`](Self::append). The default
    /// keeps nothing: a storage of your own written before spans were
    /// recorded goes on working, without a trace view.
    fn append_span(&self, span: SpanRecord) {
        let _ = span;
    }

    /// Counts `count` more spans of run `run_key` that were not recorded
    /// (over the layer's cap per run). The default keeps nothing.
    fn spans_dropped(&self, run_key: &str, count: u64) {
        let _ = (run_key, count);
    }

    /// The spans of run `run_key`, by id, and how many it dropped; `None`
    /// when the storage keeps no spans (the default).
    fn trace(
        &self,
        run_key: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Trace>, LogStorageError>> {
        let _ = run_key;
        Box::pin(std::future::ready(Ok(None)))
    }
}

impl<T: LogStorage + ?Sized> LogStorage for Arc<T> {
    fn append(&self, record: LogRecord) {
        (**self).append(record);
    }

    fn query(
        &self,
        query: LogQuery,
    ) -> futures::future::BoxFuture<'_, Result<Vec<LogRecord>, LogStorageError>> {
        (**self).query(query)
    }

    fn stats(&self) -> LogStats {
        (**self).stats()
    }

    fn append_span(&self, span: SpanRecord) {
        (**self).append_span(span);
    }

    fn spans_dropped(&self, run_key: &str, count: u64) {
        (**self).spans_dropped(run_key, count);
    }

    fn trace(
        &self,
        run_key: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Trace>, LogStorageError>> {
        (**self).trace(run_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order_by_severity() {
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!(" ERROR ".parse::<LogLevel>(), Ok(LogLevel::Error));
        assert!("loud".parse::<LogLevel>().is_err());
        assert!(LogLevel::Trace < LogLevel::Error);
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::from_severity(level.severity()), Some(level));
        }
        assert_eq!(LogLevel::from(tracing::Level::WARN), LogLevel::Warn);
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ignoring_case(
            "Connection TIMEOUT after 3s",
            "timeout"
        ));
        assert!(!contains_ignoring_case("fine", "timeout"));
        assert!(contains_ignoring_case("ÉCHEC de la tâche", "échec"));
        assert!(contains_ignoring_case("anything", ""));
    }
}
