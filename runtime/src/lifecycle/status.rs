//! Run statuses and progress values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is in its life. Stored as its [`as_str`](Status::as_str) text
/// by default, or through a user `ActiveEnum` (see
/// [`TrackedStatus`](crate::TrackedStatus)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, not started yet.
    Pending,
    /// Started and not finished.
    InProgress,
    /// Finished without error.
    Success,
    /// Finished with an error or a panic.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Its process stopped heartbeating before it finished.
    Interrupted,
    /// A stored value tasktrail does not know.
    Unknown,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::InProgress,
        Status::Success,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
        Status::Unknown,
    ];

    /// The statuses a run never leaves.
    pub const TERMINAL: [Status; 4] = [
        Status::Success,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
    ];

    /// The stored text: `pending`, `in_progress`, `success`, `failed`,
    /// `cancelled`, `interrupted`, `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
            Status::Unknown => "unknown",
        }
    }

    /// `true` for success, failed, cancelled and interrupted.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Success | Status::Failed | Status::Cancelled | Status::Interrupted
        )
    }

    /// The statuses a run must not be in for a move to `self` to be allowed:
    /// nothing leaves a terminal status, and nothing moves an in-progress run
    /// back to pending (rule 4).
    pub fn blocked_from(self) -> &'static [Status] {
        match self {
            Status::Pending | Status::Unknown => &[
                Status::InProgress,
                Status::Success,
                Status::Failed,
                Status::Cancelled,
                Status::Interrupted,
            ],
            _ => &Status::TERMINAL,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of tasktrail's status names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a status; expected one of pending, in_progress, success, failed, cancelled, interrupted, unknown"
)]
pub struct ParseStatusError(pub String);

impl FromStr for Status {
    type Err = ParseStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// How far a run has got: a percent clamped to 0–100 and an optional text
/// such as `"step 3 of 7"`.
///
/// How a progress column stores it: a float column the percent, an integer
/// column the percent rounded, a text column its `Display` (the percent
/// with no decimals when whole and one otherwise, `%`, then a space and the
/// text if there is one), a `Json` column `{"percent": …, "text": …}`.
///
/// ```
/// use sea_orm::Value;
/// use tasktrail::Progress;
/// use tasktrail::fields::ProgressField;
///
/// let third_step = Progress::ratio(3, 7).with_text("step 3 of 7");
/// assert_eq!(Progress::new(42.0).to_string(), "42%");
/// assert_eq!(Progress::ratio(3, 7).to_string(), "42.9%");
/// assert_eq!(third_step.to_string(), "42.9% step 3 of 7");
/// assert_eq!(Progress::new(140.0).to_string(), "100%"); // clamped
/// assert_eq!(Progress::new(f64::NAN).to_string(), "0%");
///
/// assert_eq!(String::encode_progress(&third_step), Value::from("42.9% step 3 of 7"));
/// assert_eq!(i32::encode_progress(&third_step), Value::from(43));
/// assert_eq!(f64::encode_progress(&third_step), Value::from(300.0 / 7.0));
/// assert_eq!(
///     serde_json::Value::encode_progress(&third_step),
///     Value::from(serde_json::json!({ "percent": 300.0 / 7.0, "text": "step 3 of 7" })),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    percent: f64,
    text: Option<String>,
}

impl Progress {
    /// `percent` clamped to 0–100; NaN counts as 0.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// The progress text, if any.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// A progress of `percent` (clamped to 0–100, NaN counts as 0).
    pub fn new(percent: f64) -> Self {
        let percent = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        Progress {
            percent,
            text: None,
        }
    }

    /// `done` out of `total` as a percent; a `total` of 0 counts as done.
    pub fn ratio(done: u64, total: u64) -> Self {
        if total == 0 {
            return Progress::new(100.0);
        }
        Progress::new(done as f64 * 100.0 / total as f64)
    }

    /// The same progress with a text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

impl From<f64> for Progress {
    fn from(percent: f64) -> Self {
        Progress::new(percent)
    }
}

impl From<f32> for Progress {
    fn from(percent: f32) -> Self {
        Progress::new(f64::from(percent))
    }
}

impl From<u8> for Progress {
    fn from(percent: u8) -> Self {
        Progress::new(f64::from(percent))
    }
}

impl From<i32> for Progress {
    fn from(percent: i32) -> Self {
        Progress::new(f64::from(percent))
    }
}

impl fmt::Display for Progress {
    /// `42%` (a whole percent), `42.9%` (one decimal otherwise), then a
    /// space and the text if there is one: `42.9% step 3 of 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.percent.fract() == 0.0 {
            write!(f, "{}%", self.percent as i64)?;
        } else {
            write!(f, "{:.1}%", self.percent)?;
        }
        if let Some(text) = &self.text {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for st in Status::ALL {
            assert_eq!(st.as_str().parse::<Status>(), Ok(st));
        }
        assert!("done".parse::<Status>().is_err());
    }

    #[test]
    fn progress_is_clamped() {
        assert_eq!(Progress::new(140.0).percent(), 100.0);
        assert_eq!(Progress::new(-3.0).percent(), 0.0);
        assert_eq!(Progress::new(f64::NAN).percent(), 0.0);
        assert_eq!(Progress::ratio(1, 4).percent(), 25.0);
        assert_eq!(Progress::ratio(0, 0).percent(), 100.0);
        assert_eq!(
            Progress::new(42.0).with_text("step 3").to_string(),
            "42% step 3"
        );
        assert_eq!(Progress::new(12.25).to_string(), "12.2%");
    }

    #[test]
    fn nothing_leaves_a_terminal_status() {
        for st in Status::ALL {
            for t in Status::TERMINAL {
                assert!(st.blocked_from().contains(&t));
            }
        }
        assert!(Status::Pending.blocked_from().contains(&Status::InProgress));
        assert!(!Status::InProgress.blocked_from().contains(&Status::Pending));
    }
}
