//! Spawning a tracked run and waiting for it.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use sea_orm::DbErr;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::config::TrackingConfig;
use crate::hooks::to_json_lenient;
use crate::lifecycle::tracker::panic_message;
use crate::lifecycle::{Event, RunBuilder, RunError, Tracker};
use crate::run::hooks::Finished;
use crate::run::recorder::Recorder;
use crate::run::{
    CancelReason, Control, LEASE_MISSING, LEASE_PENDING, LEASE_WRITTEN, TaskContext, store,
};
use crate::writer::{OnTransient, Outcome, Work, lane_of};

/// Why a run could not be spawned. Nothing is recorded for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// Other runs hold some of the objects this run touches.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<LockConflict>),
    /// The locks could not be taken: the database did not answer. A run with
    /// objects does not start without its locks.
    #[error("the locks for run `{key}` could not be taken: {source}")]
    Locks {
        /// The run's key.
        key: String,
        /// The database error.
        #[source]
        source: DbErr,
    },
    /// A run with this key is already running in this tracker.
    #[error("a run with key `{0}` is already running")]
    AlreadyRunning(String),
    /// The run's key is empty.
    #[error("a run needs a non-empty key")]
    EmptyKey,
    /// The run's key is too long or holds a NUL character.
    #[error("run key `{key}` is refused: {reason}")]
    InvalidKey {
        /// The key's first 64 characters.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Tracker::shutdown`] has been called.
    #[error("the tracker is shutting down and accepts no new runs")]
    ShuttingDown,
    /// No task kind with this name is registered (see [`Tracker::register`]).
    #[error(
        "no task kind named `{0}` is registered; register it with tracker.register(…) before submitting it"
    )]
    UnknownKind(String),
    /// The arguments do not fit the task kind.
    #[error("the arguments do not fit the task kind `{kind}`: {message}")]
    BadArgs {
        /// The kind's name.
        kind: String,
        /// serde's message.
        message: String,
    },
}

fn conflict_message(conflicts: &[LockConflict]) -> String {
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "`{}` is held by run `{}` ({})",
                c.object, c.run_key, c.task_name
            )
        })
        .collect();
    format!(
        "the run conflicts with runs in progress: {}",
        list.join("; ")
    )
}

/// One object another run holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockConflict {
    /// The object's key.
    pub object: String,
    /// The run holding it.
    pub run_key: String,
    /// That run's task name.
    pub task_name: String,
}

/// A spawned run: await it for the task's result, read its key, cancel it.
///
/// Dropping it does not cancel the run (like tokio's `JoinHandle`).
#[must_use = "a spawned run keeps running; await the handle to get its result"]
pub struct Spawned<T, E> {
    key: String,
    control: Arc<Control>,
    result: oneshot::Receiver<Result<T, RunError<E>>>,
}

impl<T, E> fmt::Debug for Spawned<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned").field("key", &self.key).finish()
    }
}

impl<T, E> Spawned<T, E> {
    /// The run's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Asks the run to stop. It sees it through its context at once; if it
    /// has not stopped after the tracker's `cancel_grace`, its future is
    /// dropped. The run is recorded as `cancelled`.
    pub fn cancel(&self) {
        self.control.request_cancel(CancelReason::Requested(None));
    }

    /// [`cancel`](Self::cancel) with a reason, recorded as the run's message.
    pub fn cancel_with(&self, reason: impl Into<String>) {
        self.control
            .request_cancel(CancelReason::Requested(Some(reason.into())));
    }

    /// Whether the run has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.control.cancel.is_cancelled()
    }
}

impl<T: Send + 'static, E: Send + 'static> IntoFuture for Spawned<T, E> {
    type Output = Result<T, RunError<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Waits until the run has ended and its terminal event is recorded (or
    /// queued, if the database is unreachable).
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.result.await.unwrap_or(Err(RunError::Lost)) })
    }
}

/// How the task's future ended.
enum Ending<T, E> {
    Returned(Result<T, E>),
    Panicked(String),
    Dropped,
    NotStarted,
}

