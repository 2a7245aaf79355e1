//! What a spawned task sees of its run.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::hooks::ActorInfo;
use crate::lifecycle::Progress;
use crate::run::Control;

/// Where a run's progress and messages go: the run's recorder, which writes
/// at most one progress event per interval.
pub(crate) trait ProgressSink: Send + Sync {
    fn report(&self, progress: Option<Progress>, message: Option<String>);
}

/// The handle a spawned task gets: report progress, watch for cancellation,
/// read who and what the run is.
///
/// Cheap to clone; every method is synchronous and never touches the
/// database: progress and messages are handed to the run's recorder, which
/// writes the latest of them at most once per `progress_interval`.
///
/// ```no_run
/// # async fn demo(ctx: tasktrail::TaskContext) -> Result<(), tasktrail::Cancelled> {
/// for step in 1..=10 {
///     ctx.check()?; // returns early once the run is cancelled
///     ctx.progress_with_message(step as f64 * 10.0, format!("step {step} of 10"));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<Shared>,
}

struct Shared {
    key: String,
    name: String,
    actor: Option<ActorInfo>,
    retry_of: Option<String>,
    control: Arc<Control>,
    sink: Arc<dyn ProgressSink>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("key", &self.inner.key)
            .field("name", &self.inner.name)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl TaskContext {
    pub(crate) fn new(
        key: String,
        name: String,
        actor: Option<ActorInfo>,
        retry_of: Option<String>,
        control: Arc<Control>,
        sink: Arc<dyn ProgressSink>,
    ) -> Self {
        TaskContext {
            inner: Arc::new(Shared {
                key,
                name,
                actor,
                retry_of,
                control,
                sink,
            }),
        }
    }

    /// Asks the run to stop for `reason` (what the job queue integration
    /// records when a handler aborts its task).
    #[cfg_attr(not(feature = "apalis"), allow(dead_code))]
    pub(crate) fn stop_with(&self, reason: crate::run::CancelReason) -> bool {
        self.inner.control.request_cancel(reason)
    }

    /// The run's key.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Who started the run, if anyone was given.
    pub fn actor(&self) -> Option<&ActorInfo> {
        self.inner.actor.as_ref()
    }

    /// The key of the run this run retries, if it is a retry.
    pub fn retry_of(&self) -> Option<&str> {
        self.inner.retry_of.as_deref()
    }

    /// Reports progress: the progress column only, as
    /// [`RunHandle::progress`](crate::RunHandle::progress) does. A text the
    /// progress carries (`Progress::new(40.0).with_text("4 of 10")`) is part
    /// of the progress: a text or JSON progress column stores it, and it
    /// replaces the message only with `#[tracking(progress_sets_message)]`.
    /// To set the message too, use
    /// [`progress_with_message`](Self::progress_with_message).
    pub fn progress(&self, value: impl Into<Progress>) {
        self.inner.sink.report(Some(value.into()), None);
    }

    /// Reports progress and sets the run's message (the `message` column),
    /// in one write.
    ///
    /// ```no_run
    /// # fn demo(ctx: tasktrail::TaskContext) {
    /// ctx.progress_with_message(40.0, "4 of 10 files");
    /// # }
    /// ```
    pub fn progress_with_message(&self, value: impl Into<Progress>, message: impl Into<String>) {
        self.inner
            .sink
            .report(Some(value.into()), Some(message.into()));
    }

    /// Sets the run's message (the `message` column only).
    pub fn message(&self, text: impl Into<String>) {
        self.inner.sink.report(None, Some(text.into()));
    }

    /// Whether the run has been asked to stop. Cheap: one atomic load.
    pub fn is_cancelled(&self) -> bool {
        self.inner.control.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the run has been asked to stop, for `?`.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(self.cancelled_error())
        } else {
            Ok(())
        }
    }

    /// Completes when the run is asked to stop; select on it beside long
    /// awaits. Returns the reason, as [`Cancelled`].
    pub async fn cancelled(&self) -> Cancelled {
        self.inner.control.cancel.cancelled().await;
        self.cancelled_error()
    }

    /// A token cancelled with the run, to hand to code that takes
    /// `tokio_util`'s [`CancellationToken`].
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.control.cancel.child_token()
    }

    fn cancelled_error(&self) -> Cancelled {
        Cancelled {
            reason: self
                .inner
                .control
                .reason()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "cancelled".to_owned()),
        }
    }
}

/// The run was asked to stop. Return it (or an error made from it) from the
/// task; the run is recorded as cancelled whatever error the task returns
/// once it has been asked to stop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Cancelled {
    /// Why: "cancelled on request", "cancelled: the tracker shut down", …
    pub reason: String,
}
