//! Search that stays fast at any size: each term goes to what answers it.
//!
//! `LOWER(col) LIKE '%term%'` over the searched columns can use no index: at
//! 1,000,000 runs a term that few runs hold (a pasted key, a word of one
//! error) reads the whole table. So a search is planned before the list's
//! query runs ([`plan`]), by what the term looks like:
//!
//! 1. **A run key, or the start of one** (no spaces): the runs whose key
//!    starts with the term, through the key's unique index (a range where
//!    keys compare byte for byte, else the exact key). Used when at most
//!    [`KEY_CANDIDATES`] keys match.
//! 2. **Part of task names**: the names are read once and cached
//!    ([`NAMES_MAX_AGE`]); the runs of every name holding the term,
//!    `name IN (…)`.
//! 3. **Any other term of 3 or more characters**, when the text index that
//!    [`schema::create_search_index`](crate::schema::create_search_index)
//!    makes is installed (SQLite: an FTS5 trigram table kept in sync by
//!    triggers; PostgreSQL: `pg_trgm` GIN indexes): the index names the
//!    matching runs when there are at most [`TEXT_CANDIDATES`] of them (a
//!    rare term); a more common term is looked for in list order, where
//!    the first page's matches come early.
//! 4. **Otherwise** (no text index, a shorter term, MySQL): only the newest
//!    [`DEFAULT_WINDOW`] runs are searched, and the page says so.
//!
//! Nothing here counts the matches exactly: a page shows its rows and
//! whether there are more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityName,
    EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};

use sea_orm::IdenStatic;

use crate::config::{Role, TrackingConfig};
use crate::dashboard::DashboardSettings;

/// The most keys a key search collects; a prefix more runs share is not a
/// key search.
pub const KEY_CANDIDATES: u64 = 1_000;
/// The most runs the text index names for one term; a term more runs hold
/// is looked for in list order.
pub const TEXT_CANDIDATES: u64 = 2_000;
/// How many of the newest runs a search without an index reads, by
/// default ([`Dashboard::search_window`](crate::Dashboard::search_window)).
pub const DEFAULT_WINDOW: u64 = 100_000;
/// How long the task names, the text index's presence and the window's
/// start are reused.
pub const NAMES_MAX_AGE: Duration = Duration::from_secs(30);
/// The shortest term a trigram index can look up.
pub const MIN_TEXT_TERM: usize = 3;

/// How a search is answered.
#[derive(Clone, Debug, PartialEq)]
pub enum SearchRoute {
    /// The runs with these keys (a key, or the start of one).
    Keys(Vec<String>),
    /// The runs of these task names.
    Names(Vec<String>),
    /// The runs the text index named (a rare term), checked again with the
    /// search's own comparison.
    Text(Vec<String>),
    /// A common term, looked for in the list's order (the text index found
    /// more than [`TEXT_CANDIDATES`] runs holding it).
    Common,
    /// The newest runs only: those created at or after this time.
    Window {
        /// The creation time of the oldest run in the window.
        since: Value,
        /// How many runs the window holds.
        runs: u64,
    },
    /// Every run (there are no more runs than the window holds, or no
    /// creation time to cut a window by).
    Scan,
}

