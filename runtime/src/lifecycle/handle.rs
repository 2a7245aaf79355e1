//! The ergonomic API: begin a run, then report on it through its handle.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde::Serialize;

use crate::config::TrackingConfig;
use crate::hooks::{Actor, TrackedObject};
use crate::lifecycle::tracker::panic_message;
use crate::lifecycle::{Event, Progress, Tracker};

impl<M: TrackingConfig> Tracker<M> {
    /// Begins describing a run of the task `name`; finish with
    /// [`RunBuilder::create`], [`RunBuilder::start`] or [`RunBuilder::run`].
    ///
    /// ```ignore
    /// let run = tracker.begin("import_books").actor(&user).args(&args).start().await;
    /// run.progress(Progress::ratio(3, 10).with_text("3 of 10 books")).await;
    /// run.complete(&summary).await;
    /// ```
    pub fn begin(&self, name: impl Into<String>) -> RunBuilder<M> {
        RunBuilder {
            tracker: self.clone(),
            event: Event::create(uuid::Uuid::now_v7().to_string()).name(name),
            lock_objects: true,
            max_duration: None,
            guards: Vec::new(),
            gate: None,
        }
    }
}

/// A run being described before its `create` event is recorded.
#[must_use = "a run is recorded only by .create(), .start() or .run()"]
pub struct RunBuilder<M: TrackingConfig> {
    pub(crate) tracker: Tracker<M>,
    pub(crate) event: Event,
    pub(crate) lock_objects: bool,
    pub(crate) max_duration: Option<std::time::Duration>,
    /// Lock keys taken with the objects' but not recorded as objects (a
    /// retry's "retry of this run" guard).
    pub(crate) guards: Vec<String>,
    /// A limit of its own the run waits for before the tracker's (bulk
    /// retries).
    pub(crate) gate: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl<M: TrackingConfig> RunBuilder<M> {
    /// Uses `key` instead of a generated UUID v7.
    ///
    /// A key must be non-empty, hold at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)
    /// bytes and no NUL character: otherwise [`spawn`](Self::spawn) returns
    /// [`SpawnError::InvalidKey`](crate::SpawnError::InvalidKey) and every
    /// event of the run is refused with
    /// [`TrackError::InvalidKey`](crate::TrackError::InvalidKey) (logged and
    /// counted; the task itself still runs under [`run`](Self::run)).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.event.key = key.into();
        self
    }

    /// Who starts the run (stored as `anonymous` when not given).
    pub fn actor(mut self, actor: &(impl Actor + ?Sized)) -> Self {
        self.event = self.event.actor(actor);
        self
    }

    /// What the run touches.
    pub fn objects<O: TrackedObject>(mut self, objects: impl IntoIterator<Item = O>) -> Self {
        self.event = self.event.objects(objects);
        self
    }

    /// The run's arguments.
    pub fn args(mut self, args: &(impl Serialize + ?Sized)) -> Self {
        self.event = self.event.args(args);
        self
    }

    /// The run's keyword arguments / options.
    pub fn kwargs(mut self, kwargs: &(impl Serialize + ?Sized)) -> Self {
        self.event = self.event.kwargs(kwargs);
        self
    }