impl<M: TrackingConfig> Tracker<M> {
    /// Spawns `task` as a run of `name` with `args`; shorthand for
    /// `tracker.begin(name).args(&args).spawn(task)`.
    ///
    /// ```no_run
    /// # async fn demo(tracker: tasktrail::Tracker<impl tasktrail::TrackingConfig>) -> Result<(), Box<dyn std::error::Error>> {
    /// let run = tracker
    ///     .spawn("import_books", &["dune.csv"], |ctx| async move {
    ///         ctx.progress_with_message(50.0, "half way");
    ///         Ok::<_, std::io::Error>(42)
    ///     })
    ///     .await?;
    /// println!("spawned {}", run.key());
    /// let answer = run.await?;
    /// # Ok(()) }
    /// ```
    ///
    /// `args` are serialised now, so the returned future does not borrow
    /// them (it is `Send` even when they are not `Sync`).
    pub fn spawn<A, T, E, F, Fut>(
        &self,
        name: impl Into<String>,
        args: &A,
        task: F,
    ) -> impl Future<Output = Result<Spawned<T, E>, SpawnError>> + Send
    where
        A: Serialize + ?Sized,
        T: Serialize + Send + 'static,
        E: fmt::Display + Send + 'static,
        F: FnOnce(TaskContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.begin(name).args(args).spawn(task)
    }
}

impl<M: TrackingConfig> RunBuilder<M> {
    /// Spawns `task` on tokio and records its whole life: `create` now
    /// (`pending`), `start` when it may run (see `max_concurrent`), then
    /// `complete` with its `Ok` value, `fail` with its `Err`'s message or its
    /// panic message, `cancel` if it was cancelled, or `interrupt` if it
    /// outlived its maximum duration.
    ///
    /// The objects given with [`objects`](Self::objects) are locked first,
    /// all or none: if another run holds one, nothing is recorded and
    /// [`SpawnError::Conflict`] names the holders. Opt out with
    /// [`lock_objects(false)`](Self::lock_objects).
    pub async fn spawn<T, E, F, Fut>(self, task: F) -> Result<Spawned<T, E>, SpawnError>
    where
        T: Serialize + Send + 'static,
        E: fmt::Display + Send + 'static,
        F: FnOnce(TaskContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let tracker = self.tracker.clone();
        let inner = tracker.inner();
        let runs = tracker.runs();
        if runs.closing.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown);
        }
        let event = self.event;
        let key = event.key.clone();
        if key.is_empty() {
            return Err(SpawnError::EmptyKey);
        }
        if let Some(reason) = crate::lifecycle::event::key_problem(&key) {
            return Err(SpawnError::InvalidKey {
                key: crate::lifecycle::event::key_excerpt(&key),
                reason,
            });
        }
        let name = event.name.clone().unwrap_or_default();
        tracker.start_maintenance();

        let options = &inner.options;
        let max_duration = self.max_duration.or(options.max_duration);
        let started = std::time::Instant::now();
        let locked = (self.lock_objects && event.objects.as_ref().is_some_and(|o| !o.is_empty()))
            || !self.guards.is_empty();
        let control = Arc::new(Control {
            name: name.clone(),
            cancel: Default::default(),
            kill: Default::default(),
            reason: Default::default(),
            started,
            max_duration,
            locked,
            lease: std::sync::atomic::AtomicU8::new(LEASE_PENDING),
            orphaned: Default::default(),
        });
        if runs.active().contains_key(&key) {
            return Err(SpawnError::AlreadyRunning(key));
        }

        if locked {
            let mut keys: Vec<String> = match &event.objects {
                Some(objects) if self.lock_objects => {
                    objects.iter().map(|o| o.key.clone()).collect()
                }
                _ => Vec::new(),
            };
            keys.extend(self.guards.iter().cloned());
            let scope = tracker.scope();
            let claim = store::Claim {
                scope: &scope,
                instance: &runs.instance,
                run_key: &key,
                task_name: &name,
                ttl_ms: super::ms(options.lease_ttl),
            };
            let acquired = store::acquire(tracker.db(), &claim, &keys).await;
            let refused = match acquired {
                Ok(Ok(())) => None,
                Ok(Err(holders)) => Some(SpawnError::Conflict(
                    holders
                        .into_iter()
                        .map(|h| LockConflict {
                            object: h.object,
                            run_key: h.run_key,
                            task_name: h.task_name,
                        })
                        .collect(),
                )),
                Err(source) => Some(SpawnError::Locks {
                    key: key.clone(),
                    source,
                }),
            };
            if let Some(err) = refused {
                return Err(err);
            }
        }
        // Admitted: from here on the heartbeat keeps the run's lease.
        {
            let mut active = runs.active();
            if active.contains_key(&key) {
                // The same key spawned twice at once: the locks under this
                // key belong to the run that got in first, which releases
                // them.
                return Err(SpawnError::AlreadyRunning(key));
            }
            active.insert(key.clone(), control.clone());
        }

        let (tx, rx) = oneshot::channel();
        let recorder = Arc::new(Recorder::new(
            tracker.clone(),
            key.clone(),
            options.progress_interval,
            control.clone(),
        ));
        let actor = event.actor.clone().flatten();
        let ctx = TaskContext::new(
            key.clone(),
            name.clone(),
            actor,
            event.retry_of.clone(),
            control.clone(),
            recorder.clone(),
        );
        let lease = name.clone();
        recorder.push(event);
        let run = execute(
            tracker.clone(),
            key.clone(),
            control.clone(),
            recorder,
            lease,
            max_duration,
            (locked, self.gate),
            task(ctx),
            tx,
        );
        runs.tasks.spawn(run);
        Ok(Spawned {
            key,
            control,
            result: rx,
        })
    }
}

