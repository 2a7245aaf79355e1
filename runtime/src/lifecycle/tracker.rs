//! The lifecycle manager: prepares events with the entity's hooks and
//! mapping and hands them to the tracker's writer (group commit: see
//! [`crate::writer`]), which writes them in batches, keeps what waits for an
//! unreachable database, and answers each event once it is committed.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, IdenStatic};

use crate::config::{Encode, Role, TrackingConfig};
use crate::hooks::{
    Actor, PayloadKind, TrackedObject, cap_payload, default_format_objects, default_format_user,
    redact,
};
use crate::lifecycle::state::{Counters, Inner, bump};
use crate::lifecycle::write::{Cell, Class, Prepared, Statement, placeholder};
use crate::lifecycle::{Event, EventKind, TrackerOptions};
use crate::writer::feed::{Change, Stamp};
use crate::writer::{OnTransient, Outcome, Template, Work, Writer, WriterOptions, lane_of};

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The event's key is empty.
    #[error("a lifecycle event needs a non-empty run key")]
    EmptyKey,
    /// The event's key is too long or holds a NUL character.
    #[error("run key `{key}` is refused: {reason}")]
    InvalidKey {
        /// The key's first 64 characters.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The event sets an extra that no field maps.
    #[error(
        "run `{key}`: no field is mapped to the extra `{name}`; add #[tracking(extra = \"{name}\")] to the field that should hold it"
    )]
    UnknownExtra {
        /// The run's key.
        key: String,
        /// The extra's name.
        name: String,
    },
    /// The database is reachable but refused the statement (a schema that
    /// does not match the entity, a missing unique index on the key, …).
    #[error("run `{key}`: the database refused the `{kind}` event: {source}")]
    Refused {
        /// The run's key.
        key: String,
        /// The event.
        kind: EventKind,
        /// The database error.
        #[source]
        source: DbErr,
    },
    /// The database is unreachable and the retry queue is full.
    #[error(
        "run `{key}`: the database is unreachable and the retry queue is full ({capacity} events); the `{kind}` event was dropped"
    )]
    QueueFull {
        /// The run's key.
        key: String,
        /// The event.
        kind: EventKind,
        /// The queue's capacity.
        capacity: usize,
    },
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The statement ran.
    Stored,
    /// The database is unreachable: the event waits in the retry queue and
    /// will be written, in order, when it is back.
    Queued,
    /// A `cleanup` for a run that does not exist: nothing to write.
    NoRun,
}

/// Counters of a tracker, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Writes committed: lifecycle events, leases, lock releases.
    pub writes: u64,
    /// Transactions committed: each holds every write queued while the
    /// previous one was in flight, so under load far fewer than `writes`.
    pub commits: u64,
    /// Statements run (a multi-row statement counts once).
    pub statements: u64,
    /// Failed attempts to commit (each retry counts).
    pub write_errors: u64,
    /// Events that went to the retry queue.
    pub queued: u64,
    /// Events waiting in the retry queue now.
    pub queue_len: u64,
    /// Events dropped because the retry queue was full.
    pub dropped: u64,
    /// Events refused: invalid (a bad key, an unknown extra) or refused by a
    /// database that answers — at once, or after waiting in the retry queue
    /// (then dropped, so that later events are not held back). Logged, never
    /// retried.
    pub refused: u64,
    /// Formatter hooks that panicked (the default was used instead).
    pub hook_errors: u64,
    /// Completion hooks that returned an error or panicked.
    pub completion_hook_errors: u64,
    /// Progress events written by spawned runs (after coalescing).
    pub progress_writes: u64,
    /// Spawned runs that have not ended.
    pub running: u64,
}

/// The lifecycle manager of the tracked model `M`.
///
/// `#[derive(TrackingConfig)]` names it `Tracker` in the entity's module:
///
/// ```ignore
/// let tracker = task_run::Tracker::new(db.clone());
/// tracker.lifecycle(Event::create("run-1").name("import")).await?;
/// ```
///
/// Cloning is cheap; clones share the connection, counters and retry queue.
pub struct Tracker<M: TrackingConfig> {
    inner: Arc<Inner>,
    _model: PhantomData<fn() -> M>,
}

