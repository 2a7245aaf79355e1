//! The tracker's settings, [`TrackerOptions`], and the [`Retention`] its
//! maintenance applies; used as given, except that every duration and size
//! is clamped to what the runtime can compute with (see the fields).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::lifecycle::Status;
use crate::limits::{NEVER, SHORTEST_PAUSE, at_most_never, pause};

/// Settings of a [`Tracker`](crate::Tracker).
///
/// No value makes the tracker panic, wrap or spin; the tracker clamps them
/// when it is built ([`Tracker::options`](crate::Tracker::options) shows
/// what it uses): a duration over about 30 years, up to `Duration::MAX`,
/// means never and is taken as 30 years; a zero `lease_ttl`, `connection_wait`,
/// `heartbeat_interval` or backoff is 1 ms; `heartbeat_interval` is at most
/// half of `lease_ttl` (else leases of live runs would lapse between two
/// heartbeats); `max_backoff` is at least `min_backoff`; `max_concurrent`
/// is at least 1. A value changed other than to "never" is logged as a
/// warning.
#[derive(Clone, Debug)]
pub struct TrackerOptions {
    /// How many events may wait for an unreachable database (default 10,000).
    pub queue_capacity: usize,
    /// The first retry delay; doubles up to `max_backoff` (default 50 ms).
    pub min_backoff: Duration,
    /// The longest retry delay (default 5 s).
    pub max_backoff: Duration,
    /// How long a write waits for one of the pool's connections before the
    /// database is taken for unreachable and the event queues (default
    /// 1 s). Without it a write to a database that is down would wait for
    /// the pool's whole acquire timeout (sqlx's default: 30 s).
    pub connection_wait: Duration,
    /// Overrides the entity's `max_payload_bytes`.
    pub max_payload_bytes: Option<usize>,
    /// How many spawned runs may run at once; the others wait as `pending`
    /// (default: no limit).
    pub max_concurrent: Option<usize>,
    /// A spawned run writes at most one progress event per interval, always
    /// the latest value (default 250 ms).
    pub progress_interval: Duration,
    /// How often spawned runs refresh their lease and locks (default 5 s).
    pub heartbeat_interval: Duration,
    /// How long a lease or a lock stays valid without a heartbeat: a run
    /// whose process died is recovered after this (default 30 s).
    pub lease_ttl: Duration,
    /// Spawned runs still running after this are asked to stop and recorded
    /// as `interrupted` (default: no limit).
    pub max_duration: Option<Duration>,
    /// How long a cancelled run may take to stop by itself before its future
    /// is dropped (default 10 s).
    pub cancel_grace: Duration,
    /// How often the recovery sweep runs (default 60 s).
    pub sweep_interval: Duration,
    /// Retention applied by the background maintenance (default: none).
    pub retention: Option<Retention>,
    /// How often the retention runs (default 1 h).
    pub retention_interval: Duration,
    /// The clock this tracker reads where it needs the time itself: the
    /// `updated_at` of each write (the time it is written) and the
    /// retention's cut-offs (default: the system clock). Leases and locks
    /// never depend on it: they are timed by the database's clock, so that
    /// instances whose clocks disagree cannot take each other's runs or
    /// locks. Tests set it to simulate a skewed instance.
    pub clock: Clock,
    /// This tracker's name among the instances sharing the database: the
    /// owner of its leases and locks, and the `instance` of the changes it
    /// writes (shown on each run's timeline). Default: a fresh UUID. A name
    /// given here must be unique among live trackers of one table (a worker
    /// name, `host:pid`): two trackers of one name take each other's runs
    /// for their own.
    pub instance: Option<String>,
    /// Whether, on PostgreSQL, the process's reader of the change feed
    /// listens for the writes' notifications (`LISTEN` on a connection of
    /// its own; default `true`). Turn it off behind PgBouncer's transaction
    /// mode, which passes `LISTEN` through but never delivers the
    /// notifications: the reader then polls every 200 ms, as on SQLite. The
    /// trackers of one pool share the reader: one saying `false` turns the
    /// listener off for all of them.
    pub listen: bool,
}