impl SearchRoute {
    /// What the page says about the search.
    pub fn note(&self, term: &str) -> String {
        match self {
            SearchRoute::Keys(keys) if keys.len() == 1 && keys[0] == term => {
                "The run with this key.".to_owned()
            }
            SearchRoute::Keys(_) => format!("Runs whose key starts with “{term}”."),
            SearchRoute::Names(names) => {
                format!(
                    "Runs of the task{} {}.",
                    if names.len() == 1 { "" } else { "s" },
                    names
                        .iter()
                        .map(|n| format!("“{n}”"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            SearchRoute::Text(_) | SearchRoute::Common => {
                format!("Runs holding “{term}”, found through the text index.")
            }
            SearchRoute::Window { runs, .. } => format!(
                "Only the newest {} runs were searched (no text index{}); \
                 a run key or a task name searches them all.",
                thousands(*runs),
                if term.chars().count() < MIN_TEXT_TERM {
                    " for a term shorter than 3 characters"
                } else {
                    " installed"
                }
            ),
            SearchRoute::Scan => format!("Runs holding “{term}”."),
        }
    }

    /// Whether the search read only part of the runs.
    pub fn bounded(&self) -> bool {
        matches!(self, SearchRoute::Window { .. })
    }

    /// A short name, for the API and the benches.
    pub fn kind(&self) -> &'static str {
        match self {
            SearchRoute::Keys(_) => "key",
            SearchRoute::Names(_) => "name",
            SearchRoute::Text(_) => "text_index",
            SearchRoute::Common => "text_common",
            SearchRoute::Window { .. } => "window",
            SearchRoute::Scan => "scan",
        }
    }
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a dashboard keeps between searches.
pub(crate) struct SearchCache {
    window: u64,
    state: Arc<Mutex<Option<Stamped>>>,
    refreshing: Arc<std::sync::atomic::AtomicBool>,
    /// Held while the first facts are read, so that concurrent first
    /// searches read them once.
    first: tokio::sync::Mutex<()>,
}

/// What is known, and when it was read.
type Stamped = (Instant, Arc<Known>);

/// What the cache holds: read together, at most every [`NAMES_MAX_AGE`].
#[derive(Debug, Default)]
struct Known {
    names: Vec<String>,
    text_index: bool,
    key_is_binary: bool,
    /// The creation time of the `window`-th newest run, when there are
    /// that many.
    window_start: Option<Value>,
}

impl SearchCache {
    pub(crate) fn new(window: u64) -> Self {
        SearchCache {
            window: Ord::max(window, 1),
            state: Arc::default(),
            refreshing: Arc::default(),
            first: tokio::sync::Mutex::new(()),
        }
    }

    /// What is known: read on the first search, then renewed in the
    /// background once older than [`NAMES_MAX_AGE`] (a search meanwhile
    /// uses the older facts, so no request waits on the reads).
    async fn known<M: TrackingConfig>(
        &self,
        db: &DatabaseConnection,
        settings: &DashboardSettings,
    ) -> Result<Arc<Known>, DbErr> {
        use std::sync::atomic::Ordering;
        let current = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match current {
            Some((at, known)) => {
                if at.elapsed() >= NAMES_MAX_AGE && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (db, settings, window) = (db.clone(), settings.clone(), self.window);
                    let (state, refreshing) = (self.state.clone(), self.refreshing.clone());
                    tokio::spawn(async move {
                        match read_known::<M>(&db, &settings, window).await {
                            Ok(known) => {
                                *state.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some((Instant::now(), Arc::new(known)));
                            }
                            Err(err) => tracing::warn!(
                                "tasktrail dashboard: renewing the search facts failed: {err}"
                            ),
                        }
                        refreshing.store(false, Ordering::Release);
                    });
                }
                Ok(known)
            }
            None => {
                let _first = self.first.lock().await;
                if let Some((_, known)) = &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
                    return Ok(known.clone());
                }
                let known = Arc::new(read_known::<M>(db, settings, self.window).await?);
                *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), known.clone()));
                Ok(known)
            }
        }
    }
}

async fn read_known<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    window: u64,
) -> Result<Known, DbErr> {
    Ok(Known {
        // The kinds' loose index scan (at most `MAX_KINDS` names; a term
        // among names past those is found by the routes below).
        names: crate::dashboard::kinds::distinct_names::<M>(db)
            .await?
            .names,
        text_index: has_search_index::<M>(db, settings).await?,
        key_is_binary: key_is_binary::<M>(db).await?,
        window_start: window_start::<M>(db, window).await?,
    })
}