impl<M: TrackingConfig> Clone for Tracker<M> {
    fn clone(&self) -> Self {
        Tracker {
            inner: self.inner.clone(),
            _model: PhantomData,
        }
    }
}

impl<M: TrackingConfig> std::fmt::Debug for Tracker<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("model", &std::any::type_name::<M>())
            .field("stats", &self.stats())
            .finish()
    }
}

/// An event checked and mapped, ready for the writer.
struct Ready {
    lane: u64,
    work: Work,
    change: Box<Change>,
    cleanup: bool,
    key: String,
    kind: EventKind,
}

fn text_cell(s: &str) -> impl FnOnce(Encode) -> Option<sea_orm::Value> + '_ {
    move |e| {
        if let Encode::Text(f) = e {
            Some(f(s))
        } else {
            None
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

impl<M: TrackingConfig> Tracker<M> {
    /// A tracker writing through `db`, with default options.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_options(db, TrackerOptions::default())
    }

    /// A tracker writing through `db`.
    pub fn with_options(db: DatabaseConnection, options: TrackerOptions) -> Self {
        let options = options.normalized();
        let feed = crate::feed::Hub::of(&db, options.listen);
        let clock = options.clock.clone();
        let writer = Writer::new(
            db.clone(),
            WriterOptions {
                queue_capacity: options.queue_capacity,
                min_backoff: options.min_backoff,
                max_backoff: options.max_backoff,
                connection_wait: options.connection_wait,
                // SQLite has one writer at a time; PostgreSQL takes several
                // transactions at once (a run's writes stay on one).
                shards: match db.get_database_backend() {
                    sea_orm::DbBackend::Postgres => 4,
                    _ => 1,
                },
                clock: Some(Arc::new(move || clock.now())),
                ..WriterOptions::default()
            },
            feed.wake.clone(),
        );
        let instance: Arc<str> = match &options.instance {
            // Storable on every backend (no NUL), like every value.
            Some(name) => crate::storable::text(name).as_ref().into(),
            None => uuid::Uuid::now_v7().to_string().into(),
        };
        let scope: Arc<str> = {
            use sea_orm::EntityName;
            M::Entity::default().table_name().into()
        };
        Tracker {
            inner: Arc::new(Inner {
                db,
                options,
                counters: Counters::default(),
                writer,
                templates: Mutex::new(Default::default()),
                setup_checked: AtomicBool::new(false),
                instance,
                scope,
                feed,
                runs: OnceLock::new(),
            }),
            _model: PhantomData,
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn inner_arc(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Tracker {
            inner,
            _model: PhantomData,
        }
    }

    /// The tracker's options, as it uses them (clamped: see
    /// [`TrackerOptions`]).
    pub fn options(&self) -> &TrackerOptions {
        &self.inner.options
    }

    /// The connection the tracker writes through.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The tracker's counters.
    pub fn stats(&self) -> TrackerStats {
        let c = &self.inner.counters;
        let w = self.inner.writer.stats();
        let mut stats = TrackerStats {
            writes: w.written,
            commits: w.commits,
            statements: w.statements,
            write_errors: w.errors,
            queued: w.queued,
            queue_len: w.queue_len,
            dropped: w.dropped,
            refused: c.refused.load(Ordering::Relaxed) + w.refused,
            hook_errors: c.hook_errors.load(Ordering::Relaxed),
            ..TrackerStats::default()
        };
        self.inner.run_stats(&mut stats);
        stats
    }

    /// Records `event`: one atomic statement, following the lifecycle rules,
    /// committed together with whatever else is being written at the moment
    /// (group commit). Returns once the commit that holds it is done:
    /// [`Written::Stored`] means the event is durable.
    ///
    /// A database that cannot be reached does not lose the event: it waits in
    /// a bounded queue and is retried with backoff, in order, and this
    /// returns [`Written::Queued`] at once, so a task never waits for an
    /// outage. Errors are for events that can never be written (see
    /// [`TrackError`]); they are also logged and counted, and never held in
    /// the queue: an event the database refuses does not hold back the
    /// events after it.
    ///
    /// The event is checked and mapped onto the entity's columns when this
    /// is called; the returned future holds only the statement's values and
    /// hands them to the writer when first polled.
    pub fn lifecycle(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<Written, TrackError>> + Send + '_ {
        self.lifecycle_by(event, None)
    }

    /// [`lifecycle`](Self::lifecycle), naming `by` as the change's actor in
    /// the feed (a dashboard user acting on a run, which must not replace
    /// the run's own user).
    pub(crate) fn lifecycle_by(
        &self,
        event: Event,
        by: Option<String>,
    ) -> impl Future<Output = Result<Written, TrackError>> + Send + '_ {
        use futures::FutureExt;
        use futures::future::Either;
        match self.ready(event) {
            Err(err) => Either::Left(std::future::ready(Err(err))),
            Ok(Ready {
                lane,
                work,
                mut change,
                cleanup,
                key,
                kind,
            }) => {
                if let Some(by) = by {
                    change.actor = Some(crate::writer::feed::actor_label(&by));
                }
                Either::Right(
                    self.inner
                        .writer
                        .record(Some(lane), work, Some(change), OnTransient::Retry)
                        .map(move |outcome| self.answer(key, kind, cleanup, outcome)),
                )
            }
        }
    }

    /// Runs `stmt`, a write of the run `key` other than an event (the
    /// dashboard's delete), through the writer, recording it in the feed as
    /// `kind` by `by`; returns the rows it affected. Never queued: an
    /// unreachable database is an error.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn write_run_statement(
        &self,
        key: &str,
        stmt: sea_orm::Statement,
        kind: &'static str,
        by: Option<String>,
    ) -> Result<u64, DbErr> {
        let change = Box::new(Change {
            scope: self.inner.scope.clone(),
            run_key: key.to_owned(),
            kind,
            instance: self.inner.instance.clone(),
            actor: by.as_deref().map(crate::writer::feed::actor_label),
            stamp: None,
        });
        match self
            .inner
            .writer
            .record(
                Some(lane_of(key)),
                Work::Statement(stmt),
                Some(change),
                OnTransient::Fail,
            )
            .await
        {
            Outcome::Done(rows) => Ok(rows),
            Outcome::Refused(err) | Outcome::Unavailable(err) => Err(err),
            Outcome::Queued | Outcome::Dropped => Err(DbErr::Custom(
                "the database is unreachable; nothing was written".into(),
            )),
        }
    }

    /// Checks `event` and maps it onto the entity's columns; an invalid
    /// event is refused (logged, counted).
    fn ready(&self, event: Event) -> Result<Ready, TrackError> {
        if let Err(err) = self.validate(&event) {
            bump(&self.inner.counters.refused);
            tracing::error!(error = %err, "tasktrail: lifecycle event refused");
            return Err(err);
        }
        let (work, change, cleanup) = self.work(&event);
        Ok(Ready {
            lane: lane_of(&event.key),
            work,
            change,
            cleanup,
            key: event.key,
            kind: event.kind,
        })
    }

    /// Records several events together: they are handed to the writer at
    /// once and committed in one transaction (per writer shard: on
    /// PostgreSQL the events of different runs may go to different
    /// connections; the events of one run always share one), each run's in
    /// the order given. Answers each event as [`lifecycle`](Self::lifecycle)
    /// would, in the same order.
    ///
    /// For bulk recording — an import of past runs, a batch of jobs queued
    /// at once — this is one commit instead of one per event.
    ///
    /// Like [`lifecycle`](Self::lifecycle), the events are checked and mapped
    /// when this is called, and handed to the writer when the future is
    /// first polled.
    pub fn lifecycle_all<I: IntoIterator<Item = Event>>(
        &self,
        events: I,
    ) -> impl Future<Output = Vec<Result<Written, TrackError>>> + Send + use<M, I> {
        let mut answers: Vec<Option<Result<Written, TrackError>>> = Vec::new();
        let mut valid = Vec::new();
        let mut ops = Vec::new();
        for event in events {
            match self.ready(event) {
                Err(err) => answers.push(Some(Err(err))),
                Ok(ready) => {
                    ops.push((
                        Some(ready.lane),
                        ready.work,
                        OnTransient::Retry,
                        Some(ready.change),
                    ));
                    valid.push((answers.len(), ready.key, ready.kind, ready.cleanup));
                    answers.push(None);
                }
            }
        }
        let tracker = self.clone();
        async move {
            let outcomes = tracker.inner.writer.write_all(ops).await;
            for ((slot, key, kind, cleanup), outcome) in valid.into_iter().zip(outcomes) {
                answers[slot] = Some(tracker.answer(key, kind, cleanup, outcome));
            }
            answers
                .into_iter()
                .map(|a| a.expect("every event answered"))
                .collect()
        }
    }

    /// What `lifecycle` answers for an event the writer reports on.
    fn answer(
        &self,
        key: String,
        kind: EventKind,
        cleanup: bool,
        outcome: Outcome,
    ) -> Result<Written, TrackError> {
        match outcome {
            Outcome::Done(rows) => Ok(if cleanup && rows == 0 {
                Written::NoRun
            } else {
                Written::Stored
            }),
            Outcome::Queued => Ok(Written::Queued),
            Outcome::Dropped => {
                let err = TrackError::QueueFull {
                    key,
                    kind,
                    capacity: self.inner.options.queue_capacity,
                };
                tracing::error!(error = %err, "tasktrail: lifecycle event dropped");
                Err(err)
            }
            Outcome::Refused(source) | Outcome::Unavailable(source) => {
                let err = TrackError::Refused { key, kind, source };
                tracing::error!(error = %err, "tasktrail: lifecycle event refused");
                Err(err)
            }
        }
    }

    /// Writes `event` now, without the retry queue: a database error
    /// (unreachable or refused) is returned as it is. The write still goes
    /// through the tracker's writer, so it is committed with whatever else
    /// is being written and keeps its place behind the run's earlier events.
    pub async fn write(&self, event: &Event) -> Result<Written, DbErr> {
        self.validate(event)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let (work, change, cleanup) = self.work(event);
        let outcome = self
            .inner
            .writer
            .record(
                Some(lane_of(&event.key)),
                work,
                Some(change),
                OnTransient::Fail,
            )
            .await;
        match outcome {
            Outcome::Done(rows) if cleanup && rows == 0 => Ok(Written::NoRun),
            Outcome::Done(_) => Ok(Written::Stored),
            Outcome::Refused(err) | Outcome::Unavailable(err) => Err(err),
            Outcome::Queued | Outcome::Dropped => Err(DbErr::Custom(
                "the database is unreachable; the event was not written".into(),
            )),
        }
    }

    /// The change `event` records in the feed; its `updated_at` (if
    /// mapped) is the value at `stamp` among the op's bound values.
    fn change(&self, event: &Event, actor: Option<String>, stamp: Option<usize>) -> Box<Change> {
        let encode = match M::binding(Role::UpdatedAt).map(|b| b.encode) {
            Some(Encode::Time(f)) => Some(f),
            _ => None,
        };
        Box::new(Change {
            scope: self.inner.scope.clone(),
            run_key: event.key.clone(),
            kind: event.kind.name(),
            instance: self.inner.instance.clone(),
            actor,
            stamp: stamp
                .zip(encode)
                .map(|(index, encode)| Stamp { index, encode }),
        })
    }

    /// The writer's work for `event`, the change it records, and whether it
    /// is a `cleanup` (which writes nothing for a run that does not exist).
    fn work(&self, event: &Event) -> (Work, Box<Change>, bool) {
        self.check_setup();
        let (prepared, actor) = self.prepare(event);
        let updated = M::binding(Role::UpdatedAt).map(|b| b.column.as_str());
        let updated_at = updated.and_then(|name| {
            prepared
                .cells
                .iter()
                .position(|c| c.column.as_str() == name)
        });
        let backend = self.inner.db.get_database_backend();
        if prepared.status.is_some() {
            // One template per shape: its SQL is rendered once per row count.
            let mut templates = self
                .inner
                .templates
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let template = templates
                .get_or_insert(&prepared, || {
                    let Some(one) = prepared.upsert_rows(backend, 1) else {
                        unreachable!("an event with a status is an upsert")
                    };
                    let values = prepared.upsert_values();
                    debug_assert_eq!(
                        backend.build(&one).values.as_ref().map(|v| v.0.as_slice()),
                        Some(values.as_slice()),
                        "the template binds the values in column order"
                    );
                    // The SQL depends only on the shape: the template keeps
                    // its own copy of this first event to render it.
                    let model = prepared.clone();
                    Template::new(backend, values.len(), move |rows| {
                        let stmt = model.upsert_rows(backend, rows).expect("an upsert");
                        backend.build(&stmt).sql
                    })
                })
                .expect("an event with a status has a shape");
            drop(templates);
            let values = prepared.into_upsert_values();
            // The key and the status come first.
            let change = self.change(event, actor, updated_at.map(|i| i + 2));
            return (Work::Row { template, values }, change, false);
        }
        let (stmt, stamp) = match prepared.statement(backend) {
            Statement::Upsert(stmt) => (backend.build(&stmt), updated_at.map(|i| i + 2)),
            // The `SET` values, less those only an insert writes.
            Statement::Update(stmt) => (
                backend.build(&stmt),
                updated_at.map(|i| {
                    prepared.cells[..i]
                        .iter()
                        .filter(|c| c.class != Class::InsertOnly)
                        .count()
                }),
            ),
        };
        let change = self.change(event, actor, stamp);
        (
            Work::Statement(stmt),
            change,
            event.kind == EventKind::Cleanup,
        )
    }

    /// Warns once if the database is set up in a way that makes the tracker
    /// slow (a SQLite rollback journal).
    fn check_setup(&self) {
        let checked = self.inner.setup_checked.swap(true, Ordering::Relaxed);
        #[cfg(feature = "sqlite")]
        if !checked && let Ok(rt) = tokio::runtime::Handle::try_current() {
            let db = self.inner.db.clone();
            rt.spawn(async move {
                if let Some(warning) = crate::sqlite::slow_setup(&db).await {
                    tracing::warn!("{warning}");
                }
            });
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = checked;
    }

    /// Waits until every event recorded so far is committed (the retry
    /// queue is empty), at most `timeout`; returns whether it is.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.inner.writer.flush(timeout).await
    }

    fn validate(&self, event: &Event) -> Result<(), TrackError> {
        if event.key.is_empty() {
            return Err(TrackError::EmptyKey);
        }
        if let Some(reason) = crate::lifecycle::event::key_problem(&event.key) {
            return Err(TrackError::InvalidKey {
                key: crate::lifecycle::event::key_excerpt(&event.key),
                reason,
            });
        }
        if let Some((name, _)) = event
            .extras
            .iter()
            .find(|(name, _)| M::extra(name).is_none())
        {
            return Err(TrackError::UnknownExtra {
                key: event.key.clone(),
                name: name.clone(),
            });
        }
        Ok(())
    }

    /// Runs a formatter hook, falling back to `default` if it panics.
    fn hook<T>(&self, name: &str, hook: impl FnOnce() -> T, default: impl FnOnce() -> T) -> T {
        match catch_unwind(AssertUnwindSafe(hook)) {
            Ok(v) => v,
            Err(panic) => {
                bump(&self.inner.counters.hook_errors);
                tracing::error!(hook = name, panic = %panic_message(&*panic),
                    "tasktrail: formatter hook panicked; the default was used");
                default()
            }
        }
    }

    fn payload(&self, kind: PayloadKind, value: &serde_json::Value) -> serde_json::Value {
        let mut value = self.hook(
            "format_payload",
            || M::format_payload(kind, value.clone()),
            || value.clone(),
        );
        redact(&mut value, M::OPTIONS.redact);
        let cap = self
            .inner
            .options
            .max_payload_bytes
            .unwrap_or(M::OPTIONS.max_payload_bytes);
        cap_payload(value, cap)
    }

    /// Maps an event onto the entity's columns, running the hooks; with
    /// the label of the event's actor.
    fn prepare(&self, event: &Event) -> (Prepared<M>, Option<String>) {
        let key = M::binding(Role::Key).expect("the derive guarantees a key column");
        let status = M::binding(Role::Status).expect("the derive guarantees a status column");
        let Encode::Key(encode_key) = key.encode else {
            unreachable!("the key column has a key encoder")
        };
        let mut p = Prepared::<M> {
            key_column: key.column,
            key_value: encode_key(&event.key),
            status: event.kind.status().map(|s| (status.column, s)),
            cells: Vec::new(),
        };
        let at = event.at;
        let time = move |e: Encode| {
            if let Encode::Time(f) = e {
                Some(f(at))
            } else {
                None
            }
        };

        p.push(Role::UpdatedAt, Class::Identity, time);

        if event.kind == EventKind::Cleanup {
            p.push(Role::Cleaned, Class::Identity, |e| match e {
                Encode::Flag(f) => Some(f(true)),
                _ => None,
            });
            return (p, None);
        }

        p.push(Role::CreatedAt, Class::InsertOnly, time);
        match event.kind {
            EventKind::Start => p.push(Role::StartedAt, Class::KeepFirst, time),
            EventKind::Complete => p.push(Role::CompletedAt, Class::State, time),
            EventKind::Fail => p.push(Role::FailedAt, Class::State, time),
            _ => {}
        }

        // A late or repeated `create` fills in what is missing; it never
        // replaces what an earlier event recorded.
        let identity = if event.kind == EventKind::Create {
            Class::Fill
        } else {
            Class::Identity
        };
        if let Some(name) = &event.name {
            p.push(Role::Name, identity, text_cell(name));
        }
        let mut actor_label = None;
        if let Some(actor) = &event.actor {
            let actor = actor.as_ref().map(|a| a as &dyn Actor);
            let label = self.hook(
                "format_user",
                || M::format_user(actor),
                || default_format_user(actor),
            );
            p.push(Role::User, identity, text_cell(&label));
            actor_label = Some(crate::writer::feed::actor_label(&label));
        }
        if let Some(retry_of) = &event.retry_of {
            p.push(Role::RetryOf, Class::Fill, text_cell(retry_of));
        }
        if let Some(objects) = &event.objects {
            let objects: Vec<&dyn TrackedObject> =
                objects.iter().map(|o| o as &dyn TrackedObject).collect();
            let label = self.hook(
                "format_objects",
                || M::format_objects(&objects),
                || default_format_objects(&objects),
            );
            p.push(Role::Objects, identity, text_cell(&label));
        }
        for (role, kind, value) in [
            (Role::Args, PayloadKind::Args, &event.args),
            (Role::Kwargs, PayloadKind::Kwargs, &event.kwargs),
            (Role::Result, PayloadKind::Result, &event.result),
        ] {
            if let Some(value) = value {
                let value = self.payload(kind, value);
                let class = if role == Role::Result {
                    Class::State
                } else {
                    identity
                };
                p.push(role, class, |e| match e {
                    Encode::Payload(f) => Some(f(&value)),
                    _ => None,
                });
            }
        }

        let progress_text = event.progress.as_ref().and_then(|pr| pr.text());
        let message = match (&event.message, progress_text) {
            (Some(m), _) => Some(m.as_str()),
            (None, Some(t)) if M::OPTIONS.progress_sets_message => Some(t),
            _ => None,
        };
        if let Some(message) = message {
            p.push(Role::Message, Class::State, text_cell(message));
        }
        if let Some(progress) = &event.progress {
            p.push(Role::Progress, Class::State, |e| match e {
                Encode::Progress(f) => Some(f(progress)),
                _ => None,
            });
        }

        for (name, value) in &event.extras {
            if let Some(field) = M::extra(name) {
                p.cells.push(Cell {
                    column: field.column,
                    value: value.clone(),
                    class: identity,
                });
            }
        }

        // An insert must give every required (non-Option) mapped column a value.
        for role in Role::ALL {
            if matches!(role, Role::Key | Role::Status) {
                continue;
            }
            if let Some(binding) = M::binding(role)
                && binding.required
                && !p
                    .cells
                    .iter()
                    .any(|c| c.column.as_str() == binding.column.as_str())
            {
                p.cells.push(Cell {
                    column: binding.column,
                    value: placeholder(&binding, at),
                    class: Class::InsertOnly,
                });
            }
        }
        // Rule 8: every value is storable on every backend (no NUL).
        for cell in &mut p.cells {
            let value = std::mem::replace(&mut cell.value, sea_orm::Value::Bool(None));
            cell.value = crate::storable::value(value);
        }
        (p, actor_label)
    }
}
