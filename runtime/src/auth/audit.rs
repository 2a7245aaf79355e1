//! The audit trail: every action taken on the dashboard — who, when, on
//! what, and how it ended — in the `tasktrail_audit` table and as a
//! `tasktrail::audit` tracing event.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::auth::Identity;

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

/// Records one action: a tracing event always, a row when the database
/// takes it (a failure to write is logged, never the action's failure).
pub(crate) async fn record(
    db: &DatabaseConnection,
    identity: &Identity,
    action: &str,
    target: &str,
    outcome: Outcome,
    detail: &str,
) {
    let (user_id, user_name) = match &identity.user {
        Some(user) => (user.id.as_str(), user.name.as_str()),
        None => ("local", "loopback client"),
    };
    tracing::info!(
        target: "tasktrail::audit",
        user = user_id,
        action,
        run = target,
        outcome = outcome.as_str(),
        detail,
        "dashboard action"
    );
    let row = entry::ActiveModel {
        id: sea_orm::NotSet,
        at_ms: Set(chrono::Utc::now().timestamp_millis()),
        user_id: Set(user_id.to_owned()),
        user_name: Set(user_name.to_owned()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        outcome: Set(outcome.as_str().to_owned()),
        detail: Set(detail.chars().take(2_000).collect()),
    };
    let written: Result<_, DbErr> = Box::pin(entry::Entity::insert(row).exec(db)).await;
    if let Err(err) = written {
        tracing::error!(error = %err, action, run = target, "tasktrail: the audit row was not written");
    }
}

/// The newest `limit` entries about `target`.
pub async fn for_target(
    db: &DatabaseConnection,
    target: &str,
    limit: u64,
) -> Result<Vec<entry::Model>, DbErr> {
    entry::Entity::find()
        .filter(entry::Column::Target.eq(target))
        .order_by_desc(entry::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The newest `limit` entries.
pub async fn recent(db: &DatabaseConnection, limit: u64) -> Result<Vec<entry::Model>, DbErr> {
    entry::Entity::find()
        .order_by_desc(entry::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