/// Plans the search for `term` ([module docs](self)).
pub(crate) async fn plan<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    cache: &SearchCache,
    term: &str,
) -> Result<SearchRoute, DbErr> {
    let known = cache.known::<M>(db, settings).await?;
    let fields = crate::dashboard::query::search_fields::<M>(settings);
    let key_field = M::field(Role::Key).map(|f| f.field);
    let name_field = M::field(Role::Name).map(|f| f.field);

    if key_field.is_some_and(|k| fields.contains(&k)) && !term.contains(char::is_whitespace) {
        let keys = matching_keys::<M>(db, term, known.key_is_binary).await?;
        if !keys.is_empty() && keys.len() as u64 <= KEY_CANDIDATES {
            return Ok(SearchRoute::Keys(keys));
        }
    }
    if name_field.is_some_and(|n| fields.contains(&n)) {
        let lower = term.to_lowercase();
        let names: Vec<String> = known
            .names
            .iter()
            .filter(|n| n.to_lowercase().contains(&lower))
            .cloned()
            .collect();
        if !names.is_empty() {
            return Ok(SearchRoute::Names(names));
        }
    }
    if known.text_index && term.chars().count() >= MIN_TEXT_TERM {
        return Ok(match text_candidates::<M>(db, settings, term).await? {
            Some(keys) => SearchRoute::Text(keys),
            None => SearchRoute::Common,
        });
    }
    Ok(match &known.window_start {
        Some(since) => SearchRoute::Window {
            since: since.clone(),
            runs: cache.window,
        },
        None => SearchRoute::Scan,
    })
}

/// The condition a planned search adds to the list's query.
pub(crate) fn condition<M: TrackingConfig>(
    settings: &DashboardSettings,
    term: &str,
    route: Option<&SearchRoute>,
) -> Condition {
    let (key_col, encode_key) = crate::config::key_encoder::<M>();
    let keys =
        |keys: &[String]| Expr::col(key_col).is_in(keys.iter().map(|k| Expr::val(encode_key(k))));
    match route {
        Some(SearchRoute::Keys(k)) => Condition::all().add(keys(k)),
        Some(SearchRoute::Names(names)) => {
            let col = M::binding(Role::Name)
                .expect("a name route needs a name")
                .column;
            Condition::all()
                .add(Expr::col(col).is_in(names.iter().map(|n| col.save_as(Expr::val(n.clone())))))
        }
        Some(SearchRoute::Text(k)) => Condition::all().add(keys(k)).add(like::<M>(settings, term)),
        Some(SearchRoute::Window { since, .. }) => {
            let created = M::binding(Role::CreatedAt)
                .expect("a window needs a creation time")
                .column;
            Condition::all()
                .add(Expr::col(created).gte(created.save_as(Expr::val(since.clone()))))
                .add(like::<M>(settings, term))
        }
        Some(SearchRoute::Common | SearchRoute::Scan) | None => like::<M>(settings, term),
    }
}

/// `LOWER(col) LIKE '%term%'` for each searched field, ORed: what every
/// route's rows satisfy (the key and name routes by construction).
pub(crate) fn like<M: TrackingConfig>(settings: &DashboardSettings, term: &str) -> Condition {
    let pattern = like_pattern(term);
    let mut any = Condition::any();
    for name in crate::dashboard::query::search_fields::<M>(settings) {
        let col = M::FIELDS
            .iter()
            .find(|f| f.field == name)
            .expect("search fields are model fields")
            .column;
        any = any.add(
            Expr::expr(Func::lower(Expr::col(col)))
                .like(LikeExpr::new(pattern.clone()).escape('\\')),
        );
    }
    any
}

