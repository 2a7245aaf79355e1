//! `TaskLogLayer`: a `tracing_subscriber::Layer` that hands every event
//! emitted inside a run to a [`LogStorage`], with the run's key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::logs::span::bound_fields;
use crate::logs::{LogLevel, LogRecord, LogStorage, SPAN_FIELD, SpanRecord};

/// Which events [`TaskLogLayer`] captures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Capture {
    /// Only events emitted inside a run (the default).
    #[default]
    RunsOnly,
    /// Every event; those outside a run have no run key.
    All,
}

/// The run key a span carries (its own `task_key` field, or its parent's).
#[derive(Clone, Debug)]
struct RunKey(Arc<str>);

/// What a run's spans share: their numbering, the count of spans over the
/// cap, and the records of those still open (written when each closes, and
/// the rest when the run's span closes).
struct RunTrace {
    key: Arc<str>,
    next: AtomicU64,
    dropped: AtomicU64,
    open: Mutex<HashMap<u64, SpanRecord>>,
}

impl RunTrace {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SpanRecord>> {
        // Each step under the lock is one map operation: a poisoned lock
        // still holds a consistent map.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A span's place in its run's trace: the run's shared state, and the
/// recorded span that an event in this span (or a span opened in it)
/// belongs to — its own id when it is recorded, else its nearest recorded
/// ancestor's; `None` for the run's span itself.
#[derive(Clone)]
struct TraceOf {
    run: Arc<RunTrace>,
    slot: Option<u64>,
    /// Whether this span is recorded (its id is `slot`).
    recorded: bool,
    /// Whether this is the run's own span.
    root: bool,
}

/// Marks tasktrail's own log writer (and the spans below it): its events
/// (say, the database driver's) are never captured, or every write would
/// log a line to write.
#[derive(Clone, Copy, Debug)]
struct Internal;

/// The name of the span the database log writer runs in.
pub(crate) const WRITER_SPAN: &str = "tasktrail_log_writer";

/// The field that marks a run's span: tasktrail's spawned runs open a
/// `task` span with `task_key`; a span of your own with a `task_key` field
/// counts too.
pub const RUN_KEY_FIELD: &str = "task_key";

/// Captures the events emitted inside runs (any span with a `task_key`
/// field, such as the `task` span of every spawned run, and the spans
/// inside it) into a [`LogStorage`]: time, level, target, message, the
/// run's key and the event's other fields.
///
/// An event below the minimum level, or outside any run when capturing
/// [`Capture::RunsOnly`], costs a level comparison and a span lookup and
/// allocates nothing. The layer never blocks on I/O: storages queue.
///
/// ```
/// use std::sync::Arc;
/// use tasktrail::logs::{Capture, LogLevel, MemoryLogStorage, TaskLogLayer};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let logs = Arc::new(MemoryLogStorage::new(10_000));
/// let subscriber = tracing_subscriber::registry()
///     .with(TaskLogLayer::new(logs.clone()).min_level(LogLevel::Debug).capture(Capture::RunsOnly));
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("task", task_key = "run-1");
///     span.in_scope(|| tracing::info!(rows = 3, "imported"));
///     tracing::info!("not in a run: not captured");
/// });
/// let lines = logs.select(&tasktrail::logs::LogQuery::new());
/// assert_eq!(lines.len(), 1);
/// assert_eq!(lines[0].run_key.as_deref(), Some("run-1"));
/// assert_eq!(lines[0].message, "imported");
/// ```
pub struct TaskLogLayer {
    storage: Arc<dyn LogStorage>,
    capture: Capture,
    min_level: LogLevel,
    max_spans: u64,
}

/// How many spans of one run [`TaskLogLayer`] records by default.
pub const DEFAULT_MAX_SPANS_PER_RUN: usize = 1_000;

impl std::fmt::Debug for TaskLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLogLayer")
            .field("capture", &self.capture)
            .field("min_level", &self.min_level)
            .field("max_spans", &self.max_spans)
            .finish_non_exhaustive()
    }
}

impl TaskLogLayer {
    /// Captures the events inside runs, `TRACE` and up, into `storage`.
    pub fn new(storage: Arc<dyn LogStorage>) -> Self {
        TaskLogLayer {
            storage,
            capture: Capture::RunsOnly,
            min_level: LogLevel::Trace,
            max_spans: DEFAULT_MAX_SPANS_PER_RUN as u64,
        }
    }

