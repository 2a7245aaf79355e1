//! The lifecycle manager: events, statuses and the [`Tracker`].
//!
//! The rules it guarantees (each one pinned by the integration tests):
//!
//! 1. Get-or-create by the key column in one atomic statement (an upsert):
//!    two writers emitting for the same key never make two rows or an error.
//! 2. An event writes only the columns it carries and that are mapped; `None`
//!    never overwrites a value; `cleanup` writes only the cleaned flag and
//!    `updated_at`.
//! 3. `updated_at` is refreshed on every write; `created_at` never changes;
//!    `completed_at` / `failed_at` are set by `complete` / `fail`.
//! 4. Status never regresses: a late `create` or `progress` cannot move a run
//!    out of `in_progress` back to `pending`, nor out of a terminal status.
//! 5. A progress (with its optional text) writes the progress column only;
//!    its text replaces the message only when the entity says
//!    `#[tracking(progress_sets_message)]`; the message is written by events
//!    that carry one (`message`, `progress_with_message`); progress is
//!    clamped to 0–100.
//! 6. An `Err` is `failed`, a panic is `failed` with `panicked: <message>`,
//!    a dropped run is `cancelled`; never `success`.
//! 7. A hook that panics or a database that is down never breaks the task:
//!    the error is logged and counted, events wait in a retry queue.
//! 8. Payloads are JSON; what JSON cannot hold is stringified; size is capped
//!    with a marker; `redact` keys are replaced before storage; a NUL in text
//!    or in a JSON string is stored as U+FFFD on every backend.
//!
//! Lifecycle stands on the group-commit writer (`src/writer/mod.rs`
//! describes the layers); the spawned-run machinery (`run`) stands on
//! lifecycle, never the other way round (pinned by the tests in
//! `src/layers.rs`).

pub(crate) mod event;
mod handle;
pub(crate) mod options;
pub(crate) mod state;
mod status;
pub(crate) mod tracker;
mod write;

pub use event::{Event, EventKind, MAX_KEY_BYTES};
pub use handle::{RunBuilder, RunError, RunHandle};
pub use options::{Clock, TrackerOptions};
pub use status::{ParseStatusError, Progress, Status};
pub use tracker::{TrackError, Tracker, TrackerStats, Written};