/// `%term%`, lower case, with `%`, `_` and `\` escaped by `\`.
fn like_pattern(term: &str) -> String {
    let escaped: String = term
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// The keys that are `term` or start with it, at most
/// [`KEY_CANDIDATES`] + 1 of them. Where keys compare byte for byte, a
/// range of the key's index (`key >= term AND key < next`, `next` being
/// the term with its last character raised by one); elsewhere (a column of
/// the user's whose collation folds case or ignores punctuation) only the
/// exact key, which every collation finds through the index.
async fn matching_keys<M: TrackingConfig>(
    db: &DatabaseConnection,
    term: &str,
    binary: bool,
) -> Result<Vec<String>, DbErr> {
    let (key_col, encode_key) = crate::config::key_encoder::<M>();
    let mut select = M::Entity::find().select_only().column(key_col);
    select = match successor(term).filter(|_| binary) {
        Some(next) => select
            .filter(Expr::col(key_col).gte(Expr::val(encode_key(term))))
            .filter(Expr::col(key_col).lt(Expr::val(encode_key(&next)))),
        None => select.filter(Expr::col(key_col).eq(Expr::val(encode_key(term)))),
    };
    select
        .order_by(key_col, Order::Asc)
        .limit(KEY_CANDIDATES + 1)
        .into_tuple::<String>()
        .all(db)
        .await
}

/// The smallest string greater than every string starting with `prefix`:
/// its last character raised by one (skipping the surrogates); `None` when
/// there is no such string of the same length or less.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The keys of the runs the text index says hold `term`; `None` when more
/// than [`TEXT_CANDIDATES`] runs hold it.
async fn text_candidates<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    term: &str,
) -> Result<Option<Vec<String>>, DbErr> {
    let (key_col, _) = crate::config::key_encoder::<M>();
    let backend = db.get_database_backend();
    let table = M::Entity::default().table_name().to_owned();
    let keys: Vec<String> = match backend {
        DbBackend::Sqlite => {
            // A phrase of the term: FTS5's trigram tokenizer matches it as
            // a substring, ignoring case. `"` is doubled inside a phrase.
            let phrase = Value::from(format!("\"{}\"", term.replace('"', "\"\"")));
            let fts = quote(&fts_table(&table));
            let n = TEXT_CANDIDATES + 1;
            // The rowids first, from the index alone: a common term needs
            // no more, and reading the keys inside the same statement made
            // the index's 2,001 rows of a common term cost five times more.
            let rowids = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("SELECT rowid FROM {fts} WHERE {fts} MATCH ? LIMIT {n}"),
                    [phrase],
                ))
                .await?
                .iter()
                .map(|r| r.try_get_by_index::<i64>(0))
                .collect::<Result<Vec<_>, _>>()?;
            if rowids.len() as u64 > TEXT_CANDIDATES {
                return Ok(None);
            }
            if rowids.is_empty() {
                return Ok(Some(Vec::new()));
            }
            // One bound JSON array, so that the statement's text stays the
            // same (a text per list would crowd the statement cache).
            let list = format!(
                "[{}]",
                rowids
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let sql = format!(
                "SELECT {key} FROM {t} WHERE rowid IN (SELECT value FROM json_each(?))",
                key = quote(key_col.as_str()),
                t = quote(&table),
            );
            db.query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(list)],
            ))
            .await?
            .iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?
        }
        // The GIN indexes serve `LOWER(col) LIKE '%term%'` as it is.
        _ => {
            M::Entity::find()
                .select_only()
                .column(key_col)
                .filter(like::<M>(settings, term))
                .limit(TEXT_CANDIDATES + 1)
                .into_tuple::<String>()
                .all(db)
                .await?
        }
    };
    Ok((keys.len() as u64 <= TEXT_CANDIDATES).then_some(keys))
}

/// The creation time of the `window`-th newest run, if there are that many.
async fn window_start<M: TrackingConfig>(
    db: &DatabaseConnection,
    window: u64,
) -> Result<Option<Value>, DbErr> {
    let Some(created) = M::binding(Role::CreatedAt).map(|b| b.column) else {
        return Ok(None);
    };
    let row = crate::config::find_one(
        M::Entity::find()
            .filter(Expr::col(created).is_not_null())
            .order_by(created, Order::Desc)
            .offset(window - 1)
            .limit(1),
        db,
    )
    .await?;
    Ok(row.map(|row| crate::config::column_value::<M::Entity>(&row, created)))
}

