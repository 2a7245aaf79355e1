//! Tracks the tasks of [apalis](https://docs.rs/apalis) 1.0 workers as runs
//! (cargo feature `apalis`).
//!
//! [`TrackLayer`] is a tower layer for apalis' `WorkerBuilder::layer`. Each
//! attempt of each apalis task becomes one spawned run of the tracker:
//!
//! - key `<task id>-<attempt>` (`01J…-1`, `01J…-2`, …), name the task's
//!   queue (apalis' job type), args the task's arguments, and from the
//!   second attempt on `retry_of` the attempt before, so a task retried
//!   twice is three runs linked in a chain;
//! - the handler's `Ok` → `success` with its value as the result, `Err` →
//!   `failed` with its message, a panic → `failed` (`panicked: …`), an
//!   apalis `AbortError` (the handler's "never run this again") →
//!   `cancelled` (`cancelled: the handler aborted: …`), a cancel →
//!   `cancelled`;
//! - the run is a spawned run with a lease: a worker that dies leaves its
//!   runs to the recovery sweep of any instance (`interrupted`);
//! - a cancel from the dashboard or any instance drops the handler's future
//!   at once and tells apalis the task was aborted (status `Killed`: apalis
//!   does not run it again);
//! - an entity that maps the extras `attempt` and `worker`
//!   ([`EXTRA_ATTEMPT`], [`EXTRA_WORKER`]) gets the attempt number and the
//!   worker's name in those columns;
//! - the tracker's instance is the worker: give each worker a tracker whose
//!   [`TrackerOptions::instance`](crate::TrackerOptions::instance) is the
//!   worker's name.
//!
//! A handler reaches its run through tasktrail's [`TaskContext`], an apalis
//! extractor: progress, messages, cancellation. tasktrail's own [`Task`](crate::Task)
//! trait is for kinds this process runs; an apalis handler needs none of
//! it, so import `tasktrail::TaskContext` by name beside
//! `apalis::prelude::*` (whose `Task` is apalis' task type).
//!
//! The dashboard's *Retry* on such a run enqueues the job again through
//! apalis once the web process registers the queue's storage with
//! [`Tracker::enqueue_retries`]; the new job's first run is recorded
//! `pending` with `retry_of` at once.
//!
//! The wiring (a whole worker and web process: `docs/scaling-out.md`):
//!
//! ```
//! # mod task_run {
//! # use sea_orm::entity::prelude::*;
//! # #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
//! # #[sea_orm(table_name = "task_runs")]
//! # pub struct Model { #[sea_orm(primary_key)] pub id: i32, #[sea_orm(unique)] pub task_key: String,
//! #   pub status: String, pub created_at: ChronoDateTimeUtc, pub updated_at: ChronoDateTimeUtc }
//! # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
//! # impl ActiveModelBehavior for ActiveModel {} }
//! use tasktrail::TaskContext;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Email { to: String }
//!
//! // An apalis handler: apalis' extractors, and tasktrail's TaskContext.
//! async fn send(email: Email, run: TaskContext) -> Result<String, std::io::Error> {
//!     run.message(format!("sending to {}", email.to));
//!     Ok("sent".into())
//! }
//!
//! # async fn demo(db: sea_orm::DatabaseConnection) {
//! // One tracker per worker, named as the worker is.
//! let tracker = task_run::Tracker::with_options(
//!     db,
//!     tasktrail::TrackerOptions {
//!         instance: Some("email-worker-1".into()),
//!         ..Default::default()
//!     },
//! );
//! let layer = tasktrail::apalis::TrackLayer::new(tracker);
//! // WorkerBuilder::new("email-worker-1").backend(storage).layer(layer).build(send)
//! # let _ = (layer, send); }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use apalis::layers::catch_panic::PanicError;
use apalis_core::backend::TaskSink;
use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::layers::{Layer, Service};
use apalis_core::task::Task as ApalisTask;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::from_request::FromRequest;
use apalis_core::task::status::Status as ApalisStatus;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TrackingConfig;
use crate::lifecycle::{RunError, Tracker};
use crate::run::{CancelReason, TaskContext};
use crate::run::{Enqueue, EnqueueError};

