//! The tracker's background work (heartbeat, recovery sweep, retention),
//! cancellation by key, and shutdown.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use crate::writer::{OnTransient, Outcome, Work, lane_of};
use tokio::time::Instant;

use crate::config::{Encode, Role, TrackingConfig, column_value, find_all, find_one, value_text};
use crate::lifecycle::tracker::panic_message;
use crate::lifecycle::{Event, Status, TrackError, Tracker};
use crate::run::{CancelReason, LEASE_MISSING, LEASE_WRITTEN, store};

/// What [`Tracker::recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Runs marked `interrupted` because their heartbeat lapsed.
    pub interrupted: Vec<String>,
    /// Runs marked `interrupted` because they outlived their maximum
    /// duration.
    pub overlong: Vec<String>,
    /// Locks freed (those of interrupted runs and lapsed ones).
    pub locks_freed: u64,
}

/// What [`Tracker::cancel`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run runs in this tracker: it was asked to stop, and records
    /// `cancelled` when it does.
    Signalled,
    /// The run is not running here: `cancelled` was recorded; the instance
    /// running it (if any) stops it at its next heartbeat.
    Recorded,
    /// The run had already ended.
    AlreadyEnded(Status),
    /// No run has this key.
    NotFound,
}

/// What [`Tracker::shutdown`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs that were running or waiting when shutdown began.
    pub running: usize,
    /// Runs cancelled because they did not end within the timeout.
    pub cancelled: Vec<String>,
    /// Whether every queued lifecycle event was written.
    pub flushed: bool,
    /// Events still in the retry queue (lost when the process exits).
    pub unflushed: u64,
}

/// Runs `work`, catching a panic in it (logged); answers whether it
/// completed.
async fn guarded(work: impl std::future::Future<Output = ()>) -> bool {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(()) => true,
        Err(panic) => {
            tracing::error!(
                panic = %panic_message(&*panic),
                "tasktrail: a maintenance round panicked; the next one runs as usual"
            );
            false
        }
    }
}

/// The stored status values only ended statuses are stored as: a value a
/// status that has not ended shares (a status mapping may store `Cancelled`
/// like `Pending`) never tells that a run ended.
pub(crate) fn ended_values(encode: fn(Status) -> sea_orm::Value) -> Vec<sea_orm::Value> {
    let unended: Vec<sea_orm::Value> = Status::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .map(encode)
        .collect();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    for value in Status::TERMINAL.map(encode) {
        if !unended.contains(&value) && !values.contains(&value) {
            values.push(value);
        }
    }
    values
}

/// Delete statements (of `Retention::batch_size` rows each) the background
/// retention runs per maintenance tick before it yields to the next tick.
pub(crate) const PURGE_STATEMENTS_PER_TICK: u64 = 10;