/// A source of the current time, for [`TrackerOptions::clock`]: the system
/// clock ([`Clock::system`], the default), or one shifted from it
/// ([`Clock::offset`]), or any function.
///
/// ```
/// use tasktrail::{Clock, TrackerOptions};
///
/// // An instance whose clock runs 40 s ahead.
/// let options = TrackerOptions {
///     clock: Clock::offset(chrono::TimeDelta::seconds(40)),
///     ..TrackerOptions::default()
/// };
/// assert!(options.clock.now() > chrono::Utc::now());
/// ```
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// The system clock shifted by `by` (negative: behind).
    pub fn offset(by: chrono::TimeDelta) -> Self {
        Clock::from_fn(move || Utc::now() + by)
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Some(std::sync::Arc::new(now)))
    }

    /// The current time by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(now) => now(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system()"),
            Some(_) => write!(f, "Clock(now = {})", self.now()),
        }
    }
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            queue_capacity: 10_000,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            connection_wait: Duration::from_secs(1),
            max_payload_bytes: None,
            max_concurrent: None,
            progress_interval: Duration::from_millis(250),
            heartbeat_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            max_duration: None,
            cancel_grace: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(60),
            retention: None,
            retention_interval: Duration::from_secs(3600),
            clock: Clock::system(),
            instance: None,
            listen: true,
        }
    }
}

/// Which ended runs to delete: those whose last write (`updated_at`, or
/// `created_at` when `updated_at` is not mapped) is older than a cut-off,
/// optionally per status.
///
/// An age beyond what a date can hold (`Duration::MAX`, `days(u64::MAX)`)
/// deletes nothing. When the status mapping stores several statuses alike
/// (a [`TrackedStatus`](crate::TrackedStatus) mapping `Failed` and
/// `Interrupted` to one variant, say), the rows stored so are deleted after
/// the longest age of those statuses, and not at all if one of them is
/// kept; a value a status that has not ended is also stored as (pending,
/// in progress, unknown) is never deleted. Such a rule is logged as a
/// warning at each purge.
///
/// ```
/// use std::time::Duration;
/// use tasktrail::{Retention, Status};
///
/// // Successes after 7 days, failures after 30, keep cancelled runs.
/// let retention = Retention::days(7)
///     .status(Status::Failed, Duration::from_secs(30 * 86_400))
///     .keep(Status::Cancelled);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    rules: Vec<(Status, Duration)>,
    /// Rows deleted per statement (default 1,000; taken as at least 1 and
    /// at most [`MAX_BATCH_SIZE`](Self::MAX_BATCH_SIZE)).
    pub batch_size: u64,
}

impl Retention {
    /// The most rows one delete statement takes.
    pub const MAX_BATCH_SIZE: u64 = 100_000;

    /// Every ended status (success, failed, cancelled, interrupted) after
    /// `age`.
    pub fn older_than(age: Duration) -> Self {
        Retention {
            rules: Status::TERMINAL.iter().map(|s| (*s, age)).collect(),
            batch_size: 1_000,
        }
    }

    /// Every ended status after `days` days.
    pub fn days(days: u64) -> Self {
        Self::older_than(Duration::from_secs(days.saturating_mul(86_400)))
    }

    /// Runs in `status` after `age` instead. `status` must be an ended
    /// status; [`Tracker::purge`](crate::Tracker::purge) refuses the others.
    pub fn status(mut self, status: Status, age: Duration) -> Self {
        self.rules.retain(|(s, _)| *s != status);
        self.rules.push((status, age));
        self
    }

    /// Never deletes runs in `status`.
    pub fn keep(mut self, status: Status) -> Self {
        self.rules.retain(|(s, _)| *s != status);
        self
    }

    /// Rows per delete statement (1 to
    /// [`MAX_BATCH_SIZE`](Self::MAX_BATCH_SIZE)).
    pub fn batch_size(mut self, rows: u64) -> Self {
        self.batch_size = rows.clamp(1, Self::MAX_BATCH_SIZE);
        self
    }

    /// The statuses and ages this retention deletes.
    pub fn rules(&self) -> &[(Status, Duration)] {
        &self.rules
    }
}