/// Records every attempt of every apalis task as a run of `tracker` (see
/// the [module](self)). Add it with `WorkerBuilder::layer`, after
/// `.retry(…)` if you use apalis' in-process retries (so each attempt
/// passes through it); it catches panics itself, so `.catch_panic()` is
/// not needed.
pub struct TrackLayer<M: TrackingConfig> {
    tracker: Tracker<M>,
}

impl<M: TrackingConfig> Clone for TrackLayer<M> {
    fn clone(&self) -> Self {
        TrackLayer {
            tracker: self.tracker.clone(),
        }
    }
}

impl<M: TrackingConfig> fmt::Debug for TrackLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackLayer").finish_non_exhaustive()
    }
}

impl<M: TrackingConfig> TrackLayer<M> {
    /// A layer recording into `tracker`, whose instance should be the
    /// worker's name.
    pub fn new(tracker: Tracker<M>) -> Self {
        TrackLayer { tracker }
    }
}

impl<S, M: TrackingConfig> Layer<S> for TrackLayer<M> {
    type Service = TrackService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackService {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}

/// The service [`TrackLayer`] wraps a worker's handler in.
pub struct TrackService<S, M: TrackingConfig> {
    inner: S,
    tracker: Tracker<M>,
}

impl<S: Clone, M: TrackingConfig> Clone for TrackService<S, M> {
    fn clone(&self) -> Self {
        TrackService {
            inner: self.inner.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl<S, M: TrackingConfig> fmt::Debug for TrackService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackService").finish_non_exhaustive()
    }
}

/// How an attempt's handler ended, as the run records it.
enum Failure {
    /// The handler's `Err`, handed back to apalis as it is.
    Error(BoxDynError),
    /// A panic that apalis' `catch_panic` (inside this layer) turned into
    /// an error: recorded as the panic it was.
    Panicked(String, BoxDynError),
    /// Cancelled while it ran: the handler's future was dropped.
    Cancelled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(err) => fmt::Display::fmt(err, f),
            Failure::Panicked(message, _) => write!(f, "panicked: {message}"),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What a handler's `Err` means: apalis' [`AbortError`] asks that the task
/// not run again (recorded `cancelled`), unless it wraps a panic apalis
/// caught (`failed`, as a panic).
fn failure(err: BoxDynError, ctx: &TaskContext) -> Failure {
    let Some(abort) = err.downcast_ref::<AbortError>() else {
        return Failure::Error(err);
    };
    let source = std::error::Error::source(abort);
    if let Some(panic) = source.and_then(|s| s.downcast_ref::<PanicError>()) {
        return Failure::Panicked(panic.0.clone(), err);
    }
    let why = source.map_or_else(|| abort.to_string(), ToString::to_string);
    ctx.stop_with(CancelReason::Requested(Some(format!(
        "the handler aborted: {why}"
    ))));
    Failure::Error(err)
}

/// Why tasktrail ended an attempt apalis would otherwise have let run: the
/// source of the [`AbortError`] the worker gets, so apalis stores the task
/// as `Killed` and runs it no more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Aborted {
    /// The run was cancelled (from the dashboard, the API or
    /// `tracker.cancel`), or it outlived its maximum duration.
    #[error("tasktrail: {0}")]
    Cancelled(String),
    /// The handler panicked; the run is `failed` with the message.
    #[error("tasktrail: the handler panicked: {0}")]
    Panicked(String),
    /// The run's task was lost (the tokio runtime shut down under it).
    #[error("tasktrail: the run was lost")]
    Lost,
}

/// The extra [`TrackLayer`] fills with the attempt number (1, 2, …) when
/// the entity maps it: `#[tracking(extra = "attempt")] attempt: Option<i32>`.
pub const EXTRA_ATTEMPT: &str = "attempt";

/// The extra [`TrackLayer`] fills with the worker's name when the entity
/// maps it: `#[tracking(extra = "worker")] worker: Option<String>`.
pub const EXTRA_WORKER: &str = "worker";

/// The key of attempt `attempt` (1-based) of apalis task `id`.
pub fn run_key(id: &TaskId, attempt: usize) -> String {
    format!("{id}-{attempt}")
}

impl<S, M, Args> Service<ApalisTask<Args>> for TrackService<S, M>
where
    M: TrackingConfig,
    S: Service<ApalisTask<Args>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Serialize + Send + 'static,
    Args: Serialize + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut task: ApalisTask<Args>) -> Self::Future {
        // The service that was polled ready goes with this call; a clone
        // stays for the next (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(id) = task.task_id().cloned() else {
            // Only a backend without ids (none of apalis' durable ones)
            // gets here: such a task cannot be named, so it runs untracked.
            tracing::warn!(
                "tasktrail: an apalis task without an id runs untracked (TrackLayer needs task ids)"
            );
            return inner.call(task).map(|r| r.map_err(Into::into)).boxed();
        };
        // apalis counts the attempts that ended; this is the next one.
        let attempt = task.attempt() + 1;
        let status = task.raw_status().clone();
        let name = task
            .queue()
            .map(|q| q.to_string())
            .unwrap_or_else(|| std::any::type_name::<Args>().to_owned());
        let worker = task
            .data()
            .get::<WorkerContext>()
            .map(|w| w.name().to_owned());
        if let Some(worker) = &worker {
            let instance = &self.tracker.inner().instance;
            if worker != &**instance {
                tracing::debug!(
                    worker = %worker,
                    instance = %instance,
                    "tasktrail: the tracker's instance is not the worker's name; runs are recorded under the instance"
                );
            }
        }
        let mut builder = self
            .tracker
            .begin(&name)
            .key(run_key(&id, attempt))
            .args(&task.args);
        if attempt > 1 {
            builder = builder.retry_of(run_key(&id, attempt - 1));
        }
        // Columns the entity may map as extras.
        if M::extra(EXTRA_ATTEMPT).is_some() {
            builder = builder.extra(EXTRA_ATTEMPT, i32::try_from(attempt).unwrap_or(i32::MAX));
        }
        if let Some(worker) = worker.filter(|_| M::extra(EXTRA_WORKER).is_some()) {
            builder = builder.extra(EXTRA_WORKER, worker);
        }
        async move {
            let spawned = builder
                .spawn(move |ctx: TaskContext| {
                    task.inject_data(ctx.clone());
                    let handler = inner.call(task);
                    async move {
                        tokio::select! {
                            biased;
                            out = handler => out.map_err(|e| failure(e.into(), &ctx)),
                            _ = ctx.cancelled() => Err(Failure::Cancelled),
                        }
                    }
                })
                .await;
            let spawned = match spawned {
                Ok(spawned) => spawned,
                Err(err) => {
                    // Not started (shutting down, the same attempt already
                    // running here, the database refusing the locks): apalis
                    // decides what comes next, as for any failure.
                    status.store(ApalisStatus::Failed);
                    return Err(Box::new(err) as BoxDynError);
                }
            };
            let (out, abort) = match spawned.await {
                Ok(value) => (Ok(value), false),
                Err(RunError::Failed(Failure::Error(err))) => (Err(err), false),
                // apalis' status is unset after a panic.
                Err(RunError::Failed(Failure::Panicked(_, err))) => (Err(err), true),
                Err(RunError::Failed(Failure::Cancelled)) => {
                    (Err(aborted(Aborted::Cancelled("cancelled".into()))), true)
                }
                Err(RunError::Cancelled(message) | RunError::Interrupted(message)) => {
                    (Err(aborted(Aborted::Cancelled(message))), true)
                }
                Err(RunError::Panicked(message)) => {
                    (Err(aborted(Aborted::Panicked(message))), true)
                }
                Err(RunError::Lost) => (Err(aborted(Aborted::Lost)), true),
            };
            // apalis sets the status when the handler's future completes;
            // a dropped or panicked one leaves `Running`, which apalis would
            // store (and its retry policy would run again).
            if out.is_err() && status.load() == ApalisStatus::Running {
                status.store(if abort {
                    ApalisStatus::Killed
                } else {
                    ApalisStatus::Failed
                });
            } else if abort {
                status.store(ApalisStatus::Killed);
            }
            out
        }
        .boxed()
    }
}

