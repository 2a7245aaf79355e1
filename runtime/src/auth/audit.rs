//! The audit trail: every action taken on the dashboard — who, when, on
//! what, and how it ended — in the `tasktrail_audit` table and as a
//! `tasktrail::audit` tracing event.
//!
//! The table stays bounded whatever a client sends: a refusal about a run
//! that does not exist is only traced (a loop of requests for made-up keys
//! writes no row), every text is cut to a fixed length (a key longer than
//! [`MAX_TARGET_BYTES`] is stored as its beginning and a hash, which
//! [`for_target`] computes alike), NUL characters are stored as U+FFFD, and
//! entries older than the dashboard's audit retention
//! ([`DEFAULT_RETENTION`] unless set) are deleted by its background task.

use std::borrow::Cow;
use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::auth::Identity;
use crate::writer::{OnTransient, Outcome as WriteOutcome, Template, Work, Writer};

/// The longest target stored, in bytes: a longer run key is stored as its
/// beginning, `…` and a hash of the whole key (so it stays well below
/// PostgreSQL's limit for an index entry, and two long keys never share a
/// target).
pub const MAX_TARGET_BYTES: usize = 200;

/// The longest user id or user name stored, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The longest detail stored, in characters.
const MAX_DETAIL_CHARS: usize = 2_000;

/// How long entries are kept unless the dashboard says otherwise
/// ([`Dashboard::audit_retention`](crate::Dashboard::audit_retention)):
/// 365 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(365 * 86_400);

/// The audit table, `tasktrail_audit`.
pub mod entry {
    use sea_orm::entity::prelude::*;

    /// One action taken on the dashboard.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasktrail_audit")]
    pub struct Model {
        /// Increasing entry number.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// When (ms since the epoch).
        pub at_ms: i64,
        /// The user's id (`local` for a loopback client of a dashboard
        /// without auth).
        pub user_id: String,
        /// The user's display name.
        pub user_name: String,
        /// `cancel`, `retry` or `delete`.
        pub action: String,
        /// The run's key.
        pub target: String,
        /// `done`, `refused` or `failed`.
        pub outcome: String,
        /// What happened, in words (the error, the new run's key, "bulk").
        #[sea_orm(column_type = "Text")]
        pub detail: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the audit table and its index by target, if missing
/// ([`schema::create`](crate::schema::create) does this).
pub async fn create_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::MySql {
        // Text columns as `TEXT` (sea-orm's `String` is `VARCHAR(255)`
        // there), the target indexed by a prefix.
        return db
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS tasktrail_audit (\
                 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, at_ms BIGINT NOT NULL, \
                 user_id TEXT NOT NULL, user_name TEXT NOT NULL, action TEXT NOT NULL, \
                 target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, \
                 INDEX ix_tasktrail_audit_target_id (target(191), id)) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            )
            .await
            .map(|_| ());
    }
    let schema = sea_orm::Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(entry::Entity);
    table.if_not_exists();
    db.execute(&table).await?;
    let mut index = sea_orm::sea_query::Index::create();
    index
        .name("ix_tasktrail_audit_target_id")
        .table(entry::Entity)
        .col(entry::Column::Target)
        .col(entry::Column::Id)
        .if_not_exists();
    db.execute(&index).await?;
    Ok(())
}

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Refused,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// Whether an action's entry is kept in the table or only traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// A row and a tracing event.
    Row,
    /// A tracing event only: a refusal about a run that does not exist.
    TraceOnly,
}

/// `text` with NUL made storable and cut to `max` characters.
fn bounded(text: &str, max: usize) -> String {
    crate::storable::text(text).chars().take(max).collect()
}

/// The target stored for `key`: the key itself (NUL as U+FFFD) up to
/// [`MAX_TARGET_BYTES`]; a longer one as its beginning, `…` and a hash of
/// the whole key.
pub fn stored_target(key: &str) -> Cow<'_, str> {
    crate::storable::bounded_key(key, MAX_TARGET_BYTES)
}