    /// Records at most `spans` spans of each run for its trace (default
    /// [`DEFAULT_MAX_SPANS_PER_RUN`]); the others are counted as dropped.
    /// `0` records none. A recorded span costs its fields and a few words
    /// until its run ends, so this bounds the memory one run can hold.
    pub fn max_spans_per_run(mut self, spans: usize) -> Self {
        self.max_spans = spans as u64;
        self
    }

    /// Which events to capture.
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }

    /// Only events (and spans, for the trace) at least this severe.
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = level;
        self
    }
}

/// Finds a `task_key` field's value.
#[derive(Default)]
struct KeyVisitor(Option<Arc<str>>);

impl Visit for KeyVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == RUN_KEY_FIELD {
            self.0 = Some(Arc::from(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == RUN_KEY_FIELD {
            // `%key` records through Display-as-Debug: no quotes.
            self.0 = Some(Arc::from(format!("{value:?}")));
        }
    }
}

/// Collects an event's message and other fields.
struct EventVisitor {
    message: String,
    fields: Vec<(Cow<'static, str>, serde_json::Value)>,
}

impl EventVisitor {
    fn push(&mut self, field: &Field, value: serde_json::Value) {
        self.fields.push((Cow::Borrowed(field.name()), value));
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push(field, value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, format!("{value:?}").into());
        }
    }
}

impl EventVisitor {
    /// A span's `message` field, if any, kept as a field like the others.
    fn message_as_field(&mut self) {
        if !self.message.is_empty() {
            let message = std::mem::take(&mut self.message);
            self.fields
                .insert(0, (Cow::Borrowed("message"), message.into()));
        }
    }
}

impl TaskLogLayer {
    /// The trace of a run whose span has key `key` (`None` when spans are
    /// not recorded).
    fn root_trace(&self, key: &Arc<str>) -> Option<TraceOf> {
        (self.max_spans > 0).then(|| TraceOf {
            run: Arc::new(RunTrace {
                key: key.clone(),
                next: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                open: Mutex::new(HashMap::new()),
            }),
            slot: None,
            recorded: false,
            root: true,
        })
    }

