//! Cross-instance cancel: a tracker with spawned runs follows the change
//! feed ([`crate::feed`]).
//!
//! A cancel recorded for a run another instance runs
//! ([`Tracker::cancel`](crate::Tracker::cancel), the dashboard) is a change
//! in the feed like any write. The instance that runs it sees the change as
//! soon as its process's feed reader does — at once on PostgreSQL (the
//! write's `NOTIFY` wakes the one listener of the process), within
//! [`POLL`](crate::feed::POLL) elsewhere — checks the run's row and stops
//! the run. The heartbeat's check of the rows stays as the fallback.

use std::sync::Arc;
use std::time::Duration;

use crate::config::TrackingConfig;
use crate::lifecycle::Tracker;

/// Changes looked at in one go.
const BATCH: usize = 1_000;

impl<M: TrackingConfig> Tracker<M> {
    /// Starts following the feed for changes other instances made to this
    /// tracker's running runs. Stops with the maintenance (tracker dropped
    /// or shut down).
    pub(crate) fn watch_remote_cancels(&self) {
        let weak = Arc::downgrade(self.inner_arc());
        let stop = self.runs().stop.clone();
        let hub = self.inner().feed.clone();
        let scope = self.inner().scope.clone();
        let instance = self.inner().instance.clone();
        tokio::spawn(async move {
            let mut sub = hub.subscribe();
            let mut cursor = loop {
                match hub.now().await {
                    Ok(cursor) => break cursor,
                    Err(err) => {
                        tracing::debug!(error = %err, "tasktrail: the change feed could not be read; the heartbeat checks meanwhile");
                        tokio::select! {
                            () = tokio::time::sleep(crate::feed::POLL) => {}
                            () = stop.cancelled() => return,
                        }
                    }
                }
            };
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let tracker = Tracker::<M>::from_inner(inner);
                let mut caught_up = true;
                match hub.after(cursor, Some(&scope), BATCH).await {
                    Ok((changes, next)) => {
                        cursor = next;
                        caught_up = changes.len() < BATCH;
                        // Other instances' changes of runs running here.
                        let touched: Vec<_> = {
                            let active = tracker.runs().active();
                            let mut touched: Vec<(String, Arc<crate::run::Control>)> = Vec::new();
                            for c in &changes {
                                if c.instance.as_deref() == Some(&*instance) {
                                    continue;
                                }
                                if let Some(control) = active.get(&c.run_key)
                                    && !touched.iter().any(|(k, _)| *k == c.run_key)
                                {
                                    touched.push((c.run_key.clone(), control.clone()));
                                }
                            }
                            touched
                        };
                        if !touched.is_empty()
                            && let Err(err) = tracker.stop_runs_ended_elsewhere(&touched).await
                        {
                            tracing::debug!(error = %err, "tasktrail: a run changed elsewhere could not be checked; the heartbeat checks again");
                        }
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "tasktrail: the change feed could not be read; the heartbeat checks meanwhile");
                    }
                }
                drop(tracker);
                if caught_up {
                    tokio::select! {
                        () = sub.changed() => {}
                        () = stop.cancelled() => return,
                        // Whether the tracker is still there.
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        });
    }
}
