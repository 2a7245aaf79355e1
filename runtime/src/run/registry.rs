//! Task kinds by name, so a stored run can be run again from its stored
//! arguments.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Role, TrackingConfig, column_value, find_one, value_text};
use crate::hooks::ObjectInfo;
use crate::lifecycle::{RunBuilder, Status, Tracker};
use crate::run::{SpawnError, Spawned, TaskContext};

/// A kind of task the tracker can run again: a name, serde-typed arguments
/// and the work.
///
/// ```
/// use tasktrail::{Task, TaskContext};
///
/// struct ImportBooks;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ImportArgs { file: String }
///
/// impl Task for ImportBooks {
///     const NAME: &'static str = "import_books";
///     type Args = ImportArgs;
///     type Output = usize;
///     type Error = std::io::Error;
///
///     async fn run(&self, ctx: TaskContext, args: ImportArgs) -> Result<usize, std::io::Error> {
///         ctx.message(format!("reading {}", args.file));
///         Ok(3)
///     }
/// }
/// ```
pub trait Task: Send + Sync + 'static {
    /// The name runs of this kind are recorded under (the `name` column).
    const NAME: &'static str;
    /// The arguments, stored as JSON in the `args` column.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The `Ok` value, stored as the result.
    type Output: Serialize + Send + 'static;
    /// The error, whose message is stored when the run fails.
    type Error: fmt::Display + Send + 'static;

    /// The objects a run with `args` touches; they are locked while it runs.
    fn objects(&self, args: &Self::Args) -> Vec<ObjectInfo> {
        let _ = args;
        Vec::new()
    }

    /// Does the work.
    fn run(
        &self,
        ctx: TaskContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// A registered kind, with its types erased.
pub(crate) trait ErasedTask: Send + Sync {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Checks `args` and returns the objects to lock.
    fn check(&self, args: &serde_json::Value) -> Result<Vec<ObjectInfo>, String>;
    fn start(
        self: Arc<Self>,
        ctx: TaskContext,
        args: serde_json::Value,
    ) -> BoxFuture<'static, Result<serde_json::Value, String>>;
}

struct Kind<K>(K);

impl<K: Task> ErasedTask for Kind<K> {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn check(&self, args: &serde_json::Value) -> Result<Vec<ObjectInfo>, String> {
        let args = K::Args::deserialize(args).map_err(|e| e.to_string())?;
        Ok(self.0.objects(&args))
    }

    fn start(
        self: Arc<Self>,
        ctx: TaskContext,
        args: serde_json::Value,
    ) -> BoxFuture<'static, Result<serde_json::Value, String>> {
        async move {
            let args = K::Args::deserialize(args).map_err(|e| e.to_string())?;
            match self.0.run(ctx, args).await {
                Ok(value) => Ok(crate::hooks::to_json_lenient(&value)),
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
    }
}

use serde::Deserialize as _;

/// A kind whose runs execute elsewhere — on the workers of a job queue
/// (the `apalis` feature's `Tracker::enqueue_retries`) —
/// so a retry enqueues a new job there instead of spawning one here.
pub(crate) trait Enqueue: Send + Sync {
    /// Checks `args` and enqueues a new job with them; answers the key of
    /// the run the job's first attempt will record.
    fn enqueue(&self, args: serde_json::Value) -> BoxFuture<'static, Result<String, EnqueueError>>;
}

/// Why a job could not be enqueued.
#[cfg_attr(not(feature = "apalis"), allow(dead_code))]
pub(crate) enum EnqueueError {
    /// The arguments do not fit the job's type.
    BadArgs(String),
    /// The queue refused or could not be reached.
    Push(String),
}

/// Why a run could not be started by its kind's name
/// ([`Tracker::start_by_name`]).
#[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
#[derive(Debug)]
pub(crate) enum StartError {
    /// No kind of this name is registered in this process.
    NotRegistered,
    /// The arguments do not fit the kind's `Args` (serde's message).
    BadArgs(String),
    /// The run could not be spawned (a lock conflict, shutdown, …).
    Spawn(SpawnError),
    /// The job queue refused the job or could not be reached.
    Enqueue(String),
    /// The job was enqueued but its run could not be recorded.
    Record(String),
}

/// Why a run could not be retried. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    /// No run has this key.
    #[error("no run has the key `{0}`")]
    NotFound(String),
    /// The entity maps no `name` or no `args` column, so runs cannot be
    /// retried.
    #[error("runs cannot be retried: the tracked entity maps no `{0}` column")]
    Unmapped(&'static str),
    /// The stored run's task name is not a registered kind.
    #[error(
        "run `{key}` is a `{name}` run, and no task kind `{name}` is registered; register it with tracker.register(…)"
    )]
    UnknownKind {
        /// The run's key.
        key: String,
        /// Its stored task name.
        name: String,
    },
    /// The stored arguments no longer fit the kind's `Args` type.
    #[error("run `{key}`'s stored arguments no longer fit `{name}`'s arguments: {message}")]
    BadArgs {
        /// The run's key.
        key: String,
        /// Its task name.
        name: String,
        /// serde's message.
        message: String,
    },
    /// The run has not ended: running it again now would run its task twice.
    #[error(
        "run `{key}` has not ended ({status}); only a run that has ended can be retried (cancel it first)"
    )]
    NotEnded {
        /// The run's key.
        key: String,
        /// Its status.
        status: Status,
    },
    /// An earlier retry of the run is pending or running (in this process
    /// or another one sharing the database).
    #[error(
        "run `{key}` is already being retried by run `{retry}`, which has not ended; retry it again once that one has"
    )]
    AlreadyRetrying {
        /// The run's key.
        key: String,
        /// The retry that has not ended.
        retry: String,
    },
    /// The retry could not be spawned (a lock conflict, shutdown, …).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The run's kind runs on a job queue's workers (a kind registered
    /// with an enqueuer): [`Tracker::retry`] runs kinds of this process;
    /// [`Tracker::retry_or_enqueue`] enqueues the job again.
    #[error(
        "run `{key}` is a `{name}` run, which runs on a job queue's workers; retry it with retry_or_enqueue, which enqueues it again"
    )]
    Remote {
        /// The run's key.
        key: String,
        /// Its task name.
        name: String,
    },
    /// The job queue refused the new job or could not be reached (nothing
    /// was enqueued or recorded).
    #[error("the retry of run `{key}` could not be enqueued: {message}")]
    Enqueue {
        /// The run's key.
        key: String,
        /// What the queue answered.
        message: String,
    },
    /// Reading the stored run failed.
    #[error("reading run `{key}` failed: {source}")]
    Db {
        /// The run's key.
        key: String,
        /// The database error.
        #[source]
        source: DbErr,
    },
}

