//! A bounded ring buffer of log lines.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::logs::{LogQuery, LogRecord, LogStats, LogStorage, LogStorageError};

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
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogRecord>,
    next_id: u64,
    appended: u64,
    dropped: u64,
}

impl MemoryLogStorage {
    /// A ring of `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryLogStorage {
            capacity,
            ring: Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity.min(4_096)),
                ..Ring::default()
            }),
        }
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
    pub fn select(&self, query: &LogQuery) -> Vec<LogRecord> {
        let contains = query.contains.as_deref().map(str::to_lowercase);
        let ring = self.ring();
        let mut out = Vec::new();
        if query.limit == 0 {
            return out;
        }
        for record in ring.lines.iter().rev() {
            if query.after_id.is_some_and(|id| record.id <= id) {
                // Ids only grow: nothing older can be after the cursor.
                break;
            }
            if query.matches(record, contains.as_deref()) {
                out.push(record.clone());
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
    fn append(&self, mut record: LogRecord) {
        let mut ring = self.ring();
        ring.next_id += 1;
        ring.appended += 1;
        record.id = ring.next_id;
        if ring.lines.len() >= self.capacity {
            ring.lines.pop_front();
            ring.dropped += 1;
        }
        ring.lines.push_back(record);
    }

    fn query(
        &self,
        query: LogQuery,
    ) -> futures::future::BoxFuture<'_, Result<Vec<LogRecord>, LogStorageError>> {
        let lines = self.select(&query);
        Box::pin(std::future::ready(Ok(lines)))
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
