//! Column types a tracked field may have, one trait per kind of role.
//!
//! `#[derive(TrackingConfig)]` checks every mapped field against the trait of
//! its role, so a field of the wrong type is a compile error on that field's
//! type. The traits also convert tasktrail's values into the column's
//! [`Value`] and back. They are implemented for the types listed on each
//! trait; implement them for your own newtypes if you need to.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use sea_orm::sea_query::ValueType;
use sea_orm::{ActiveEnum, Value};

use crate::lifecycle::{Progress, Status};

/// A column that can hold a run's key (role `key`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a run's key",
    label = "the `key` column must be a `String`",
    note = "tasktrail generates keys as text (UUID v7 by default) and looks runs up by them"
)]
pub trait KeyField {
    /// The column value for `key`.
    fn encode_key(key: &str) -> Value;
}

impl KeyField for String {
    fn encode_key(key: &str) -> Value {
        Value::String(Some(key.to_owned()))
    }
}

/// A column that holds text: the roles `name`, `message`, `user` and `objects`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold this text role",
    label = "this role needs `String` or `Option<String>`"
)]
pub trait TextField {
    /// `false` for `Option<…>`: a row may be inserted without this column.
    const REQUIRED: bool;
    /// The column value for `text`.
    fn encode_text(text: &str) -> Value;
}

impl TextField for String {
    const REQUIRED: bool = true;
    fn encode_text(text: &str) -> Value {
        Value::String(Some(text.to_owned()))
    }
}

impl TextField for Option<String> {
    const REQUIRED: bool = false;
    fn encode_text(text: &str) -> Value {
        Value::String(Some(text.to_owned()))
    }
}

/// A user `ActiveEnum` used as the status column, mapped to tasktrail's
/// [`Status`] values.
///
/// ```
/// use sea_orm::entity::prelude::*;
/// use tasktrail::Status;
///
/// #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
/// #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
/// pub enum RunState {
///     #[sea_orm(string_value = "queued")]
///     Queued,
///     #[sea_orm(string_value = "running")]
///     Running,
///     #[sea_orm(string_value = "done")]
///     Done,
///     #[sea_orm(string_value = "error")]
///     Error,
///     #[sea_orm(string_value = "stopped")]
///     Stopped,
/// }
///
/// impl tasktrail::TrackedStatus for RunState {
///     fn from_status(status: Status) -> Self {
///         match status {
///             Status::Pending | Status::Unknown => Self::Queued,
///             Status::InProgress => Self::Running,
///             Status::Success => Self::Done,
///             Status::Failed | Status::Interrupted => Self::Error,
///             Status::Cancelled => Self::Stopped,
///         }
///     }
///     fn to_status(&self) -> Status {
///         match self {
///             Self::Queued => Status::Pending,
///             Self::Running => Status::InProgress,
///             Self::Done => Status::Success,
///             Self::Error => Status::Failed,
///             Self::Stopped => Status::Cancelled,
///         }
///     }
/// }
/// ```
pub trait TrackedStatus: ActiveEnum {
    /// The variant that stores `status`.
    fn from_status(status: Status) -> Self;
    /// The tasktrail status this variant means.
    fn to_status(&self) -> Status;
}

/// A column that can hold a run's status (role `status`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a run's status",
    label = "the `status` column must be `String` or an `ActiveEnum` that implements `tasktrail::TrackedStatus`"
)]
pub trait StatusField {
    /// `false` for `Option<…>`.
    const REQUIRED: bool;
    /// The column value for `status`.
    fn encode_status(status: Status) -> Value;
    /// The status a stored value means; `None` when the value means nothing to
    /// tasktrail.
    fn decode_status(value: Value) -> Option<Status>;
}

impl StatusField for String {
    const REQUIRED: bool = true;
    fn encode_status(status: Status) -> Value {
        Value::String(Some(status.as_str().to_owned()))
    }
    fn decode_status(value: Value) -> Option<Status> {
        <String as ValueType>::try_from(value)
            .ok()
            .and_then(|s| s.parse().ok())
    }
}

impl StatusField for Option<String> {
    const REQUIRED: bool = false;
    fn encode_status(status: Status) -> Value {
        String::encode_status(status)
    }
    fn decode_status(value: Value) -> Option<Status> {
        String::decode_status(value)
    }
}

impl<T: TrackedStatus> StatusField for T {
    const REQUIRED: bool = true;
    fn encode_status(status: Status) -> Value {
        T::from_status(status).to_value().into()
    }
    fn decode_status(value: Value) -> Option<Status> {
        let raw = <T::Value as ValueType>::try_from(value).ok()?;
        T::try_from_value(&raw).ok().map(|v| v.to_status())
    }
}

impl<T: TrackedStatus> StatusField for Option<T> {
    const REQUIRED: bool = false;
    fn encode_status(status: Status) -> Value {
        T::encode_status(status)
    }
    fn decode_status(value: Value) -> Option<Status> {
        T::decode_status(value)
    }
}