impl TrackerOptions {
    /// The options with every duration and size clamped as the fields'
    /// documentation says: `Duration::MAX` (anything over about 30 years)
    /// means never; a zero pause is 1 ms; the heartbeat beats at least
    /// twice per `lease_ttl`; `max_concurrent` is between 1 and tokio's
    /// largest semaphore. What [`Tracker::options`](crate::Tracker::options)
    /// returns.
    pub(crate) fn normalized(self) -> Self {
        let given = self.clone();
        let lease_ttl = pause(self.lease_ttl);
        let heartbeat_interval = pause(self.heartbeat_interval).min(half(lease_ttl));
        let min_backoff = pause(self.min_backoff);
        let options = TrackerOptions {
            min_backoff,
            max_backoff: pause(self.max_backoff).max(min_backoff),
            connection_wait: pause(self.connection_wait),
            max_concurrent: self
                .max_concurrent
                .map(|n| n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)),
            progress_interval: at_most_never(self.progress_interval),
            heartbeat_interval,
            lease_ttl,
            max_duration: self.max_duration.map(at_most_never),
            cancel_grace: at_most_never(self.cancel_grace),
            sweep_interval: at_most_never(self.sweep_interval),
            retention_interval: at_most_never(self.retention_interval),
            ..self
        };
        // "Never" needs no warning; a setting that could not be used as
        // given does.
        let changed = [
            ("lease_ttl", given.lease_ttl, options.lease_ttl),
            (
                "heartbeat_interval",
                given.heartbeat_interval,
                options.heartbeat_interval,
            ),
            ("min_backoff", given.min_backoff, options.min_backoff),
            ("max_backoff", given.max_backoff, options.max_backoff),
            (
                "connection_wait",
                given.connection_wait,
                options.connection_wait,
            ),
        ];
        for (setting, given, used) in changed {
            if given != used && given < NEVER {
                tracing::warn!(
                    setting,
                    ?given,
                    ?used,
                    "tasktrail: a tracker setting was out of range; using the nearest valid value"
                );
            }
        }
        options
    }
}

/// Half of `ttl`, at least the shortest pause.
fn half(ttl: Duration) -> Duration {
    (ttl / 2).max(SHORTEST_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kept() {
        let d = TrackerOptions::default();
        let n = d.clone().normalized();
        assert_eq!(format!("{d:?}"), format!("{n:?}"));
    }

    #[test]
    fn extremes_are_clamped() {
        let max = TrackerOptions {
            min_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            max_concurrent: Some(usize::MAX),
            progress_interval: Duration::MAX,
            heartbeat_interval: Duration::MAX,
            lease_ttl: Duration::MAX,
            max_duration: Some(Duration::MAX),
            cancel_grace: Duration::MAX,
            sweep_interval: Duration::MAX,
            retention_interval: Duration::MAX,
            ..TrackerOptions::default()
        }
        .normalized();
        assert_eq!(max.lease_ttl, NEVER);
        assert_eq!(max.heartbeat_interval, NEVER / 2);
        assert_eq!((max.min_backoff, max.max_backoff), (NEVER, NEVER));
        // The retry loop doubles its delay: that must not overflow.
        assert!(max.max_backoff.checked_mul(2).is_some());
        assert_eq!(
            max.max_concurrent,
            Some(tokio::sync::Semaphore::MAX_PERMITS)
        );
        assert_eq!(max.max_duration, Some(NEVER));
        assert_eq!(max.progress_interval, NEVER);

        let zero = TrackerOptions {
            min_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_concurrent: Some(0),
            heartbeat_interval: Duration::ZERO,
            lease_ttl: Duration::ZERO,
            ..TrackerOptions::default()
        }
        .normalized();
        assert_eq!(
            (zero.min_backoff, zero.max_backoff),
            (SHORTEST_PAUSE, SHORTEST_PAUSE)
        );
        assert_eq!(zero.heartbeat_interval, SHORTEST_PAUSE);
        assert_eq!(zero.lease_ttl, SHORTEST_PAUSE);
        assert_eq!(zero.max_concurrent, Some(1));

        // A heartbeat slower than the lease would let every lease lapse.
        let slow = TrackerOptions {
            heartbeat_interval: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(10),
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(1),
            ..TrackerOptions::default()
        }
        .normalized();
        assert_eq!(slow.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(slow.max_backoff, Duration::from_secs(2));
    }

    #[test]
    fn extreme_arguments_saturate() {
        assert_eq!(
            Retention::days(u64::MAX).rules()[0].1,
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(Retention::days(1).batch_size(0).batch_size, 1);
        assert_eq!(
            Retention::days(1).batch_size(u64::MAX).batch_size,
            Retention::MAX_BATCH_SIZE
        );
    }
}
