//! The dashboard's background retention: the runs older than
//! `retention_days` (through the tracker's [`Retention`]) and the audit
//! entries older than the audit retention, deleted when the router is built
//! and then every `retention_interval` of the tracker.
//!
//! The task holds the dashboard weakly: it ends when the router (and every
//! clone of it) is dropped, or when the tracker shuts down. A tick that
//! fails is logged and the next one tries again; a tick that panics is
//! caught and logged, so one bad tick never ends the task.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::dashboard::{DashboardConfig, Shared};
use crate::run::Retention;

/// The shortest pause between two ticks, whatever `retention_interval`
/// says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What the task deletes.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// Ended runs older than this many days (the `retention_days` setting).
    pub runs_days: Option<u32>,
    /// Audit entries older than this.
    pub audit: Option<Duration>,
}

/// Starts the task for `shared` if its policy deletes anything. Outside a
/// tokio runtime it cannot run: a warning says so when there is something
/// to delete.
pub(crate) fn start<C: DashboardConfig>(shared: &Shared<C>, policy: Policy) {
    if policy.runs_days.is_none() && policy.audit.is_none() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            "tasktrail dashboard: the router was built outside a tokio runtime, so \
             `retention_days` and the audit retention are not applied; build it inside one"
        );
        return;
    };
    let options = shared.tracker.options();
    if policy.runs_days.is_some() && options.retention.is_some() {
        tracing::warn!(
            "tasktrail dashboard: both the tracker's retention and the dashboard's \
             `retention_days` apply; a run is deleted as soon as either selects it"
        );
    }
    let every = options.retention_interval.max(MIN_INTERVAL);
    let stop = shared.tracker.runs().stop.clone();
    let weak = Arc::downgrade(shared);
    runtime.spawn(async move {
        loop {
            {
                let Some(shared) = weak.upgrade() else { return };
                let tick = std::panic::AssertUnwindSafe(tick(&shared, &policy)).catch_unwind();
                if let Err(panic) = tick.await {
                    tracing::error!(
                        panic = %crate::lifecycle::tracker::panic_message(&*panic),
                        "tasktrail dashboard: a retention tick panicked; the next one runs as planned"
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    });
}

/// One pass: the runs, then the audit entries.
async fn tick<C: DashboardConfig>(shared: &Shared<C>, policy: &Policy) {
    if let Some(days) = policy.runs_days
        && let Err(err) = shared
            .tracker
            .purge(&Retention::days(u64::from(days)))
            .await
    {
        tracing::warn!(error = %err, "tasktrail dashboard: `retention_days` could not delete old runs; trying again at the next tick");
    }
    if let Some(age) = policy.audit {
        match crate::auth::audit::purge(shared.tracker.db(), age).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, "tasktrail dashboard: deleted old audit entries");
            }
            Err(err) => {
                tracing::warn!(error = %err, "tasktrail dashboard: old audit entries could not be deleted; trying again at the next tick");
            }
        }
    }
}