fn aborted(why: Aborted) -> BoxDynError {
    Box::new(AbortError::new(why))
}

/// A handler's way to its run: `async fn job(args: Job, run:
/// tasktrail::TaskContext)` under a [`TrackLayer`].
impl<Args: Sync> FromRequest<ApalisTask<Args>> for TaskContext {
    type Error = NotTracked;

    async fn from_request(task: &ApalisTask<Args>) -> Result<Self, NotTracked> {
        task.data().get::<TaskContext>().cloned().ok_or(NotTracked)
    }
}

/// A handler asked for tasktrail's [`TaskContext`] in a worker without a
/// [`TrackLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this apalis task runs without tasktrail's TrackLayer, so it has no TaskContext")]
pub struct NotTracked;

/// Enqueues retries of runs named `queue` into an apalis storage.
struct Requeue<Args, S, K> {
    storage: S,
    adjust: Adjust<Args>,
    _kind: std::marker::PhantomData<fn() -> K>,
}

/// What a retry's new job is built with (its attempts, priority, …).
type Adjust<Args> = Arc<dyn Fn(TaskBuilder<Args>) -> TaskBuilder<Args> + Send + Sync>;

impl<Args, S, K> Enqueue for Requeue<Args, S, K>
where
    Args: DeserializeOwned + Send + 'static,
    S: TaskSink<Args, K> + Clone + Send + Sync + 'static,
    S::Error: fmt::Display,
    K: 'static,
{
    fn enqueue(&self, args: serde_json::Value) -> BoxFuture<'static, Result<String, EnqueueError>> {
        let mut storage = self.storage.clone();
        let adjust = self.adjust.clone();
        async move {
            let args: Args =
                serde_json::from_value(args).map_err(|e| EnqueueError::BadArgs(e.to_string()))?;
            let id = TaskId::from_ulid(ulid::Ulid::generate());
            let key = run_key(&id, 1);
            let task = adjust(TaskBuilder::new(args)).task_id(id).build();
            storage
                .push_task(task)
                .await
                .map_err(|e| EnqueueError::Push(e.to_string()))?;
            Ok(key)
        }
        .boxed()
    }
}

