//! What a database error means for the write that got it: wait and try
//! again (the database is unreachable, busy or out of resources), or give
//! up on this write (the database answered and refused it).
//!
//! Each backend is classified by its own codes: SQLite's result codes only
//! for SQLite errors, SQLSTATE classes only for PostgreSQL errors, server
//! error numbers only for MySQL / MariaDB errors. An error
//! no rule names is permanent: retrying it would hold back every write
//! queued behind it.

use sea_orm::{DbErr, RuntimeErr, sqlx};

/// Whether a failed write may succeed if tried again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The database could not be reached, was busy or out of a resource
    /// (connections, memory, disk): the same write may succeed later.
    Transient,
    /// The database answered and refused this write (bad data, a schema
    /// that does not match, a permission, a constraint): it never will.
    Permanent,
}

impl ErrorClass {
    /// Whether the class is [`ErrorClass::Transient`].
    pub(crate) fn is_transient(self) -> bool {
        self == ErrorClass::Transient
    }
}

/// Classifies `err` by the backend that raised it.
pub(crate) fn classify(err: &DbErr) -> ErrorClass {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return ErrorClass::Transient,
        DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return ErrorClass::Permanent,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        return ErrorClass::Permanent;
    };
    match &**e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => ErrorClass::Transient,
        sqlx::Error::Database(db) => {
            #[cfg(feature = "sqlite")]
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite's code is its extended result code, in decimal.
                let code = db.code().and_then(|c| c.parse::<i32>().ok());
                return code.map_or(ErrorClass::Permanent, classify_sqlite);
            }
            #[cfg(feature = "postgres")]
            if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return classify_sqlstate(e.code());
            }
            #[cfg(feature = "mysql")]
            if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return classify_mysql(e.number());
            }
            let _ = db;
            ErrorClass::Permanent
        }
        _ => ErrorClass::Permanent,
    }
}

/// Whether `err` may go away by itself; see [`classify`].
pub(crate) fn is_transient(err: &DbErr) -> bool {
    classify(err).is_transient()
}

/// Whether `err` says the database cannot be reached at all — no
/// connection could be had or kept (the pool's wait, an I/O error, a
/// closed or failing connection; PostgreSQL's class `08` and the server
/// shutting down, `57P01`–`57P03`; MySQL's lost connection, 2006 / 2013) —
/// rather than that it is busy (a lock, a full disk, a conflict), which
/// one connection's retry sorts out.
pub(crate) fn is_unreachable(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return false,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        return false;
    };
    match &**e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            #[cfg(feature = "postgres")]
            if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = e.code();
                return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
            }
            #[cfg(feature = "mysql")]
            if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return matches!(e.number(), 2006 | 2013);
            }
            let _ = db;
            false
        }
        _ => false,
    }
}

/// Whether `err` is a conflict between concurrent transactions that the
/// database resolved by aborting this one (PostgreSQL's deadlock `40P01`
/// and serialization failure `40001`): the database answers, and the same
/// transaction tried again at once usually succeeds.
pub(crate) fn is_conflict(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let sqlx::Error::Database(db) = &**e else {
        return false;
    };
    #[cfg(feature = "postgres")]
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(e.code(), "40P01" | "40001");
    }
    // MySQL / MariaDB: a deadlock (1213) rolls the whole transaction back.
    #[cfg(feature = "mysql")]
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return e.number() == ER_LOCK_DEADLOCK;
    }
    let _ = db;
    false
}

