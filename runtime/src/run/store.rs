//! The two tables spawned runs share across processes: object locks and run
//! leases (heartbeats). Both are created by [`crate::schema::create`].
//!
//! Times are milliseconds since the Unix epoch in `BIGINT` columns, so that
//! expiry comparisons are plain integer comparisons on every backend. They
//! are read from the **database's clock** (`db_now`), never from the
//! instance's: an instance whose clock runs ahead (or a paused VM, an NTP
//! step) must not see other instances' leases and locks as lapsed, and
//! one whose clock lags must not write leases that have lapsed already.

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IsolationLevel, QueryFilter,
    QuerySelect, TransactionSession, TransactionTrait,
};

use crate::writer::Template;

/// Object locks: one row per locked object.
pub mod lock {
    use sea_orm::entity::prelude::*;

    /// A locked object.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasktrail_locks")]
    pub struct Model {
        /// The tracked table the run belongs to.
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        /// The object's key ([`TrackedObject::object_key`](crate::TrackedObject::object_key)).
        #[sea_orm(primary_key, auto_increment = false)]
        pub object: String,
        /// The run holding the lock.
        pub run_key: String,
        /// The holder's task name.
        pub task_name: String,
        /// The tracker instance running the holder.
        pub instance: String,
        /// When the lock was taken (ms since the epoch).
        pub acquired_ms: i64,
        /// When the lock lapses unless refreshed (ms since the epoch).
        pub expires_ms: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Run leases: one row per spawned run that has not ended, refreshed by its
/// tracker's heartbeat.
pub mod lease {
    use sea_orm::entity::prelude::*;

    /// A live run.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasktrail_leases")]
    pub struct Model {
        /// The tracked table the run belongs to.
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        /// The run's key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_key: String,
        /// The task's name.
        pub task_name: String,
        /// The tracker instance running it.
        pub instance: String,
        /// When it was spawned (ms since the epoch).
        pub started_ms: i64,
        /// The last heartbeat (ms since the epoch).
        pub heartbeat_ms: i64,
        /// When the lease lapses unless refreshed (ms since the epoch).
        pub expires_ms: i64,
        /// When the run must have ended (ms since the epoch), if it has a
        /// maximum duration.
        pub deadline_ms: Option<i64>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the lock and lease tables and their indexes, if missing.
pub async fn create_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::MySql {
        // Keys of up to 512 characters (a run key's `MAX_KEY_BYTES`; an
        // object key as long), within InnoDB's 3,072-byte index entries
        // (utf8mb4: 4 bytes a character), compared byte for byte: under a
        // case-insensitive collation a lock on `Book:1` would hold `book:1`.
        for sql in [
            "CREATE TABLE IF NOT EXISTS tasktrail_locks (\
             scope VARCHAR(255) NOT NULL, object VARCHAR(512) NOT NULL, \
             run_key VARCHAR(512) NOT NULL, task_name TEXT NOT NULL, instance TEXT NOT NULL, \
             acquired_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, \
             PRIMARY KEY (scope, object), \
             INDEX ix_tasktrail_locks_scope_run_key (scope, run_key)) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "CREATE TABLE IF NOT EXISTS tasktrail_leases (\
             scope VARCHAR(255) NOT NULL, run_key VARCHAR(512) NOT NULL, \
             task_name TEXT NOT NULL, instance TEXT NOT NULL, started_ms BIGINT NOT NULL, \
             heartbeat_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, deadline_ms BIGINT, \
             PRIMARY KEY (scope, run_key)) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ] {
            db.execute_unprepared(sql).await?;
        }
        return Ok(());
    }
    let schema = sea_orm::Schema::new(db.get_database_backend());
    let mut locks = schema.create_table_from_entity(lock::Entity);
    locks.if_not_exists();
    db.execute(&locks).await?;
    let mut leases = schema.create_table_from_entity(lease::Entity);
    leases.if_not_exists();
    db.execute(&leases).await?;
    let mut by_run = sea_orm::sea_query::Index::create();
    by_run
        .name("ix_tasktrail_locks_scope_run_key")
        .table(lock::Entity)
        .col(lock::Column::Scope)
        .col(lock::Column::RunKey)
        .if_not_exists();
    crate::schema::create_index(db, &by_run).await
}

/// Drops the lock and lease tables, if they exist.
pub async fn drop_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for table in [
        sea_orm::sea_query::Table::drop()
            .table(lock::Entity)
            .if_exists()
            .to_owned(),
        sea_orm::sea_query::Table::drop()
            .table(lease::Entity)
            .if_exists()
            .to_owned(),
    ] {
        db.execute(&table).await?;
    }
    Ok(())
}

/// Who holds one of the objects a run asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub object: String,
    pub run_key: String,
    pub task_name: String,
}

/// A run that wants to lock objects.
pub(crate) struct Claim<'a> {
    pub scope: &'a str,
    pub instance: &'a str,
    pub run_key: &'a str,
    pub task_name: &'a str,
    pub ttl_ms: i64,
}