impl<M: TrackingConfig> Tracker<M> {
    /// Retries of runs named `queue` (an apalis queue's job type, as
    /// [`TrackLayer`] names its runs) enqueue a new job into `storage`
    /// (a clone of the workers' storage, with the same queue) instead of
    /// running here: the dashboard's *Retry* then goes through apalis, and
    /// [`retry_or_enqueue`](Self::retry_or_enqueue) does the same in code.
    ///
    /// `Args` is the jobs' type (a stored run's args must deserialise into
    /// it); `adjust` sets what the new job is built with — apalis' storages
    /// give a job 25 attempts unless told otherwise:
    /// `tracker.enqueue_retries::<Email, _, _>("email", storage, |job|
    /// job.max_attempts(3))` (a whole example: `docs/scaling-out.md`).
    ///
    /// The new job gets a fresh id (a ULID, as apalis' storages need); its
    /// first run's key is `<id>-1`.
    pub fn enqueue_retries<Args, S, K>(
        &self,
        queue: &str,
        storage: S,
        adjust: impl Fn(TaskBuilder<Args>) -> TaskBuilder<Args> + Send + Sync + 'static,
    ) -> &Self
    where
        Args: DeserializeOwned + Send + 'static,
        S: TaskSink<Args, K> + Clone + Send + Sync + 'static,
        S::Error: fmt::Display,
        K: 'static,
    {
        let requeue: Requeue<Args, S, K> = Requeue {
            storage,
            adjust: Arc::new(adjust),
            _kind: std::marker::PhantomData,
        };
        self.register_remote(queue, Arc::new(requeue));
        self
    }
}
