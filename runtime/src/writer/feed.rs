//! The change feed's write side: every lifecycle write adds a row to
//! [`TABLE`] in the same transaction, and the order of those rows is the
//! database's (an identity column; on PostgreSQL also the writing
//! transaction's id, see [`crate::feed`]), never a writer's clock. On
//! PostgreSQL the same transaction sends a notification on [`CHANNEL`]
//! (delivered at commit, so atomically with the write) carrying only the
//! scopes and run keys written.
//!
//! Each op that records a change carries a [`Change`]; the batch writes the
//! changes of its ops after their own statements, in op order (so a run's
//! changes keep their order), as multi-row inserts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::Template;

/// The change feed's table.
pub(crate) const TABLE: &str = "tasktrail_changes";

/// The notification channel of the change feed (PostgreSQL).
pub(crate) const CHANNEL: &str = "tasktrail_changes";

/// The longest notification payload sent (PostgreSQL refuses over 8,000
/// bytes); a longer one carries the scopes only.
const MAX_PAYLOAD: usize = 7_000;

/// What a lifecycle write records in the feed.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// The tracked table's name: trackers of several entities share a feed.
    pub scope: Arc<str>,
    /// The run's key.
    pub run_key: String,
    /// The event (`create`, `start`, …, `cleanup`, `delete`).
    pub kind: &'static str,
    /// The writing tracker's instance.
    pub instance: Arc<str>,
    /// Who asked for it, as the entity's `format_user` labels them.
    pub actor: Option<String>,
    /// Where the op binds its `updated_at`, stamped with the time of the
    /// write when the batch is written.
    pub stamp: Option<Stamp>,
}

/// The place of a value the writer sets to the time of the write.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    /// The index among the op's bound values.
    pub index: usize,
    /// How the column stores a time.
    pub encode: fn(DateTime<Utc>) -> Value,
}

impl Change {
    fn values(&self) -> [Value; 5] {
        [
            Value::from(&*self.scope),
            Value::from(self.run_key.as_str()),
            Value::from(self.kind),
            Value::from(&*self.instance),
            Value::String(self.actor.clone()),
        ]
    }
}

/// The multi-row insert of changes (and, on PostgreSQL, the one with the
/// notification, binding the channel and payload after the rows).
pub(crate) struct Inserts {
    plain: Arc<Template>,
    notify: Option<Arc<Template>>,
    /// MySQL: the statement that takes the feed's turn before its inserts.
    turn: Option<Statement>,
}

/// MySQL's turns: a row per sequence whose numbers must follow commit
/// order (the change feed's `seq`, the log table's `id`). A transaction
/// locks its row (an `UPDATE`, held until it commits) right before it draws
/// numbers, so a reader that has seen number n has seen every smaller one:
/// InnoDB hands out AUTO_INCREMENT values at insert time, and without the
/// turn a transaction that drew 6 could commit after one that drew 7.
/// (PostgreSQL orders the feed by transaction id instead, and its log
/// writes take an advisory lock; SQLite has one writer at a time.)
pub(crate) const TURNS: &str = "tasktrail_turns";

/// The statement that waits for, and takes, the turn of sequence `name`
/// (MySQL).
pub(crate) fn take_turn(name: &str) -> Statement {
    Statement::from_string(
        DbBackend::MySql,
        format!("UPDATE {TURNS} SET n = n + 1 WHERE name = '{name}'"),
    )
}

/// Creates [`TURNS`] with its rows, if missing (MySQL).
pub(crate) async fn create_turns(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {TURNS} (name VARCHAR(64) NOT NULL PRIMARY KEY, \
         n BIGINT NOT NULL) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT IGNORE INTO {TURNS} (name, n) VALUES ('changes', 0), ('logs', 0)"
    ))
    .await?;
    Ok(())
}

const COLUMNS: &str = "scope, run_key, kind, instance, actor";

