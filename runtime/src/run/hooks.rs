//! Completion hooks: callbacks when a spawned run completes, fails or is
//! cancelled. A hook that errors or panics is logged and counted; the run
//! and its awaiter never see it.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::TrackingConfig;
use crate::lifecycle::tracker::panic_message;
use crate::lifecycle::{Event, Status, Tracker};

/// A spawned run that has ended, as completion hooks see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// The run's key.
    pub key: String,
    /// The task's name.
    pub name: String,
    /// `success`, `failed`, `cancelled` or `interrupted`.
    pub status: Status,
    /// The error, panic or cancellation message.
    pub message: Option<String>,
    /// The task's `Ok` value as JSON (before redaction and the size cap).
    pub result: Option<serde_json::Value>,
    /// From spawn to the end.
    pub duration: Duration,
}

impl Finished {
    pub(crate) fn of(key: &str, name: &str, event: &Event, duration: Duration) -> Self {
        Finished {
            key: key.to_owned(),
            name: name.to_owned(),
            status: event.kind.status().unwrap_or(Status::Unknown),
            message: event.message.clone(),
            result: event.result.clone(),
            duration,
        }
    }
}

type Hook = Arc<dyn Fn(Finished) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hooks {
    on_complete: Vec<Hook>,
    on_fail: Vec<Hook>,
    on_cancel: Vec<Hook>,
}

fn erase<F, Fut, E>(hook: F) -> Hook
where
    F: Fn(Finished) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    Arc::new(move |finished| {
        let fut = hook(finished);
        async move { fut.await.map_err(|e| e.to_string()) }.boxed()
    })
}

impl<M: TrackingConfig> Tracker<M> {
    fn hooks_mut(&self) -> std::sync::RwLockWriteGuard<'_, Hooks> {
        self.runs().hooks.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `hook` after every spawned run that completes (`success`).
    ///
    /// ```no_run
    /// # fn demo(tracker: tasktrail::Tracker<impl tasktrail::TrackingConfig>) {
    /// tracker.on_complete(|run| async move {
    ///     println!("{} took {:?}", run.key, run.duration);
    ///     Ok::<_, std::convert::Infallible>(())
    /// });
    /// # }
    /// ```
    pub fn on_complete<F, Fut, E>(&self, hook: F) -> &Self
    where
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.hooks_mut().on_complete.push(erase(hook));
        self
    }

    /// Calls `hook` after every spawned run that fails (an `Err` or a panic).
    pub fn on_fail<F, Fut, E>(&self, hook: F) -> &Self
    where
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.hooks_mut().on_fail.push(erase(hook));
        self
    }

    /// Calls `hook` after every spawned run that is cancelled or interrupted.
    pub fn on_cancel<F, Fut, E>(&self, hook: F) -> &Self
    where
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.hooks_mut().on_cancel.push(erase(hook));
        self
    }

    pub(crate) async fn run_completion_hooks(&self, finished: Finished) {
        let hooks: Vec<Hook> = {
            let hooks = self.runs().hooks.read().unwrap_or_else(|e| e.into_inner());
            match finished.status {
                Status::Success => hooks.on_complete.clone(),
                Status::Failed => hooks.on_fail.clone(),
                _ => hooks.on_cancel.clone(),
            }
        };
        for hook in hooks {
            let call = AssertUnwindSafe(async { hook(finished.clone()).await })
                .catch_unwind()
                .await;
            let error = match call {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panic) => format!("panicked: {}", panic_message(&*panic)),
            };
            self.runs()
                .completion_hook_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(key = %finished.key, status = %finished.status, %error,
                "tasktrail: a completion hook failed; the run is not affected");
        }
    }
}
