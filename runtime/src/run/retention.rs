//! Retention: delete ended runs older than a cut-off, in batches.

use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityName};

use crate::config::{Encode, Role, TrackingConfig};
use crate::lifecycle::{Status, Tracker};

/// Which ended runs to delete: those whose last write (`updated_at`, or
/// `created_at` when `updated_at` is not mapped) is older than a cut-off,
/// optionally per status.
///
/// ```
/// use std::time::Duration;
/// use tasktrail::{Retention, Status};
///
/// // Successes after 7 days, failures after 30, keep cancelled runs.
/// let retention = Retention::days(7)
///     .status(Status::Failed, Duration::from_secs(30 * 86_400))
///     .keep(Status::Cancelled);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    rules: Vec<(Status, Duration)>,
    /// Rows deleted per statement (default 1,000).
    pub batch_size: u64,
}

impl Retention {
    /// Every ended status (success, failed, cancelled, interrupted) after
    /// `age`.
    pub fn older_than(age: Duration) -> Self {
        Retention {
            rules: Status::TERMINAL.iter().map(|s| (*s, age)).collect(),
            batch_size: 1_000,
        }
    }

    /// Every ended status after `days` days.
    pub fn days(days: u64) -> Self {
        Self::older_than(Duration::from_secs(days * 86_400))
    }

    /// Runs in `status` after `age` instead. `status` must be an ended
    /// status; [`Tracker::purge`] refuses the others.
    pub fn status(mut self, status: Status, age: Duration) -> Self {
        self.rules.retain(|(s, _)| *s != status);
        self.rules.push((status, age));
        self
    }

    /// Never deletes runs in `status`.
    pub fn keep(mut self, status: Status) -> Self {
        self.rules.retain(|(s, _)| *s != status);
        self
    }

    /// Rows per delete statement.
    pub fn batch_size(mut self, rows: u64) -> Self {
        self.batch_size = std::cmp::max(rows, 1);
        self
    }

    /// The statuses and ages this retention deletes.
    pub fn rules(&self) -> &[(Status, Duration)] {
        &self.rules
    }
}

/// What [`Tracker::purge`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Rows deleted in all.
    pub deleted: u64,
    /// Rows deleted per status, in the retention's order.
    pub by_status: Vec<(Status, u64)>,
}

impl PurgeReport {
    /// Rows deleted in `status`.
    pub fn count(&self, status: Status) -> u64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}

/// Why a purge did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// Only ended runs may be deleted.
    #[error("retention deletes only ended runs; `{0}` is not an ended status")]
    NotTerminal(Status),
    /// Neither `updated_at` nor `created_at` is mapped.
    #[error("retention needs an `updated_at` or `created_at` column to tell a run's age")]
    NoTimestamp,
    /// A delete failed; what was deleted before it is in the report.
    #[error("retention stopped after deleting {} runs: {source}", .report.deleted)]
    Db {
        /// What was deleted before the error.
        report: PurgeReport,
        /// The database error.
        #[source]
        source: DbErr,
    },
}

impl<M: TrackingConfig> Tracker<M> {
    /// Deletes the ended runs `retention` selects, in batches; returns the
    /// counts. Runs in progress are never touched.
    pub async fn purge(&self, retention: &Retention) -> Result<PurgeReport, RetentionError> {
        if let Some((status, _)) = retention.rules.iter().find(|(s, _)| !s.is_terminal()) {
            return Err(RetentionError::NotTerminal(*status));
        }
        let age_binding = M::binding(Role::UpdatedAt)
            .or_else(|| M::binding(Role::CreatedAt))
            .ok_or(RetentionError::NoTimestamp)?;
        let Encode::Time(encode_time) = age_binding.encode else {
            unreachable!("timestamp roles have a time encoder")
        };
        let Some(Encode::Status(encode_status, _)) = M::binding(Role::Status).map(|b| b.encode)
        else {
            unreachable!("the derive guarantees a status column")
        };
        let key = M::binding(Role::Key)
            .expect("the derive guarantees a key column")
            .column;
        let status_col = M::binding(Role::Status).expect("status").column;
        let table = M::Entity::default().table_ref();
        let db = self.db();
        let backend = db.get_database_backend();

        let mut report = PurgeReport::default();
        let now = chrono::Utc::now();
        for (status, age) in &retention.rules {
            let cutoff = now - chrono::Duration::from_std(*age).unwrap_or(chrono::TimeDelta::MAX);
            let mut deleted_for_status = 0;
            loop {
                let mut batch = Query::select();
                batch
                    .column(key)
                    .from(table.clone())
                    .and_where(
                        Expr::col(status_col)
                            .eq(status_col.save_as(Expr::val(encode_status(*status)))),
                    )
                    .and_where(Expr::col(age_binding.column).lt(Expr::val(encode_time(cutoff))))
                    .limit(retention.batch_size);
                let mut delete = Query::delete();
                delete
                    .from_table(table.clone())
                    .and_where(Expr::col(key).in_subquery(batch));
                let deleted = match db.execute_raw(backend.build(&delete)).await {
                    Ok(res) => res.rows_affected(),
                    Err(source) => {
                        report.by_status.push((*status, deleted_for_status));
                        report.deleted += deleted_for_status;
                        return Err(RetentionError::Db { report, source });
                    }
                };
                deleted_for_status += deleted;
                if deleted < retention.batch_size {
                    break;
                }
            }
            report.by_status.push((*status, deleted_for_status));
            report.deleted += deleted_for_status;
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                "tasktrail: retention deleted old runs"
            );
        }
        Ok(report)
    }
}
