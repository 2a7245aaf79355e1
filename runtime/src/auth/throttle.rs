//! Login throttling: per client address and per user name, a few free
//! failures, then a wait that doubles with each further failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before waits start.
const FREE_FAILURES: u32 = 5;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Who failed to log in, how often, and until when they must wait.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the caller must still wait, if any of `keys` is blocked.
    pub(crate) fn wait(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries();
        keys.iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed login for each of `keys`.
    pub(crate) fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() > 10_000 {
            entries.retain(|_, e| now - e.last < FORGET_AFTER);
        }
        for key in keys {
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now - entry.last > FORGET_AFTER {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last = now;
            if entry.failures >= FREE_FAILURES {
                let doublings = (entry.failures - FREE_FAILURES).min(20);
                let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
                entry.blocked_until = Some(now + wait);
            }
        }
    }

    /// Forgets the failures of `keys` after a successful login.
    pub(crate) fn succeeded(&self, keys: &[String]) {
        let mut entries = self.entries();
        for key in keys {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double() {
        let throttle = Throttle::default();
        let keys = ["user:ada".to_owned()];
        for _ in 0..FREE_FAILURES - 1 {
            throttle.failed(&keys);
            assert_eq!(throttle.wait(&keys), None);
        }
        throttle.failed(&keys);
        let first = throttle
            .wait(&keys)
            .expect("blocked after the free failures");
        assert!(first <= Duration::from_secs(1));
        throttle.failed(&keys);
        let second = throttle.wait(&keys).unwrap();
        assert!(second > Duration::from_millis(1_500), "{second:?}");
        assert_eq!(throttle.wait(&["user:bob".to_owned()]), None);
        throttle.succeeded(&keys);
        assert_eq!(throttle.wait(&keys), None);
    }
}