impl<M: TrackingConfig> Tracker<M> {
    /// Starts the background maintenance of this tracker, if not started:
    /// a recovery sweep now and every `sweep_interval`, the heartbeat of
    /// spawned runs every `heartbeat_interval`, and the retention in the
    /// options every `retention_interval`. [`spawn`](Self::spawn) starts it;
    /// call it yourself for the sweep and retention without spawning.
    ///
    /// Does nothing outside a tokio runtime. Stops when the last clone of the
    /// tracker is dropped, or at [`shutdown`](Self::shutdown).
    pub fn start_maintenance(&self) {
        let runs = self.runs();
        if tokio::runtime::Handle::try_current().is_err()
            || runs.maintenance_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.watch_remote_cancels();
        let weak = Arc::downgrade(self.inner_arc());
        let stop = runs.stop.clone();
        let beat = self.inner().options.heartbeat_interval;
        // The heartbeat has a task of its own: a long sweep or purge never
        // delays it (a late heartbeat lets live runs' leases lapse).
        tokio::spawn({
            let weak = weak.clone();
            let stop = stop.clone();
            async move {
                loop {
                    {
                        let Some(inner) = weak.upgrade() else { return };
                        let tracker = Tracker::<M>::from_inner(inner);
                        // One bad beat never ends the heartbeat.
                        guarded(async {
                            if let Err(err) = tracker.heartbeat().await {
                                tracing::warn!(error = %err, "tasktrail: heartbeat failed; retrying at the next one");
                            }
                        })
                        .await;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(beat) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        });
        tokio::spawn(async move {
            let mut last_sweep: Option<Instant> = None;
            let mut last_retention: Option<Instant> = None;
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let tracker = Tracker::<M>::from_inner(inner);
                    // One bad tick never ends the maintenance.
                    guarded(tracker.tick(&mut last_sweep, &mut last_retention)).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(beat) => {}
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    /// The sweep and the retention, when due. A purge deletes at most
    /// [`PURGE_STATEMENTS_PER_TICK`] batches per tick and goes on at the
    /// next tick, so that it never holds the database for long.
    async fn tick(&self, last_sweep: &mut Option<Instant>, last_retention: &mut Option<Instant>) {
        let options = &self.inner().options;
        let due =
            |last: &Option<Instant>, every: Duration| last.is_none_or(|t| t.elapsed() >= every);
        if due(last_sweep, options.sweep_interval) {
            *last_sweep = Some(Instant::now());
            if let Err(err) = self.recover().await {
                tracing::warn!(error = %err, "tasktrail: recovery sweep failed; retrying at the next one");
            }
        }
        if let Some(retention) = &options.retention
            && due(last_retention, options.retention_interval)
        {
            match self
                .purge_at_most(retention, PURGE_STATEMENTS_PER_TICK)
                .await
            {
                // Rows remain: the purge goes on at the next tick.
                Ok((_, true)) => {}
                Ok((_, false)) => *last_retention = Some(Instant::now()),
                Err(err) => {
                    *last_retention = Some(Instant::now());
                    tracing::warn!(error = %err, "tasktrail: retention failed");
                }
            }
        }
    }

    /// Refreshes the leases and locks of this tracker's runs, retries
    /// releases that failed, and stops runs another instance ended.
    pub(crate) async fn heartbeat(&self) -> Result<(), DbErr> {
        let runs = self.runs();
        let scope = self.scope();
        let db = self.db();

        let unreleased: Vec<String> =
            std::mem::take(&mut *runs.unreleased.lock().unwrap_or_else(|e| e.into_inner()));
        for (i, key) in unreleased.iter().enumerate() {
            if let Err(err) = store::release(db, &scope, key, true).await {
                runs.unreleased
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(unreleased[i..].iter().cloned());
                return Err(err);
            }
        }

        let active: Vec<(String, Arc<super::Control>)> = runs
            .active()
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let ttl = super::ms(self.inner().options.lease_ttl);
        for insert in [false, true] {
            let rows: Vec<store::LeaseRow<'_>> = active
                .iter()
                .filter(|(_, control)| {
                    let wanted = if insert { LEASE_MISSING } else { LEASE_WRITTEN };
                    control.lease.load(Ordering::Acquire) == wanted
                })
                .map(|(key, control)| store::LeaseRow {
                    run_key: key,
                    locked: control.locked,
                    task_name: &control.name,
                    elapsed_ms: super::ms(control.started.elapsed()),
                    remaining_ms: control
                        .max_duration
                        .map(|max| super::ms(max.saturating_sub(control.started.elapsed()))),
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            // Each run's lease is refreshed on the connection that writes
            // its other statements (its release among them): refreshes on
            // another connection could deadlock with a release on PostgreSQL.
            let writer = &self.inner().writer;
            let mut by_shard: std::collections::BTreeMap<usize, (u64, Vec<store::LeaseRow<'_>>)> =
                Default::default();
            for row in rows.iter() {
                let lane = lane_of(row.run_key);
                by_shard
                    .entry(writer.shard_of(Some(lane)))
                    .or_insert_with(|| (lane, Vec::new()))
                    .1
                    .push(*row);
            }
            let mut ops = Vec::new();
            let mut refreshes = Vec::new();
            for (lane, shard_rows) in by_shard.into_values() {
                let statements = store::heartbeat(
                    db.get_database_backend(),
                    &scope,
                    &runs.instance,
                    ttl,
                    &shard_rows,
                    insert,
                );
                for (stmt, refresh) in statements {
                    refreshes.push(refresh);
                    ops.push((Some(lane), Work::Statement(stmt), OnTransient::Fail, None));
                }
            }
            let outcomes = writer.write_all(ops).await;
            let mut refreshed = 0;
            for (outcome, refresh) in outcomes.into_iter().zip(refreshes) {
                match outcome {
                    Outcome::Done(rows) => {
                        if refresh {
                            refreshed += rows;
                        }
                    }
                    Outcome::Refused(err) | Outcome::Unavailable(err) => return Err(err),
                    Outcome::Queued | Outcome::Dropped => {
                        return Err(DbErr::Custom("the heartbeat was not written".into()));
                    }
                }
            }
            if insert {
                for (key, control) in &active {
                    if rows.iter().any(|r| r.run_key == key) {
                        control.lease.store(LEASE_WRITTEN, Ordering::Release);
                    }
                }
            } else if refreshed < rows.len() as u64 {
                // Leases vanished under live runs: another instance's sweep
                // took them (this process lost the database for longer than
                // the TTL), or the runs ended meanwhile. Those still running
                // stop, and write nothing more (their rows may be deleted).
                let keys: Vec<&str> = rows.iter().map(|r| r.run_key).collect();
                let held: HashSet<String> = store::leased(db, &scope, &keys)
                    .await?
                    .into_iter()
                    .collect();
                for key in keys.iter().filter(|k| !held.contains(**k)) {
                    if let Some(control) = runs.active().get(*key) {
                        control.orphaned.store(true, Ordering::Release);
                        if control.request_cancel(CancelReason::LeaseLost) {
                            tracing::warn!(
                                key,
                                "tasktrail: the run's lease was taken by another instance's recovery sweep; stopping it"
                            );
                        }
                    }
                }
            }
        }

        self.stop_runs_ended_elsewhere(&active).await
    }

    /// Stops the runs of `active` that another instance cancelled or
    /// interrupted (their rows have an ended status): what the heartbeat
    /// checks, and the change listener after it (re)connects.
    pub(crate) async fn stop_runs_ended_elsewhere(
        &self,
        active: &[(String, Arc<super::Control>)],
    ) -> Result<(), DbErr> {
        let db = self.db();
        let key_binding = M::binding(Role::Key).expect("the derive guarantees a key column");
        let Encode::Key(encode_key) = key_binding.encode else {
            unreachable!("the key column has a key encoder")
        };
        let status_col = M::binding(Role::Status).expect("status").column;
        let Some(Encode::Status(encode_status, _)) = M::binding(Role::Status).map(|b| b.encode)
        else {
            unreachable!("the derive guarantees a status column")
        };
        let ended: Vec<Expr> = ended_values(encode_status)
            .into_iter()
            .map(|v| status_col.save_as(Expr::val(v)))
            .collect();
        if ended.is_empty() {
            return Ok(());
        }
        for chunk in active.chunks(500) {
            let select = M::Entity::find()
                .filter(
                    key_binding
                        .column
                        .is_in(chunk.iter().map(|(k, _)| encode_key(k))),
                )
                .filter(Expr::col(status_col).is_in(ended.clone()));
            let rows = find_all(select, db).await?;
            for row in rows {
                let key = value_text(column_value::<M::Entity>(&row, key_binding.column));
                let status = M::decode_status(column_value::<M::Entity>(&row, status_col))
                    .unwrap_or(Status::Unknown);
                if status.is_terminal()
                    && let Some(key) = key
                    && let Some((_, control)) = chunk.iter().find(|(k, _)| *k == key)
                    && control.request_cancel(CancelReason::Remote(status))
                {
                    tracing::info!(key, %status, "tasktrail: another instance ended this run; stopping it");
                }
            }
        }
        Ok(())
    }

    /// The recovery sweep: marks `interrupted` the spawned runs whose
    /// heartbeat lapsed (their process died or lost the database for longer
    /// than `lease_ttl`) and those past their maximum duration, and frees
    /// their locks and any lapsed lock.
    ///
    /// Runs at start-up and every `sweep_interval` once maintenance runs
    /// (see [`start_maintenance`](Self::start_maintenance)); safe to call
    /// from any number of instances at once.
    pub async fn recover(&self) -> Result<RecoveryReport, DbErr> {
        let runs = self.runs();
        let scope = self.scope();
        let db = self.db();
        // The database's clock, not this instance's: instances' clocks may
        // disagree, and leases were written by the database's.
        let now = store::db_now_ms(db).await?;
        let mut report = RecoveryReport::default();
        let limit = |lease: &store::lease::Model| {
            let limit = lease
                .deadline_ms
                .unwrap_or(now)
                .saturating_sub(lease.started_ms);
            Duration::from_millis(std::cmp::max(limit, 0) as u64)
        };
        // Other instances' stale leases, taken (deleted) by one statement
        // that re-checks them: a lease its heartbeat refreshed meanwhile
        // stays, and so does its run.
        let mut taken = store::take_stale_leases(db, &scope, &runs.instance, now).await?;
        let active: HashSet<String> = runs.active_keys().into_iter().collect();
        for lease in store::own_stale_leases(db, &scope, &runs.instance, now).await? {
            if active.contains(&lease.run_key) {
                // A run of ours: alive. Its own timer enforces the deadline.
                if lease.deadline_ms.is_some_and(|d| d < now)
                    && let Some(control) = runs.active().get(&lease.run_key)
                {
                    control.request_cancel(CancelReason::Deadline(limit(&lease)));
                }
                continue;
            }
            taken.extend(store::take_stale_lease(db, &scope, &lease.run_key, now).await?);
        }
        for lease in taken {
            let overlong = lease.deadline_ms.is_some_and(|d| d < now);
            let message = if overlong {
                format!(
                    "interrupted: ran longer than its maximum duration of {:?}",
                    limit(&lease)
                )
            } else {
                let last = chrono::DateTime::from_timestamp_millis(lease.heartbeat_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default();
                format!(
                    "interrupted: its process stopped sending heartbeats (instance {}, last heartbeat {last})",
                    lease.instance
                )
            };
            // Guarded like every event: a run that ended stays as it is.
            let _ = self
                .lifecycle(Event::interrupt(&lease.run_key, &message))
                .await;
            report.locks_freed += store::release(db, &scope, &lease.run_key, true).await?;
            tracing::warn!(key = %lease.run_key, %message, "tasktrail: run interrupted by the recovery sweep");
            if overlong {
                report.overlong.push(lease.run_key);
            } else {
                report.interrupted.push(lease.run_key);
            }
        }
        report.locks_freed += store::free_expired_locks(db, &scope, now).await?;
        Ok(report)
    }

    /// Cancels the run `key`: signals it if it runs in this tracker;
    /// otherwise records `cancelled` (if it has not ended), which the
    /// instance running it picks up at its next heartbeat.
    pub async fn cancel(
        &self,
        key: &str,
        reason: Option<String>,
    ) -> Result<CancelOutcome, TrackError> {
        self.cancel_by(key, reason, None).await
    }

    /// [`cancel`](Self::cancel), naming `by` in the change feed.
    pub(crate) async fn cancel_by(
        &self,
        key: &str,
        reason: Option<String>,
        by: Option<String>,
    ) -> Result<CancelOutcome, TrackError> {
        if let Some(control) = self.runs().active().get(key) {
            control.request_cancel(CancelReason::Requested(reason));
            return Ok(CancelOutcome::Signalled);
        }
        let key_binding = M::binding(Role::Key).expect("the derive guarantees a key column");
        let Encode::Key(encode_key) = key_binding.encode else {
            unreachable!("the key column has a key encoder")
        };
        let status_col = M::binding(Role::Status).expect("status").column;
        let select = M::Entity::find().filter(key_binding.column.eq(encode_key(key)));
        let row = find_one(select, self.db())
            .await
            .map_err(|source| TrackError::Refused {
                key: key.to_owned(),
                kind: crate::EventKind::Cancel,
                source,
            })?;
        let Some(row) = row else {
            return Ok(CancelOutcome::NotFound);
        };
        if let Some(status) = M::decode_status(column_value::<M::Entity>(&row, status_col))
            && status.is_terminal()
        {
            return Ok(CancelOutcome::AlreadyEnded(status));
        }
        let reason = CancelReason::Requested(reason).to_string();
        // The owner learns of it from the change feed.
        self.lifecycle_by(Event::cancel(key).message(reason), by)
            .await?;
        Ok(CancelOutcome::Recorded)
    }

    /// The keys of the runs spawned by this tracker that have not ended.
    pub fn running(&self) -> Vec<String> {
        self.runs().active_keys()
    }

    /// Stops the tracker gracefully: refuses new runs, waits up to `timeout`
    /// for the running ones, cancels (and drops) those still running, writes
    /// the queued lifecycle events (up to 5 more seconds) and stops the
    /// background maintenance.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let runs = self.runs();
        runs.closing.store(true, Ordering::Release);
        runs.tasks.close();
        let mut report = ShutdownReport {
            running: runs.active().len(),
            ..ShutdownReport::default()
        };
        if tokio::time::timeout(timeout, runs.tasks.wait())
            .await
            .is_err()
        {
            for (key, control) in runs.active().iter() {
                control.request_cancel(CancelReason::Shutdown);
                control.kill.cancel();
                report.cancelled.push(key.clone());
            }
            report.cancelled.sort();
            // The dropped runs record `cancelled` and release their locks.
            let _ = tokio::time::timeout(Duration::from_secs(5), runs.tasks.wait()).await;
        }
        report.flushed = self.flush(Duration::from_secs(5)).await;
        report.unflushed = self.stats().queue_len;
        runs.stop.cancel();
        if !report.flushed {
            tracing::error!(
                unflushed = report.unflushed,
                "tasktrail: shutdown with lifecycle events still queued; they are lost"
            );
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_round_is_caught() {
        assert!(guarded(async {}).await);
        let round = async {
            tokio::task::yield_now().await;
            panic!("a bad round");
        };
        assert!(!guarded(round).await);
    }

    #[test]
    fn ended_values_leave_out_values_unended_statuses_share() {
        fn shared(s: Status) -> sea_orm::Value {
            match s {
                Status::Pending | Status::Unknown | Status::Cancelled => "queued",
                Status::InProgress | Status::Interrupted => "running",
                Status::Success => "done",
                Status::Failed => "error",
            }
            .into()
        }
        assert_eq!(ended_values(shared), ["done".into(), "error".into()]);
        let plain = ended_values(|s| s.as_str().into());
        assert_eq!(plain.len(), 4);
    }
}
