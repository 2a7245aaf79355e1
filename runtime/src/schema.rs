//! Creates the tables and indexes a tracked entity needs.
//!
//! Works on any sea-orm connection, so the same call serves a plain
//! `DatabaseConnection` at start-up and a sea-orm-migration migration
//! (`manager.get_connection()`):
//!
//! ```ignore
//! #[async_trait::async_trait]
//! impl MigrationTrait for Migration {
//!     async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
//!         tasktrail::schema::create::<task_run::Model>(manager.get_connection()).await
//!     }
//!     async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
//!         tasktrail::schema::drop::<task_run::Model>(manager.get_connection()).await
//!     }
//! }
//! ```

use sea_orm::sea_query::{Index, IndexCreateStatement, Table};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn, Schema,
};

use crate::config::{Role, TrackingConfig};

/// The index statements the dashboard and the lifecycle manager need:
/// a unique index on the key (unless the entity declares the key unique or
/// primary), `(status, created_at)`, `created_at` and, when `updated_at`
/// is mapped, `(status, updated_at)` (what the retention's purge selects
/// by).
pub fn indexes<M: TrackingConfig>() -> Vec<IndexCreateStatement> {
    let entity = M::Entity::default();
    let table = entity.table_name();
    let key = M::binding(Role::Key)
        .expect("the derive guarantees a key column")
        .column;
    let status = M::binding(Role::Status)
        .expect("the derive guarantees a status column")
        .column;
    let created = M::binding(Role::CreatedAt).map(|b| b.column);
    let updated = M::binding(Role::UpdatedAt).map(|b| b.column);

    let mut out = Vec::new();
    // `ON CONFLICT (key)` needs a unique index; the entity may declare one
    // already (`#[sea_orm(unique)]` or the primary key).
    let is_primary_key = <M::Entity as EntityTrait>::PrimaryKey::iter()
        .any(|pk| pk.into_column().as_str() == key.as_str());
    if !key.def().is_unique() && !is_primary_key {
        let mut unique = Index::create();
        unique
            .name(format!("ux_{table}_{}", key.as_str()))
            .table(entity)
            .col(key)
            .unique()
            .if_not_exists();
        out.push(unique);
    }

    let mut by_status = Index::create();
    by_status
        .name(format!("ix_{table}_{}", status.as_str()))
        .table(entity)
        .col(status);
    if let Some(created) = created {
        by_status
            .name(format!(
                "ix_{table}_{}_{}",
                status.as_str(),
                created.as_str()
            ))
            .col(created);
        let mut by_created = Index::create();
        by_created
            .name(format!("ix_{table}_{}", created.as_str()))
            .table(entity)
            .col(created)
            .if_not_exists();
        out.push(by_created);
    }
    by_status.if_not_exists();
    out.push(by_status);
    if let Some(updated) = updated {
        let mut by_age = Index::create();
        by_age
            .name(format!(
                "ix_{table}_{}_{}",
                status.as_str(),
                updated.as_str()
            ))
            .table(entity)
            .col(status)
            .col(updated)
            .if_not_exists();
        out.push(by_age);
    }
    out
}

/// Creates the entity's table (and, on PostgreSQL, its enum types), the
/// [`indexes`], the tables spawned runs share (`tasktrail_locks`,
/// `tasktrail_leases`), the change feed (`tasktrail_changes`) and (with the
/// feature `dashboard`) the audit trail, skipping whatever already exists.
pub async fn create<M: TrackingConfig>(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    let entity = M::Entity::default();
    if backend == DbBackend::Postgres {
        for ty in schema.create_enum_from_entity(entity) {
            let stmt = backend.build(&ty);
            // CREATE TYPE has no IF NOT EXISTS: an existing type is fine.
            if let Err(err) = db.execute_raw(stmt).await
                && !err.to_string().contains("already exists")
            {
                return Err(err);
            }
        }
    }
    let mut table = schema.create_table_from_entity(entity);
    table.if_not_exists();
    db.execute(&table).await?;
    for mut index in schema.create_index_from_entity(entity) {
        index.if_not_exists();
        db.execute(&index).await?;
    }
    for index in indexes::<M>() {
        db.execute(&index).await?;
    }
    crate::run::store::create_tables(db).await?;
    crate::writer::feed::create_table(db).await?;
    #[cfg(feature = "dashboard")]
    crate::auth::audit::create_table(db).await?;
    Ok(())
}

/// Creates only the tables spawned runs share (object locks and run
/// leases), if missing. [`create`] does this too.
pub async fn create_run_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::run::store::create_tables(db).await
}

/// Creates the log table `tasktrail_logs` and its indexes, if missing (what
/// [`DbLogStorage::new`](crate::logs::DbLogStorage::new) does itself; for
/// migrations that create tables ahead of time).
pub async fn create_log_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::logs::create_table(db).await
}

/// Drops the tables spawned runs share, if they exist.
pub async fn drop_run_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::run::store::drop_tables(db).await
}

/// Creates the change feed's table `tasktrail_changes` and its indexes, if
/// missing (what [`create`] does, and what a tracker does at its first
/// write; for migrations that create tables ahead of time). Every lifecycle
/// write adds a row in the same transaction; the live stream, cross-instance
/// cancel and each run's timeline read it.
pub async fn create_feed_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::writer::feed::create_table(db).await
}

/// Drops the change feed's table, if it exists.
pub async fn drop_feed_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::writer::feed::drop_table(db).await
}

/// Drops the entity's table, if it exists.
pub async fn drop<M: TrackingConfig>(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let mut stmt = Table::drop();
    stmt.table(M::Entity::default()).if_exists();
    db.execute(&stmt).await?;
    Ok(())
}
