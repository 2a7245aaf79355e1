//! Log lines in a database table, written in batches through the same
//! group-commit writer the tracker uses ([`crate::writer`]): every line
//! queued while the previous commit was in flight goes into the next
//! multi-row insert; a refused line is isolated and dropped (counted); an
//! unreachable database keeps lines in a bounded retry queue.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::writer::{OnTransient, Op, Template, Work, Writer, WriterOptions};

use crate::logs::{
    LogLevel, LogQuery, LogRecord, LogStats, LogStorage, LogStorageError, MAX_QUERY_LIMIT,
    SpanRecord, Trace,
};

/// The log table, `tasktrail_logs`.
pub mod entry {
    use sea_orm::entity::prelude::*;

    /// One stored log line.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasktrail_logs")]
    pub struct Model {
        /// Increasing line number.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// When it was emitted (ms since the epoch).
        pub at_ms: i64,
        /// Severity, 0 (`TRACE`) to 4 (`ERROR`).
        pub level: i16,
        /// The event's target.
        pub target: String,
        /// The message.
        #[sea_orm(column_type = "Text")]
        pub message: String,
        /// The run it was emitted in.
        pub run_key: Option<String>,
        /// The other fields as a JSON object.
        #[sea_orm(column_type = "Text", nullable)]
        pub fields: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The span table, `tasktrail_spans`: the spans of runs, for the trace
/// view.
pub mod span_entry {
    use sea_orm::entity::prelude::*;

    /// One stored span; the row with `span_id` 0 of a run holds no span but
    /// the count of its spans that were not recorded (`fields` is
    /// `{"dropped": n}`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasktrail_spans")]
    pub struct Model {
        /// Increasing row number.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The run it was opened in (as [`stored_run_key`](super::stored_run_key) stores it).
        pub run_key: String,
        /// Its number in the run, from 1.
        pub span_id: i64,
        /// The span it was opened in; `NULL` directly under the run's span.
        pub parent_id: Option<i64>,
        /// Its name.
        #[sea_orm(column_type = "Text")]
        pub name: String,
        /// Its target.
        #[sea_orm(column_type = "Text")]
        pub target: String,
        /// Severity, 0 (`TRACE`) to 4 (`ERROR`).
        pub level: i16,
        /// Its fields as a JSON object.
        #[sea_orm(column_type = "Text", nullable)]
        pub fields: Option<String>,
        /// When it opened (µs since the epoch).
        pub start_us: i64,
        /// When it closed (µs since the epoch); `NULL` when still open as
        /// its run ended.
        pub end_us: Option<i64>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the log table (`tasktrail_logs`) and the span table
/// (`tasktrail_spans`) and their indexes (by run, by time), if missing.
pub async fn create_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    create_log_table(db).await?;
    create_span_table(db).await
}

async fn create_span_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::MySql {
        // As the log table: long texts, a run key indexed by its prefix,
        // compared byte for byte.
        return db
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS tasktrail_spans (\
                 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, run_key VARCHAR(1024) NOT NULL, \
                 span_id BIGINT NOT NULL, parent_id BIGINT, name TEXT NOT NULL, \
                 target TEXT NOT NULL, level SMALLINT NOT NULL, fields MEDIUMTEXT, \
                 start_us BIGINT NOT NULL, end_us BIGINT, \
                 INDEX ix_tasktrail_spans_run_key_span_id (run_key(191), span_id), \
                 INDEX ix_tasktrail_spans_start_us (start_us)) \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            )
            .await
            .map(|_| ());
    }
    let schema = sea_orm::Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(span_entry::Entity);
    table.if_not_exists();
    db.execute(&table).await?;
    for (name, columns) in [
        (
            "ix_tasktrail_spans_run_key_span_id",
            vec![span_entry::Column::RunKey, span_entry::Column::SpanId],
        ),
        (
            "ix_tasktrail_spans_start_us",
            vec![span_entry::Column::StartUs],
        ),
    ] {
        let mut index = sea_orm::sea_query::Index::create();
        index.name(name).table(span_entry::Entity).if_not_exists();
        for column in columns {
            index.col(column);
        }
        db.execute(&index).await?;
    }
    Ok(())
}

async fn create_log_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::MySql {
        crate::writer::feed::create_turns(db).await?;
        // sea-orm's `String` is `VARCHAR(255)` there: targets and stored
        // run keys (up to `MAX_STORED_RUN_KEY` bytes) need more, and a text
        // key is indexed by a prefix (an index entry holds 3,072 bytes).
        return db
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS tasktrail_logs (\
                 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, at_ms BIGINT NOT NULL, \
                 level SMALLINT NOT NULL, target TEXT NOT NULL, message MEDIUMTEXT NOT NULL, \
                 run_key VARCHAR(1024), fields MEDIUMTEXT, \
                 INDEX ix_tasktrail_logs_run_key_id (run_key(191), id), \
                 INDEX ix_tasktrail_logs_at_ms (at_ms)) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            )
            .await
            .map(|_| ());
    }
    let schema = sea_orm::Schema::new(db.get_database_backend());
    let mut table = schema.create_table_from_entity(entry::Entity);
    table.if_not_exists();
    db.execute(&table).await?;
    for (name, columns) in [
        (
            "ix_tasktrail_logs_run_key_id",
            vec![entry::Column::RunKey, entry::Column::Id],
        ),
        ("ix_tasktrail_logs_at_ms", vec![entry::Column::AtMs]),
    ] {
        let mut index = sea_orm::sea_query::Index::create();
        index.name(name).table(entry::Entity).if_not_exists();
        for column in columns {
            index.col(column);
        }
        db.execute(&index).await?;
    }
    Ok(())
}

