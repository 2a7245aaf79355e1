//! The change feed's read side: what the live stream, cross-instance
//! cancel and the run timeline read.
//!
//! Every lifecycle write adds a row to `tasktrail_changes` in its own
//! transaction ([`crate::writer::feed`]). Their order is the database's:
//!
//! * **SQLite** numbers them (`seq`, `AUTOINCREMENT`) while holding the one
//!   write lock, and commits in that order: a reader that has seen `n` has
//!   seen everything below it. The cursor is `seq`.
//! * **PostgreSQL** assigns `seq` from a sequence *before* commit, so a
//!   reader can see 7 committed while 6 is still in flight. Each row also
//!   holds its transaction's id (`txid`, `pg_current_xact_id()`), and a
//!   reader takes only rows whose transaction is older than every one still
//!   running (`txid < pg_snapshot_xmin(pg_current_snapshot())`): that set
//!   never grows behind the reader. The cursor is `(txid, seq)`. A row of a
//!   younger transaction waits for the next read. (A write transaction
//!   left open elsewhere in the database holds the feed back until it
//!   ends; read-only transactions have no id and hold nothing back.)
//!
//! A process reads the feed once per database, whatever the number of
//! readers: [`Hub`] keeps what it read in a ring and wakes its
//! subscribers. On PostgreSQL it is woken by a `LISTEN` on its own
//! connection (each write's transaction sends a `NOTIFY`); elsewhere, or
//! while the listener is down, it looks every [`POLL`].

mod hub;
mod ring;

pub(crate) use hub::Hub;
#[cfg(feature = "dashboard")]
pub(crate) use ring::Placed;
pub(crate) use ring::{Ring, Since};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use crate::writer::feed::TABLE;

/// How often the feed is read where nothing wakes its reader (SQLite,
/// PostgreSQL behind PgBouncer's transaction mode or while the listener is
/// down).
pub(crate) const POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// A place in the feed: `(txid, seq)`, `txid` 0 on SQLite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Cursor {
    pub txid: u64,
    pub seq: i64,
}

#[cfg(feature = "dashboard")]
impl Cursor {
    /// As an SSE event id: `seq`, or `txid-seq`.
    pub fn encode(&self) -> String {
        if self.txid == 0 {
            self.seq.to_string()
        } else {
            format!("{}-{}", self.txid, self.seq)
        }
    }

