//! Retention: delete ended runs older than a cut-off, in batches. The
//! policy, [`Retention`], is one of the tracker's options (it lives with
//! them, in `lifecycle`); this deletes what it selects.

use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityName, Value};

use crate::config::{Encode, Role, TrackingConfig, value_text};
use crate::lifecycle::{Status, Tracker};
use crate::run::Retention;

/// What [`Tracker::purge`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Rows deleted in all.
    pub deleted: u64,
    /// Rows deleted per status, in the retention's order. Rows of a stored
    /// value several statuses share are counted under the status the value
    /// reads back as.
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

/// What a purge deletes for one stored status value.
#[derive(Debug, PartialEq)]
struct Target {
    /// The stored value.
    value: Value,
    /// The status its rows count under in the report.
    status: Status,
    /// Rows older than this go; `None`: never (a status stored alike is
    /// kept, or has not ended).
    age: Option<Duration>,
}

/// Resolves `rules` against the stored values of the mapping: one target
/// per stored value the rules name, in the rules' order, deleted after the
/// longest age of the statuses stored as it — never if one of them has no
/// rule (it is kept, or it has not ended). Logs the rules this changes.
fn targets(
    rules: &[(Status, Duration)],
    encode: fn(Status) -> Value,
    decode: fn(Value) -> Option<Status>,
) -> Vec<Target> {
    let rule_of = |status: Status| rules.iter().find(|(s, _)| *s == status).map(|(_, a)| *a);
    let mut targets: Vec<Target> = Vec::new();
    for (status, age) in rules {
        let value = encode(*status);
        if targets.iter().any(|t| t.value == value) {
            continue;
        }
        let alike: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s != status && encode(*s) == value)
            .collect();
        let mut resolved = Some(*age);
        for other in &alike {
            resolved = match (resolved, rule_of(*other).filter(|_| other.is_terminal())) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        if resolved != Some(*age) {
            let shared = alike
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let stored = value_text(value.clone()).unwrap_or_default();
            match resolved {
                Some(age) => tracing::warn!(
                    status = %status, stored, shared, ?age,
                    "tasktrail: retention: these statuses are stored alike, so their runs are deleted after the longest of their ages"
                ),
                None => tracing::warn!(
                    status = %status, stored, shared,
                    "tasktrail: retention: this status is stored like a status that is kept or has not ended; its runs are never deleted"
                ),
            }
        }
        let reads_as = decode(value.clone())
            .filter(|s| s.is_terminal())
            .unwrap_or(*status);
        targets.push(Target {
            value,
            status: reads_as,
            age: resolved,
        });
    }
    targets
}

impl<M: TrackingConfig> Tracker<M> {
    /// Deletes the ended runs `retention` selects, in batches; returns the
    /// counts. Runs in progress are never touched.
    pub async fn purge(&self, retention: &Retention) -> Result<PurgeReport, RetentionError> {
        self.purge_at_most(retention, u64::MAX)
            .await
            .map(|(report, _)| report)
    }