    /// A first message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.event = self.event.message(message);
        self
    }

    /// Whether [`spawn`](Self::spawn) locks the run's objects (default
    /// `true`).
    pub fn lock_objects(mut self, lock: bool) -> Self {
        self.lock_objects = lock;
        self
    }

    /// A maximum duration for a spawned run, overriding the tracker's
    /// `max_duration`: past it the run is asked to stop and is recorded as
    /// `interrupted`. `Duration::MAX` (anything over about 30 years) means
    /// no limit.
    pub fn max_duration(mut self, limit: std::time::Duration) -> Self {
        self.max_duration = Some(crate::limits::at_most_never(limit));
        self
    }

    /// Records that this run retries the run `key` (role `retry_of`).
    pub fn retry_of(mut self, key: impl Into<String>) -> Self {
        self.event = self.event.retry_of(key);
        self
    }

    /// The run's key (a UUID v7 unless set with [`key`](Self::key)).
    pub fn run_key(&self) -> &str {
        &self.event.key
    }

    /// A value for the extra column `name`.
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<sea_orm::Value>) -> Self {
        self.event = self.event.extra(name, value);
        self
    }

    /// Records `create` (status `pending`) and returns the run's handle.
    pub fn create(self) -> impl Future<Output = RunHandle<M>> + Send {
        let handle = RunHandle {
            tracker: self.tracker,
            key: self.event.key.clone(),
        };
        let write = handle.tracker.lifecycle_all([self.event]);
        async move {
            // Errors are logged and counted by the tracker.
            let _ = write.await;
            handle
        }
    }

    /// Records `create` then `start` (status `in_progress`).
    ///
    /// Both events go to the writer together, so they are usually
    /// committed in one transaction (in order: the run is created, then
    /// started); the future resolves once both are committed.
    pub fn start(self) -> impl Future<Output = RunHandle<M>> + Send {
        let handle = RunHandle {
            tracker: self.tracker,
            key: self.event.key.clone(),
        };
        let start = Event::start(&handle.key);
        let write = handle.tracker.lifecycle_all([self.event, start]);
        async move {
            // Errors are logged and counted by the tracker.
            let _ = write.await;
            handle
        }
    }

    /// Records the whole run of `task`: `create` and `start`, then `complete`
    /// with its `Ok` value as the result, `fail` with its `Err`'s message, or
    /// `fail` with `panicked: <the panic message>` if it panics. If the
    /// returned future is dropped before `task` finishes (a timeout, a
    /// `select!`), the run is recorded as `cancelled`.
    ///
    /// The future is `Send` when `task`, its future, `T` and `E` are (`E`
    /// need not be `Sync`), so it can be awaited in an axum handler or
    /// inside `tokio::spawn`.
    pub async fn run<T, E, F, Fut>(self, task: F) -> Result<T, RunError<E>>
    where
        T: Serialize,
        E: fmt::Display,
        F: FnOnce(RunHandle<M>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let handle = self.start().await;
        let mut guard = CancelOnDrop(Some(handle.clone()));
        let outcome = AssertUnwindSafe(task(handle.clone())).catch_unwind().await;
        guard.0 = None;
        // Each ending's event is built before it is awaited, so the future
        // holds only owned values across the await: no `&T`, no `&E`, no
        // `fmt::Arguments`.
        match outcome {
            Ok(Ok(value)) => {
                handle.complete(&value).await;
                Ok(value)
            }
            Ok(Err(error)) => {
                handle.fail(&error).await;
                Err(RunError::Failed(error))
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                drop(panic);
                handle.fail(format!("panicked: {message}")).await;
                Err(RunError::Panicked(message))
            }
        }
    }
}

/// Records `cancel` if a tracked future is dropped before it finishes.
struct CancelOnDrop<M: TrackingConfig>(Option<RunHandle<M>>);

impl<M: TrackingConfig> Drop for CancelOnDrop<M> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                handle
                    .cancel_with("the run's future was dropped before it finished")
                    .await;
            });
        }
    }
}

/// How a run ended, when not with `Ok`.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The task returned `Err`; the run is `failed` with its message.
    Failed(E),
    /// The task panicked with this message; the run is `failed` with the
    /// message `panicked: <this message>`.
    Panicked(String),
    /// The run was cancelled (a spawned run); the run is `cancelled` with
    /// this message.
    Cancelled(String),
    /// The run outlived its maximum duration (a spawned run); the run is
    /// `interrupted` with this message.
    Interrupted(String),
    /// The run's task was lost without an ending: the tokio runtime shut
    /// down under it.
    Lost,
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Failed(e) => write!(f, "the task failed: {e}"),
            RunError::Panicked(m) => write!(f, "the task panicked: {m}"),
            RunError::Cancelled(m) | RunError::Interrupted(m) => f.write_str(m),
            RunError::Lost => f.write_str("the run was lost: the runtime shut down under it"),
        }
    }
}

/// Any task error that displays (a `String`, an `io::Error`, an `anyhow`
/// error, …) makes an error that `?` converts into `Box<dyn Error>`. The
/// task's error is in the message ("the task failed: …"), and reachable by
/// matching [`RunError::Failed`].
impl<E: fmt::Debug + fmt::Display> std::error::Error for RunError<E> {}

/// A recorded run. Its methods record events and never fail: a database
/// problem is logged, counted and retried by the tracker, never passed to the
/// task.
pub struct RunHandle<M: TrackingConfig> {
    tracker: Tracker<M>,
    key: String,
}

