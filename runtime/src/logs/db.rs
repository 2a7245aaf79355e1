//! Log lines in a database table, written in batches by a background task.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tokio::sync::{mpsc, oneshot};

use crate::logs::{
    LogLevel, LogQuery, LogRecord, LogStats, LogStorage, LogStorageError, MAX_QUERY_LIMIT,
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

/// Creates the log table and its indexes (by run, by time), if missing.
pub async fn create_table(db: &impl ConnectionTrait) -> Result<(), DbErr> {
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

enum Message {
    Line(LogRecord),
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    refused: AtomicU64,
    write_errors: AtomicU64,
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
    queue: mpsc::Sender<Message>,
    counters: Arc<Counters>,
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
        let (queue, receiver) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(db.clone(), receiver, counters.clone(), options));
        Ok(DbLogStorage {
            db,
            queue,
            counters,
        })
    }

    /// Waits until every line appended before the call is written (or
    /// refused by the database), at most `timeout`; answers whether it is.
    /// While the database is unavailable nothing can be written: the wait
    /// ends at the timeout, and the lines stay queued.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let wait = async {
            let (done, written) = oneshot::channel();
            self.queue.send(Message::Flush(done)).await.is_ok() && written.await.is_ok()
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Deletes the lines emitted before `cutoff`; returns how many.
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

fn row_of(record: LogRecord) -> entry::ActiveModel {
    let mut message = record.message;
    crate::storable::text_in_place(&mut message);
    entry::ActiveModel {
        id: sea_orm::NotSet,
        at_ms: Set(record.at.timestamp_millis()),
        level: Set(record.level.severity()),
        target: Set(crate::storable::text(&record.target).into_owned()),
        message: Set(message),
        run_key: Set(record.run_key.map(|k| stored_run_key(&k).into_owned())),
        fields: Set((!record.fields.is_empty()).then(|| {
            let object: serde_json::Map<String, serde_json::Value> = record
                .fields
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect();
            let mut fields = serde_json::Value::Object(object);
            crate::storable::json_in_place(&mut fields);
            fields.to_string()
        })),
    }
}

fn record_of(row: entry::Model) -> LogRecord {
    LogRecord {
        id: u64::try_from(row.id).unwrap_or(0),
        at: chrono::DateTime::from_timestamp_millis(row.at_ms).unwrap_or_default(),
        level: LogLevel::from_severity(row.level).unwrap_or(LogLevel::Info),
        target: Cow::Owned(row.target),
        message: row.message,
        run_key: row.run_key.map(Arc::from),
        fields: row
            .fields
            .and_then(|f| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&f).ok()
            })
            .map(|m| m.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
            .unwrap_or_default(),
    }
}

async fn writer(
    db: DatabaseConnection,
    mut receiver: mpsc::Receiver<Message>,
    counters: Arc<Counters>,
    options: DbLogOptions,
) {
    // A batch of zero would read nothing and end the writer; an interval of
    // zero panics in tokio, one past an `Instant` overflows.
    let batch_size = options.batch_size.clamp(1, MAX_BATCH);
    let mut batch = Vec::with_capacity(batch_size);
    let mut retention = tokio::time::interval(crate::limits::pause(options.retention_interval));
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            n = receiver.recv_many(&mut batch, batch_size) => n,
            _ = retention.tick(), if options.retention.is_some() => {
                // No line is older than a date can be.
                let cutoff = options
                    .retention
                    .and_then(|age| crate::limits::cutoff(chrono::Utc::now(), age));
                if let Some(cutoff) = cutoff {
                    match internal(purge(&db, cutoff)).await {
                        Ok(n) if n > 0 => tracing::info!(deleted = n, "tasktrail: log retention deleted old lines"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "tasktrail: log retention failed"),
                    }
                }
                continue;
            }
        };
        if received == 0 {
            // Every sender is gone and the queue is empty.
            return;
        }
        let mut lines = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Line(record) => lines.push(row_of(record)),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !lines.is_empty() {
            internal(write(&db, lines, &counters)).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Runs `work` in the writer's span, created now (so that a subscriber
/// installed after the storage sees it): the log layer never captures the
/// events inside it, such as the driver's own logging of the insert.
fn internal<F: std::future::Future>(work: F) -> tracing::instrument::Instrumented<F> {
    tracing::Instrument::instrument(
        work,
        tracing::error_span!(target: "tasktrail::logs", "tasktrail_log_writer"),
    )
}

/// Writes `lines`, in order. A transient error (the database is
/// unreachable or busy) is retried with backoff until the database takes the
/// batch; a batch the database refuses for good is split in halves, down to
/// the single lines it refuses, which are dropped, counted and logged.
async fn write(db: &DatabaseConnection, lines: Vec<entry::ActiveModel>, counters: &Counters) {
    let mut backoff = Duration::from_millis(50);
    let mut refused = 0_u64;
    let mut first_refusal: Option<DbErr> = None;
    // The batches left, the next one last.
    let mut todo = vec![lines];
    while let Some(mut batch) = todo.pop() {
        let n = batch.len();
        match entry::Entity::insert_many(batch.clone()).exec(db).await {
            Ok(_) => {
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
                backoff = Duration::from_millis(50);
            }
            Err(err) if crate::db_error::is_transient(&err) => {
                let failures = counters.write_errors.fetch_add(1, Ordering::Relaxed);
                if failures.is_power_of_two() {
                    tracing::warn!(error = %err, lines = n, "tasktrail: writing log lines failed; retrying");
                }
                todo.push(batch);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(err) if n <= 1 => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counters.refused.fetch_add(n as u64, Ordering::Relaxed);
                refused += n as u64;
                first_refusal.get_or_insert(err);
            }
            Err(_) => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                let second = batch.split_off(n / 2);
                todo.push(second);
                todo.push(batch);
            }
        }
    }
    if let Some(err) = first_refusal {
        tracing::error!(
            lines = refused,
            error = %err,
            "tasktrail: the database refused log lines; they were dropped, the others written"
        );
    }
}

impl LogStorage for DbLogStorage {
    fn append(&self, record: LogRecord) {
        self.counters.appended.fetch_add(1, Ordering::Relaxed);
        if self.queue.try_send(Message::Line(record)).is_err() {
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
            let rows = select
                .order_by_desc(entry::Column::Id)
                .limit(query.limit.min(MAX_QUERY_LIMIT) as u64)
                .all(&self.db)
                .await?;
            Ok(rows.into_iter().map(record_of).collect())
        })
    }

    fn stats(&self) -> LogStats {
        let pending = (self.queue.max_capacity() - self.queue.capacity()) as u64;
        LogStats {
            stored: None,
            appended: self.counters.appended.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            pending,
            written: self.counters.written.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
        }
    }
}