/// Whether the database refused a value the statement carried, rather than
/// the statement itself: PostgreSQL's data exceptions (class `22`: a NUL
/// byte, a malformed number or time, a value out of range) and SQLite's
/// `TOOBIG`, `MISMATCH` and `RANGE`. On a read whose values come from a
/// request, that is the request's fault (a 400), not the server's.
#[cfg(feature = "dashboard")]
pub(crate) fn is_bad_value(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let sqlx::Error::Database(db) = &**e else {
        return false;
    };
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        return matches!(code & 0xff, 18 | 20 | 25);
    }
    #[cfg(feature = "postgres")]
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return e.code().starts_with("22");
    }
    // MySQL / MariaDB in strict mode: SQLSTATE class 22 as well (1366 an
    // incorrect value, 1406 data too long, 1264 out of range, 1292 a bad
    // date), and 1300 an invalid character string.
    #[cfg(feature = "mysql")]
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return e.code().is_some_and(|c| c.starts_with("22")) || e.number() == 1300;
    }
    let _ = db;
    false
}

/// The server error number of a MySQL / MariaDB error, if `err` is one.
pub(crate) fn mysql_number(err: &DbErr) -> Option<u16> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let sqlx::Error::Database(db) = &**e else {
        return None;
    };
    #[cfg(feature = "mysql")]
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(e.number());
    }
    let _ = db;
    None
}

/// MySQL's and MariaDB's deadlock: the transaction was rolled back.
#[cfg(feature = "mysql")]
const ER_LOCK_DEADLOCK: u16 = 1213;