impl Inserts {
    pub(crate) fn new(backend: DbBackend) -> Self {
        let rows = move |n: usize, first: usize| -> String {
            let mut out = String::new();
            for r in 0..n {
                if r > 0 {
                    out.push_str(", ");
                }
                out.push('(');
                for c in 0..5 {
                    if c > 0 {
                        out.push_str(", ");
                    }
                    match backend {
                        DbBackend::Postgres => out.push_str(&format!("${}", first + r * 5 + c)),
                        _ => out.push('?'),
                    }
                }
                out.push(')');
            }
            out
        };
        let plain = Template::new(backend, 5, move |n| {
            format!("INSERT INTO {TABLE} ({COLUMNS}) VALUES {}", rows(n, 1))
        });
        let notify = (backend == DbBackend::Postgres).then(|| {
            Template::new(backend, 5, move |n| {
                // The insert is a data-modifying CTE: it runs whether or not
                // the query reads it.
                format!(
                    "WITH c AS (INSERT INTO {TABLE} ({COLUMNS}) VALUES {}) SELECT pg_notify(${}, ${})",
                    rows(n, 1),
                    n * 5 + 1,
                    n * 5 + 2
                )
            })
        });
        let turn = (backend == DbBackend::MySql).then(|| take_turn("changes"));
        Inserts {
            plain,
            notify,
            turn,
        }
    }

    /// The statements that write `changes`, in order (the last one sends
    /// the notification on PostgreSQL).
    pub(crate) fn statements(&self, changes: &[&Change]) -> Vec<Statement> {
        let mut out: Vec<Statement> = self.turn.iter().cloned().collect();
        let sizes = super::batch::chunks(changes.len(), self.plain.max_rows());
        let last = sizes.len().saturating_sub(1);
        let mut rest = changes;
        for (i, size) in sizes.into_iter().enumerate() {
            let (these, later) = rest.split_at(size);
            rest = later;
            let (template, notify) = match (&self.notify, i == last) {
                (Some(notify), true) => (notify, true),
                _ => (&self.plain, false),
            };
            let mut values = Vec::with_capacity(size * 5 + 2);
            for change in these {
                values.extend(change.values());
            }
            if notify {
                values.push(Value::from(CHANNEL));
                values.push(Value::from(payload(changes)));
            }
            out.push(Statement::from_sql_and_values(
                template.backend,
                &*template.sql(size),
                values,
            ));
        }
        out
    }
}

/// The notification's payload: a line per change, `scope` TAB `key`
/// (distinct, in order); only the scopes when that is too long.
fn payload(changes: &[&Change]) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for c in changes {
        if seen.insert((&*c.scope, c.run_key.as_str())) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&c.scope);
            out.push('\t');
            out.push_str(&c.run_key);
        }
    }
    if out.len() <= MAX_PAYLOAD {
        return out;
    }
    let mut scopes: Vec<&str> = Vec::new();
    for c in changes {
        if !scopes.contains(&&*c.scope) {
            scopes.push(&c.scope);
        }
    }
    scopes.join("\n")
}

/// The most characters of an actor's label a change keeps.
const MAX_ACTOR_CHARS: usize = 200;

/// `label` as a change stores it: storable on every backend (a NUL is
/// U+FFFD) and at most [`MAX_ACTOR_CHARS`] characters.
pub(crate) fn actor_label(label: &str) -> String {
    crate::storable::text(label)
        .chars()
        .take(MAX_ACTOR_CHARS)
        .collect()
}

