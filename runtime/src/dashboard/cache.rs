//! Numbers computed now and then and served from memory: the overview's
//! counts, the task kinds and each kind's numbers, the stuck runs.
//!
//! A value younger than its `max_age` is served as it is. An older one is
//! still served while one background task computes the next (no request
//! waits on the counts once the first is taken); the first is computed by
//! one request while the others wait for it; with `max_age` zero every
//! request computes its own. Every value carries the moment it was taken,
//! which the pages and the APIs show: while the database cannot be read,
//! the refresh fails and the last value stays, older and older.

use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

/// A value and when it was taken.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    value: T,
    /// When it was taken (the clock the pages show).
    pub at: DateTime<Utc>,
    /// When it was taken (the clock its age is measured on).
    taken: Instant,
}

impl<T> Counted<T> {
    /// `value`, taken now.
    pub(crate) fn now(value: T) -> Self {
        Counted {
            value,
            at: Utc::now(),
            taken: Instant::now(),
        }
    }

    /// How long ago it was taken.
    pub(crate) fn age(&self) -> Duration {
        self.taken.elapsed()
    }

    /// When it was taken, as the APIs say it (RFC 3339, UTC, milliseconds).
    pub(crate) fn as_of(&self) -> String {
        self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl<T> Deref for Counted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A value computed now and then, kept for a `max_age` its reader gives.
pub(crate) struct Cached<T> {
    state: Mutex<Slot<T>>,
    /// Held while the first value is computed, so that requests finding
    /// none wait for that one instead of each computing its own (at a
    /// million runs, 32 requests at start-up would otherwise run 32 scans
    /// at once).
    first: tokio::sync::Mutex<()>,
    /// What it holds, for the warning when its refresh fails.
    what: &'static str,
}

struct Slot<T> {
    value: Option<Arc<Counted<T>>>,
    refreshing: bool,
}

impl<T: Send + Sync + 'static> Cached<T> {
    /// An empty cache of `what` (named in the warning a failed refresh logs).
    pub(crate) fn new(what: &'static str) -> Self {
        Cached {
            state: Mutex::new(Slot {
                value: None,
                refreshing: false,
            }),
            first: tokio::sync::Mutex::new(()),
            what,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `compute` in the background; its value replaces the cached
    /// one (a failure leaves the cached one and logs a warning).
    fn refresh<F, Fut>(this: &Arc<Self>, compute: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, DbErr>> + Send + 'static,
    {
        let this = this.clone();
        tokio::spawn(async move {
            let fresh = compute().await;
            let mut slot = this.slot();
            slot.refreshing = false;
            match fresh {
                Ok(v) => slot.value = Some(Arc::new(Counted::now(v))),
                Err(err) if slot.value.is_some() => tracing::warn!(
                    error = %err,
                    "tasktrail dashboard: refreshing {} failed; the last taken are served",
                    this.what
                ),
                Err(err) => tracing::warn!(
                    error = %err,
                    "tasktrail dashboard: computing {} failed",
                    this.what
                ),
            }
        });
    }

    /// The value: a fresh one as it is; a stale one while `compute` runs in
    /// the background; none yet (or `max_age` zero): computed now.
    pub(crate) async fn get<F, Fut>(
        this: &Arc<Self>,
        max_age: Duration,
        compute: F,
    ) -> Result<Arc<Counted<T>>, DbErr>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, DbErr>> + Send + 'static,
    {
        if max_age.is_zero() {
            return Ok(Arc::new(Counted::now(compute().await?)));
        }
        let stale = {
            let mut slot = this.slot();
            match &slot.value {
                Some(v) if v.age() < max_age => return Ok(v.clone()),
                Some(v) => {
                    let v = v.clone();
                    let start = !slot.refreshing;
                    slot.refreshing = true;
                    Some((v, start))
                }
                None => None,
            }
        };
        if let Some((stale, start)) = stale {
            if start {
                Self::refresh(this, compute);
            }
            return Ok(stale);
        }
        let _first = this.first.lock().await;
        if let Some(v) = &this.slot().value {
            // Another request computed it while this one waited.
            return Ok(v.clone());
        }
        let fresh = Arc::new(Counted::now(compute().await?));
        this.slot().value = Some(fresh.clone());
        Ok(fresh)
    }

    /// The value if there is one (a stale one starts its refresh); none
    /// yet: `compute` starts in the background and `None` is returned now.
    pub(crate) fn peek<F, Fut>(
        this: &Arc<Self>,
        max_age: Duration,
        compute: F,
    ) -> Option<Arc<Counted<T>>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, DbErr>> + Send + 'static,
    {
        let mut slot = this.slot();
        let value = slot.value.clone();
        if value.as_ref().is_some_and(|v| v.age() < max_age) || slot.refreshing {
            return value;
        }
        slot.refreshing = true;
        drop(slot);
        Self::refresh(this, compute);
        value
    }
}
