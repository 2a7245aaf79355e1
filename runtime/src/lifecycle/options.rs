//! The tracker's settings as it uses them: every duration and size clamped
//! to what the runtime can compute with (see [`TrackerOptions`]'s fields).

use std::time::Duration;

use crate::lifecycle::TrackerOptions;
use crate::limits::{NEVER, SHORTEST_PAUSE, at_most_never, pause};

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
}