/// The body of a spawned run: waits for a slot, runs the task beside its
/// recorder, records the ending, releases the locks, runs the hooks.
#[allow(clippy::too_many_arguments)]
async fn execute<M, T, E, Fut>(
    tracker: Tracker<M>,
    key: String,
    control: Arc<Control>,
    recorder: Arc<Recorder<M>>,
    name: String,
    max_duration: Option<Duration>,
    (locked, gate): (bool, Option<Arc<tokio::sync::Semaphore>>),
    task: Fut,
    tx: oneshot::Sender<Result<T, RunError<E>>>,
) where
    M: TrackingConfig,
    T: Serialize + Send + 'static,
    E: fmt::Display + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let began = tokio::time::Instant::now();
    let inner = tracker.inner();
    let runs = tracker.runs();
    let scope = tracker.scope();
    let lane = lane_of(&key);
    let grace = inner.options.cancel_grace;

    let main = async {
        // The lease, so that the run is recovered if this process dies. The
        // heartbeat writes it again if the database is down now.
        // Its locks (if any) were just taken with a fresh expiry.
        let lease = store::LeaseRow {
            run_key: &key,
            locked: false,
            task_name: &name,
            elapsed_ms: 0,
            remaining_ms: max_duration.map(super::ms),
        };
        let ttl = super::ms(inner.options.lease_ttl);
        let values = store::lease_values(&scope, &runs.instance, &lease, ttl);
        let work = Work::Row {
            template: runs.store.lease.clone(),
            values,
        };
        match inner
            .writer
            .write(Some(lane), work, OnTransient::Retry)
            .await
        {
            // Queued: written, in order, once the database is back.
            Outcome::Done(_) | Outcome::Queued => {
                control.lease.store(LEASE_WRITTEN, Ordering::Release)
            }
            outcome => {
                control.lease.store(LEASE_MISSING, Ordering::Release);
                tracing::warn!(key = %key, ?outcome, "tasktrail: the run's lease could not be written; the heartbeat will retry")
            }
        }

        // A slot, if the number of runs at once is bounded (first the run's
        // own limit, then the tracker's); a run cancelled while it waits
        // never starts.
        let _gate = match gate {
            Some(sem) => tokio::select! {
                permit = sem.acquire_owned() => permit.ok(),
                () = control.cancel.cancelled() => return Ending::NotStarted,
            },
            None => None,
        };
        let _permit = match &runs.semaphore {
            Some(sem) => tokio::select! {
                permit = sem.clone().acquire_owned() => permit.ok(),
                () = control.cancel.cancelled() => return Ending::NotStarted,
            },
            None => None,
        };
        if control.cancel.is_cancelled() {
            return Ending::NotStarted;
        }
        recorder.push(Event::start(&key));

        let span = tracing::info_span!("task", task_key = %key, task_name = %name);
        let mut task = std::pin::pin!(AssertUnwindSafe(task).catch_unwind().instrument(span));
        let deadline = async {
            match max_duration {
                Some(d) => tokio::time::sleep_until(began + d).await,
                None => std::future::pending().await,
            }
        };
        let mut deadline = std::pin::pin!(deadline);
        let mut deadline_passed = false;
        let mut grace_timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            tokio::select! {
                out = &mut task => return match out {
                    Ok(result) => Ending::Returned(result),
                    Err(panic) => Ending::Panicked(panic_message(&*panic)),
                },
                () = control.kill.cancelled() => return Ending::Dropped,
                () = &mut deadline, if !deadline_passed => {
                    deadline_passed = true;
                    control.request_cancel(CancelReason::Deadline(
                        max_duration.unwrap_or_default(),
                    ));
                }
                () = control.cancel.cancelled(), if grace_timer.is_none() => {
                    grace_timer = Some(Box::pin(tokio::time::sleep(grace)));
                }
                () = async { grace_timer.as_mut().expect("guarded").await }, if grace_timer.is_some() => {
                    return Ending::Dropped;
                }
            }
        }
    };

    let (ending, ()) = tokio::join!(
        async {
            let ending = main.await;
            // The terminal event, then no more events.
            let reason = control.reason();
            let (event, outcome) = terminal::<T, E>(&key, ending, reason);
            let finished = Finished::of(&key, &name, &event, began.elapsed());
            recorder.push(event);
            recorder.close();
            (outcome, finished)
        },
        recorder.run()
    );
    let (outcome, finished) = ending;

    // The locks and the lease go once the terminal event is written (or
    // queued: then they are freed after it, in the run's order).
    let row = || vec![scope.as_str().into(), key.as_str().into()];
    let mut frees = vec![(
        Some(lane),
        Work::Row {
            template: runs.store.free_lease.clone(),
            values: row(),
        },
        OnTransient::Retry,
        None,
    )];
    if locked {
        frees.insert(
            0,
            (
                Some(lane),
                Work::Row {
                    template: runs.store.free_locks.clone(),
                    values: row(),
                },
                OnTransient::Retry,
                None,
            ),
        );
    }
    let outcomes = inner.writer.write_all(frees).await;
    if let Some(outcome) = outcomes
        .iter()
        .find(|o| !matches!(o, Outcome::Done(_) | Outcome::Queued))
    {
        tracing::warn!(key = %key, ?outcome, "tasktrail: the run's locks could not be released; retrying with the heartbeat");
        runs.unreleased
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key.clone());
    }
    runs.active().remove(&key);
    let _ = tx.send(outcome);
    tracker.run_completion_hooks(finished).await;
}