    /// An id [`encode`](Self::encode) made.
    pub fn decode(text: &str) -> Option<Cursor> {
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty();
        match text.split_once('-') {
            None if plain(text) => Some(Cursor {
                txid: 0,
                seq: text.parse().ok()?,
            }),
            Some((txid, seq)) if plain(txid) && plain(seq) => Some(Cursor {
                txid: txid.parse().ok()?,
                seq: seq.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChangeRow {
    pub cursor: Cursor,
    /// The tracked table.
    pub scope: String,
    pub run_key: String,
    /// The event: `create`, `start`, … or `delete`.
    pub kind: String,
    /// When it was written, by the database's clock (ms since the epoch).
    pub at_ms: i64,
    pub instance: Option<String>,
    pub actor: Option<String>,
}

impl ChangeRow {
    /// As JSON (`at` in RFC 3339, UTC).
    #[cfg(feature = "dashboard")]
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.cursor.encode(),
            "kind": self.kind,
            "at": chrono::DateTime::from_timestamp_millis(self.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "instance": self.instance,
            "actor": self.actor,
        })
    }
}

/// What one read returns.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// The changes after the cursor, in order.
    pub rows: Vec<ChangeRow>,
    /// Committed changes were left for a later read: an older transaction
    /// was still running (PostgreSQL).
    pub held_back: bool,
}

const FIELDS: &str = "seq, scope, run_key, kind, at_ms, instance, actor";

fn row_of(row: &sea_orm::QueryResult, txid: u64) -> Result<ChangeRow, DbErr> {
    Ok(ChangeRow {
        cursor: Cursor {
            txid,
            seq: row.try_get("", "seq")?,
        },
        scope: row.try_get("", "scope")?,
        run_key: row.try_get("", "run_key")?,
        kind: row.try_get("", "kind")?,
        at_ms: row.try_get("", "at_ms")?,
        instance: row.try_get("", "instance")?,
        actor: row.try_get("", "actor")?,
    })
}

fn parse_xid(text: &str) -> Result<u64, DbErr> {
    text.parse()
        .map_err(|_| DbErr::Custom(format!("a transaction id that is not a number: {text}")))
}

/// Up to `limit` changes after `after` (of `scope` only, if given), in the
/// feed's order; see the [module](self) docs for what "after" means.
pub(crate) async fn read(
    db: &impl ConnectionTrait,
    after: Cursor,
    scope: Option<&str>,
    limit: u64,
) -> Result<Page, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::new();
    let sql = match backend {
        DbBackend::Postgres => {
            values.push(after.txid.to_string().into());
            values.push(after.seq.into());
            let scoped = scope.map_or(String::new(), |s| {
                values.push(s.into());
                " AND scope = $3".to_owned()
            });
            values.push((limit as i64).into());
            format!(
                // Not aliased `txid`: `ORDER BY txid` would sort the text.
                "SELECT {FIELDS}, txid::text AS txid_text, \
                 pg_snapshot_xmin(pg_current_snapshot())::text AS horizon \
                 FROM {TABLE} WHERE (txid, seq) > ($1::text::xid8, $2){scoped} \
                 ORDER BY txid, seq LIMIT ${}",
                values.len()
            )
        }
        _ => {
            values.push(after.seq.into());
            let scoped = scope.map_or(String::new(), |s| {
                values.push(s.into());
                " AND scope = ?".to_owned()
            });
            // The limit written as a number: SQLite re-prepares a statement
            // whose bound `LIMIT` changes (see `config::inline_limits`).
            format!(
                "SELECT {FIELDS} FROM {TABLE} WHERE seq > ?{scoped} ORDER BY seq LIMIT {}",
                limit as i64
            )
        }
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut page = Page::default();
    for row in &rows {
        let txid = if backend == DbBackend::Postgres {
            let txid = parse_xid(&row.try_get::<String>("", "txid_text")?)?;
            let horizon = parse_xid(&row.try_get::<String>("", "horizon")?)?;
            if txid >= horizon {
                // A younger transaction than one still running: later.
                page.held_back = true;
                break;
            }
            txid
        } else {
            0
        };
        page.rows.push(row_of(row, txid)?);
    }
    Ok(page)
}

/// The feed's present end: a reader starting here gets every change
/// committed from now on.
pub(crate) async fn head(db: &impl ConnectionTrait) -> Result<Cursor, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        // Every transaction below the horizon has ended: start past all
        // their rows; younger ones are still to come.
        DbBackend::Postgres => {
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon".to_owned()
        }
        _ => format!("SELECT COALESCE(MAX(seq), 0) AS seq FROM {TABLE}"),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the change feed's head".into()))?;
    Ok(match backend {
        DbBackend::Postgres => Cursor {
            txid: parse_xid(&row.try_get::<String>("", "horizon")?)?.saturating_sub(1),
            seq: i64::MAX,
        },
        _ => Cursor {
            txid: 0,
            seq: row.try_get("", "seq")?,
        },
    })
}

/// The changes of one run, oldest first (at most `limit`, the newest).
#[cfg(feature = "dashboard")]
pub(crate) async fn of_run(
    db: &impl ConnectionTrait,
    scope: &str,
    key: &str,
    limit: u64,
) -> Result<Vec<ChangeRow>, DbErr> {
    let backend = db.get_database_backend();
    let (txid, order, params) = match backend {
        // Not aliased `txid`: `ORDER BY txid` would sort the text.
        DbBackend::Postgres => (
            "txid::text AS txid_text",
            "txid DESC, seq DESC",
            ["$1", "$2"],
        ),
        _ => ("'0' AS txid_text", "seq DESC", ["?", "?"]),
    };
    // The limit as a number: SQLite re-prepares a statement whose bound
    // `LIMIT` is bound again (see `config::inline_limits`).
    let sql = format!(
        "SELECT {FIELDS}, {txid} FROM {TABLE} WHERE scope = {} AND run_key = {} \
         ORDER BY {order} LIMIT {}",
        params[0], params[1], limit as i64
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [scope.into(), key.into()],
        ))
        .await?;
    let mut out = rows
        .iter()
        .map(|row| row_of(row, parse_xid(&row.try_get::<String>("", "txid_text")?)?))
        .collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    Ok(out)
}

/// Deletes the changes written before `before_ms` (the database's clock),
/// at most `limit` of them (oldest first); returns how many.
pub(crate) async fn prune(
    db: &impl ConnectionTrait,
    before_ms: i64,
    limit: u64,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    // The oldest rows come first in `seq` order: the scans stop at the
    // first young row, without an index on the time.
    let p = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let sql = if backend == DbBackend::MySql {
        // MySQL takes no `LIMIT` in an `IN` subquery nor a subquery on the
        // table a `DELETE` deletes from, unless it is a derived table (which
        // its `LIMIT` keeps from being merged away).
        format!(
            "DELETE FROM {TABLE} WHERE seq < COALESCE((SELECT seq FROM \
             (SELECT seq FROM {TABLE} WHERE at_ms >= ? ORDER BY seq LIMIT 1) AS young), {}) \
             ORDER BY seq LIMIT ?",
            i64::MAX
        )
    } else {
        format!(
            "DELETE FROM {TABLE} WHERE seq IN (SELECT seq FROM {TABLE} WHERE seq < COALESCE(\
             (SELECT seq FROM {TABLE} WHERE at_ms >= {} ORDER BY seq LIMIT 1), {}) \
             ORDER BY seq LIMIT {})",
            p(1),
            i64::MAX,
            p(2)
        )
    };
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [before_ms.into(), (limit as i64).into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order() {
        for c in [
            Cursor { txid: 0, seq: 42 },
            Cursor {
                txid: 7_000_000_001,
                seq: 9,
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "x",
            "1-2-3",
            "1.5",
            "99999999999999999999",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        assert!(Cursor { txid: 1, seq: 99 } < Cursor { txid: 2, seq: 1 });
    }
}
