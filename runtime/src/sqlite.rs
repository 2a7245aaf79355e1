//! Opening SQLite the way a tracker wants it.
//!
//! `sea_orm::Database::connect("sqlite://runs.db?mode=rwc")` gives SQLite's
//! own defaults: a rollback journal (`journal_mode = delete`), in which
//! every commit rewrites the journal and readers wait for writers, and a
//! pool of **one** connection, on which the dashboard's reads queue behind
//! the tracker's writes. [`connect`] opens the same URL with
//!
//! * `journal_mode = WAL`: readers never wait for the writer, and a commit
//!   appends to the log instead of rewriting a journal;
//! * a busy timeout (5 s), so a writer waits for another process's lock
//!   instead of failing at once;
//! * a pool of 4 connections: the tracker writes through one at a time
//!   (its writer batches every event into one transaction), the others
//!   serve the dashboard's reads beside it.
//!
//! Durability stays SQLite's default, `synchronous = FULL` (a commit waits
//! for the disk). [`SqliteSetup::synchronous`] picks `NORMAL`, the usual
//! WAL setting, where a commit does not wait for the disk: the database
//! stays consistent after a crash, but the last commits before a power loss
//! can be lost. BENCHMARKS.md measures both.
//!
//! ```
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}?mode=rwc", dir.path().join("runs.db").display());
//! let db = tasktrail::sqlite::connect(&url).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

/// When a SQLite commit returns: after the disk has the data, or before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous = FULL` (SQLite's default): a commit waits for the disk;
    /// nothing committed is lost, even on a power loss.
    #[default]
    Full,
    /// `synchronous = NORMAL`: in WAL mode a commit does not wait for the
    /// disk; a crash of the process loses nothing, a power loss may lose
    /// the last commits.
    Normal,
}

/// How [`connect`] opens a SQLite database; see the [module](self) docs.
#[derive(Clone, Debug)]
pub struct SqliteSetup {
    url: String,
    synchronous: Synchronous,
    busy_timeout: Duration,
    connections: u32,
}

impl SqliteSetup {
    /// The default set-up for `url` (a sea-orm SQLite URL, such as
    /// `sqlite://runs.db?mode=rwc`).
    pub fn new(url: impl Into<String>) -> Self {
        SqliteSetup {
            url: url.into(),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            connections: 4,
        }
    }

    /// When a commit returns (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a statement waits for another connection's lock before it
    /// fails with `SQLITE_BUSY` (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The pool's size (default 4; at least 1). An in-memory database always
    /// gets one connection: each connection would see a database of its own.
    pub fn connections(mut self, connections: u32) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// Whether the URL names an in-memory database.
    fn in_memory(&self) -> bool {
        self.url.contains(":memory:") || self.url.contains("mode=memory")
    }

    /// sea-orm's options for this set-up, to adjust further (logging, …)
    /// before `sea_orm::Database::connect`.
    pub fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.url.clone());
        let in_memory = self.in_memory();
        options.max_connections(if in_memory { 1 } else { self.connections });
        let busy_timeout = self.busy_timeout;
        let synchronous = match self.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        options.map_sqlx_sqlite_opts(move |o| {
            let o = o.busy_timeout(busy_timeout).synchronous(synchronous);
            if in_memory {
                o
            } else {
                o.journal_mode(SqliteJournalMode::Wal)
            }
        });
        options
    }

    /// Opens the database.
    pub async fn connect(&self) -> Result<DatabaseConnection, DbErr> {
        Database::connect(self.options()).await
    }
}

/// Opens the SQLite database at `url` with the recommended set-up: WAL, a
/// 5 s busy timeout, 4 connections, `synchronous = FULL`. See
/// [`SqliteSetup`] to change them.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    SqliteSetup::new(url).connect().await
}

/// What makes a SQLite connection slow for a tracker, in a sentence that
/// names the fix; `None` when the set-up is fine or the database is not
/// SQLite. Read once per tracker, at its first write.
#[allow(dead_code)] // read by the writer (group commit)
pub(crate) async fn slow_setup(db: &DatabaseConnection) -> Option<String> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .ok()??;
    let mode: String = row.try_get_by_index(0).ok()?;
    let mode = mode.to_ascii_lowercase();
    if mode == "memory" || mode == "wal" || mode == "off" {
        return None;
    }
    Some(format!(
        "tasktrail: this SQLite database uses a rollback journal (journal_mode = {mode}): every \
         commit rewrites the journal and the dashboard's reads wait for the tracker's writes. \
         Open it with tasktrail::sqlite::connect(url) (WAL, a busy timeout, a pool beside the \
         writer), or set journal_mode = WAL yourself"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(db: &DatabaseConnection, name: &str) -> String {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0)
            .map(|v| v.to_string())
            .or_else(|_| row.try_get_by_index::<String>(0))
            .unwrap()
    }

    #[tokio::test]
    async fn the_recommended_setup() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());

        let plain = Database::connect(&url).await.unwrap();
        assert_eq!(pragma(&plain, "journal_mode").await, "delete");
        let warning = slow_setup(&plain)
            .await
            .expect("a rollback journal is slow");
        assert!(warning.contains("tasktrail::sqlite::connect"), "{warning}");
        plain.close().await.unwrap();

        let db = connect(&url).await.unwrap();
        assert_eq!(pragma(&db, "journal_mode").await, "wal");
        assert_eq!(pragma(&db, "synchronous").await, "2"); // FULL
        assert_eq!(pragma(&db, "busy_timeout").await, "5000");
        assert_eq!(slow_setup(&db).await, None);
        db.close().await.unwrap();

        let db = SqliteSetup::new(&url)
            .synchronous(Synchronous::Normal)
            .connect()
            .await
            .unwrap();
        assert_eq!(pragma(&db, "synchronous").await, "1"); // NORMAL
    }

    #[tokio::test]
    async fn in_memory_keeps_one_connection() {
        let setup = SqliteSetup::new("sqlite::memory:").connections(8);
        assert_eq!(setup.options().get_max_connections(), Some(1));
        let db = setup.connect().await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        assert_eq!(slow_setup(&db).await, None);
    }
}