impl<M: TrackingConfig> Tracker<M> {
    /// Registers a task kind under [`Task::NAME`], replacing any kind of that
    /// name; runs of it can then be submitted and retried.
    pub fn register<K: Task>(&self, kind: K) -> &Self {
        self.runs()
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(K::NAME.to_owned(), Arc::new(Kind(kind)));
        self
    }

    /// Retries of runs named `name` enqueue through `enqueue`.
    #[cfg_attr(not(feature = "apalis"), allow(dead_code))]
    pub(crate) fn register_remote(&self, name: &str, enqueue: Arc<dyn Enqueue>) {
        self.runs()
            .remote
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), enqueue);
    }

    fn remote_kind(&self, name: &str) -> Option<Arc<dyn Enqueue>> {
        self.runs()
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn kind(&self, name: &str) -> Option<Arc<dyn ErasedTask>> {
        self.runs()
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The names of the kinds a run can be started of from their name
    /// (the dashboard's start form): the kinds registered in this process
    /// and those whose runs are enqueued on a job queue, sorted.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) fn startable_kinds(&self) -> Vec<String> {
        let runs = self.runs();
        let mut names: Vec<String> = runs
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.extend(
            runs.remote
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        names.sort();
        names.dedup();
        names
    }

    /// Starts a run of the kind `name` with `args` given as JSON, checked
    /// by deserialising them into the kind's `Args`: spawned here for a
    /// kind registered here, enqueued (and recorded `pending`) for a kind
    /// whose runs execute on a job queue's workers. Answers the new run's
    /// key.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) async fn start_by_name(
        &self,
        name: &str,
        args: serde_json::Value,
        actor: Option<&str>,
    ) -> Result<String, StartError> {
        if let Some(remote) = self.remote_kind(name) {
            let new_key = match remote.enqueue(args.clone()).await {
                Ok(new_key) => new_key,
                Err(EnqueueError::BadArgs(message)) => return Err(StartError::BadArgs(message)),
                Err(EnqueueError::Push(message)) => return Err(StartError::Enqueue(message)),
            };
            let mut create = crate::Event::create(&new_key).name(name);
            create.args = Some(args);
            if let Some(actor) = actor {
                create = create.actor(actor);
            }
            self.lifecycle(create)
                .await
                .map_err(|err| StartError::Record(err.to_string()))?;
            return Ok(new_key);
        }
        let kind = self.kind(name).ok_or(StartError::NotRegistered)?;
        let objects = kind.check(&args).map_err(StartError::BadArgs)?;
        let mut builder = self.begin(name);
        builder.event.args = Some(args.clone());
        if let Some(actor) = actor {
            builder = builder.actor(actor);
        }
        if !objects.is_empty() {
            builder = builder.objects(objects);
        }
        let spawned = builder
            .spawn(move |ctx| kind.start(ctx, args))
            .await
            .map_err(StartError::Spawn)?;
        Ok(spawned.key().to_owned())
    }

    /// Spawns a run of the registered kind `K` with `args`; shorthand for
    /// `tracker.begin(K::NAME).submit::<K>(args)`.
    pub async fn submit<K: Task>(
        &self,
        args: K::Args,
    ) -> Result<Spawned<K::Output, K::Error>, SpawnError> {
        self.begin(K::NAME).submit::<K>(args).await
    }

    /// Runs the stored run `key` again: same task kind, same stored
    /// arguments, same actor. The new run records `retry_of = key` (when the
    /// entity maps `retry_of`) and gets a new key.
    ///
    /// Only a run that has ended can be retried ([`RetryError::NotEnded`]),
    /// and only one retry of it at a time: while a retry is pending or
    /// running, another one is refused ([`RetryError::AlreadyRetrying`]),
    /// even when both are asked at once or by two instances sharing the
    /// database. The guard is an object lock on "retry of `key`", taken
    /// with the retry's own objects and held until the retry ends (or, if
    /// its process dies, until the lock lapses).
    pub async fn retry(&self, key: &str) -> Result<Spawned<serde_json::Value, String>, RetryError> {
        self.retry_with(key, |builder| builder).await
    }

    /// [`retry`](Self::retry), adjusting the new run first (another actor, a
    /// key, …).
    pub async fn retry_with(
        &self,
        key: &str,
        adjust: impl FnOnce(RunBuilder<M>) -> RunBuilder<M>,
    ) -> Result<Spawned<serde_json::Value, String>, RetryError> {
        self.retry_gated(key, adjust, None).await
    }

    /// Runs the stored run `key` again wherever its kind runs, and answers
    /// the new run's key: a kind registered here is spawned here, as
    /// [`retry`](Self::retry) does; a kind whose runs execute on a job
    /// queue's workers (the `apalis` feature) is enqueued there again, and
    /// its new run is recorded `pending` with `retry_of = key` until a
    /// worker takes the job. This is what the dashboard's *Retry* calls.
    ///
    /// For an enqueued retry, "one retry at a time" is checked against the
    /// stored runs: a run whose `retry_of` is `key` and that has not ended
    /// refuses the retry ([`RetryError::AlreadyRetrying`]).
    pub async fn retry_or_enqueue(&self, key: &str) -> Result<String, RetryError> {
        self.retry_anywhere(key, false).await
    }

    /// [`retry_or_enqueue`](Self::retry_or_enqueue); `in_bulk` (the
    /// dashboard's "retry every matching run"): a local retry in a tracker
    /// without `max_concurrent` waits for one of
    /// [`BULK_RETRY_CONCURRENCY`](super::BULK_RETRY_CONCURRENCY) slots as
    /// `pending`; with it, its limit applies.
    pub(crate) async fn retry_anywhere(
        &self,
        key: &str,
        in_bulk: bool,
    ) -> Result<String, RetryError> {
        let stored = self.ended_run(key).await?;
        if let Some(remote) = self.remote_kind(&stored.name) {
            return self.enqueue_retry(key, stored, remote).await;
        }
        let gate = if in_bulk {
            let runs = self.runs();
            runs.semaphore.is_none().then(|| runs.bulk_gate.clone())
        } else {
            None
        };
        let spawned = self.retry_stored(key, stored, |b| b, gate).await?;
        Ok(spawned.key().to_owned())
    }

    /// The stored run `key`, refused unless it has ended.
    async fn ended_run(&self, key: &str) -> Result<StoredRun, RetryError> {
        let stored = self.stored_run(key).await?;
        if !stored.status.is_terminal() {
            return Err(RetryError::NotEnded {
                key: key.to_owned(),
                status: stored.status,
            });
        }
        Ok(stored)
    }

    async fn enqueue_retry(
        &self,
        key: &str,
        stored: StoredRun,
        remote: Arc<dyn Enqueue>,
    ) -> Result<String, RetryError> {
        let bad_args = |message: String| RetryError::BadArgs {
            key: key.to_owned(),
            name: stored.name.clone(),
            message,
        };
        if let Some(problem) = lossy(&stored.args) {
            return Err(bad_args(problem));
        }
        if let Some(retry) = self.unended_retry_of(key).await? {
            return Err(RetryError::AlreadyRetrying {
                key: key.to_owned(),
                retry,
            });
        }
        let new_key = match remote.enqueue(stored.args.clone()).await {
            Ok(new_key) => new_key,
            Err(EnqueueError::BadArgs(message)) => return Err(bad_args(message)),
            Err(EnqueueError::Push(message)) => {
                return Err(RetryError::Enqueue {
                    key: key.to_owned(),
                    message,
                });
            }
        };
        // The new run, pending until a worker takes the job. A worker that
        // is faster than this write has started it already: a late
        // `create` never moves a run back (rule 4), and it adds the link.
        let mut create = crate::Event::create(&new_key)
            .name(&stored.name)
            .retry_of(key);
        create.args = Some(stored.args);
        if let Some(user) = &stored.user {
            create = create.actor(user.as_str());
        }
        self.lifecycle(create).await.map_err(|err| RetryError::Db {
            key: new_key.clone(),
            source: match err {
                crate::TrackError::Refused { source, .. } => source,
                other => DbErr::Custom(other.to_string()),
            },
        })?;
        Ok(new_key)
    }

    /// A run whose `retry_of` is `key` and that has not ended (when the
    /// entity maps `retry_of`).
    async fn unended_retry_of(&self, key: &str) -> Result<Option<String>, RetryError> {
        let col = |role: Role| M::binding(role).map(|b| b.column);
        let Some(retry_col) = col(Role::RetryOf) else {
            return Ok(None);
        };
        let status_col = col(Role::Status).expect("the derive guarantees a status column");
        let (key_col, _) = crate::config::key_encoder::<M>();
        let rows = crate::config::find_all(M::Entity::find().filter(retry_col.eq(key)), self.db())
            .await
            .map_err(|source| RetryError::Db {
                key: key.to_owned(),
                source,
            })?;
        Ok(rows.iter().find_map(|row| {
            let status = M::decode_status(column_value::<M::Entity>(row, status_col))
                .unwrap_or(Status::Unknown);
            (!status.is_terminal())
                .then(|| value_text(column_value::<M::Entity>(row, key_col)).unwrap_or_default())
        }))
    }

    async fn retry_gated(
        &self,
        key: &str,
        adjust: impl FnOnce(RunBuilder<M>) -> RunBuilder<M>,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> Result<Spawned<serde_json::Value, String>, RetryError> {
        let stored = self.ended_run(key).await?;
        if self.remote_kind(&stored.name).is_some() {
            return Err(RetryError::Remote {
                key: key.to_owned(),
                name: stored.name,
            });
        }
        self.retry_stored(key, stored, adjust, gate).await
    }

    async fn retry_stored(
        &self,
        key: &str,
        stored: StoredRun,
        adjust: impl FnOnce(RunBuilder<M>) -> RunBuilder<M>,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> Result<Spawned<serde_json::Value, String>, RetryError> {
        let kind = self
            .kind(&stored.name)
            .ok_or_else(|| RetryError::UnknownKind {
                key: key.to_owned(),
                name: stored.name.clone(),
            })?;
        if let Some(problem) = lossy(&stored.args) {
            return Err(RetryError::BadArgs {
                key: key.to_owned(),
                name: stored.name.clone(),
                message: problem,
            });
        }
        let objects = kind
            .check(&stored.args)
            .map_err(|message| RetryError::BadArgs {
                key: key.to_owned(),
                name: stored.name.clone(),
                message,
            })?;
        let mut builder = self.begin(&stored.name).retry_of(key);
        builder.event.args = Some(stored.args.clone());
        if let Some(user) = &stored.user {
            builder = builder.actor(user.as_str());
        }
        if !objects.is_empty() {
            builder = builder.objects(objects);
        }
        let mut builder = adjust(builder);
        let guard = retry_guard(key);
        builder.guards.push(guard.clone());
        builder.gate = gate;
        let args = stored.args;
        match builder.spawn(move |ctx| kind.start(ctx, args)).await {
            Ok(spawned) => Ok(spawned),
            Err(SpawnError::Conflict(conflicts)) => {
                match conflicts.iter().find(|c| c.object == guard) {
                    Some(earlier) => Err(RetryError::AlreadyRetrying {
                        key: key.to_owned(),
                        retry: earlier.run_key.clone(),
                    }),
                    None => Err(RetryError::Spawn(SpawnError::Conflict(conflicts))),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn stored_run(&self, key: &str) -> Result<StoredRun, RetryError> {
        let col = |role: Role| M::binding(role).map(|b| b.column);
        let (key_col, encode_key) = crate::config::key_encoder::<M>();
        let name_col = col(Role::Name).ok_or(RetryError::Unmapped("name"))?;
        let args_col = col(Role::Args).ok_or(RetryError::Unmapped("args"))?;
        let select = M::Entity::find().filter(key_col.eq(encode_key(key)));
        let row = find_one(select, self.db())
            .await
            .map_err(|source| RetryError::Db {
                key: key.to_owned(),
                source,
            })?
            .ok_or_else(|| RetryError::NotFound(key.to_owned()))?;
        let get = |col| column_value::<M::Entity>(&row, col);
        let name = value_text(get(name_col)).unwrap_or_default();
        let args = match get(args_col) {
            sea_orm::Value::Json(Some(json)) => *json,
            // A text column holds the JSON as text.
            sea_orm::Value::String(Some(text)) => {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            }
            _ => serde_json::Value::Null,
        };
        let user = col(Role::User)
            .and_then(|c| value_text(get(c)))
            .filter(|u| !u.is_empty() && *u != crate::hooks::ANONYMOUS);
        let status_col = col(Role::Status).expect("the derive guarantees a status column");
        let status = M::decode_status(get(status_col)).unwrap_or(Status::Unknown);
        Ok(StoredRun {
            name,
            args,
            user,
            status,
        })
    }
}

/// The lock key that holds "a retry of run `key` is pending or running" (a
/// long key by its bounded form, as the audit trail stores it: the audit's
/// `MAX_TARGET_BYTES`, which a unit test there pins to this).
fn retry_guard(key: &str) -> String {
    format!(
        "tasktrail/retry-of/{}",
        crate::storable::bounded_key(key, RETRY_GUARD_TARGET_BYTES)
    )
}

/// How much of a run key the retry guard keeps before hashing the rest.
pub(crate) const RETRY_GUARD_TARGET_BYTES: usize = 200;

/// Why stored arguments cannot be run again as they are: redaction and the
/// size cap keep only a trace of the original values.
fn lossy(args: &serde_json::Value) -> Option<String> {
    use crate::hooks::{REDACTED, TRUNCATED_KEY};
    match args {
        serde_json::Value::String(s) if s == REDACTED => {
            Some("they were stored redacted (`[redacted]`), so the original values are gone".into())
        }
        serde_json::Value::Object(map) if map.contains_key(TRUNCATED_KEY) => Some(
            "they were stored truncated (over max_payload_bytes), so they are incomplete".into(),
        ),
        serde_json::Value::Object(map) => map.values().find_map(lossy),
        serde_json::Value::Array(items) => items.iter().find_map(lossy),
        _ => None,
    }
}

struct StoredRun {
    name: String,
    args: serde_json::Value,
    user: Option<String>,
    status: Status,
}

impl<M: TrackingConfig> RunBuilder<M> {
    /// Spawns a run of the registered kind `K` with `args` (recorded as the
    /// run's arguments, and its objects locked). Fails with
    /// [`SpawnError::UnknownKind`] if `K` is not registered.
    pub async fn submit<K: Task>(
        mut self,
        args: K::Args,
    ) -> Result<Spawned<K::Output, K::Error>, SpawnError> {
        let registered = self
            .tracker
            .kind(K::NAME)
            .ok_or_else(|| SpawnError::UnknownKind(K::NAME.to_owned()))?;
        let kind = registered
            .as_any()
            .downcast::<Kind<K>>()
            .map_err(|_| SpawnError::UnknownKind(K::NAME.to_owned()))?;
        self.event.name = Some(K::NAME.to_owned());
        self = self.args(&args);
        let objects = kind.0.objects(&args);
        if !objects.is_empty() {
            let mut all = self.event.objects.take().unwrap_or_default();
            all.extend(objects);
            self.event.objects = Some(all);
        }
        self.spawn(move |ctx| async move { kind.0.run(ctx, args).await })
            .await
    }
}
