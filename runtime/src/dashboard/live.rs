//! Live updates: a server-sent event per change of a run.
//!
//! The stream follows the change feed ([`crate::feed`]), whose order the
//! database assigns: it sees the writes of every instance sharing the
//! database, never skips one (whatever the writers' clocks, whatever the
//! order concurrent transactions commit in), and a client that reconnects
//! with `Last-Event-ID` resumes exactly after the last change it got.
//!
//! Each event is named `run`; its data is the run as the API shows it
//! (`GET {prefix}/api/runs/{key}`, as it is when the event is sent), with
//! the change under `__change` (`id`, `kind`, `at`, `instance`, `actor`). A
//! run that no longer exists is sent as its key, `"__deleted": true` and
//! the change.
//!
//! One follower per dashboard turns the feed's changes into events (one
//! query for the runs of each batch of changes, whatever the number of
//! clients) and keeps the newest in a ring; every client takes its events
//! from there. A client resuming from further back reads the feed from its
//! own cursor until it reaches the ring.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::watch;

use crate::config::{Role, TrackingConfig, find_all, key_encoder};
use crate::dashboard::api::{ApiError, run_json, safe_json_text};
use crate::dashboard::router::SharedInner;
use crate::dashboard::{DashboardConfig, Shared};
use crate::feed::{ChangeRow, Cursor, Placed, Ring, Since};

/// Events kept for the clients.
const RING: usize = 4_096;
/// Changes turned into events at once.
const BATCH: usize = 500;
/// How long the follower outlives its last client.
const LINGER: Duration = Duration::from_secs(5);

/// An event ready to send.
pub(crate) struct Item {
    cursor: Cursor,
    data: String,
}

impl Placed for Arc<Item> {
    fn cursor(&self) -> Cursor {
        self.cursor
    }
}

/// A dashboard's follower of the feed and the events it made.
pub(crate) struct Live {
    /// The events made; stopped (no place) while the follower does not
    /// run. Its head is the follower's place in the feed.
    ring: Mutex<Ring<Arc<Item>>>,
    tick: watch::Sender<u64>,
    running: AtomicBool,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            ring: Mutex::new(Ring::new(RING)),
            tick: watch::Sender::new(0),
            running: AtomicBool::new(false),
        }
    }
}