/// The terminal event for how the task ended, and what its awaiter gets.
fn terminal<T: Serialize, E: fmt::Display>(
    key: &str,
    ending: Ending<T, E>,
    reason: Option<CancelReason>,
) -> (Event, Result<T, RunError<E>>) {
    let stop = |reason: Option<CancelReason>, note: Option<&str>| {
        let reason = reason.unwrap_or(CancelReason::Requested(None));
        let mut message = reason.to_string();
        if let Some(note) = note {
            message = format!("{message} ({note})");
        }
        match reason {
            CancelReason::Deadline(_) => (
                Event::interrupt(key, &message),
                Err(RunError::Interrupted(message)),
            ),
            _ => (
                Event::cancel(key).message(&message),
                Err(RunError::Cancelled(message)),
            ),
        }
    };
    match ending {
        Ending::Returned(Ok(value)) => {
            let result = to_json_lenient(&value);
            let mut event = Event::complete(key).with_progress(100.0);
            event.result = Some(result);
            (event, Ok(value))
        }
        Ending::Returned(Err(_)) if reason.is_some() => stop(reason, None),
        Ending::Returned(Err(error)) => (Event::fail(key, &error), Err(RunError::Failed(error))),
        Ending::Panicked(message) => (
            Event::fail(key, format_args!("panicked: {message}")),
            Err(RunError::Panicked(message)),
        ),
        Ending::Dropped => stop(
            reason,
            Some("the task did not stop by itself and was dropped"),
        ),
        Ending::NotStarted => stop(reason, Some("before it started")),
    }
}

impl<M: TrackingConfig> Tracker<M> {
    /// The value of the lock and lease tables' `scope` column: the tracked
    /// table's name.
    pub(crate) fn scope(&self) -> String {
        use sea_orm::EntityName;
        M::Entity::default().table_name().to_owned()
    }
}