/// Whether the key column compares byte for byte, so that a prefix is a
/// range of its index: SQLite's default `BINARY`, a PostgreSQL column or
/// database in the `C` / `POSIX` collation, a MySQL `…_bin` collation.
async fn key_is_binary<M: TrackingConfig>(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let table = M::Entity::default().table_name().to_owned();
    let key = M::binding(Role::Key).expect("a key is mapped").column;
    let (sql, values): (&str, Vec<Value>) = match backend {
        DbBackend::Sqlite => {
            // sqlite_master holds the declaration; a COLLATE on the key's
            // line is the only way to leave BINARY.
            (
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                vec![table.into()],
            )
        }
        DbBackend::Postgres => (
            "SELECT CASE WHEN c.collname = 'default' \
                THEN (SELECT datcollate FROM pg_database WHERE datname = current_database()) \
                ELSE c.collname END \
             FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2",
            vec![
                qualified_table::<M>(backend).into(),
                key.as_str().to_owned().into(),
            ],
        ),
        _ => (
            "SELECT COALESCE(collation_name, '') FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
            vec![table.into(), key.as_str().to_owned().into()],
        ),
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let text = row
        .and_then(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten())
        .unwrap_or_default();
    Ok(match backend {
        DbBackend::Sqlite => {
            let declaration = text.to_lowercase();
            let column = key.as_str().to_lowercase();
            // The line declaring the key, up to the next comma.
            declaration
                .split(',')
                .find(|part| part.contains(&format!("\"{column}\"")) || part.contains(&column))
                .is_none_or(|part| !part.contains("collate"))
        }
        DbBackend::Postgres => {
            matches!(text.as_str(), "C" | "POSIX" | "ucs_basic") || text.starts_with("C.")
        }
        _ => text.ends_with("_bin"),
    })
}

/// Whether [`schema::create_search_index`](crate::schema::create_search_index)
/// has indexed every field this dashboard searches.
async fn has_search_index<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let table = M::Entity::default().table_name().to_owned();
    let columns: Vec<String> = crate::dashboard::query::search_fields::<M>(settings)
        .into_iter()
        .filter_map(|name| M::FIELDS.iter().find(|f| f.field == name))
        .map(|f| f.column.as_str().to_lowercase())
        .collect();
    let (sql, value) = match backend {
        // The FTS table's columns.
        DbBackend::Sqlite => ("SELECT name FROM pragma_table_info(?)", fts_table(&table)),
        // The trigram indexes' definitions, `… USING gin (lower((col)::text) gin_trgm_ops)`.
        DbBackend::Postgres => (
            "SELECT indexdef FROM pg_indexes \
             WHERE schemaname = COALESCE($2, current_schema()) \
             AND tablename = $1 AND indexdef LIKE '%gin_trgm_ops%'",
            table.clone(),
        ),
        _ => return Ok(false),
    };
    let mut values = vec![Value::from(value)];
    if backend == DbBackend::Postgres {
        values.push(Value::from(
            M::Entity::default().schema_name().map(str::to_owned),
        ));
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let found: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .map(|t| t.to_lowercase())
        .collect();
    Ok(!found.is_empty()
        && columns.iter().all(|c| match backend {
            DbBackend::Sqlite => found.contains(c),
            _ => found.iter().any(|def| {
                def.contains(&format!("lower(({c})"))
                    || def.contains(&format!("lower(\"{c}\""))
                    || def.contains(&format!("lower({c})"))
            }),
        }))
}

/// The FTS5 table of `table`'s searched text.
pub(crate) fn fts_table(table: &str) -> String {
    format!("{table}_search")
}

/// The name of `table`'s `n`-th trigram index (`n` from 0); the first
/// one's presence says the search index is installed.
pub(crate) fn trigram_index(table: &str, n: usize) -> String {
    format!("ix_{table}_search_{n}")
}

/// `name` as an SQL identifier (double quotes, doubled inside).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as an identifier of `backend` (backticks on MySQL).
/// The runs table's name quoted for `backend`, with its schema when the
/// entity names one.
pub(crate) fn qualified_table<M: TrackingConfig>(backend: DbBackend) -> String {
    let entity = M::Entity::default();
    match entity.schema_name() {
        Some(schema) => format!(
            "{}.{}",
            quote_for(backend, schema),
            quote_for(backend, entity.table_name())
        ),
        None => quote_for(backend, entity.table_name()),
    }
}

pub(crate) fn quote_for(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{}`", name.replace('`', "``")),
        _ => quote(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_bound_every_string_with_the_prefix() {
        assert_eq!(successor("abc").as_deref(), Some("abd"));
        assert_eq!(successor("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        for (prefix, s) in [("019a", "019a0000-ffff"), ("k-1", "k-1\u{10FFFF}")] {
            let next = successor(prefix).unwrap();
            assert!(s.starts_with(prefix) && s < next.as_str(), "{s} < {next}");
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
