//! Login throttling: per client address (an IPv6 client by its /64) and
//! per user name, a few free failures, then a wait that doubles with each
//! further failure.
//!
//! An attempt counts as a failure from the moment it is let through
//! ([`Throttle::begin`]) until it succeeds: checking the password takes a
//! while, and guesses sent all at once must not all pass the check before
//! the first failure is counted.
//!
//! The counts live in a map of at most [`CAPACITY`] keys: a new key past
//! it pushes out the one used longest ago (a key that is being tried again
//! and again stays). No operation scans the map.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Failures allowed before waits start.
const FREE_FAILURES: u32 = 5;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// The most keys (client addresses and user names) kept: a few MiB.
pub(crate) const CAPACITY: usize = 65_536;

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

type Entries = LruCache<String, Entry>;

/// Who failed to log in, how often, and until when they must wait.
pub(crate) struct Throttle {
    entries: Mutex<Entries>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            entries: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("keys", &self.entries().len())
            .finish()
    }
}

impl Throttle {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the caller must still wait, if any of `keys` is blocked
    /// (without counting anything).
    pub(crate) fn wait(&self, keys: &[String]) -> Option<Duration> {
        Self::wait_in(&mut self.entries(), keys, Instant::now())
    }

    fn wait_in(entries: &mut Entries, keys: &[String], now: Instant) -> Option<Duration> {
        keys.iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Lets an attempt through unless one of `keys` is blocked (then the
    /// wait), counting it as a failure at once, in the same lock: see
    /// [`confirm_failed`](Self::confirm_failed) and
    /// [`succeeded`](Self::succeeded) for how it ends. An attempt that never
    /// ends (its request was dropped) stays counted.
    pub(crate) fn begin(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut entries = self.entries();
        match Self::wait_in(&mut entries, keys, now) {
            Some(wait) => Err(wait),
            None => {
                Self::count(&mut entries, keys, now);
                Ok(())
            }
        }
    }

    /// Counts a failed login for each of `keys`. After
    /// [`begin`](Self::begin), which counted it already, call
    /// [`confirm_failed`](Self::confirm_failed) instead.
    #[cfg(test)]
    pub(crate) fn failed(&self, keys: &[String]) {
        Self::count(&mut self.entries(), keys, Instant::now());
    }

    /// The attempt [`begin`](Self::begin) let through failed: its wait
    /// starts now (rather than when the password check started).
    pub(crate) fn confirm_failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut entries = self.entries();
        for key in keys {
            if let Some(entry) = entries.get_mut(key)
                && let Some(wait) = wait_after(entry.failures)
            {
                entry.blocked_until = Some(now + wait);
            }
        }
    }

    fn count(entries: &mut Entries, keys: &[String], now: Instant) {
        for key in keys {
            if entries.get(key).is_none() {
                // Past the capacity, this pushes out the key used longest
                // ago.
                entries.insert(
                    key.clone(),
                    Entry {
                        failures: 0,
                        last: now,
                        blocked_until: None,
                    },
                );
            }
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            if now - entry.last > FORGET_AFTER {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last = now;
            if let Some(wait) = wait_after(entry.failures) {
                entry.blocked_until = Some(now + wait);
            }
        }
    }

    /// After a successful login that [`begin`](Self::begin) let through:
    /// forgets the failures of `forget` (the user's: they proved their
    /// password), and takes back the attempt counted on `uncount` (the
    /// client's: a success of one account must not wipe the failures a
    /// client collected against others, or an attacker with an account of
    /// their own could spray guesses over every other user).
    pub(crate) fn succeeded(&self, forget: &[String], uncount: &[String]) {
        let mut entries = self.entries();
        for key in forget {
            entries.remove(key);
        }
        for key in uncount {
            if let Some(entry) = entries.get_mut(key) {
                entry.failures = entry.failures.saturating_sub(1);
                // The attempt was let through, so no earlier wait was
                // running: the one it set goes with it.
                entry.blocked_until = None;
                if entry.failures == 0 {
                    entries.remove(key);
                }
            }
        }
    }
}

/// The wait after `failures` failures, once past the free ones.
fn wait_after(failures: u32) -> Option<Duration> {
    (failures >= FREE_FAILURES).then(|| {
        let doublings = (failures - FREE_FAILURES).min(20);
        Duration::from_secs(1u64 << doublings).min(MAX_WAIT)
    })
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
        throttle.succeeded(&keys, &[]);
        assert_eq!(throttle.wait(&keys), None);
    }

    #[test]
    fn the_map_is_capped_and_keeps_what_is_in_use() {
        const CAP: usize = CAPACITY;
        let throttle = Throttle::default();
        let ada = ["user:ada".to_owned()];
        for _ in 0..FREE_FAILURES {
            throttle.failed(&ada);
        }
        assert!(throttle.wait(&ada).is_some());
        for i in 0..CAP / 2 {
            assert_eq!(throttle.begin(&[format!("ip:198.51.{i}")]), Ok(()));
        }
        assert!(throttle.wait(&ada).is_some(), "a blocked key in use stays");
        for i in 0..2 * CAP {
            let _ = throttle.begin(&[format!("user:spray-{i}")]);
        }
        let len = throttle.entries().len();
        assert!(len <= CAP, "{len} entries");
    }

    #[test]
    fn an_attempt_counts_until_it_succeeds() {
        let throttle = Throttle::default();
        let keys = ["ip:a".to_owned(), "user:ada".to_owned()];
        // Five attempts in flight at once: the sixth waits.
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.begin(&keys), Ok(()));
        }
        assert!(throttle.begin(&keys).is_err());
        // One of them succeeds: the user is forgotten, the client keeps
        // the four others.
        throttle.succeeded(&keys[1..], &keys[..1]);
        assert_eq!(throttle.wait(&keys), None);
        assert_eq!(
            throttle.entries().peek("ip:a").map(|e| e.failures),
            Some(FREE_FAILURES - 1)
        );
        assert!(!throttle.entries().contains_key("user:ada"));
        // A failure confirmed: blocked again, from now.
        assert_eq!(throttle.begin(&keys), Ok(()));
        throttle.confirm_failed(&keys);
        assert!(throttle.wait(&keys[..1]).is_some());
        assert_eq!(throttle.wait(&keys[1..]), None);
    }
}