/// The database's clock in milliseconds since the Unix epoch, as SQL.
pub(crate) fn db_now(backend: DbBackend) -> Expr {
    Expr::cust(crate::writer::feed::db_now(backend))
}

/// Reads the database's clock ([`db_now`]).
pub(crate) async fn db_now_ms(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let mut select = Query::select();
    select.expr_as(db_now(backend), "now_ms");
    db.query_one(&select)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the database's clock".into()))?
        .try_get::<i64>("", "now_ms")
}

/// Locks every object in `objects` for the claim, or none of them: returns
/// the holders of those already locked by other runs (expired locks are
/// taken over).
///
/// A transaction the database aborted to break a deadlock (InnoDB's gap
/// locks make concurrent inserts of the same objects deadlock at times;
/// PostgreSQL's `40P01`) is tried again, a few times.
pub(crate) async fn acquire<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    claim: &Claim<'_>,
    objects: &[String],
) -> Result<Result<(), Vec<Holder>>, DbErr> {
    const TRIES: usize = 5;
    let mut tries = 1;
    loop {
        match acquire_once(db, claim, objects).await {
            Err(err) if tries < TRIES && crate::db_error::is_conflict(&err) => {
                // Runs that collided once collide again if they try again
                // in step: each waits a little, a different while.
                tokio::time::sleep(conflict_pause(tries)).await;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// How long a claim that hit a deadlock waits before its try number
/// `tries + 1`: a few milliseconds more each time, with a random part.
fn conflict_pause(tries: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh `RandomState` is seeded differently each time: enough
    // randomness to put two colliding runs out of step.
    let jitter = std::hash::RandomState::new().build_hasher().finish() % 5;
    std::time::Duration::from_millis(2 * tries as u64 + jitter)
}

/// Opens a transaction for the lock and lease tables. On MySQL / MariaDB at
/// read committed: InnoDB's default (repeatable read) locks the gaps a
/// statement reads, so a delete of expired locks or a `FOR UPDATE` read of
/// stale leases takes the gap where other runs insert theirs, and those
/// runs deadlock (one of them rolled back). Read committed takes no gap
/// locks for reads and deletes; an insert's duplicate check still locks a
/// held row, which is what makes a claim exclusive. PostgreSQL and SQLite
/// keep their defaults (read committed; serialized writers).
async fn begin_without_gap_locks<C: TransactionTrait + ConnectionTrait>(
    db: &C,
) -> Result<C::Transaction, DbErr> {
    if db.get_database_backend() == DbBackend::MySql {
        db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
    } else {
        db.begin().await
    }
}

async fn acquire_once<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    claim: &Claim<'_>,
    objects: &[String],
) -> Result<Result<(), Vec<Holder>>, DbErr> {
    let objects: BTreeSet<&String> = objects.iter().collect();
    if objects.is_empty() {
        return Ok(Ok(()));
    }
    let now = db_now(db.get_database_backend());
    let txn = begin_without_gap_locks(db).await?;
    lock::Entity::delete_many()
        .filter(lock::Column::Scope.eq(claim.scope))
        .filter(lock::Column::Object.is_in(objects.iter().map(|o| o.as_str())))
        .filter(Expr::col(lock::Column::ExpiresMs).lt(now.clone()))
        .exec(&txn)
        .await?;
    let mut insert = Query::insert();
    insert.into_table(lock::Entity).columns([
        lock::Column::Scope,
        lock::Column::Object,
        lock::Column::RunKey,
        lock::Column::TaskName,
        lock::Column::Instance,
        lock::Column::AcquiredMs,
        lock::Column::ExpiresMs,
    ]);
    for object in &objects {
        insert.values_panic([
            claim.scope.into(),
            object.as_str().into(),
            claim.run_key.into(),
            claim.task_name.into(),
            claim.instance.into(),
            now.clone(),
            now.clone().add(claim.ttl_ms),
        ]);
    }
    // MySQL has no `DO NOTHING`: a no-op update of a held row, whose
    // "affected rows" cannot tell it from an insert; the holders below say
    // whether every object is this run's.
    let mysql = txn.get_database_backend() == DbBackend::MySql;
    insert.on_conflict(if mysql {
        OnConflict::columns([lock::Column::Scope, lock::Column::Object])
            .do_nothing_on([lock::Column::Scope])
            .to_owned()
    } else {
        OnConflict::columns([lock::Column::Scope, lock::Column::Object])
            .do_nothing()
            .to_owned()
    });
    let inserted = txn.execute(&insert).await?.rows_affected();
    if !mysql && inserted as usize == objects.len() {
        txn.commit().await?;
        return Ok(Ok(()));
    }
    let holders = lock::Entity::find()
        .filter(lock::Column::Scope.eq(claim.scope))
        .filter(lock::Column::Object.is_in(objects.iter().map(|o| o.as_str())))
        .filter(lock::Column::RunKey.ne(claim.run_key))
        .all(&txn)
        .await?
        .into_iter()
        .map(|l| Holder {
            object: l.object,
            run_key: l.run_key,
            task_name: l.task_name,
        })
        .collect::<Vec<_>>();
    if mysql && holders.is_empty() {
        txn.commit().await?;
        return Ok(Ok(()));
    }
    txn.rollback().await?;
    Ok(Err(holders))
}

/// Frees the run's locks (unless it is known to hold none) and removes its
/// lease.
pub(crate) async fn release(
    db: &impl ConnectionTrait,
    scope: &str,
    run_key: &str,
    locks: bool,
) -> Result<u64, DbErr> {
    let freed = if locks {
        lock::Entity::delete_many()
            .filter(lock::Column::Scope.eq(scope))
            .filter(lock::Column::RunKey.eq(run_key))
            .exec(db)
            .await?
            .rows_affected
    } else {
        0
    };
    lease::Entity::delete_many()
        .filter(lease::Column::Scope.eq(scope))
        .filter(lease::Column::RunKey.eq(run_key))
        .exec(db)
        .await?;
    Ok(freed)
}

/// One run's lease, as the heartbeat writes it.
#[derive(Clone, Copy)]
pub(crate) struct LeaseRow<'a> {
    pub run_key: &'a str,
    /// Whether the run holds locks to refresh.
    pub locked: bool,
    pub task_name: &'a str,
    /// How long ago the run started (by this process's monotonic clock).
    pub elapsed_ms: i64,
    /// How long it may still run, if it has a maximum duration.
    pub remaining_ms: Option<i64>,
}

/// The statements that write the leases of `runs` (`insert`), or refresh
/// those that exist, and refresh the locks of those that hold some (the
/// tracker's writer runs them in one transaction).
///
/// A refresh never re-creates a lease: a run that ended (and deleted its
/// lease) while the heartbeat was under way stays without one. Each
/// statement comes with whether it refreshes leases (its row count tells
/// how many leases were still there).
pub(crate) fn heartbeat(
    backend: DbBackend,
    scope: &str,
    instance: &str,
    ttl_ms: i64,
    runs: &[LeaseRow<'_>],
    insert: bool,
) -> Vec<(sea_orm::Statement, bool)> {
    let now = db_now(backend);
    let mut statements = Vec::new();
    for chunk in runs.chunks(500) {
        if insert {
            let upsert = lease_upsert(
                backend,
                chunk
                    .iter()
                    .map(|run| lease_values(scope, instance, run, ttl_ms)),
            );
            statements.push((backend.build(&upsert), false));
        } else {
            let mut refresh = Query::update();
            refresh
                .table(lease::Entity)
                .value(lease::Column::HeartbeatMs, now.clone())
                .value(lease::Column::ExpiresMs, now.clone().add(ttl_ms))
                .and_where(Expr::col(lease::Column::Scope).eq(scope))
                .and_where(Expr::col(lease::Column::RunKey).is_in(chunk.iter().map(|r| r.run_key)));
            statements.push((backend.build(&refresh), true));
        }

        let locked: Vec<&str> = chunk
            .iter()
            .filter(|r| r.locked)
            .map(|r| r.run_key)
            .collect();
        if !locked.is_empty() {
            let mut refresh = Query::update();
            refresh
                .table(lock::Entity)
                .value(lock::Column::ExpiresMs, now.clone().add(ttl_ms))
                .and_where(Expr::col(lock::Column::Scope).eq(scope))
                .and_where(Expr::col(lock::Column::RunKey).is_in(locked));
            statements.push((backend.build(&refresh), false));
        }
    }
    statements
}

/// Whether a lease lapsed (no heartbeat) or passed its deadline at `now`
/// (the database's clock, [`db_now_ms`]).
fn stale(now: i64) -> sea_orm::sea_query::Condition {
    sea_orm::sea_query::Condition::any()
        .add(lease::Column::ExpiresMs.lt(now))
        .add(lease::Column::DeadlineMs.lt(now))
}

/// Takes the stale leases of other instances than `instance`: deletes
/// those still stale when the statement runs and returns them. A lease
/// refreshed in the meantime (a heartbeat racing the sweep) is neither
/// deleted nor returned, so its run is left alone.
pub(crate) async fn take_stale_leases(
    db: &(impl ConnectionTrait + TransactionTrait),
    scope: &str,
    instance: &str,
    now: i64,
) -> Result<Vec<lease::Model>, DbErr> {
    delete_leases_returning(
        db,
        sea_orm::sea_query::Condition::all()
            .add(lease::Column::Scope.eq(scope))
            .add(lease::Column::Instance.ne(instance))
            .add(stale(now)),
    )
    .await
}

/// `DELETE … WHERE condition RETURNING *` on the lease table, as SQL: sea-orm
/// answers "not supported" for SQLite unless its feature
/// `sqlite-use-returning-for-3_35` is on (it is in sea-orm's defaults, which
/// tasktrail does not turn on), while every SQLite sqlx bundles (3.35 and
/// later) and PostgreSQL run it.
///
/// MySQL has no `RETURNING` (and sea-query leaves it out there): in one
/// transaction, the stale leases are read `FOR UPDATE` (a heartbeat racing
/// the sweep waits for its commit) and deleted by the same condition.
async fn delete_leases_returning<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    condition: sea_orm::sea_query::Condition,
) -> Result<Vec<lease::Model>, DbErr> {
    use sea_orm::FromQueryResult;
    if db.get_database_backend() == DbBackend::MySql {
        let txn = begin_without_gap_locks(db).await?;
        let taken = lease::Entity::find()
            .filter(condition.clone())
            .lock_exclusive()
            .all(&txn)
            .await?;
        if !taken.is_empty() {
            lease::Entity::delete_many()
                .filter(condition)
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        return Ok(taken);
    }
    let mut delete = sea_orm::sea_query::Query::delete();
    delete
        .from_table(lease::Entity)
        .cond_where(condition)
        .returning_all();
    let rows = db
        .query_all_raw(db.get_database_backend().build(&delete))
        .await?;
    rows.iter()
        .map(|row| lease::Model::from_query_result(row, ""))
        .collect()
}

/// The stale leases of `instance` itself (its live runs are not taken).
pub(crate) async fn own_stale_leases(
    db: &impl ConnectionTrait,
    scope: &str,
    instance: &str,
    now: i64,
) -> Result<Vec<lease::Model>, DbErr> {
    lease::Entity::find()
        .filter(lease::Column::Scope.eq(scope))
        .filter(lease::Column::Instance.eq(instance))
        .filter(stale(now))
        .all(db)
        .await
}

/// Takes one lease if it is still stale at `now`; see [`take_stale_leases`].
pub(crate) async fn take_stale_lease(
    db: &(impl ConnectionTrait + TransactionTrait),
    scope: &str,
    run_key: &str,
    now: i64,
) -> Result<Option<lease::Model>, DbErr> {
    Ok(delete_leases_returning(
        db,
        sea_orm::sea_query::Condition::all()
            .add(lease::Column::Scope.eq(scope))
            .add(lease::Column::RunKey.eq(run_key))
            .add(stale(now)),
    )
    .await?
    .pop())
}

/// Which of `run_keys` still have a lease.
pub(crate) async fn leased(
    db: &impl ConnectionTrait,
    scope: &str,
    run_keys: &[&str],
) -> Result<Vec<String>, DbErr> {
    let mut out = Vec::new();
    for chunk in run_keys.chunks(500) {
        out.extend(
            lease::Entity::find()
                .select_only()
                .column(lease::Column::RunKey)
                .filter(lease::Column::Scope.eq(scope))
                .filter(lease::Column::RunKey.is_in(chunk.iter().copied()))
                .into_tuple::<String>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// Deletes locks that lapsed (their holder stopped refreshing them).
pub(crate) async fn free_expired_locks(
    db: &impl ConnectionTrait,
    scope: &str,
    now: i64,
) -> Result<u64, DbErr> {
    Ok(lock::Entity::delete_many()
        .filter(lock::Column::Scope.eq(scope))
        .filter(lock::Column::ExpiresMs.lt(now))
        .exec(db)
        .await?
        .rows_affected)
}

/// The multi-row statements a spawned run's writes go through (see
/// [`crate::writer`]): its lease, and the release of its locks and lease.
pub(crate) struct Templates {
    /// Inserts (or refreshes) leases; a row is [`lease_values`].
    pub lease: Arc<Template>,
    /// Deletes leases by `(scope, run_key)`; a row is `[scope, run_key]`.
    pub free_lease: Arc<Template>,
    /// Deletes the locks of runs by `(scope, run_key)`; a row is
    /// `[scope, run_key]`.
    pub free_locks: Arc<Template>,
}

impl Templates {
    pub fn new(backend: DbBackend) -> Self {
        let lease = Template::new(backend, LEASE_PARAMS, move |rows| {
            let upsert = lease_upsert(
                backend,
                (0..rows).map(|_| lease_values("", "", &LEASE_SAMPLE, 0)),
            );
            backend.build(&upsert).sql
        });
        let free = |table: sea_orm::sea_query::TableRef, scope: Expr, run_key: Expr| {
            Template::new(backend, 2, move |rows| {
                let mut delete = Query::delete();
                delete.from_table(table.clone()).and_where(
                    Expr::tuple([scope.clone(), run_key.clone()])
                        .is_in((0..rows).map(|_| Expr::tuple([Expr::val(""), Expr::val("")]))),
                );
                backend.build(&delete).sql
            })
        };
        use sea_orm::EntityName;
        Templates {
            lease,
            free_lease: free(
                lease::Entity.table_ref(),
                Expr::col(lease::Column::Scope),
                Expr::col(lease::Column::RunKey),
            ),
            free_locks: free(
                lock::Entity.table_ref(),
                Expr::col(lock::Column::Scope),
                Expr::col(lock::Column::RunKey),
            ),
        }
    }
}

const LEASE_SAMPLE: LeaseRow<'static> = LeaseRow {
    run_key: "",
    locked: false,
    task_name: "",
    elapsed_ms: 0,
    remaining_ms: None,
};

/// How many values one lease row binds ([`lease_values`]).
const LEASE_PARAMS: usize = 7;

/// The lease upsert for `rows` (each [`lease_values`]): a new lease is
/// inserted, an existing one gets the instance, heartbeat and expiry. The
/// times are the database's: started = now − elapsed, heartbeat = now,
/// expires = now + TTL, deadline = now + remaining (`NULL` without one).
fn lease_upsert(
    backend: DbBackend,
    rows: impl Iterator<Item = Vec<sea_orm::Value>>,
) -> InsertStatement {
    let now = db_now(backend);
    let mut upsert = Query::insert();
    upsert.into_table(lease::Entity).columns([
        lease::Column::Scope,
        lease::Column::RunKey,
        lease::Column::TaskName,
        lease::Column::Instance,
        lease::Column::StartedMs,
        lease::Column::HeartbeatMs,
        lease::Column::ExpiresMs,
        lease::Column::DeadlineMs,
    ]);
    for row in rows {
        let [scope, run_key, task_name, instance, elapsed, ttl, remaining]: [sea_orm::Value;
            LEASE_PARAMS] = row.try_into().expect("a lease row has LEASE_PARAMS values");
        upsert.values_panic([
            Expr::val(scope),
            Expr::val(run_key),
            Expr::val(task_name),
            Expr::val(instance),
            now.clone().sub(Expr::val(elapsed)),
            now.clone(),
            now.clone().add(Expr::val(ttl)),
            now.clone().add(Expr::val(remaining)),
        ]);
    }
    upsert.on_conflict(
        OnConflict::columns([lease::Column::Scope, lease::Column::RunKey])
            .update_columns([
                lease::Column::Instance,
                lease::Column::HeartbeatMs,
                lease::Column::ExpiresMs,
            ])
            .to_owned(),
    );
    upsert
}

/// One lease row's values, in the lease template's order.
pub(crate) fn lease_values(
    scope: &str,
    instance: &str,
    run: &LeaseRow<'_>,
    ttl_ms: i64,
) -> Vec<sea_orm::Value> {
    vec![
        scope.into(),
        run.run_key.into(),
        run.task_name.into(),
        instance.into(),
        run.elapsed_ms.into(),
        ttl_ms.into(),
        run.remaining_ms.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lease times come from the database's clock, an instance's only as
    /// durations (elapsed, TTL, remaining).
    #[test]
    fn lease_times_are_the_databases() {
        for (backend, clock) in [
            (DbBackend::Sqlite, "julianday('now')"),
            (DbBackend::Postgres, "clock_timestamp()"),
            (DbBackend::MySql, "NOW(3)"),
        ] {
            let sql = Templates::new(backend).lease.sql(2);
            println!("{sql}");
            assert_eq!(sql.matches(clock).count(), 8, "{sql}");
            let heartbeat = heartbeat(
                backend,
                "s",
                "i",
                1_000,
                &[
                    LEASE_SAMPLE,
                    LeaseRow {
                        locked: true,
                        ..LEASE_SAMPLE
                    },
                ],
                false,
            );
            assert_eq!(heartbeat.len(), 2);
            for (stmt, _) in heartbeat {
                println!("{}", stmt.sql);
                assert!(stmt.sql.contains(clock), "{}", stmt.sql);
            }
        }
    }
}