/// How [`DbLogStorage`] queues, writes and forgets.
///
/// No value makes the writer panic or stop: sizes and intervals are clamped
/// as each field says, and an age beyond what a date can hold deletes
/// nothing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DbLogOptions {
    /// Lines waiting to be written at most; more are dropped (and counted).
    /// Default 10,000; at least 1 (and at most tokio's largest channel).
    pub queue_capacity: usize,
    /// Lines per `INSERT`. Default 500; between 1 and 2,000.
    pub batch_size: usize,
    /// Delete lines older than this, checked every `retention_interval`.
    /// Default: keep everything.
    pub retention: Option<Duration>,
    /// How often retention runs. Default 1 hour; between 1 ms and about 30
    /// years (`Duration::MAX`: never).
    pub retention_interval: Duration,
}

/// The most lines one `INSERT` takes.
const MAX_BATCH: usize = 2_000;

/// The longest run key the log table stores as it is, in bytes. A longer
/// key is stored as its first bytes, `…` and a hash of the whole key (see
/// [`stored_run_key`]): PostgreSQL refuses an index entry over about 2.7 KB,
/// and the table is indexed by run key.
pub const MAX_STORED_RUN_KEY: usize = 1_024;

impl Default for DbLogOptions {
    fn default() -> Self {
        DbLogOptions {
            queue_capacity: 10_000,
            batch_size: 500,
            retention: None,
            retention_interval: Duration::from_secs(3_600),
        }
    }
}

impl DbLogOptions {
    /// The defaults.
    pub fn new() -> Self {
        DbLogOptions::default()
    }

    /// At most `lines` waiting to be written.
    pub fn queue_capacity(mut self, lines: usize) -> Self {
        self.queue_capacity = lines.max(1);
        self
    }

    /// `lines` per `INSERT` (1 to 2,000).
    pub fn batch_size(mut self, lines: usize) -> Self {
        self.batch_size = lines.clamp(1, MAX_BATCH);
        self
    }

    /// Delete lines older than `age`, every `interval`.
    pub fn retention(mut self, age: Duration, interval: Duration) -> Self {
        self.retention = Some(age);
        self.retention_interval = interval;
        self
    }
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    /// Lines the writer's intake had no room for.
    dropped: AtomicU64,
}