impl<M: TrackingConfig> Clone for RunHandle<M> {
    fn clone(&self) -> Self {
        RunHandle {
            tracker: self.tracker.clone(),
            key: self.key.clone(),
        }
    }
}

impl<M: TrackingConfig> fmt::Debug for RunHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle").field("key", &self.key).finish()
    }
}

impl<M: TrackingConfig> RunHandle<M> {
    /// The handle of the existing run `key`.
    pub fn attach(tracker: &Tracker<M>, key: impl Into<String>) -> Self {
        RunHandle {
            tracker: tracker.clone(),
            key: key.into(),
        }
    }

    /// The run's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The tracker recording this run.
    pub fn tracker(&self) -> &Tracker<M> {
        &self.tracker
    }

    /// Records `event` (its key is replaced by this run's).
    ///
    /// Like [`Tracker::lifecycle`], the event is checked and mapped now and
    /// handed to the writer when the future is first polled.
    pub fn emit(&self, mut event: Event) -> impl Future<Output = ()> + Send + '_ {
        event.key.clone_from(&self.key);
        // Errors are logged and counted by the tracker; a run never sees them.
        self.tracker.lifecycle(event).map(|_| ())
    }

    /// Records `start`.
    pub async fn start(&self) {
        self.emit(Event::start(&self.key)).await;
    }

    /// Records `progress`: the progress column only. A text the progress
    /// carries, as in `Progress::new(40.0).with_text("4 of 10")`, is part of
    /// the progress (a text or JSON progress column stores it); the run's
    /// message is left as it is unless the entity says
    /// `#[tracking(progress_sets_message)]`. To set the message too, use
    /// [`progress_with_message`](Self::progress_with_message).
    ///
    /// The value is converted now; the returned future holds only the event.
    pub fn progress(&self, progress: impl Into<Progress>) -> impl Future<Output = ()> + Send + '_ {
        self.emit(Event::progress(&self.key, progress))
    }

    /// Records `progress` and a message (the `message` column) in one event.
    pub fn progress_with_message(
        &self,
        progress: impl Into<Progress>,
        message: impl Into<String>,
    ) -> impl Future<Output = ()> + Send + '_ {
        self.emit(Event::progress(&self.key, progress).message(message))
    }

    /// Records a message (a `progress` event that carries only the message).
    pub fn message(&self, message: impl Into<String>) -> impl Future<Output = ()> + Send + '_ {
        self.emit(Event::new(crate::EventKind::Progress, &self.key).message(message))
    }

    /// Records `complete` with `result`, and progress 100%.
    ///
    /// `result` is serialised now; the returned future does not borrow it
    /// (so it is `Send` even when `result` is not `Sync`).
    pub fn complete(
        &self,
        result: &(impl Serialize + ?Sized),
    ) -> impl Future<Output = ()> + Send + '_ {
        self.emit(
            Event::complete(&self.key)
                .result(result)
                .with_progress(100.0),
        )
    }

    /// Records `fail` with `error`'s message.
    ///
    /// The message is formatted now; the returned future does not hold
    /// `error` (so it is `Send` even for an error that is not `Sync`, such
    /// as `Box<dyn Error + Send>`).
    pub fn fail(&self, error: impl fmt::Display) -> impl Future<Output = ()> + Send + '_ {
        self.emit(Event::fail(&self.key, error))
    }

    /// Records the outcome of `result`: `complete` for `Ok`, `fail` for `Err`.
    ///
    /// Like [`complete`](Self::complete) and [`fail`](Self::fail), the event
    /// is built now and the returned future does not borrow `result`.
    pub fn finish<T: Serialize, E: fmt::Display>(
        &self,
        result: &Result<T, E>,
    ) -> impl Future<Output = ()> + Send + '_ {
        let event = match result {
            Ok(value) => Event::complete(&self.key)
                .result(value)
                .with_progress(100.0),
            Err(error) => Event::fail(&self.key, error),
        };
        self.emit(event)
    }

    /// Records `cancel`.
    pub async fn cancel(&self) {
        self.emit(Event::cancel(&self.key)).await;
    }

    /// Records `cancel` with a reason as the message.
    pub fn cancel_with(&self, reason: impl Into<String>) -> impl Future<Output = ()> + Send + '_ {
        self.emit(Event::cancel(&self.key).message(reason))
    }

    /// Records `cleanup`.
    pub async fn cleanup(&self) {
        self.emit(Event::cleanup(&self.key)).await;
    }
}
