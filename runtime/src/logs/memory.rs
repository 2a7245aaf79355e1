//! A bounded ring buffer of log lines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::logs::{LogQuery, LogRecord, LogStats, LogStorage, LogStorageError, SpanRecord, Trace};

/// Keeps the newest `capacity` lines in memory, dropping the oldest first:
/// constant memory, nothing written anywhere, gone on restart. The default
/// storage, and the one for a live tail.
///
/// ```
/// use tasktrail::logs::{LogLevel, LogRecord, LogStorage, MemoryLogStorage};
/// let logs = MemoryLogStorage::new(2);
/// for n in 0..3 {
///     logs.append(LogRecord::new(LogLevel::Info, format!("line {n}")));
/// }
/// let stats = logs.stats();
/// assert_eq!((stats.stored, stats.appended, stats.dropped), (Some(2), 3, 1));
/// ```
#[derive(Debug)]
pub struct MemoryLogStorage {
    capacity: usize,
    ring: Mutex<Ring>,
    span_capacity: usize,
    spans: Mutex<Spans>,
}

/// The newest spans of every run (oldest dropped first), and the runs'
/// counts of spans not recorded.
#[derive(Debug, Default)]
struct Spans {
    ring: VecDeque<Arc<SpanRecord>>,
    /// Newest last; as many runs at most as spans the ring holds.
    dropped: VecDeque<(Arc<str>, u64)>,
}

/// The lines, each behind an `Arc`: a query copies the pointers it needs
/// under the lock and reads the lines outside it, so that no append waits
/// for a query's filtering.
#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<Arc<LogRecord>>,
    next_id: u64,
    appended: u64,
    dropped: u64,
}

impl MemoryLogStorage {
    /// A ring of `capacity` lines (at least one), and of as many spans for
    /// the trace view.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryLogStorage {
            capacity,
            ring: Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity.min(4_096)),
                ..Ring::default()
            }),
            span_capacity: capacity,
            spans: Mutex::new(Spans::default()),
        }
    }

    /// Keeps the newest `spans` spans (of every run together; at least
    /// one) instead of as many as lines.
    pub fn span_capacity(mut self, spans: usize) -> Self {
        self.span_capacity = spans.max(1);
        self
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spans of run `key` it holds, by id, and the run's count of
    /// spans not recorded (what [`LogStorage::trace`] answers).
    pub fn trace_of(&self, key: &str) -> Trace {
        let (spans, dropped) = {
            let spans = self.spans();
            let mine: Vec<Arc<SpanRecord>> = spans
                .ring
                .iter()
                .filter(|s| &*s.run_key == key)
                .cloned()
                .collect();
            let dropped = spans
                .dropped
                .iter()
                .filter(|(k, _)| &**k == key)
                .map(|(_, n)| n)
                .sum();
            (mine, dropped)
        };
        Trace::new(
            spans.iter().map(|s| SpanRecord::clone(s)).collect(),
            dropped,
        )
    }

    /// How many lines it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (each
        // step is a single push or pop), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines `query` selects, newest first (what
    /// [`LogStorage::query`] answers, without the future).
    ///
    /// The lock that appends take is held only to copy the pointers to the
    /// lines after the query's cursor; the filtering (lower-casing every
    /// line for a text search) runs outside it.
    pub fn select(&self, query: &LogQuery) -> Vec<LogRecord> {
        if query.limit == 0 {
            return Vec::new();
        }
        let candidates: Vec<Arc<LogRecord>> = {
            let ring = self.ring();
            // Ids are consecutive in the ring: the lines after the cursor
            // are a tail of it.
            let skip = match (query.after_id, ring.lines.front()) {
                (Some(after), Some(first)) => usize::try_from(after.saturating_sub(first.id - 1))
                    .unwrap_or(usize::MAX)
                    .min(ring.lines.len()),
                _ => 0,
            };
            ring.lines.range(skip..).cloned().collect()
        };
        let contains = query.contains.as_deref().map(str::to_lowercase);
        let mut out = Vec::new();
        for record in candidates.iter().rev() {
            if query.after_id.is_some_and(|id| record.id <= id) {
                // Ids only grow: nothing older can be after the cursor.
                break;
            }
            if query.matches(record, contains.as_deref()) {
                out.push(LogRecord::clone(record));
                if out.len() >= query.limit {
                    break;
                }
            }
        }
        out
    }
}

impl Default for MemoryLogStorage {
    /// 10,000 lines.
    fn default() -> Self {
        MemoryLogStorage::new(10_000)
    }
}

impl LogStorage for MemoryLogStorage {
    fn append(&self, record: LogRecord) {
        // Allocated before the lock is taken, and the line it pushes out
        // freed after it is released.
        let mut record = Arc::new(record);
        let oldest = {
            let mut ring = self.ring();
            ring.next_id += 1;
            ring.appended += 1;
            if let Some(fresh) = Arc::get_mut(&mut record) {
                fresh.id = ring.next_id;
            }
            let oldest = if ring.lines.len() >= self.capacity {
                ring.dropped += 1;
                ring.lines.pop_front()
            } else {
                None
            };
            ring.lines.push_back(record);
            oldest
        };
        drop(oldest);
    }

    fn query(
        &self,
        query: LogQuery,
    ) -> futures::future::BoxFuture<'_, Result<Vec<LogRecord>, LogStorageError>> {
        let lines = self.select(&query);
        Box::pin(std::future::ready(Ok(lines)))
    }

    fn append_span(&self, span: SpanRecord) {
        let span = Arc::new(span);
        let oldest = {
            let mut spans = self.spans();
            let oldest = if spans.ring.len() >= self.span_capacity {
                spans.ring.pop_front()
            } else {
                None
            };
            spans.ring.push_back(span);
            oldest
        };
        drop(oldest);
    }

    fn spans_dropped(&self, run_key: &str, count: u64) {
        let mut spans = self.spans();
        if spans.dropped.len() >= self.span_capacity {
            spans.dropped.pop_front();
        }
        spans.dropped.push_back((Arc::from(run_key), count));
    }

    fn trace(
        &self,
        run_key: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Trace>, LogStorageError>> {
        let trace = self.trace_of(run_key);
        Box::pin(std::future::ready(Ok(Some(trace))))
    }

    fn stats(&self) -> LogStats {
        let ring = self.ring();
        LogStats {
            stored: Some(ring.lines.len() as u64),
            appended: ring.appended,
            dropped: ring.dropped,
            pending: 0,
            written: ring.appended,
            refused: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogLevel;

    #[test]
    fn the_cursor_skips_to_the_tail() {
        let logs = MemoryLogStorage::new(5);
        for n in 0..12 {
            logs.append(LogRecord::new(LogLevel::Info, format!("line {n}")));
        }
        // The ring holds ids 8..=12.
        let ids = |q: LogQuery| logs.select(&q).iter().map(|l| l.id).collect::<Vec<_>>();
        assert_eq!(ids(LogQuery::new()), [12, 11, 10, 9, 8]);
        assert_eq!(ids(LogQuery::new().after(10)), [12, 11]);
        assert_eq!(ids(LogQuery::new().after(3)), [12, 11, 10, 9, 8]);
        assert_eq!(ids(LogQuery::new().after(12)), Vec::<u64>::new());
        assert_eq!(ids(LogQuery::new().after(u64::MAX)), Vec::<u64>::new());
        assert_eq!(ids(LogQuery::new().after(0)), [12, 11, 10, 9, 8]);
        assert_eq!(ids(LogQuery::new().after(9).limit(1)), [12]);
        assert!(logs.select(&LogQuery::new().limit(0)).is_empty());
    }
}