/// The audit rows' insert (a row is the entry's columns after `id`),
/// rendered once per backend and row count.
fn insert_template(backend: sea_orm::DbBackend) -> std::sync::Arc<Template> {
    use std::sync::{Arc, OnceLock};
    static BY_BACKEND: [OnceLock<Arc<Template>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match backend {
        sea_orm::DbBackend::Sqlite => 0,
        sea_orm::DbBackend::Postgres => 1,
        _ => 2,
    };
    BY_BACKEND[slot]
        .get_or_init(|| new_insert_template(backend))
        .clone()
}

fn new_insert_template(backend: sea_orm::DbBackend) -> std::sync::Arc<Template> {
    Template::new(backend, 7, move |rows| {
        use sea_orm::sea_query::{Expr, Query};
        let mut insert = Query::insert();
        insert.into_table(entry::Entity).columns([
            entry::Column::AtMs,
            entry::Column::UserId,
            entry::Column::UserName,
            entry::Column::Action,
            entry::Column::Target,
            entry::Column::Outcome,
            entry::Column::Detail,
        ]);
        for _ in 0..rows {
            let mut row = vec![Expr::val(0_i64)];
            row.extend((0..6).map(|_| Expr::val("")));
            insert.values_panic(row);
        }
        backend.build(&insert).sql
    })
}

/// Records one action: a tracing event always, a row unless `keep` says
/// otherwise and the database takes it — written through `writer` (group
/// commit, like the runs' events: a transient failure waits in its retry
/// queue). A failure to write is logged, never the action's failure.
pub(crate) async fn record(
    writer: &Writer,
    identity: &Identity,
    action: &str,
    target: &str,
    outcome: Outcome,
    detail: &str,
    keep: Keep,
) {
    let (user_id, user_name) = match &identity.user {
        Some(user) => (user.id.as_str(), user.name.as_str()),
        None => ("local", "loopback client"),
    };
    let target = stored_target(target);
    let detail = bounded(detail, MAX_DETAIL_CHARS);
    tracing::info!(
        target: "tasktrail::audit",
        user = %bounded(user_id, MAX_NAME_CHARS),
        action,
        run = %target,
        outcome = outcome.as_str(),
        detail = %detail,
        kept = keep == Keep::Row,
        "dashboard action"
    );
    if keep == Keep::TraceOnly {
        return;
    }
    let values: Vec<sea_orm::Value> = vec![
        chrono::Utc::now().timestamp_millis().into(),
        bounded(user_id, MAX_NAME_CHARS).into(),
        bounded(user_name, MAX_NAME_CHARS).into(),
        bounded(action, MAX_NAME_CHARS).into(),
        target.clone().into_owned().into(),
        outcome.as_str().to_owned().into(),
        detail.into(),
    ];
    let work = Work::Row {
        template: insert_template(writer.backend()),
        values,
    };
    match writer.write(None, work, OnTransient::Retry).await {
        WriteOutcome::Done(_) | WriteOutcome::Queued => {}
        WriteOutcome::Dropped => {
            tracing::error!(action, run = %target, "tasktrail: the audit row was not written: the database did not answer and the retry queue is full");
        }
        WriteOutcome::Refused(err) | WriteOutcome::Unavailable(err) => {
            tracing::error!(error = %err, action, run = %target, "tasktrail: the audit row was not written: the database refused it");
        }
    }
}

/// Deletes the entries older than `age`; answers how many.
pub async fn purge(db: &DatabaseConnection, age: Duration) -> Result<u64, DbErr> {
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let cutoff = chrono::Utc::now().timestamp_millis().saturating_sub(age_ms);
    let deleted: Result<sea_orm::DeleteResult, DbErr> = Box::pin(
        entry::Entity::delete_many()
            .filter(entry::Column::AtMs.lt(cutoff))
            .exec(db),
    )
    .await;
    Ok(deleted?.rows_affected)
}

/// The newest `limit` entries about `target` (a run's key; a long one is
/// looked up as it is stored, see [`stored_target`]).
pub async fn for_target(
    db: &DatabaseConnection,
    target: &str,
    limit: u64,
) -> Result<Vec<entry::Model>, DbErr> {
    crate::config::find_all(
        entry::Entity::find()
            .filter(entry::Column::Target.eq(stored_target(target).as_ref()))
            .order_by_desc(entry::Column::Id)
            .limit(limit),
        db,
    )
    .await
}

/// The newest `limit` entries.
pub async fn recent(db: &DatabaseConnection, limit: u64) -> Result<Vec<entry::Model>, DbErr> {
    crate::config::find_all(
        entry::Entity::find()
            .order_by_desc(entry::Column::Id)
            .limit(limit),
        db,
    )
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_retry_guard_bounds_keys_as_the_audit_trail_does() {
        assert_eq!(
            super::MAX_TARGET_BYTES,
            crate::run::RETRY_GUARD_TARGET_BYTES
        );
    }
}