impl Live {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring<Arc<Item>>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max` events after `after`, or where the ring starts if the
    /// events after `after` have left it.
    fn since(&self, after: Cursor, max: usize) -> Since<Arc<Item>> {
        self.ring().since(after, max)
    }
}

/// `GET {prefix}/api/events`
pub(crate) async fn events<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    headers: HeaderMap,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let cursor = match resume.map(Cursor::decode) {
        Some(Some(cursor)) => cursor,
        // An id of the stream before it followed the feed: from now on.
        Some(None)
            if resume
                .and_then(crate::dashboard::query::Cursor::decode)
                .is_some() =>
        {
            match now(&shared).await {
                Ok(cursor) => cursor,
                Err(err) => return err.into_response(),
            }
        }
        Some(None) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "`Last-Event-ID` is not an event id from this stream",
            )
            .into_response();
        }
        // A new subscriber starts from now.
        None => match now(&shared).await {
            Ok(cursor) => cursor,
            Err(err) => return err.into_response(),
        },
    };
    follow(&shared);
    Sse::new(stream::<C>(shared, cursor))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The feed's present end, as this dashboard's follower knows it.
async fn now<C: DashboardConfig>(shared: &Shared<C>) -> Result<Cursor, ApiError> {
    if let Some(head) = shared.live.ring().head() {
        return Ok(head);
    }
    Ok(shared.tracker.inner().feed.now().await?)
}

/// Starts the dashboard's follower, unless it runs.
fn follow<C: DashboardConfig>(shared: &Shared<C>) {
    if shared.live.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak = Arc::downgrade(shared);
    // A root span: the follower outlives the request that started it, and
    // a span of the request's (tower-http's, say) as its parent would stay
    // open as long.
    let span = tracing::error_span!(target: "tasktrail::logs", parent: None, "tasktrail_live");
    tokio::spawn(tracing::Instrument::instrument(follower::<C>(weak), span));
}

/// Turns the feed's changes of this dashboard's runs into events, while
/// the dashboard exists and has clients (and [`LINGER`] after the last).
async fn follower<C: DashboardConfig>(weak: Weak<SharedInner<C>>) {
    let Some(shared) = weak.upgrade() else { return };
    let hub = shared.tracker.inner().feed.clone();
    let live_of = |s: &SharedInner<C>| s.live.tick.receiver_count();
    let mut sub = hub.subscribe();
    let mut cursor = loop {
        match hub.now().await {
            Ok(cursor) => break cursor,
            Err(err) => {
                tracing::warn!(error = %err, "tasktrail dashboard: live updates could not read the change feed; retrying");
                tokio::time::sleep(crate::feed::POLL).await;
            }
        }
    };
    shared.live.ring().start(cursor);
    drop(shared);
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut failing = false;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if live_of(&shared) == 0 {
            let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= LINGER {
                shared.live.ring().stop();
                shared.live.running.store(false, Ordering::Release);
                return;
            }
        } else {
            idle_since = None;
        }
        let scope = shared.tracker.inner().scope.clone();
        let read = async {
            let (changes, next) = hub.after(cursor, Some(&scope), BATCH).await?;
            let items = items::<C>(&shared, &changes).await?;
            Ok::<_, sea_orm::DbErr>((items, next))
        };
        let caught_up = match read.await {
            Ok((items, next)) => {
                failing = false;
                cursor = next;
                let any = !items.is_empty();
                shared.live.ring().push(items, cursor);
                if any {
                    shared.live.tick.send_modify(|n| *n = n.wrapping_add(1));
                }
                hub.head().is_none_or(|head| cursor >= head)
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "tasktrail dashboard: live updates could not read the runs; retrying");
                    failing = true;
                }
                tokio::time::sleep(crate::feed::POLL).await;
                false
            }
        };
        drop(shared);
        if caught_up {
            tokio::select! {
                () = sub.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The events of `changes` (of this dashboard's table), with each run as
/// it is now: one query for all their runs.
async fn items<C: DashboardConfig>(
    shared: &SharedInner<C>,
    changes: &[Arc<ChangeRow>],
) -> Result<Vec<Arc<Item>>, sea_orm::DbErr> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let (key_col, encode_key) = key_encoder::<C::Model>();
    let mut keys: Vec<&str> = changes.iter().map(|c| c.run_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut runs: HashMap<String, serde_json::Value> = HashMap::new();
    for chunk in keys.chunks(500) {
        let select = <C::Model as TrackingConfig>::Entity::find()
            .filter(key_col.is_in(chunk.iter().map(|k| encode_key(k))));
        for row in find_all(select, shared.tracker.db()).await? {
            let json = run_json::<C::Model>(&row);
            if let Some(key) = crate::config::value_text(crate::config::column_value::<
                <C::Model as TrackingConfig>::Entity,
            >(&row, key_col))
            {
                runs.insert(key, json);
            }
        }
    }
    let key_field = C::Model::FIELDS
        .iter()
        .find(|f| f.role == Some(Role::Key))
        .map_or("key", |f| f.field);
    Ok(changes
        .iter()
        .map(|change| {
            let mut run = match runs.get(&change.run_key) {
                Some(run) => run.clone(),
                None => serde_json::json!({ key_field: change.run_key, "__deleted": true }),
            };
            run["__change"] = change.json();
            Arc::new(Item {
                cursor: change.cursor,
                data: safe_json_text(&run),
            })
        })
        .collect())
}

struct Client<C: DashboardConfig> {
    shared: Shared<C>,
    cursor: Cursor,
    pending: VecDeque<Arc<Item>>,
    tick: watch::Receiver<u64>,
}

fn stream<C: DashboardConfig>(
    shared: Shared<C>,
    cursor: Cursor,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let tick = shared.live.tick.subscribe();
    let client = Client::<C> {
        shared,
        cursor,
        pending: VecDeque::new(),
        tick,
    };
    futures::stream::unfold(client, |mut c| async move {
        loop {
            if let Some(item) = c.pending.pop_front() {
                let event = Event::default()
                    .event("run")
                    .id(item.cursor.encode())
                    .data(&item.data);
                return Some((Ok(event), c));
            }
            // Marks the ring's present state seen before looking at it:
            // an event added after the look wakes the wait below.
            c.tick.borrow_and_update();
            match c.shared.live.since(c.cursor, BATCH) {
                Since::Rows(items) if !items.is_empty() => {
                    c.cursor = items.last().map_or(c.cursor, |i| i.cursor);
                    c.pending.extend(items);
                    continue;
                }
                Since::Rows(_) => {}
                Since::Behind(floor) => {
                    // Behind the ring (or before the follower ran): read the
                    // feed from this client's cursor.
                    match catch_up(&c.shared, c.cursor).await {
                        Ok((items, next)) => {
                            let moved = next != c.cursor;
                            c.cursor = next;
                            c.pending.extend(items);
                            if moved || floor.is_some_and(|f| c.cursor >= f) {
                                continue;
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "tasktrail dashboard: live updates could not read the change feed");
                        }
                    }
                    follow(&c.shared);
                }
            }
            tokio::select! {
                changed = c.tick.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep(crate::feed::POLL) => {}
            }
        }
    })
}

/// The events after `cursor` read from the feed itself (for a client
/// behind the ring), and the cursor to go on from.
async fn catch_up<C: DashboardConfig>(
    shared: &Shared<C>,
    cursor: Cursor,
) -> Result<(Vec<Arc<Item>>, Cursor), sea_orm::DbErr> {
    let hub = &shared.tracker.inner().feed;
    let scope = shared.tracker.inner().scope.clone();
    let (changes, next) = hub.after(cursor, Some(&scope), BATCH).await?;
    Ok((items::<C>(shared, &changes).await?, next))
}
