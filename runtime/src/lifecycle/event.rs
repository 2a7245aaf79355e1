//! Lifecycle events: what happened to a run, with the values it carries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::hooks::{Actor, ActorInfo, ObjectInfo, TrackedObject, to_json_lenient};
use crate::lifecycle::{Progress, Status};

/// The lifecycle events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The run exists: `pending`. Carries name, user, objects, args.
    Create,
    /// The run started: `in_progress`, sets `started_at`.
    Start,
    /// The run advanced: `in_progress`, sets progress.
    Progress,
    /// The run finished: `success`, sets `completed_at` and the result.
    Complete,
    /// The run failed: `failed`, sets `failed_at` and the error message.
    Fail,
    /// The run was cancelled: `cancelled`.
    Cancel,
    /// The run's resources were cleaned up: sets only the cleaned flag.
    Cleanup,
    /// The run's process stopped heartbeating, or the run outlived its
    /// maximum duration: `interrupted`. Recorded by the recovery sweep.
    Interrupt,
}

impl EventKind {
    /// The status the event moves a run to; `None` for `cleanup`.
    pub const fn status(self) -> Option<Status> {
        match self {
            EventKind::Create => Some(Status::Pending),
            EventKind::Start | EventKind::Progress => Some(Status::InProgress),
            EventKind::Complete => Some(Status::Success),
            EventKind::Fail => Some(Status::Failed),
            EventKind::Cancel => Some(Status::Cancelled),
            EventKind::Interrupt => Some(Status::Interrupted),
            EventKind::Cleanup => None,
        }
    }

    /// The event's name: `create`, `start`, …
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Start => "start",
            EventKind::Progress => "progress",
            EventKind::Complete => "complete",
            EventKind::Fail => "fail",
            EventKind::Cancel => "cancel",
            EventKind::Cleanup => "cleanup",
            EventKind::Interrupt => "interrupt",
        }
    }

    /// `true` for the events that end a run: complete, fail, cancel and
    /// interrupt.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::Complete | EventKind::Fail | EventKind::Cancel | EventKind::Interrupt
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest run key, in bytes (UTF-8). Keys are indexed on every
/// backend, and a unique index entry must stay well under PostgreSQL's
/// ~2.7 KB btree limit and MySQL's 3,072-byte index prefix.
pub const MAX_KEY_BYTES: usize = 512;

/// What is wrong with a run key: empty, longer than [`MAX_KEY_BYTES`], or
/// holding a NUL character (which PostgreSQL cannot store in text).
pub(crate) fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("a run key must not be empty")
    } else if key.len() > MAX_KEY_BYTES {
        Some("a run key holds at most 512 bytes")
    } else if key.contains('\0') {
        Some("a run key must not contain a NUL character")
    } else {
        None
    }
}

/// The start of `key` for an error message: at most 64 characters.
pub(crate) fn key_excerpt(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_owned(),
    }
}

/// One lifecycle event for the run with key `key`.
///
/// Every value is optional: an event writes only what it carries (and what
/// the entity maps). Values are taken when the event is built — actors and
/// objects as their labels, payloads as JSON — so an event is plain data that
/// can wait in the tracker's retry queue.
///
/// ```
/// use tasktrail::{Event, Progress};
///
/// let ev = Event::create("run-1").name("import_books").actor(&"ada").args(&(1, "x"));
/// let ev = Event::progress("run-1", Progress::new(40.0).with_text("4 of 10 books"));
/// let ev = Event::fail("run-1", "disk full");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The run's key.
    pub key: String,
    /// When it happened: written to `updated_at` and to the event's timestamp.
    pub at: DateTime<Utc>,
    /// The task's name.
    pub name: Option<String>,
    /// A message for the `message` column.
    pub message: Option<String>,
    /// Progress.
    pub progress: Option<Progress>,
    /// The actor: `None` = not carried; `Some(None)` = nobody (anonymous).
    pub actor: Option<Option<ActorInfo>>,
    /// The objects touched.
    pub objects: Option<Vec<ObjectInfo>>,
    /// Arguments, as JSON before hooks, redaction and the cap.
    pub args: Option<serde_json::Value>,
    /// Keyword arguments, as JSON before hooks, redaction and the cap.
    pub kwargs: Option<serde_json::Value>,
    /// The result, as JSON before hooks, redaction and the cap.
    pub result: Option<serde_json::Value>,
    /// Values for `#[tracking(extra = "…")]` columns, by extra name.
    pub extras: Vec<(String, sea_orm::Value)>,
    /// The key of the run this run retries (role `retry_of`).
    pub retry_of: Option<String>,
}

