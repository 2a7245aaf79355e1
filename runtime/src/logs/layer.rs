//! `TaskLogLayer`: a `tracing_subscriber::Layer` that hands every event
//! emitted inside a run to a [`LogStorage`], with the run's key.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::logs::{LogLevel, LogRecord, LogStorage};

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
}

impl std::fmt::Debug for TaskLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLogLayer")
            .field("capture", &self.capture)
            .field("min_level", &self.min_level)
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
        }
    }

    /// Which events to capture.
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }

    /// Only events at least this severe.
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
        let key = own.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<RunKey>().map(|k| k.0.clone()))
        });
        if let Some(key) = key {
            span.extensions_mut().insert(RunKey(key));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(field) = span.fields().field(RUN_KEY_FIELD) else {
            return;
        };
        if !values.contains(&field) {
            return;
        }
        let mut visitor = KeyVisitor::default();
        values.record(&mut visitor);
        if let Some(key) = visitor.0 {
            span.extensions_mut().replace(RunKey(key));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = LogLevel::from(*meta.level());
        if level < self.min_level {
            return;
        }
        let (run_key, internal) = match ctx.event_span(event) {
            Some(span) => {
                let extensions = span.extensions();
                (
                    extensions.get::<RunKey>().map(|k| k.0.clone()),
                    extensions.get::<Internal>().is_some(),
                )
            }
            None => (None, false),
        };
        if internal || (run_key.is_none() && self.capture == Capture::RunsOnly) {
            return;
        }
        let mut visitor = EventVisitor {
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut visitor);
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