/// The database's clock in ms since the epoch, as an SQL expression.
pub(crate) fn db_now(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
        DbBackend::MySql => "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// The statements that create the feed's table and indexes, if missing.
pub(crate) fn create_statements(backend: DbBackend) -> Vec<String> {
    let now = db_now(backend);
    match backend {
        DbBackend::Postgres => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (\
                 seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 txid xid8 NOT NULL DEFAULT pg_current_xact_id(), \
                 scope TEXT NOT NULL, run_key TEXT NOT NULL, kind TEXT NOT NULL, \
                 at_ms BIGINT NOT NULL DEFAULT ({now}), \
                 instance TEXT, actor TEXT)"
            ),
            format!("CREATE INDEX IF NOT EXISTS ix_{TABLE}_txid_seq ON {TABLE} (txid, seq)"),
            format!(
                "CREATE INDEX IF NOT EXISTS ix_{TABLE}_scope_run_key ON {TABLE} (scope, run_key)"
            ),
        ],
        // InnoDB's AUTO_INCREMENT is not reused after a delete either (since
        // MySQL 8 / MariaDB 10.2.4 not even across a restart). Text keys
        // are indexed by a prefix (an index entry holds at most 3,072 bytes).
        DbBackend::MySql => vec![format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (\
             seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             scope TEXT NOT NULL, run_key TEXT NOT NULL, kind TEXT NOT NULL, \
             at_ms BIGINT NOT NULL DEFAULT ({now}), \
             instance TEXT, actor TEXT, \
             INDEX ix_{TABLE}_scope_run_key (scope(191), run_key(191))) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )],
        _ => vec![
            // AUTOINCREMENT: a pruned feed never hands out a number again.
            format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (\
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 scope TEXT NOT NULL, run_key TEXT NOT NULL, kind TEXT NOT NULL, \
                 at_ms INTEGER NOT NULL DEFAULT ({now}), \
                 instance TEXT, actor TEXT)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS ix_{TABLE}_scope_run_key ON {TABLE} (scope, run_key)"
            ),
        ],
    }
}

/// Whether the feed's table exists (a look at the catalog, which takes no
/// lock on the table: `CREATE INDEX IF NOT EXISTS` would wait for every
/// open transaction that wrote to it).
async fn table_exists(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!("SELECT to_regclass('{TABLE}') IS NOT NULL AS present"),
        DbBackend::MySql => format!(
            "SELECT COUNT(*) > 0 AS present FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '{TABLE}'"
        ),
        _ => format!(
            "SELECT COUNT(*) > 0 AS present FROM sqlite_master \
             WHERE type = 'table' AND name = '{TABLE}'"
        ),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<bool>("", "present").ok())
        .unwrap_or(false))
}

/// Creates the feed's table and indexes, if missing.
pub(crate) async fn create_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::MySql {
        create_turns(db).await?;
    }
    if table_exists(db).await? {
        return Ok(());
    }
    for sql in create_statements(backend) {
        if let Err(err) = db.execute_unprepared(&sql).await {
            // Two instances creating it at once: PostgreSQL may report the
            // loser's catalog insert as a duplicate.
            if !(backend == DbBackend::Postgres && err.to_string().contains("already exists")
                || err.to_string().contains("duplicate key"))
            {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Drops the feed's table, if it exists.
pub(crate) async fn drop_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str) -> Change {
        Change {
            scope: "runs".into(),
            run_key: key.into(),
            kind: "start",
            instance: "i".into(),
            actor: None,
            stamp: None,
        }
    }

    #[test]
    fn postgres_notifies_in_the_last_insert() {
        let inserts = Inserts::new(DbBackend::Postgres);
        let changes: Vec<Change> = (0..3).map(|i| change(&format!("k{i}"))).collect();
        let refs: Vec<&Change> = changes.iter().collect();
        let stmts = inserts.statements(&refs);
        assert_eq!(stmts.len(), 2, "2 + 1 rows");
        assert!(!stmts[0].sql.contains("pg_notify"));
        assert!(
            stmts[1].sql.contains("pg_notify($6, $7)"),
            "{}",
            stmts[1].sql
        );
        let values = &stmts[1].values.as_ref().unwrap().0;
        assert_eq!(values.len(), 7);
        assert_eq!(values[6], Value::from("runs\tk0\nruns\tk1\nruns\tk2"));
        let sqlite = Inserts::new(DbBackend::Sqlite).statements(&refs);
        assert!(sqlite.iter().all(|s| !s.sql.contains("notify")));
    }

    #[test]
    fn a_long_payload_carries_the_scopes() {
        let changes: Vec<Change> = (0..2_000).map(|i| change(&format!("key-{i}"))).collect();
        let refs: Vec<&Change> = changes.iter().collect();
        assert_eq!(payload(&refs), "runs");
    }
}
