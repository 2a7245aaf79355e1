//! The bounds settings are clamped to, so that no duration or size a user
//! can give makes the runtime panic, wrap or spin.
//!
//! `Duration::MAX` (or any duration longer than [`NEVER`]) means "never":
//! it is taken as [`NEVER`], about 30 years, which every deadline computed
//! from it can hold — a tokio `Instant` on every platform, milliseconds in
//! an `i64`, a chrono date. tokio's own timers treat 30 years as never.

use std::time::Duration;

/// About 30 years: the longest duration a setting is taken as.
pub(crate) const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// The shortest pause a loop that repeats by itself waits between rounds (a
/// zero would make it spin).
pub(crate) const SHORTEST_PAUSE: Duration = Duration::from_millis(1);

/// `d`, at most [`NEVER`].
pub(crate) fn at_most_never(d: Duration) -> Duration {
    d.min(NEVER)
}

/// `d`, between [`SHORTEST_PAUSE`] and [`NEVER`].
pub(crate) fn pause(d: Duration) -> Duration {
    d.clamp(SHORTEST_PAUSE, NEVER)
}

/// `now - age`, or `None` when no date is that old (chrono's dates end
/// some 262,000 years back).
pub(crate) fn cutoff(
    now: chrono::DateTime<chrono::Utc>,
    age: Duration,
) -> Option<chrono::DateTime<chrono::Utc>> {
    now.checked_sub_signed(chrono::TimeDelta::from_std(age).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_fits_every_clock() {
        let now = tokio::time::Instant::now();
        let _ = now + NEVER;
        let _ = std::time::Instant::now() + NEVER;
        assert!(i64::try_from(NEVER.as_millis()).is_ok_and(|ms| ms.checked_mul(2).is_some()));
        assert!(cutoff(chrono::Utc::now(), NEVER).is_some());
        assert_eq!(at_most_never(Duration::MAX), NEVER);
        assert_eq!(pause(Duration::ZERO), SHORTEST_PAUSE);
        assert_eq!(pause(Duration::MAX), NEVER);
    }

    #[test]
    fn ages_beyond_chrono_have_no_cutoff() {
        let now = chrono::Utc::now();
        assert_eq!(cutoff(now, Duration::MAX), None);
        let year = Duration::from_secs(365 * 86_400);
        assert_eq!(cutoff(now, year * 300_000), None);
        assert_eq!(
            cutoff(now, Duration::from_secs(60)),
            Some(now - chrono::TimeDelta::seconds(60))
        );
    }
}
