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

use sea_orm::sea_query::{
    Alias, ColumnType, Index, IndexCreateStatement, StringLen, Table, TableCreateStatement,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn, Schema,
};

use crate::config::{Role, TrackingConfig};

/// The index statements the dashboard and the lifecycle manager need:
/// a unique index on the key (unless the entity declares the key unique or
/// primary), `(status, created_at, key)`, `(created_at, key)` and, when
/// `updated_at` is mapped, `(status, updated_at, key)` (what the
/// retention's purge selects by), and, when a task name is mapped,
/// `(task_name, created_at, status, key)` (the dashboard's task-kind pages:
/// the distinct names, and one kind's counts, runs over time and newest
/// runs, read from the index alone).
///
/// An index by time ends with the key because the dashboard pages by
/// `(time, key)`: with the key in the index the page's order is the
/// index's, and the database reads the page's rows and stops. Without it,
/// SQLite sorts each page's rows that share a time in a temporary B-tree
/// (one built and torn down per page), PostgreSQL adds an incremental sort
/// and MySQL sorts every row in range. Indexes made by an earlier version
/// under the same names are left as they are; see the dashboard guide
/// ("Under load") to remake them.
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
    let name = M::binding(Role::Name).map(|b| b.column);

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
    if let Some(name) = name {
        let mut by_kind = Index::create();
        by_kind.table(entity).col(name);
        let mut title = format!("ix_{table}_{}", name.as_str());
        if let Some(created) = created {
            by_kind.col(created);
            title = format!("{title}_{}", created.as_str());
        }
        by_kind
            .name(format!("{title}_{}", status.as_str()))
            .col(status)
            .if_not_exists();
        out.push(by_kind);
    }
    for index in &mut out {
        with_key_last::<M>(index);
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
    if backend == DbBackend::MySql {
        table = for_mysql::<M>(&table);
    }
    table.if_not_exists();
    db.execute(&table).await?;
    for mut index in schema.create_index_from_entity(entity) {
        index.if_not_exists();
        create_index(db, &index).await?;
    }
    let name = M::binding(Role::Name).map(|b| b.column.as_str());
    for index in indexes::<M>() {
        let by_name = name.is_some_and(|name| {
            index
                .get_index_spec()
                .get_column_names()
                .first()
                .map(String::as_str)
                == Some(name)
        });
        match create_index(db, &index).await {
            // A table made before the name became `VARCHAR(128)` on MySQL
            // holds it as `TEXT`, which an index cannot hold whole (1170):
            // the task-kind pages still work, by scanning.
            Err(err)
                if by_name
                    && backend == DbBackend::MySql
                    && crate::db_error::mysql_number(&err) == Some(1170) =>
            {
                tracing::warn!(
                    error = %err,
                    "tasktrail: the index by task name was not made (the name column is TEXT); \
                     make it VARCHAR(128) for fast task-kind pages"
                );
            }
            other => other?,
        }
    }
    crate::run::store::create_tables(db).await?;
    crate::writer::feed::create_table(db).await?;
    #[cfg(feature = "dashboard")]
    crate::auth::audit::create_table(db).await?;
    Ok(())
}

/// An index by time ends with the key (see [`indexes`]). The unique index
/// on the key is left alone.
fn with_key_last<M: TrackingConfig>(index: &mut IndexCreateStatement) {
    let key = M::binding(Role::Key)
        .expect("the derive guarantees a key column")
        .column;
    let by_time = [Role::CreatedAt, Role::UpdatedAt]
        .into_iter()
        .filter_map(|role| M::binding(role))
        .any(|b| {
            index
                .get_index_spec()
                .get_column_names()
                .iter()
                .any(|c| c == b.column.as_str())
        });
    if by_time && !index.is_unique_key() {
        index.col(key);
    }
}