/// A column that can hold progress (role `progress`): a number (the percent,
/// 0–100; integers round it), text (the progress's `Display`: `"42%"`,
/// `"42.9%"`, or `"42.9% step 3 of 7"` with a progress text) or JSON
/// (`{"percent": 42.857…, "text": "step 3 of 7"}`). See
/// [`crate::Progress`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a run's progress",
    label = "`progress` must be a number (`f32`, `f64`, `i16`, `i32`, `i64`), text (`String`) or `Json`, optionally in `Option`"
)]
pub trait ProgressField {
    /// `false` for `Option<…>`.
    const REQUIRED: bool;
    /// The column value for `progress` (already clamped to 0–100).
    fn encode_progress(progress: &Progress) -> Value;
}

macro_rules! progress_number {
    ($($ty:ty => $conv:expr),* $(,)?) => {$(
        impl ProgressField for $ty {
            const REQUIRED: bool = true;
            fn encode_progress(progress: &Progress) -> Value {
                let f: fn(f64) -> $ty = $conv;
                f(progress.percent()).into()
            }
        }
        impl ProgressField for Option<$ty> {
            const REQUIRED: bool = false;
            fn encode_progress(progress: &Progress) -> Value {
                <$ty as ProgressField>::encode_progress(progress)
            }
        }
    )*};
}

progress_number! {
    f64 => |p| p,
    f32 => |p| p as f32,
    i64 => |p| p.round() as i64,
    i32 => |p| p.round() as i32,
    i16 => |p| p.round() as i16,
}

impl ProgressField for String {
    const REQUIRED: bool = true;
    fn encode_progress(progress: &Progress) -> Value {
        Value::String(Some(progress.to_string()))
    }
}

impl ProgressField for Option<String> {
    const REQUIRED: bool = false;
    fn encode_progress(progress: &Progress) -> Value {
        String::encode_progress(progress)
    }
}

impl ProgressField for serde_json::Value {
    const REQUIRED: bool = true;
    fn encode_progress(progress: &Progress) -> Value {
        let json = serde_json::json!({ "percent": progress.percent(), "text": progress.text() });
        Value::Json(Some(Box::new(json)))
    }
}

impl ProgressField for Option<serde_json::Value> {
    const REQUIRED: bool = false;
    fn encode_progress(progress: &Progress) -> Value {
        serde_json::Value::encode_progress(progress)
    }
}

/// A column that can hold a JSON payload: the roles `args`, `kwargs` and
/// `result`. `Json` columns store the value; text columns store its JSON text.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a JSON payload",
    label = "payload roles (`args`, `kwargs`, `result`) need `Json` or `String`, optionally in `Option`"
)]
pub trait PayloadField {
    /// `false` for `Option<…>`.
    const REQUIRED: bool;
    /// The column value for `payload`.
    fn encode_payload(payload: &serde_json::Value) -> Value;
}

impl PayloadField for serde_json::Value {
    const REQUIRED: bool = true;
    fn encode_payload(payload: &serde_json::Value) -> Value {
        Value::Json(Some(Box::new(payload.clone())))
    }
}

impl PayloadField for Option<serde_json::Value> {
    const REQUIRED: bool = false;
    fn encode_payload(payload: &serde_json::Value) -> Value {
        serde_json::Value::encode_payload(payload)
    }
}

impl PayloadField for String {
    const REQUIRED: bool = true;
    fn encode_payload(payload: &serde_json::Value) -> Value {
        Value::String(Some(payload.to_string()))
    }
}

impl PayloadField for Option<String> {
    const REQUIRED: bool = false;
    fn encode_payload(payload: &serde_json::Value) -> Value {
        String::encode_payload(payload)
    }
}

/// A column that can hold a timestamp: the roles `created_at`, `updated_at`,
/// `started_at`, `completed_at` and `failed_at`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a timestamp",
    label = "timestamps must be chrono date-times: `DateTimeUtc`, `DateTimeWithTimeZone` or `DateTime` (naive, UTC), optionally in `Option`"
)]
pub trait TimestampField {
    /// `false` for `Option<…>`.
    const REQUIRED: bool;
    /// The column value for `at`.
    fn encode_time(at: DateTime<Utc>) -> Value;
}

macro_rules! timestamp {
    ($($ty:ty => $conv:expr),* $(,)?) => {$(
        impl TimestampField for $ty {
            const REQUIRED: bool = true;
            fn encode_time(at: DateTime<Utc>) -> Value {
                let f: fn(DateTime<Utc>) -> $ty = $conv;
                f(at).into()
            }
        }
        impl TimestampField for Option<$ty> {
            const REQUIRED: bool = false;
            fn encode_time(at: DateTime<Utc>) -> Value {
                <$ty as TimestampField>::encode_time(at)
            }
        }
    )*};
}

timestamp! {
    DateTime<Utc> => |at| at,
    DateTime<FixedOffset> => |at| at.fixed_offset(),
    NaiveDateTime => |at| at.naive_utc(),
}

/// A column that can hold the cleaned-up flag (role `cleaned`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold the cleaned-up flag",
    label = "`cleaned` must be `bool` or `Option<bool>`"
)]
pub trait FlagField {
    /// `false` for `Option<…>`.
    const REQUIRED: bool;
    /// The column value for `flag`.
    fn encode_flag(flag: bool) -> Value;
}

impl FlagField for bool {
    const REQUIRED: bool = true;
    fn encode_flag(flag: bool) -> Value {
        Value::Bool(Some(flag))
    }
}

impl FlagField for Option<bool> {
    const REQUIRED: bool = false;
    fn encode_flag(flag: bool) -> Value {
        Value::Bool(Some(flag))
    }
}