/// Keeps log lines in the `tasktrail_logs` table: durable, shared by every
/// instance on the database, queryable by run, level, text and time.
///
/// `append` only queues (a bounded queue; a line that does not fit is
/// dropped and counted); a background task writes the queue in batches,
/// retrying with backoff while the database is unavailable (a transient
/// error). A batch the database refuses for good is split until the lines
/// it refuses are found: those are dropped, counted
/// ([`LogStats::refused`]) and logged, and every other line is written.
/// Every text is made storable first (a NUL becomes U+FFFD) and an
/// over-long run key is bounded (see [`stored_run_key`]). Call
/// [`flush`](Self::flush) before exiting to write what is queued.
///
/// ```no_run
/// # async fn demo(db: sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tasktrail::logs::{DbLogOptions, DbLogStorage, TaskLogLayer};
/// let logs = Arc::new(
///     DbLogStorage::with_options(db, DbLogOptions::new().retention(
///         Duration::from_secs(14 * 86_400),
///         Duration::from_secs(3_600),
///     ))
///     .await?,
/// );
/// let layer = TaskLogLayer::new(logs.clone());
/// // … install the layer; at shutdown:
/// logs.flush(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct DbLogStorage {
    db: DatabaseConnection,
    writer: Writer,
    insert: Arc<Template>,
    insert_span: Arc<Template>,
    counters: Arc<Counters>,
    /// Ends the retention task with the storage.
    _retention: Option<DropGuard>,
}

impl std::fmt::Debug for DbLogStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbLogStorage")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DbLogStorage {
    /// Creates the log table if missing and starts the writer, with the
    /// default options. Call it inside a tokio runtime.
    pub async fn new(db: DatabaseConnection) -> Result<Self, DbErr> {
        DbLogStorage::with_options(db, DbLogOptions::default()).await
    }

    /// [`new`](Self::new) with `options`.
    pub async fn with_options(
        db: DatabaseConnection,
        options: DbLogOptions,
    ) -> Result<Self, DbErr> {
        create_table(&db).await?;
        // tokio's bounded channel takes 1 to `MAX_PERMITS` slots.
        let capacity = options
            .queue_capacity
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let writer = Writer::new(
            db.clone(),
            WriterOptions {
                batch_cap: options.batch_size.clamp(1, MAX_BATCH),
                intake: capacity,
                queue_capacity: capacity,
                shards: 1,
                preamble: commit_order_lock(db.get_database_backend()),
                ..WriterOptions::default()
            },
            Arc::new(tokio::sync::Notify::new()),
        );
        let retention = options.retention.map(|age| {
            let stop = CancellationToken::new();
            tokio::spawn(retention(
                db.clone(),
                age,
                options.retention_interval,
                stop.clone(),
            ));
            stop.drop_guard()
        });
        Ok(DbLogStorage {
            insert: insert_template(db.get_database_backend()),
            insert_span: insert_span_template(db.get_database_backend()),
            db,
            writer,
            counters: Arc::new(Counters::default()),
            _retention: retention,
        })
    }

    /// Waits until every line appended before the call is written (or
    /// refused by the database), at most `timeout`; answers whether it is.
    /// While the database is unavailable nothing can be written: the wait
    /// ends at the timeout, and the lines stay queued.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.writer.flush(timeout).await
    }

    /// Deletes the lines emitted before `cutoff`, and the spans opened
    /// before it; returns how many lines.
    pub async fn purge_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
        purge(&self.db, cutoff).await
    }
}