    /// [`purge`](Self::purge), at most `statements` delete statements;
    /// answers whether rows may remain (the limit was reached).
    pub(crate) async fn purge_at_most(
        &self,
        retention: &Retention,
        statements: u64,
    ) -> Result<(PurgeReport, bool), RetentionError> {
        let mut budget = statements;
        let mut more = false;
        if let Some((status, _)) = retention.rules().iter().find(|(s, _)| !s.is_terminal()) {
            return Err(RetentionError::NotTerminal(*status));
        }
        let age_binding = M::binding(Role::UpdatedAt)
            .or_else(|| M::binding(Role::CreatedAt))
            .ok_or(RetentionError::NoTimestamp)?;
        let Encode::Time(encode_time) = age_binding.encode else {
            unreachable!("timestamp roles have a time encoder")
        };
        let Some(Encode::Status(encode_status, decode_status)) =
            M::binding(Role::Status).map(|b| b.encode)
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
        let batch_size = retention.batch_size.clamp(1, Retention::MAX_BATCH_SIZE);

        let mut report = PurgeReport::default();
        let now = self.inner().options.clock.now();
        for target in targets(retention.rules(), encode_status, decode_status) {
            if budget == 0 {
                more = true;
                break;
            }
            let mut deleted_for_status = 0;
            // Nothing is older than a date can be.
            let cutoff = target.age.and_then(|age| crate::limits::cutoff(now, age));
            while let Some(cutoff) = cutoff {
                if budget == 0 {
                    more = true;
                    break;
                }
                budget -= 1;
                let mut batch = Query::select();
                batch
                    .column(key)
                    .from(table.clone())
                    .and_where(
                        Expr::col(status_col)
                            .eq(status_col.save_as(Expr::val(target.value.clone()))),
                    )
                    .and_where(Expr::col(age_binding.column).lt(Expr::val(encode_time(cutoff))))
                    .limit(batch_size);
                let mut delete = Query::delete();
                delete.from_table(table.clone());
                if backend == sea_orm::DbBackend::MySql {
                    // MySQL takes no `LIMIT` in an `IN` subquery, and a
                    // single-table `DELETE … LIMIT` of its own.
                    delete
                        .and_where(
                            Expr::col(status_col)
                                .eq(status_col.save_as(Expr::val(target.value.clone()))),
                        )
                        .and_where(Expr::col(age_binding.column).lt(Expr::val(encode_time(cutoff))))
                        .limit(batch_size);
                } else {
                    delete.and_where(Expr::col(key).in_subquery(batch));
                }
                let deleted = match db.execute_raw(backend.build(&delete)).await {
                    Ok(res) => res.rows_affected(),
                    Err(source) => {
                        report.by_status.push((target.status, deleted_for_status));
                        report.deleted += deleted_for_status;
                        return Err(RetentionError::Db { report, source });
                    }
                };
                deleted_for_status += deleted;
                if deleted < batch_size {
                    break;
                }
            }
            report.by_status.push((target.status, deleted_for_status));
            report.deleted += deleted_for_status;
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                "tasktrail: retention deleted old runs"
            );
        }
        // The change feed, after the longest age of the retention: by then
        // the runs it speaks of are gone (a run kept longer keeps its row;
        // its timeline reaches back that far). Timed by the database's
        // clock, which wrote the changes' times.
        let longest = retention.rules().iter().map(|(_, age)| *age).max();
        if let Some(age) = longest
            && !more
            && let Ok(age_ms) = i64::try_from(age.as_millis())
        {
            let pruned = async {
                let now_ms = crate::run::store::db_now_ms(db).await?;
                let mut pruned = 0;
                while budget > 0 {
                    budget -= 1;
                    let n =
                        crate::feed::prune(db, now_ms.saturating_sub(age_ms), batch_size).await?;
                    pruned += n;
                    if n < batch_size {
                        return Ok::<_, DbErr>((pruned, false));
                    }
                }
                Ok((pruned, true))
            };
            match pruned.await {
                Ok((n, left)) => {
                    more |= left;
                    if n > 0 {
                        tracing::info!(pruned = n, "tasktrail: retention pruned the change feed");
                    }
                }
                Err(source) => return Err(RetentionError::Db { report, source }),
            }
        }
        Ok((report, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(s: Status) -> Value {
        Value::from(match s {
            Status::Failed | Status::Interrupted => "error",
            Status::Cancelled | Status::Pending => "queued",
            other => other.as_str(),
        })
    }

    fn read(v: Value) -> Option<Status> {
        match value_text(v)?.as_str() {
            "error" => Some(Status::Failed),
            "queued" => Some(Status::Pending),
            other => other.parse().ok(),
        }
    }

    #[test]
    fn shared_values_take_the_longest_age_and_never_an_unended_one() {
        let day = Duration::from_secs(86_400);
        let r = Retention::older_than(day * 30).status(Status::Interrupted, day);
        let t = targets(r.rules(), stored, read);
        assert_eq!(
            t,
            [
                Target {
                    value: "success".into(),
                    status: Status::Success,
                    age: Some(day * 30)
                },
                Target {
                    value: "error".into(),
                    status: Status::Failed,
                    age: Some(day * 30)
                },
                Target {
                    value: "queued".into(),
                    status: Status::Cancelled,
                    age: None
                },
            ]
        );
        let kept = targets(
            Retention::days(1).keep(Status::Failed).rules(),
            stored,
            read,
        );
        let error = kept
            .iter()
            .find(|t| t.value == Value::from("error"))
            .unwrap();
        assert_eq!(
            error.age, None,
            "keep(Failed) keeps what Interrupted shares"
        );
        // Distinct values: each rule as it is.
        let plain = targets(Retention::days(1).rules(), |s| s.as_str().into(), read);
        assert_eq!(plain.len(), 4);
        assert!(plain.iter().all(|t| t.age == Some(day)));
    }
}