    /// The trace place of a span opened inside a run, below `parent`:
    /// recorded (numbered, its record kept until it closes) unless it is
    /// below the minimum level or over the run's cap.
    fn open_span(&self, attrs: &Attributes<'_>, key: &Arc<str>, parent: TraceOf) -> TraceOf {
        let meta = attrs.metadata();
        let level = LogLevel::from(*meta.level());
        let inherit = TraceOf {
            recorded: false,
            root: false,
            ..parent
        };
        if level < self.min_level {
            return inherit;
        }
        let n = inherit.run.next.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.max_spans {
            inherit.run.dropped.fetch_add(1, Ordering::Relaxed);
            return inherit;
        }
        let mut visitor = EventVisitor {
            message: String::new(),
            fields: Vec::new(),
        };
        attrs.record(&mut visitor);
        visitor.message_as_field();
        let mut fields = visitor.fields;
        bound_fields(&mut fields);
        let record = SpanRecord {
            run_key: key.clone(),
            id: n,
            parent: inherit.slot,
            name: Cow::Borrowed(meta.name()),
            target: Cow::Borrowed(meta.target()),
            level,
            fields,
            start: chrono::Utc::now(),
            end: None,
        };
        inherit.run.open().insert(n, record);
        TraceOf {
            slot: Some(n),
            recorded: true,
            ..inherit
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for TaskLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let internal = (attrs.metadata().name() == WRITER_SPAN
            && attrs.metadata().target().starts_with("tasktrail"))
            || span
                .parent()
                .is_some_and(|p| p.extensions().get::<Internal>().is_some());
        if internal {
            span.extensions_mut().insert(Internal);
            return;
        }
        let own = if attrs.fields().field(RUN_KEY_FIELD).is_some() {
            let mut visitor = KeyVisitor::default();
            attrs.record(&mut visitor);
            visitor.0
        } else {
            None
        };
        // A span inside a run belongs to it: inherit the key, so that an
        // event finds it on its own span.
        let is_root = own.is_some();
        let key = own.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<RunKey>().map(|k| k.0.clone()))
        });
        let Some(key) = key else { return };
        let trace = if is_root {
            self.root_trace(&key)
        } else {
            span.parent()
                .and_then(|p| p.extensions().get::<TraceOf>().cloned())
                .map(|parent| self.open_span(attrs, &key, parent))
        };
        let mut extensions = span.extensions_mut();
        extensions.insert(RunKey(key));
        if let Some(trace) = trace {
            extensions.insert(trace);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(trace) = span.extensions_mut().remove::<TraceOf>() else {
            return;
        };
        if trace.recorded {
            let record = trace.run.open().remove(&trace.slot.unwrap_or_default());
            if let Some(mut record) = record {
                record.end = Some(chrono::Utc::now());
                self.storage.append_span(record);
            }
        } else if trace.root {
            // The run ended: the spans still open are written as they are.
            let still_open: Vec<SpanRecord> = trace.run.open().drain().map(|(_, r)| r).collect();
            for record in still_open {
                self.storage.append_span(record);
            }
            let dropped = trace.run.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                self.storage.spans_dropped(&trace.run.key, dropped);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let traced = span
            .extensions()
            .get::<TraceOf>()
            .filter(|t| t.recorded)
            .map(|t| (t.run.clone(), t.slot.unwrap_or_default()));
        if let Some((run, slot)) = traced {
            let mut visitor = EventVisitor {
                message: String::new(),
                fields: Vec::new(),
            };
            values.record(&mut visitor);
            visitor.message_as_field();
            if let Some(record) = run.open().get_mut(&slot) {
                for (name, value) in visitor.fields {
                    match record.fields.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => record.fields.push((name, value)),
                    }
                }
                bound_fields(&mut record.fields);
            }
        }
        let Some(field) = span.fields().field(RUN_KEY_FIELD) else {
            return;
        };
        if !values.contains(&field) {
            return;
        }
        let mut visitor = KeyVisitor::default();
        values.record(&mut visitor);
        if let Some(key) = visitor.0 {
            let mut extensions = span.extensions_mut();
            // A key recorded after the span opened makes it a run's span:
            // the spans opened in it from now on are its trace.
            if extensions.get_mut::<TraceOf>().is_none()
                && let Some(trace) = self.root_trace(&key)
            {
                extensions.insert(trace);
            }
            extensions.replace(RunKey(key));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = LogLevel::from(*meta.level());
        if level < self.min_level {
            return;
        }
        let (run_key, internal, in_span) = match ctx.event_span(event) {
            Some(span) => {
                let extensions = span.extensions();
                (
                    extensions.get::<RunKey>().map(|k| k.0.clone()),
                    extensions.get::<Internal>().is_some(),
                    extensions.get::<TraceOf>().and_then(|t| t.slot),
                )
            }
            None => (None, false, None),
        };
        if internal || (run_key.is_none() && self.capture == Capture::RunsOnly) {
            return;
        }
        let mut visitor = EventVisitor {
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut visitor);
        if let Some(slot) = in_span {
            visitor
                .fields
                .push((Cow::Borrowed(SPAN_FIELD), slot.into()));
        }
        self.storage.append(LogRecord {
            id: 0,
            at: chrono::Utc::now(),
            level,
            target: Cow::Borrowed(meta.target()),
            message: visitor.message,
            run_key,
            fields: visitor.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::MemoryLogStorage;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn spans_of_a_run_whose_key_came_late_are_recorded() {
        let logs = Arc::new(MemoryLogStorage::new(100));
        let subscriber = tracing_subscriber::registry().with(TaskLogLayer::new(logs.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let run = tracing::info_span!("task", task_key = tracing::field::Empty);
            run.record("task_key", "late");
            run.in_scope(|| {
                tracing::info_span!("step", n = 1).in_scope(|| {
                    tracing::info_span!("inner").in_scope(|| tracing::info!("deep"));
                });
            });
            // Outside any run: nothing.
            tracing::info_span!("loose").in_scope(|| {});
        });
        let trace = logs.trace_of("late");
        let tree: Vec<(u64, Option<u64>, &str)> = trace
            .spans
            .iter()
            .map(|s| (s.id, s.parent, &*s.name))
            .collect();
        assert_eq!(tree, [(1, None, "step"), (2, Some(1), "inner")]);
        assert!(trace.spans.iter().all(|s| s.end >= Some(s.start)));
        let line = &logs.select(&crate::logs::LogQuery::new())[0];
        assert_eq!(line.fields_json()[SPAN_FIELD], 2);
    }
}