async fn purge(
    db: &DatabaseConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    let result = entry::Entity::delete_many()
        .filter(entry::Column::AtMs.lt(cutoff.timestamp_millis()))
        .exec(db)
        .await?;
    span_entry::Entity::delete_many()
        .filter(span_entry::Column::StartUs.lt(cutoff.timestamp_micros()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// How the log table stores run key `key`: made storable (a NUL becomes
/// U+FFFD) and, when longer than [`MAX_STORED_RUN_KEY`] bytes, cut to its
/// first bytes (on a character boundary) followed by `…` and 16 hex digits
/// of the BLAKE2s hash of the whole key — short enough for any index, and
/// distinct for keys that only differ after the cut. Queries by run key
/// look the key up the same way, so a line is found by the key it was
/// logged with.
///
/// ```
/// use tasktrail::logs::{MAX_STORED_RUN_KEY, stored_run_key};
/// assert_eq!(stored_run_key("run-1"), "run-1");
/// let long = "k".repeat(3_000);
/// let stored = stored_run_key(&long);
/// assert!(stored.len() <= MAX_STORED_RUN_KEY && stored.starts_with("kkk"));
/// assert_ne!(stored, stored_run_key(&format!("{long}-2")));
/// ```
pub fn stored_run_key(key: &str) -> Cow<'_, str> {
    crate::storable::bounded_key(key, MAX_STORED_RUN_KEY)
}

/// The advisory lock every log write on PostgreSQL takes first (its key
/// reads "tasklogs" in ASCII).
const LOG_WRITE_LOCK: i64 = 0x7461_736b_6c6f_6773;

/// What makes line ids follow commit order, so a live tail that resumes
/// after id `n` never skips a line: on PostgreSQL ids come from a sequence
/// before commit, and two instances writing at once could commit 8 before
/// 7; a reader that saw 8 would then never read 7. Each write takes a
/// transaction-scoped advisory lock before its insert, so the next write's
/// ids are drawn only once the previous one is visible (the lock is
/// released after the commit). SQLite needs nothing: a write holds the
/// database's write lock from its first id to its commit.
///
/// MySQL hands out AUTO_INCREMENT ids at insert time the same way: a write
/// takes the log table's turn (a row lock held until commit; see
/// `tasktrail_turns`) before its insert.
fn commit_order_lock(backend: sea_orm::DbBackend) -> Option<sea_orm::Statement> {
    match backend {
        sea_orm::DbBackend::Postgres => Some(sea_orm::Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [LOG_WRITE_LOCK.into()],
        )),
        sea_orm::DbBackend::MySql => Some(crate::writer::feed::take_turn("logs")),
        _ => None,
    }
}

/// The multi-row insert of log lines; a row is [`row_values`].
fn insert_template(backend: sea_orm::DbBackend) -> Arc<Template> {
    Template::new(backend, 6, move |rows| {
        use sea_orm::sea_query::Query;
        let mut insert = Query::insert();
        insert.into_table(entry::Entity).columns([
            entry::Column::AtMs,
            entry::Column::Level,
            entry::Column::Target,
            entry::Column::Message,
            entry::Column::RunKey,
            entry::Column::Fields,
        ]);
        for _ in 0..rows {
            insert.values_panic(
                [
                    sea_orm::Value::BigInt(Some(0)),
                    sea_orm::Value::SmallInt(Some(0)),
                    sea_orm::Value::String(None),
                    sea_orm::Value::String(None),
                    sea_orm::Value::String(None),
                    sea_orm::Value::String(None),
                ]
                .map(Expr::val),
            );
        }
        backend.build(&insert).sql
    })
}

/// One line's values, in the insert's column order: text made storable, a
/// long run key bounded.
fn row_values(record: LogRecord) -> Vec<sea_orm::Value> {
    let mut message = record.message;
    crate::storable::text_in_place(&mut message);
    let fields = fields_text(record.fields);
    vec![
        record.at.timestamp_millis().into(),
        record.level.severity().into(),
        crate::storable::text(&record.target).into_owned().into(),
        message.into(),
        record
            .run_key
            .map(|k| stored_run_key(&k).into_owned())
            .into(),
        fields.into(),
    ]
}

/// The multi-row insert of spans; a row is [`span_values`].
fn insert_span_template(backend: sea_orm::DbBackend) -> Arc<Template> {
    Template::new(backend, 9, move |rows| {
        use sea_orm::sea_query::Query;
        let mut insert = Query::insert();
        insert.into_table(span_entry::Entity).columns([
            span_entry::Column::RunKey,
            span_entry::Column::SpanId,
            span_entry::Column::ParentId,
            span_entry::Column::Name,
            span_entry::Column::Target,
            span_entry::Column::Level,
            span_entry::Column::Fields,
            span_entry::Column::StartUs,
            span_entry::Column::EndUs,
        ]);
        for _ in 0..rows {
            insert.values_panic(
                [
                    sea_orm::Value::String(None),
                    sea_orm::Value::BigInt(Some(0)),
                    sea_orm::Value::BigInt(None),
                    sea_orm::Value::String(None),
                    sea_orm::Value::String(None),
                    sea_orm::Value::SmallInt(Some(0)),
                    sea_orm::Value::String(None),
                    sea_orm::Value::BigInt(Some(0)),
                    sea_orm::Value::BigInt(None),
                ]
                .map(Expr::val),
            );
        }
        backend.build(&insert).sql
    })
}

fn fields_text(fields: Vec<(Cow<'static, str>, serde_json::Value)>) -> Option<String> {
    (!fields.is_empty()).then(|| {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        let mut fields = serde_json::Value::Object(object);
        crate::storable::json_in_place(&mut fields);
        fields.to_string()
    })
}

fn fields_of(text: Option<String>) -> Vec<(Cow<'static, str>, serde_json::Value)> {
    text.and_then(|f| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&f).ok())
        .map(|m| m.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
        .unwrap_or_default()
}

fn id_value(id: u64) -> sea_orm::Value {
    i64::try_from(id).unwrap_or(i64::MAX).into()
}

/// One span's values, in the insert's column order.
fn span_values(span: SpanRecord) -> Vec<sea_orm::Value> {
    vec![
        stored_run_key(&span.run_key).into_owned().into(),
        id_value(span.id),
        span.parent
            .map(|p| i64::try_from(p).unwrap_or(i64::MAX))
            .into(),
        crate::storable::text(&span.name).into_owned().into(),
        crate::storable::text(&span.target).into_owned().into(),
        span.level.severity().into(),
        fields_text(span.fields).into(),
        span.start.timestamp_micros().into(),
        span.end.map(|t| t.timestamp_micros()).into(),
    ]
}

fn span_of(row: span_entry::Model) -> SpanRecord {
    let at = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    SpanRecord {
        run_key: Arc::from(row.run_key),
        id: u64::try_from(row.span_id).unwrap_or(0),
        parent: row.parent_id.and_then(|p| u64::try_from(p).ok()),
        name: Cow::Owned(row.name),
        target: Cow::Owned(row.target),
        level: LogLevel::from_severity(row.level).unwrap_or(LogLevel::Info),
        fields: fields_of(row.fields),
        start: at(row.start_us),
        end: row.end_us.map(at),
    }
}

/// The most span rows one trace reads.
const MAX_TRACE_ROWS: u64 = 20_000;

fn record_of(row: entry::Model) -> LogRecord {
    LogRecord {
        id: u64::try_from(row.id).unwrap_or(0),
        at: chrono::DateTime::from_timestamp_millis(row.at_ms).unwrap_or_default(),
        level: LogLevel::from_severity(row.level).unwrap_or(LogLevel::Info),
        target: Cow::Owned(row.target),
        message: row.message,
        run_key: row.run_key.map(Arc::from),
        fields: fields_of(row.fields),
    }
}

/// Deletes lines older than `age` every `interval`, until `stop`.
async fn retention(
    db: DatabaseConnection,
    age: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    // An interval of zero panics in tokio, one past an `Instant` overflows.
    let mut ticks = tokio::time::interval(crate::limits::pause(interval));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // No line is older than a date can be.
        let Some(cutoff) = crate::limits::cutoff(chrono::Utc::now(), age) else {
            continue;
        };
        let span = tracing::error_span!(target: "tasktrail::logs", "tasktrail_log_writer");
        match tracing::Instrument::instrument(purge(&db, cutoff), span).await {
            Ok(n) if n > 0 => {
                tracing::info!(deleted = n, "tasktrail: log retention deleted old lines")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "tasktrail: log retention failed"),
        }
    }
}

impl DbLogStorage {
    /// Queues one span row; counted as a dropped line when the queue is
    /// full.
    fn submit_span(&self, values: Vec<sea_orm::Value>) {
        let op = Op {
            lane: None,
            work: Work::Row {
                template: self.insert_span.clone(),
                values,
            },
            on_transient: OnTransient::Retry,
            ack: None,
            change: None,
        };
        if self.writer.try_submit(op).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl LogStorage for DbLogStorage {
    fn append_span(&self, span: SpanRecord) {
        self.submit_span(span_values(span));
    }

    fn spans_dropped(&self, run_key: &str, count: u64) {
        let summary = SpanRecord::new(run_key, 0, "", chrono::Utc::now()).field("dropped", count);
        self.submit_span(span_values(summary));
    }

    fn trace(
        &self,
        run_key: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Trace>, LogStorageError>> {
        let key = stored_run_key(run_key).into_owned();
        Box::pin(async move {
            let rows = span_entry::Entity::find()
                .filter(span_entry::Column::RunKey.eq(key))
                .order_by_asc(span_entry::Column::SpanId)
                .order_by_asc(span_entry::Column::Id)
                .limit(MAX_TRACE_ROWS)
                .all(&self.db)
                .await?;
            let mut dropped = 0;
            let mut spans = Vec::with_capacity(rows.len());
            for row in rows {
                if row.span_id == 0 {
                    dropped += fields_of(row.fields)
                        .iter()
                        .find(|(k, _)| k == "dropped")
                        .and_then(|(_, v)| v.as_u64())
                        .unwrap_or(0);
                } else {
                    spans.push(span_of(row));
                }
            }
            Ok(Some(Trace::new(spans, dropped)))
        })
    }

    fn append(&self, record: LogRecord) {
        self.counters.appended.fetch_add(1, Ordering::Relaxed);
        let op = Op {
            // Lines keep their order without a lane: one batch writes them
            // in the order they came.
            lane: None,
            work: Work::Row {
                template: self.insert.clone(),
                values: row_values(record),
            },
            on_transient: OnTransient::Retry,
            ack: None,
            change: None,
        };
        if self.writer.try_submit(op).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn query(
        &self,
        query: LogQuery,
    ) -> futures::future::BoxFuture<'_, Result<Vec<LogRecord>, LogStorageError>> {
        Box::pin(async move {
            let mut select = entry::Entity::find();
            if let Some(key) = &query.run_key {
                select = select.filter(entry::Column::RunKey.eq(stored_run_key(key).as_ref()));
            }
            if let Some(level) = query.min_level {
                select = select.filter(entry::Column::Level.gte(level.severity()));
            }
            if let Some(text) = query.contains.as_deref().filter(|t| !t.is_empty()) {
                let escaped: String = text
                    .to_lowercase()
                    .chars()
                    .flat_map(|c| match c {
                        '%' | '_' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                select = select.filter(
                    Expr::expr(Func::lower(Expr::col(entry::Column::Message)))
                        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
                );
            }
            if let Some(since) = query.since {
                select = select.filter(entry::Column::AtMs.gte(since.timestamp_millis()));
            }
            if let Some(until) = query.until {
                select = select.filter(entry::Column::AtMs.lt(until.timestamp_millis()));
            }
            if let Some(after) = query.after_id {
                select =
                    select.filter(entry::Column::Id.gt(i64::try_from(after).unwrap_or(i64::MAX)));
            }
            let rows = crate::config::find_all(
                select
                    .order_by_desc(entry::Column::Id)
                    .limit(query.limit.min(MAX_QUERY_LIMIT) as u64),
                &self.db,
            )
            .await?;
            Ok(rows.into_iter().map(record_of).collect())
        })
    }

    fn stats(&self) -> LogStats {
        let w = self.writer.stats();
        LogStats {
            stored: None,
            appended: self.counters.appended.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed) + w.dropped,
            pending: self.writer.pending(),
            written: w.written,
            refused: w.refused,
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::logs::TaskLogLayer;
    use tracing_subscriber::layer::SubscriberExt;

    /// The storage's writer starts with its first line, inside the run
    /// that emitted it. Its task's span used to be a child of the span the
    /// line was emitted in, and the writer lives as long as the storage:
    /// that span never closed, so it was never written (the soak of issue
    /// 17 found the first run of every process without its span) and the
    /// run's own span stayed open with it. Now the writer's span is a root.
    #[tokio::test(flavor = "current_thread")]
    async fn the_writer_does_not_keep_open_the_span_it_started_in() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("logs.db").display());
        let db = crate::sqlite::connect(&url).await.unwrap();
        let logs = Arc::new(DbLogStorage::new(db).await.unwrap());
        // Without sea-orm's `trace` spans (the docs' filter leaves them
        // out): as this thread's default, one dropped last on sqlx's
        // worker thread would release its parent through that thread's
        // (global) subscriber (see `tasktrail_tests::thread_subscriber`).
        let quiet = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("sea_orm", tracing::level_filters::LevelFilter::OFF)
            .with_target("sqlx", tracing::Level::WARN);
        let subscriber = tracing_subscriber::registry()
            .with(TaskLogLayer::new(logs.clone()))
            .with(quiet);
        let _default = tracing::subscriber::set_default(subscriber);

        tracing::info_span!("task", task_key = "run-1").in_scope(|| {
            tracing::info_span!("step").in_scope(|| tracing::info!("the storage's first line"));
        });
        assert!(logs.flush(Duration::from_secs(30)).await);
        let trace = logs.trace("run-1").await.unwrap().unwrap();
        let names: Vec<&str> = trace.spans.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["step"], "{trace:?}");
        assert!(trace.spans[0].end.is_some(), "{trace:?}");
        assert_eq!(logs.stats().written, 2, "the line and the span");
    }
}