/// A MySQL / MariaDB server error number.
///
/// Transient: `ER_CON_COUNT_ERROR` (1040, too many connections),
/// `ER_OUT_OF_RESOURCES` (1041), `ER_DISK_FULL` (1021),
/// `ER_RECORD_FILE_FULL` (1114, the table is full), `ER_SERVER_SHUTDOWN`
/// (1053), `ER_NET_READ_ERROR`… (1158–1161, network errors),
/// `ER_LOCK_WAIT_TIMEOUT` (1205), `ER_LOCK_DEADLOCK` (1213),
/// `ER_QUERY_INTERRUPTED` (1317), `ER_OPTION_PREVENTS_STATEMENT` (1290: a
/// `--read-only` server during a failover), `ER_CONNECTION_KILLED` (1927,
/// MariaDB), `ER_CLIENT_INTERACTION_TIMEOUT` (4031, MySQL 8), and the
/// client's own "server has gone away" / "lost connection" (2006, 2013).
/// Everything else — syntax (1064), no such table (1146), duplicate key
/// (1062), data errors (1264, 1292, 1366, 1406), access (1044, 1045,
/// 1142) — is permanent.
#[cfg(feature = "mysql")]
pub(crate) fn classify_mysql(number: u16) -> ErrorClass {
    match number {
        1021
        | 1040
        | 1041
        | 1053
        | 1114
        | 1158..=1161
        | 1205
        | ER_LOCK_DEADLOCK
        | 1290
        | 1317
        | 1927
        | 2006
        | 2013
        | 4031 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// A SQLite result code (primary or extended, as `sqlite3_extended_errcode`
/// gives it).
///
/// Transient: `BUSY` (5), `LOCKED` (6), `NOMEM` (7), `INTERRUPT` (9),
/// `IOERR` (10), `FULL` (13, the disk is full), `CANTOPEN` (14),
/// `PROTOCOL` (15), `SCHEMA` (17, another connection changed the schema),
/// and the read-only states a recovery or a lock explains
/// (`READONLY_RECOVERY`, `READONLY_CANTLOCK`). Everything else — `ERROR`
/// (no such table, a syntax error), `CONSTRAINT`, `MISMATCH`, `TOOBIG`,
/// `CORRUPT`, `READONLY`, `PERM`, `AUTH`, … — is permanent.
#[cfg(feature = "sqlite")]
pub(crate) fn classify_sqlite(code: i32) -> ErrorClass {
    const SQLITE_READONLY_RECOVERY: i32 = 8 | (1 << 8);
    const SQLITE_READONLY_CANTLOCK: i32 = 8 | (2 << 8);
    if matches!(code, SQLITE_READONLY_RECOVERY | SQLITE_READONLY_CANTLOCK) {
        return ErrorClass::Transient;
    }
    match code & 0xff {
        5 | 6 | 7 | 9 | 10 | 13 | 14 | 15 | 17 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// A PostgreSQL SQLSTATE.
///
/// Transient: class `08` (connection exception), `53` (insufficient
/// resources: disk full, out of memory, too many connections), `57P01`–
/// `57P03` and `57P05` (the server shuts down, crashed, is starting, or
/// closed an idle session), `57014` (a statement timeout or a cancel),
/// `58` (I/O errors of the server), `40001` (serialization failure),
/// `40P01` (deadlock), `55P03` (a lock not available), `25006` (a read-only
/// transaction: a standby during a failover). Everything else — data
/// exceptions (`22`), integrity (`23`), syntax and permissions (`42`),
/// internal errors (`XX`) — is permanent.
#[cfg(feature = "postgres")]
pub(crate) fn classify_sqlstate(code: &str) -> ErrorClass {
    const TRANSIENT_CLASSES: [&str; 3] = ["08", "53", "58"];
    const TRANSIENT_CODES: [&str; 9] = [
        "57P01", "57P02", "57P03", "57P05", "57014", "40001", "40P01", "55P03", "25006",
    ];
    let class = code.get(..2).unwrap_or("");
    if code.len() == 5 && (TRANSIENT_CLASSES.contains(&class) || TRANSIENT_CODES.contains(&code)) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorClass::*, classify_sqlite, classify_sqlstate};

    /// Every SQLSTATE class PostgreSQL defines (Appendix A), with a code of
    /// each, and what it means for a write.
    #[test]
    fn every_sqlstate_class() {
        let table = [
            ("00000", Permanent), // successful completion: never an error here
            ("01000", Permanent), // warning
            ("02000", Permanent), // no data
            ("03000", Permanent), // SQL statement not yet complete
            ("08000", Transient), // connection exception
            ("08003", Transient), // connection does not exist
            ("08006", Transient), // connection failure
            ("08001", Transient), // client unable to establish connection
            ("08004", Transient), // server rejected the connection
            ("08P01", Transient), // protocol violation
            ("09000", Permanent), // triggered action exception
            ("0A000", Permanent), // feature not supported
            ("0B000", Permanent), // invalid transaction initiation
            ("0F000", Permanent), // locator exception
            ("0L000", Permanent), // invalid grantor
            ("0P000", Permanent), // invalid role specification
            ("0Z000", Permanent), // diagnostics exception
            ("20000", Permanent), // case not found
            ("21000", Permanent), // cardinality violation
            ("22000", Permanent), // data exception
            ("22001", Permanent), // string data right truncation
            ("22021", Permanent), // character not in repertoire (a NUL byte)
            ("22P02", Permanent), // invalid text representation
            ("22P05", Permanent), // untranslatable character
            ("23000", Permanent), // integrity constraint violation
            ("23505", Permanent), // unique violation
            ("23502", Permanent), // not null violation
            ("24000", Permanent), // invalid cursor state
            ("25000", Permanent), // invalid transaction state
            ("25P02", Permanent), // in failed SQL transaction
            ("25006", Transient), // read only SQL transaction (a standby)
            ("26000", Permanent), // invalid SQL statement name
            ("27000", Permanent), // triggered data change violation
            ("28000", Permanent), // invalid authorization specification
            ("28P01", Permanent), // invalid password
            ("2B000", Permanent), // dependent privilege descriptors still exist
            ("2D000", Permanent), // invalid transaction termination
            ("2F000", Permanent), // SQL routine exception
            ("34000", Permanent), // invalid cursor name
            ("38000", Permanent), // external routine exception
            ("39000", Permanent), // external routine invocation exception
            ("3B000", Permanent), // savepoint exception
            ("3D000", Permanent), // invalid catalog name (no such database)
            ("3F000", Permanent), // invalid schema name
            ("40000", Permanent), // transaction rollback
            ("40002", Permanent), // transaction integrity constraint violation
            ("40001", Transient), // serialization failure
            ("40P01", Transient), // deadlock detected
            ("42000", Permanent), // syntax error or access rule violation
            ("42501", Permanent), // insufficient privilege
            ("42601", Permanent), // syntax error
            ("42P01", Permanent), // undefined table
            ("42703", Permanent), // undefined column
            ("44000", Permanent), // with check option violation
            ("53000", Transient), // insufficient resources
            ("53100", Transient), // disk full
            ("53200", Transient), // out of memory
            ("53300", Transient), // too many connections
            ("54000", Permanent), // program limit exceeded
            ("54001", Permanent), // statement too complex
            ("55000", Permanent), // object not in prerequisite state
            ("55P03", Transient), // lock not available
            ("55006", Permanent), // object in use
            ("57000", Permanent), // operator intervention
            ("57014", Transient), // query canceled (statement timeout)
            ("57P01", Transient), // admin shutdown
            ("57P02", Transient), // crash shutdown
            ("57P03", Transient), // cannot connect now
            ("57P04", Permanent), // database dropped
            ("57P05", Transient), // idle session timeout
            ("58000", Transient), // system error
            ("58030", Transient), // io error
            ("58P01", Transient), // undefined file
            ("72000", Permanent), // snapshot too old
            ("F0000", Permanent), // config file error
            ("HV000", Permanent), // foreign data wrapper error
            ("P0000", Permanent), // PL/pgSQL error
            ("P0001", Permanent), // raise exception
            ("XX000", Permanent), // internal error
            ("XX001", Permanent), // data corrupted
            ("", Permanent),
            ("08", Permanent), // not a SQLSTATE
        ];
        for (code, class) in table {
            assert_eq!(classify_sqlstate(code), class, "SQLSTATE {code:?}");
        }
    }

    /// The codes the old test took for SQLite's BUSY/LOCKED: every
    /// all-digit SQLSTATE that is 5 or 6 modulo 256 is PostgreSQL's own.
    #[test]
    fn sqlstates_are_not_sqlite_codes() {
        let mut checked = 0;
        for n in 0..100_000_i32 {
            if !matches!(n & 0xff, 5 | 6) {
                continue;
            }
            let code = format!("{n:05}");
            let class = &code[..2];
            let expected = if ["08", "53", "58"].contains(&class)
                || ["57014", "40001", "25006"].contains(&code.as_str())
            {
                Transient
            } else {
                Permanent
            };
            assert_eq!(classify_sqlstate(&code), expected, "SQLSTATE {code}");
            checked += 1;
        }
        assert!(checked > 700);
        assert_eq!(classify_sqlstate("22021"), Permanent);
        assert_eq!(classify_sqlstate("42501"), Permanent);
    }

    /// Every SQLite primary result code, and the extended codes of the
    /// transient ones and of a few permanent ones.
    #[test]
    fn every_sqlite_code() {
        let primary = [
            (1, Permanent),  // ERROR (no such table, syntax)
            (2, Permanent),  // INTERNAL
            (3, Permanent),  // PERM
            (4, Permanent),  // ABORT
            (5, Transient),  // BUSY
            (6, Transient),  // LOCKED
            (7, Transient),  // NOMEM
            (8, Permanent),  // READONLY
            (9, Transient),  // INTERRUPT
            (10, Transient), // IOERR
            (11, Permanent), // CORRUPT
            (12, Permanent), // NOTFOUND
            (13, Transient), // FULL
            (14, Transient), // CANTOPEN
            (15, Transient), // PROTOCOL
            (16, Permanent), // EMPTY
            (17, Transient), // SCHEMA
            (18, Permanent), // TOOBIG
            (19, Permanent), // CONSTRAINT
            (20, Permanent), // MISMATCH
            (21, Permanent), // MISUSE
            (22, Permanent), // NOLFS
            (23, Permanent), // AUTH
            (24, Permanent), // FORMAT
            (25, Permanent), // RANGE
            (26, Permanent), // NOTADB
            (27, Permanent), // NOTICE
            (28, Permanent), // WARNING
        ];
        for (code, class) in primary {
            assert_eq!(classify_sqlite(code), class, "SQLite code {code}");
        }
        let extended = [
            (5 | (1 << 8), Transient),   // BUSY_RECOVERY
            (5 | (2 << 8), Transient),   // BUSY_SNAPSHOT
            (5 | (3 << 8), Transient),   // BUSY_TIMEOUT
            (6 | (1 << 8), Transient),   // LOCKED_SHAREDCACHE
            (6 | (2 << 8), Transient),   // LOCKED_VTAB
            (10 | (1 << 8), Transient),  // IOERR_READ
            (10 | (4 << 8), Transient),  // IOERR_FSYNC
            (10 | (13 << 8), Transient), // IOERR_NOMEM
            (14 | (1 << 8), Transient),  // CANTOPEN_NOTEMPDIR
            (8 | (1 << 8), Transient),   // READONLY_RECOVERY
            (8 | (2 << 8), Transient),   // READONLY_CANTLOCK
            (8 | (3 << 8), Permanent),   // READONLY_ROLLBACK
            (8 | (5 << 8), Permanent),   // READONLY_DIRECTORY
            (19 | (8 << 8), Permanent),  // CONSTRAINT_UNIQUE
            (19 | (5 << 8), Permanent),  // CONSTRAINT_NOTNULL
            (19 | (6 << 8), Permanent),  // CONSTRAINT_PRIMARYKEY
            (1 | (1 << 8), Permanent),   // ERROR_MISSING_COLLSEQ
            (11 | (1 << 8), Permanent),  // CORRUPT_VTAB
        ];
        for (code, class) in extended {
            assert_eq!(classify_sqlite(code), class, "SQLite extended code {code}");
        }
    }

    /// MySQL / MariaDB server errors a tracker meets, and what each means.
    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_error_numbers() {
        use super::classify_mysql;
        let table = [
            (1021, Transient), // ER_DISK_FULL
            (1040, Transient), // ER_CON_COUNT_ERROR: too many connections
            (1041, Transient), // ER_OUT_OF_RESOURCES
            (1053, Transient), // ER_SERVER_SHUTDOWN
            (1114, Transient), // ER_RECORD_FILE_FULL
            (1158, Transient), // ER_NET_READ_ERROR
            (1161, Transient), // ER_NET_WRITE_INTERRUPTED
            (1205, Transient), // ER_LOCK_WAIT_TIMEOUT
            (1213, Transient), // ER_LOCK_DEADLOCK
            (1290, Transient), // ER_OPTION_PREVENTS_STATEMENT (--read-only)
            (1317, Transient), // ER_QUERY_INTERRUPTED
            (1927, Transient), // ER_CONNECTION_KILLED (MariaDB)
            (4031, Transient), // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
            (1044, Permanent), // ER_DBACCESS_DENIED_ERROR
            (1045, Permanent), // ER_ACCESS_DENIED_ERROR
            (1054, Permanent), // ER_BAD_FIELD_ERROR: no such column
            (1062, Permanent), // ER_DUP_ENTRY
            (1064, Permanent), // ER_PARSE_ERROR
            (1142, Permanent), // ER_TABLEACCESS_DENIED_ERROR
            (1146, Permanent), // ER_NO_SUCH_TABLE
            (1264, Permanent), // ER_WARN_DATA_OUT_OF_RANGE
            (1292, Permanent), // ER_TRUNCATED_WRONG_VALUE
            (1366, Permanent), // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
            (1406, Permanent), // ER_DATA_TOO_LONG
            (1452, Permanent), // ER_NO_REFERENCED_ROW_2: a foreign key
        ];
        for (number, class) in table {
            assert_eq!(classify_mysql(number), class, "MySQL error {number}");
        }
    }
}
