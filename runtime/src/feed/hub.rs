//! One reader of the change feed per database and process.
//!
//! Every tracker on a connection pool shares the process's [`Hub`] of it
//! (an application has one pool per database: one hub, one listener; a
//! pool is tied to the tokio runtime that made its connections, so two
//! pools never share one). The hub reads the feed only while something subscribes (a live
//! stream, a tracker with spawned runs): it keeps the newest changes in a
//! ring and wakes its subscribers, who take what they need from the ring
//! (one read of the database for all of them). A subscriber that fell
//! behind the ring reads the database from its own cursor.
//!
//! What wakes the hub: a commit of a local tracker that wrote changes; on
//! PostgreSQL, a notification received by its listener (its own
//! connection, not one of the application's pool; reconnected with
//! backoff, and every (re)connect is followed by a read: nothing is missed
//! while it was down, the cursor is the database's); and otherwise a poll
//! every [`POLL`] (every 5 s as a safety net while the listener is up; on
//! SQLite, or behind PgBouncer's transaction mode, the poll is all there
//! is).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{Notify, watch};

use super::{ChangeRow, Cursor, POLL, Ring, Since, head, read};

/// Changes kept in memory for subscribers.
const RING: usize = 16_384;
/// Changes read at once.
const PAGE: u64 = 1_000;
/// The poll while the listener is up: a safety net.
const LISTENING_POLL: Duration = Duration::from_secs(5);
/// The longest wait between two connection attempts of the listener.
#[cfg(feature = "postgres")]
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The reader of one database's feed; see the [module](self) docs.
pub(crate) struct Hub {
    db: DatabaseConnection,
    /// Wakes the reader (a local commit with changes, a notification).
    pub(crate) wake: Arc<Notify>,
    /// Wakes an idle reader when a subscriber comes.
    subscribed: Arc<Notify>,
    /// The newest changes; its head is the last change read (none before
    /// the first read).
    ring: Mutex<Ring<Arc<ChangeRow>>>,
    /// Bumped after every read that found changes.
    tick: watch::Sender<u64>,
    started: AtomicBool,
    listening: AtomicBool,
    /// A tracker asked for no listener ([`TrackerOptions::listen`]).
    ///
    /// [`TrackerOptions::listen`]: crate::TrackerOptions::listen
    no_listen: AtomicBool,
    table_made: AtomicBool,
}

/// A subscriber's wake-ups; while one exists, the hub reads.
pub(crate) struct Subscription {
    /// Keeps the hub (and so its reader) alive.
    _hub: Arc<Hub>,
    rx: watch::Receiver<u64>,
}

impl Subscription {
    /// Waits for the hub's next read that found changes.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // The hub is gone (it cannot be while we hold it): no spin.
            std::future::pending::<()>().await;
        }
    }
}

/// The hubs of this process, by database.
static HUBS: Mutex<Option<HashMap<String, Weak<Hub>>>> = Mutex::new(None);