impl Event {
    /// An event of `kind` for `key`, at the current time, carrying nothing.
    pub fn new(kind: EventKind, key: impl Into<String>) -> Self {
        Event {
            kind,
            key: key.into(),
            at: Utc::now(),
            name: None,
            message: None,
            progress: None,
            actor: None,
            objects: None,
            args: None,
            kwargs: None,
            result: None,
            extras: Vec::new(),
            retry_of: None,
        }
    }

    /// `create`: carries an anonymous actor unless [`actor`](Self::actor) says
    /// otherwise.
    pub fn create(key: impl Into<String>) -> Self {
        let mut ev = Event::new(EventKind::Create, key);
        ev.actor = Some(None);
        ev
    }

    /// `start`.
    pub fn start(key: impl Into<String>) -> Self {
        Event::new(EventKind::Start, key)
    }

    /// `progress` with `progress`.
    pub fn progress(key: impl Into<String>, progress: impl Into<Progress>) -> Self {
        let mut ev = Event::new(EventKind::Progress, key);
        ev.progress = Some(progress.into());
        ev
    }

    /// `complete`.
    pub fn complete(key: impl Into<String>) -> Self {
        Event::new(EventKind::Complete, key)
    }

    /// `fail` with the error's message.
    pub fn fail(key: impl Into<String>, error: impl fmt::Display) -> Self {
        Event::new(EventKind::Fail, key).message(error.to_string())
    }

    /// `cancel`.
    pub fn cancel(key: impl Into<String>) -> Self {
        Event::new(EventKind::Cancel, key)
    }

    /// `interrupt` with the reason as the message.
    pub fn interrupt(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Event::new(EventKind::Interrupt, key).message(reason.to_string())
    }

    /// `cleanup`.
    pub fn cleanup(key: impl Into<String>) -> Self {
        Event::new(EventKind::Cleanup, key)
    }

    /// Sets when the event happened.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }

    /// Sets the task name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the progress.
    pub fn with_progress(mut self, progress: impl Into<Progress>) -> Self {
        self.progress = Some(progress.into());
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: &(impl Actor + ?Sized)) -> Self {
        self.actor = Some(Some(ActorInfo::of(actor)));
        self
    }

    /// Sets the actor, or says there is none (stored as anonymous).
    pub fn maybe_actor(mut self, actor: Option<&dyn Actor>) -> Self {
        self.actor = Some(actor.map(ActorInfo::of));
        self
    }

    /// Sets the objects the run touches.
    pub fn objects<O: TrackedObject>(mut self, objects: impl IntoIterator<Item = O>) -> Self {
        self.objects = Some(objects.into_iter().map(|o| ObjectInfo::of(&o)).collect());
        self
    }

    /// Sets the arguments (serialised leniently to JSON now).
    pub fn args(mut self, args: &(impl Serialize + ?Sized)) -> Self {
        self.args = Some(to_json_lenient(args));
        self
    }

    /// Sets the keyword arguments (serialised leniently to JSON now).
    pub fn kwargs(mut self, kwargs: &(impl Serialize + ?Sized)) -> Self {
        self.kwargs = Some(to_json_lenient(kwargs));
        self
    }

    /// Sets the result (serialised leniently to JSON now).
    pub fn result(mut self, result: &(impl Serialize + ?Sized)) -> Self {
        self.result = Some(to_json_lenient(result));
        self
    }

    /// Records that this run retries the run `key`.
    pub fn retry_of(mut self, key: impl Into<String>) -> Self {
        self.retry_of = Some(key.into());
        self
    }

    /// Sets the value of the extra column `name` (`#[tracking(extra = "name")]`).
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<sea_orm::Value>) -> Self {
        self.extras.push((name.into(), value.into()));
        self
    }
}
