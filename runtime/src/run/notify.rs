//! Cross-instance cancel on PostgreSQL: `LISTEN` / `NOTIFY`.
//!
//! A cancel recorded for a run another instance runs
//! ([`Tracker::cancel`](crate::Tracker::cancel), the dashboard) is followed,
//! once committed, by a notification on [`CHANNEL`] carrying only the run's
//! scope and key. Each tracker on PostgreSQL keeps one listening connection
//! of its own (outside the application's pool, so a pool of one is never
//! starved); a notification for one of its runs stops it at once instead of
//! at the next heartbeat. The listener reconnects with backoff and, after
//! every (re)connect, checks its runs against the table (what it may have
//! missed while it was away). The heartbeat's check stays as the fallback
//! behind PgBouncer's transaction mode (no `LISTEN`) or while the listener
//! is down. On other backends (SQLite) there are no notifications: while
//! the tracker has runs, it checks them against the table every
//! [`CANCEL_POLL`] instead (one query per 500 runs), once per tracker.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DbErr};

use crate::config::TrackingConfig;
use crate::lifecycle::{Status, Tracker};
use crate::run::CancelReason;

/// The notification channel.
pub(crate) const CHANNEL: &str = "tasktrail_cancel";

/// How often a tracker without notifications (SQLite) checks its running
/// runs for a cancel recorded by another instance.
pub(crate) const CANCEL_POLL: Duration = Duration::from_millis(200);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The payload for the run `key` of `scope`.
fn payload(scope: &str, key: &str) -> String {
    format!("{scope}\n{key}")
}

impl<M: TrackingConfig> Tracker<M> {
    /// Tells the other instances that `key` was cancelled (PostgreSQL;
    /// nothing elsewhere). Sent after the cancel was committed, so a
    /// listener that reads the row finds it cancelled.
    pub(crate) async fn announce_cancel(&self, key: &str) -> Result<(), DbErr> {
        let db = self.db();
        if db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload(&self.scope(), key).into()],
        ))
        .await
        .map(|_| ())
    }

    /// Starts watching for cancels recorded by other instances: the
    /// listener on a sqlx PostgreSQL pool, the poll elsewhere. Stops with
    /// the maintenance (tracker dropped or shut down).
    pub(crate) fn watch_remote_cancels(&self) {
        use sea_orm::DatabaseConnectionType as Inner;
        if matches!(self.db().inner, Inner::SqlxPostgresPoolConnection(_)) {
            self.start_listener();
        } else {
            self.start_cancel_poll();
        }
    }

    /// Every [`CANCEL_POLL`] while runs are running, checks them against the
    /// table.
    fn start_cancel_poll(&self) {
        let weak = Arc::downgrade(self.inner_arc());
        let stop = self.runs().stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(CANCEL_POLL) => {}
                    () = stop.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let tracker = Tracker::<M>::from_inner(inner);
                let active = tracker.runs().active_pairs();
                if active.is_empty() {
                    continue;
                }
                if let Err(err) = tracker.stop_runs_ended_elsewhere(&active).await {
                    tracing::debug!(error = %err, "tasktrail: the cancel check failed; retrying");
                }
            }
        });
    }

    /// The PostgreSQL listener; see the [module](self) docs.
    fn start_listener(&self) {
        let db = self.db();
        // A connection of its own, with the application pool's settings.
        let options = (*db.get_postgres_connection_pool().connect_options()).clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let weak = Arc::downgrade(self.inner_arc());
        let stop = self.runs().stop.clone();
        let scope = self.scope();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let listening = async {
                    let mut listener = PgListener::connect_with(&own).await?;
                    listener.listen(CHANNEL).await?;
                    Ok::<_, sea_orm::sqlx::Error>(listener)
                };
                let mut listener = tokio::select! {
                    listener = listening => match listener {
                        Ok(listener) => listener,
                        Err(err) => {
                            tracing::warn!(error = %err, ?backoff, "tasktrail: the cancel listener could not connect; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(backoff) => {}
                                () = stop.cancelled() => return,
                            }
                            if weak.strong_count() == 0 {
                                return;
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    },
                    () = stop.cancelled() => return,
                };
                backoff = Duration::from_millis(100);
                // What was cancelled while nobody listened.
                let catch_up = || async {
                    let Some(inner) = weak.upgrade() else {
                        return false;
                    };
                    let tracker = Tracker::<M>::from_inner(inner);
                    let active = tracker.runs().active_pairs();
                    if let Err(err) = tracker.stop_runs_ended_elsewhere(&active).await {
                        tracing::debug!(error = %err, "tasktrail: the cancel listener's catch-up failed; the heartbeat checks again");
                    }
                    true
                };
                if !catch_up().await {
                    return;
                }
                loop {
                    let received = tokio::select! {
                        received = listener.try_recv() => received,
                        () = stop.cancelled() => return,
                        // The tracker was dropped: let the connection go.
                        () = tokio::time::sleep(Duration::from_secs(1)) => {
                            if weak.strong_count() == 0 {
                                return;
                            }
                            continue;
                        }
                    };
                    match received {
                        Ok(Some(notification)) => {
                            let Some(inner) = weak.upgrade() else { return };
                            let Some((of, key)) = notification.payload().split_once('\n') else {
                                continue;
                            };
                            if of != scope {
                                continue;
                            }
                            let tracker = Tracker::<M>::from_inner(inner);
                            if let Some(control) = tracker.runs().active().get(key)
                                && control.request_cancel(CancelReason::Remote(Status::Cancelled))
                            {
                                tracing::info!(
                                    key,
                                    "tasktrail: another instance cancelled this run; stopping it"
                                );
                            }
                        }
                        // The connection was lost and made again: catch up.
                        Ok(None) => {
                            if !catch_up().await {
                                return;
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "tasktrail: the cancel listener lost its connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        });
    }
}