/// The pool `db` draws from, as the registry names it (its clones share
/// their connect options); `None` for a connection of another kind (it
/// gets a hub of its own).
fn target(db: &DatabaseConnection) -> Option<String> {
    use sea_orm::DatabaseConnectionType as Inner;
    match &db.inner {
        #[cfg(feature = "postgres")]
        Inner::SqlxPostgresPoolConnection(_) => {
            let o = db.get_postgres_connection_pool().connect_options();
            Some(format!(
                "postgres://{}@{}:{}/{} {:p}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default(),
                Arc::as_ptr(&o)
            ))
        }
        #[cfg(feature = "mysql")]
        Inner::SqlxMySqlPoolConnection(_) => {
            let o = db.get_mysql_connection_pool().connect_options();
            Some(format!("mysql {:p}", Arc::as_ptr(&o)))
        }
        #[cfg(feature = "sqlite")]
        Inner::SqlxSqlitePoolConnection(_) => {
            let o = db.get_sqlite_connection_pool().connect_options();
            Some(format!(
                "sqlite:{} {:p}",
                o.get_filename().display(),
                Arc::as_ptr(&o)
            ))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

impl Hub {
    /// The process's hub of `db`'s pool; `listen: false` turns its
    /// listener off (for all its trackers).
    pub fn of(db: &DatabaseConnection, listen: bool) -> Arc<Hub> {
        let hub = Self::shared(db);
        if !listen {
            hub.no_listen.store(true, Ordering::Release);
        }
        hub
    }

    fn shared(db: &DatabaseConnection) -> Arc<Hub> {
        let make = || {
            Arc::new(Hub {
                db: db.clone(),
                wake: Arc::new(Notify::new()),
                subscribed: Arc::new(Notify::new()),
                ring: Mutex::new(Ring::new(RING)),
                tick: watch::Sender::new(0),
                started: AtomicBool::new(false),
                listening: AtomicBool::new(false),
                no_listen: AtomicBool::new(false),
                table_made: AtomicBool::new(false),
            })
        };
        let Some(target) = target(db) else {
            return make();
        };
        let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
        let hubs = hubs.get_or_insert_with(HashMap::new);
        if let Some(hub) = hubs.get(&target).and_then(Weak::upgrade) {
            return hub;
        }
        hubs.retain(|_, hub| hub.strong_count() > 0);
        let hub = make();
        hubs.insert(target, Arc::downgrade(&hub));
        hub
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring<Arc<ChangeRow>>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes: the hub reads while a subscription exists.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let rx = self.tick.subscribe();
        self.start();
        self.subscribed.notify_one();
        Subscription {
            _hub: self.clone(),
            rx,
        }
    }

    /// The last change read, if the hub has read.
    pub fn head(&self) -> Option<Cursor> {
        self.ring().head()
    }

    /// Whether a listener is connected (PostgreSQL).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The feed's present end: the hub's head, or the database's.
    pub async fn now(&self) -> Result<Cursor, DbErr> {
        if let Some(head) = self.head() {
            return Ok(head);
        }
        self.make_table().await?;
        head(&self.db).await
    }

    /// Up to `max` changes of the ring after `after`.
    pub fn since(&self, after: Cursor, max: usize) -> Since<Arc<ChangeRow>> {
        self.ring().since(after, max)
    }

    /// Up to `max` changes after `after` (of `scope` only, if given), from
    /// the ring or, for a cursor behind it, the database; with the cursor
    /// to read from next (past changes of other scopes too).
    pub async fn after(
        &self,
        after: Cursor,
        scope: Option<&str>,
        max: usize,
    ) -> Result<(Vec<Arc<ChangeRow>>, Cursor), DbErr> {
        let in_scope = |c: &ChangeRow| scope.is_none_or(|s| s == c.scope);
        match self.since(after, max) {
            Since::Rows(rows) => {
                let next = rows.last().map_or(after, |c| c.cursor);
                Ok((rows.into_iter().filter(|c| in_scope(c)).collect(), next))
            }
            Since::Behind(floor) => {
                let page = read(&self.db, after, scope, max as u64).await?;
                let full = page.rows.len() >= max;
                let mut next = page.rows.last().map_or(after, |c| c.cursor);
                // Every settled change up to the floor was read (the floor
                // was settled when the hub read it).
                if !full
                    && !page.held_back
                    && let Some(floor) = floor
                {
                    next = next.max(floor);
                }
                Ok((page.rows.into_iter().map(Arc::new).collect(), next))
            }
        }
    }

    async fn make_table(&self) -> Result<(), DbErr> {
        if !self.table_made.load(Ordering::Acquire) {
            crate::writer::feed::create_table(&self.db).await?;
            self.table_made.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Reads every change after the head; returns whether committed ones
    /// were left for later (an older transaction still running).
    async fn catch_up(&self) -> Result<bool, DbErr> {
        let mut at = match self.head() {
            Some(head) => head,
            None => {
                self.make_table().await?;
                let now = head(&self.db).await?;
                self.ring().start(now);
                now
            }
        };
        loop {
            let page = read(&self.db, at, None, PAGE).await?;
            let n = page.rows.len();
            if let Some(last) = page.rows.last() {
                at = last.cursor;
                self.ring().push(page.rows.into_iter().map(Arc::new), at);
                self.tick.send_modify(|n| *n = n.wrapping_add(1));
            }
            if page.held_back {
                return Ok(true);
            }
            if (n as u64) < PAGE {
                return Ok(false);
            }
        }
    }

    /// Starts the reader (and the listener) once, on the current runtime.
    fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        // What the hub logs is never captured as a run's log line. A root
        // span: the reader lives as long as the hub, and would keep the
        // span of its first subscriber's caller open as long.
        let span = tracing::error_span!(target: "tasktrail::logs", parent: None, "tasktrail_feed");
        rt.spawn(tracing::Instrument::instrument(
            reader(
                Arc::downgrade(self),
                self.wake.clone(),
                self.subscribed.clone(),
            ),
            span.clone(),
        ));
        #[cfg(feature = "postgres")]
        if matches!(
            self.db.inner,
            sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_)
        ) && !self.no_listen.load(Ordering::Acquire)
        {
            rt.spawn(tracing::Instrument::instrument(
                listener(Arc::downgrade(self), &self.db),
                span,
            ));
        }
        #[cfg(not(feature = "postgres"))]
        drop(span);
    }
}

/// The shortest time between two reads: under load, the wake-ups of many
/// commits (this process's and, through the listener, every instance's)
/// are read together; a lone change is read at once.
const MIN_GAP: Duration = Duration::from_millis(10);

/// The hub's reading loop; ends when the hub is dropped.
async fn reader(hub: Weak<Hub>, wake: Arc<Notify>, subscribed: Arc<Notify>) {
    let mut failing = false;
    let mut held = Duration::from_millis(10);
    let mut last_read: Option<tokio::time::Instant> = None;
    loop {
        if let Some(last) = last_read {
            tokio::time::sleep_until(last + MIN_GAP).await;
        }
        let Some(strong) = hub.upgrade() else { return };
        let wait = if strong.tick.receiver_count() == 0 {
            // Nobody subscribes: read nothing, look again now and then
            // (whether the hub is still there).
            Duration::from_secs(1)
        } else {
            last_read = Some(tokio::time::Instant::now());
            match strong.catch_up().await {
                Ok(held_back) => {
                    if failing {
                        tracing::info!("tasktrail: the change feed is readable again");
                        failing = false;
                    }
                    if held_back {
                        held = (held * 2).min(POLL);
                        held
                    } else {
                        held = Duration::from_millis(10);
                        if strong.listening() {
                            LISTENING_POLL
                        } else {
                            POLL
                        }
                    }
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "tasktrail: the change feed could not be read; retrying");
                        failing = true;
                    }
                    POLL
                }
            }
        };
        drop(strong);
        tokio::select! {
            () = wake.notified() => {}
            () = subscribed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The PostgreSQL listener: wakes the reader on every notification, and
/// after every (re)connect. Ends when the hub is dropped.
#[cfg(feature = "postgres")]
fn listener(
    hub: Weak<Hub>,
    db: &DatabaseConnection,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    // A connection of its own, with the application pool's settings.
    let options = (*db.get_postgres_connection_pool().connect_options()).clone();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    async move {
        let mut backoff = Duration::from_millis(100);
        let alive = |hub: &Weak<Hub>| hub.upgrade().map(|h| (h.wake.clone(), h));
        loop {
            let Some((wake, _)) = alive(&hub) else { return };
            let connected = async {
                let mut listener = PgListener::connect_with(&own).await?;
                listener
                    .listen(crate::writer::feed::CHANNEL)
                    .await
                    .map(|()| listener)
            };
            let mut listener = match connected.await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, ?backoff,
                        "tasktrail: the change feed's listener could not connect; polling meanwhile");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let Some((_, strong)) = alive(&hub) else {
                return;
            };
            strong.listening.store(true, Ordering::Release);
            drop(strong);
            // What was written while nobody listened.
            wake.notify_one();
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(_)) => wake.notify_one(),
                        // The connection was lost: make it again.
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(error = %err,
                                "tasktrail: the change feed's listener lost its connection; reconnecting");
                            break;
                        }
                    },
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if hub.strong_count() == 0 {
                            return;
                        }
                    }
                }
            }
            if let Some(strong) = hub.upgrade() {
                strong.listening.store(false, Ordering::Release);
            }
            wake.notify_one();
        }
    }
}