/// Creates `index` if missing. MySQL 8 has no `CREATE INDEX IF NOT EXISTS`
/// (sea-query leaves it out there): an existing index answers "duplicate
/// key name" (1061), which means it is made.
pub(crate) async fn create_index(
    db: &impl ConnectionTrait,
    index: &IndexCreateStatement,
) -> Result<(), DbErr> {
    match db.execute(index).await {
        Ok(_) => Ok(()),
        Err(err)
            if db.get_database_backend() == DbBackend::MySql
                && crate::db_error::mysql_number(&err) == Some(1061) =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// The entity's table as MySQL / MariaDB should hold it. sea-orm maps a
/// `String` to `VARCHAR(255)` and a `DateTimeUtc` to `TIMESTAMP` there:
/// messages, arguments and results longer than 255 characters would be
/// refused, times would lose their fractions of a second, and `TIMESTAMP`
/// ends in 2038. So every time column becomes `DATETIME(6)`, a `String` key
/// `VARCHAR(512)` (the longest key a tracker takes), a `String` status
/// `VARCHAR(64)` (so the indexes by status, time and key fit InnoDB's 3,072
/// bytes), a `String` task name `VARCHAR(128)` (likewise), and every other `String` without a length of its own `TEXT`. The
/// key and the status compare byte for byte (`utf8mb4_bin`), as on the other
/// backends: under MySQL's default collation `Run-1` would be `run-1`'s row
/// and `DONE` would pass for `done`. A column with an explicit
/// `column_type` is left as declared.
fn for_mysql<M: TrackingConfig>(table: &TableCreateStatement) -> TableCreateStatement {
    let column_of = |role| M::binding(role).map(|binding| binding.column.as_str());
    let key = column_of(Role::Key);
    let status = column_of(Role::Status);
    let name = column_of(Role::Name);
    let mut out = Table::create();
    if let Some(name) = table.get_table_name() {
        out.table(name.clone());
    }
    for column in table.get_columns() {
        let mut column = column.clone();
        match column.get_column_type() {
            Some(
                ColumnType::TimestampWithTimeZone | ColumnType::Timestamp | ColumnType::DateTime,
            ) => {
                column.custom(Alias::new("DATETIME(6)"));
            }
            // A key holds up to `MAX_KEY_BYTES` (512 bytes, so at most 512
            // characters; 2,048 bytes of utf8mb4 in its unique index).
            Some(ColumnType::String(StringLen::None))
                if key == Some(column.get_column_name().as_str()) =>
            {
                column
                    .string_len(crate::lifecycle::MAX_KEY_BYTES as u32)
                    .extra("COLLATE utf8mb4_bin");
            }
            // Status words are short; the indexes by status, time and key
            // stay within InnoDB's 3,072 bytes.
            Some(ColumnType::String(StringLen::None))
                if status == Some(column.get_column_name().as_str()) =>
            {
                column.string_len(64).extra("COLLATE utf8mb4_bin");
            }
            // Task names are indexed with the time, the status and the key
            // (`indexes`): 128 characters keep that index within 3,072
            // bytes; they compare byte for byte, as elsewhere.
            Some(ColumnType::String(StringLen::None))
                if name == Some(column.get_column_name().as_str()) =>
            {
                column.string_len(128).extra("COLLATE utf8mb4_bin");
            }
            Some(ColumnType::String(StringLen::None)) => {
                column.text();
            }
            _ => {}
        }
        out.col(column);
    }
    for foreign_key in table.get_foreign_key_create_stmts() {
        out.foreign_key(&mut foreign_key.clone());
    }
    for index in table.get_indexes() {
        out.index(&mut index.clone());
    }
    if let Some(extra) = table.get_extra() {
        out.extra(extra.clone());
    }
    if let Some(comment) = table.get_comment() {
        out.comment(comment.clone());
    }
    out
}

/// Creates only the tables spawned runs share (object locks and run
/// leases), if missing. [`create`] does this too.
pub async fn create_run_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    crate::run::store::create_tables(db).await
}

/// Creates the log table `tasktrail_logs`, the span table `tasktrail_spans`
/// (the trace view's) and their indexes, if missing (what
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

/// Creates the text index that makes the dashboard's search fast for any
/// term of 3 or more characters, over the default search fields (the key,
/// name and message fields that are mapped). See
/// [`create_search_index_on`] for other fields and what the index is.
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub async fn create_search_index<M: TrackingConfig>(
    db: &impl ConnectionTrait,
) -> Result<(), DbErr> {
    let fields: Vec<&str> = [Role::Key, Role::Name, Role::Message]
        .into_iter()
        .filter_map(|role| M::field(role).map(|f| f.field))
        .collect();
    create_search_index_on::<M>(db, &fields).await
}

/// Creates the text index over `fields` (model field names: those of the
/// dashboard's `search` setting), and fills it from the runs already
/// stored. Without it a search for a term that is neither a run key nor
/// part of a task name reads only the newest runs (see
/// [`dashboard::search`](crate::dashboard::search)).
///
/// - **SQLite**: an FTS5 table `{table}_search` with the trigram tokenizer
///   over the fields (its content read from the table itself), kept in
///   sync by three triggers (`AFTER INSERT`, `AFTER DELETE`, `AFTER UPDATE
///   OF` the fields: progress writes do not touch it).
/// - **PostgreSQL**: the `pg_trgm` extension (`CREATE EXTENSION IF NOT
///   EXISTS`, which needs the right to create it: it is a trusted
///   extension from PostgreSQL 13) and a GIN index on `lower(field)` per
///   field, `ix_{table}_search_{n}`.
/// - **MySQL / MariaDB**: nothing; their `FULLTEXT` indexes find words,
///   not parts of words, so searches there stay bounded by the window.
///
/// Each write of a searched field then also updates the index: measure
/// before adding it to a table written thousands of times a second.
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub async fn create_search_index_on<M: TrackingConfig>(
    db: &impl ConnectionTrait,
    fields: &[&str],
) -> Result<(), DbErr> {
    use crate::dashboard::search::{fts_table, quote, trigram_index};
    let backend = db.get_database_backend();
    let table = M::Entity::default().table_name().to_owned();
    let mut columns = Vec::new();
    for field in fields {
        let info = M::FIELDS
            .iter()
            .find(|f| f.field == *field)
            .ok_or_else(|| {
                DbErr::Custom(format!(
                    "create_search_index_on: `{field}` is not a field of the tracked model"
                ))
            })?;
        columns.push(info.column.as_str());
    }
    if columns.is_empty() {
        return Err(DbErr::Custom(
            "create_search_index_on: no fields to index".to_owned(),
        ));
    }
    let statements: Vec<String> = match backend {
        DbBackend::Sqlite => {
            let fts = quote(&fts_table(&table));
            let t = quote(&table);
            let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            let list = cols.join(", ");
            let new: Vec<String> = cols.iter().map(|c| format!("new.{c}")).collect();
            let old: Vec<String> = cols.iter().map(|c| format!("old.{c}")).collect();
            let (new, old) = (new.join(", "), old.join(", "));
            let trigger = |suffix: &str| quote(&format!("{}_{suffix}", fts_table(&table)));
            vec![
                format!(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({list}, \
                     content={content}, content_rowid='rowid', tokenize='trigram')",
                    content = quote(&table).replace('"', "'"),
                ),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {ai} AFTER INSERT ON {t} BEGIN \
                     INSERT INTO {fts}(rowid, {list}) VALUES (new.rowid, {new}); END",
                    ai = trigger("ai")
                ),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {ad} AFTER DELETE ON {t} BEGIN \
                     INSERT INTO {fts}({fts}, rowid, {list}) VALUES ('delete', old.rowid, {old}); END",
                    ad = trigger("ad")
                ),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {au} AFTER UPDATE OF {list} ON {t} BEGIN \
                     INSERT INTO {fts}({fts}, rowid, {list}) VALUES ('delete', old.rowid, {old}); \
                     INSERT INTO {fts}(rowid, {list}) VALUES (new.rowid, {new}); END",
                    au = trigger("au")
                ),
                format!("INSERT INTO {fts}({fts}) VALUES ('rebuild')"),
            ]
        }
        DbBackend::Postgres => {
            let mut out = vec!["CREATE EXTENSION IF NOT EXISTS pg_trgm".to_owned()];
            // The first index last: its presence says the index is whole.
            for (n, c) in columns.iter().enumerate().rev() {
                out.push(format!(
                    "CREATE INDEX IF NOT EXISTS {ix} ON {t} USING gin (lower({c}) gin_trgm_ops)",
                    ix = quote(&trigram_index(&table, n)),
                    t = quote(&table),
                    c = quote(c),
                ));
            }
            out
        }
        _ => {
            tracing::info!(
                table,
                "tasktrail: MySQL / MariaDB have no substring index; searches stay bounded by the dashboard's window"
            );
            Vec::new()
        }
    };
    for sql in statements {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Drops what [`create_search_index_on`] made, if it exists.
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub async fn drop_search_index<M: TrackingConfig>(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    use crate::dashboard::search::{fts_table, quote, trigram_index};
    let backend = db.get_database_backend();
    let table = M::Entity::default().table_name().to_owned();
    let statements: Vec<String> = match backend {
        DbBackend::Sqlite => {
            let mut out: Vec<String> = ["ai", "ad", "au"]
                .iter()
                .map(|s| {
                    format!(
                        "DROP TRIGGER IF EXISTS {}",
                        quote(&format!("{}_{s}", fts_table(&table)))
                    )
                })
                .collect();
            out.push(format!(
                "DROP TABLE IF EXISTS {}",
                quote(&fts_table(&table))
            ));
            out
        }
        DbBackend::Postgres => (0..M::FIELDS.len())
            .map(|n| format!("DROP INDEX IF EXISTS {}", quote(&trigram_index(&table, n))))
            .collect(),
        _ => Vec::new(),
    };
    for sql in statements {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Drops the entity's table, if it exists.
pub async fn drop<M: TrackingConfig>(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let mut stmt = Table::drop();
    stmt.table(M::Entity::default()).if_exists();
    db.execute(&stmt).await?;
    Ok(())
}
