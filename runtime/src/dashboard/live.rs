//! Live updates: a server-sent event per changed run.
//!
//! The stream reads the table, not an in-memory bus: it sends every run
//! whose `updated_at` moved past the last one sent, in `(updated_at, key)`
//! order, so it sees the writes of every instance sharing the database, and
//! a client that reconnects with `Last-Event-ID` resumes exactly where it
//! left off. A local write wakes it at once; otherwise it looks every
//! `poll_interval` (at most every second).
//!
//! A row whose `updated_at` is NULL (written by another tool, or from
//! before the column existed) has no place in that order: the stream skips
//! it until a write gives it a time. It never becomes the stream's cursor,
//! which a NULL would make match nothing ever again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};

use crate::config::{Role, TrackingConfig, column_value, find_all, value_text};
use crate::dashboard::api::{ApiError, run_json};
use crate::dashboard::query::Cursor;
use crate::dashboard::{DashboardConfig, Shared};

/// `GET {prefix}/api/events`
pub(crate) async fn events<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    headers: HeaderMap,
) -> Response {
    if C::Model::binding(Role::UpdatedAt).is_none() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "live updates need an `updated_at` column; the pages poll instead",
        )
        .into_response();
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let cursor = match resume {
        // A cursor without a time (sent by an older version) resumes from
        // now, like a new subscriber.
        Some(token) if Cursor::decode(token).is_some_and(|c| c.is_null()) => {
            match newest::<C>(&shared).await {
                Ok(cursor) => cursor,
                Err(err) => return err.into_response(),
            }
        }
        Some(token) => match Cursor::decode(token) {
            Some(cursor) => Some(cursor),
            None => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "`Last-Event-ID` is not an event id from this stream",
                )
                .into_response();
            }
        },
        // A new subscriber starts from now: the latest change.
        None => match newest::<C>(&shared).await {
            Ok(cursor) => cursor,
            Err(err) => return err.into_response(),
        },
    };
    let poll = shared.settings.poll_interval.min(Duration::from_secs(1));
    Sse::new(stream::<C>(shared, cursor, poll))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn newest<C: DashboardConfig>(shared: &Shared<C>) -> Result<Option<Cursor>, ApiError> {
    let updated = C::Model::binding(Role::UpdatedAt).expect("checked").column;
    let key = C::Model::binding(Role::Key).expect("a key").column;
    let mut select = <C::Model as TrackingConfig>::Entity::find();
    if updated.def().is_null() {
        // PostgreSQL sorts NULLs first in `DESC`.
        select = select.filter(Expr::col(updated).is_not_null());
    }
    let select = select
        .order_by(updated, Order::Desc)
        .order_by(key, Order::Desc)
        .limit(1);
    let rows = find_all(select, shared.tracker.db()).await?;
    Ok(rows.first().and_then(cursor_of::<C::Model>))
}

/// The row's place in the stream; none for a row without `updated_at`.
fn cursor_of<M: TrackingConfig>(row: &M) -> Option<Cursor> {
    let updated = M::binding(Role::UpdatedAt)?.column;
    let key = M::binding(Role::Key)?.column;
    Some(Cursor {
        value: column_value::<M::Entity>(row, updated),
        key: value_text(column_value::<M::Entity>(row, key))?,
    })
    .filter(|cursor| !cursor.is_null())
}

struct LiveState<C: DashboardConfig> {
    shared: Shared<C>,
    cursor: Option<Cursor>,
    pending: VecDeque<C::Model>,
    poll: Duration,
}

fn stream<C: DashboardConfig>(
    shared: Shared<C>,
    cursor: Option<Cursor>,
    poll: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let state = LiveState::<C> {
        shared,
        cursor,
        pending: VecDeque::new(),
        poll,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(row) = st.pending.pop_front() {
                let Some(cursor) = cursor_of::<C::Model>(&row) else {
                    continue;
                };
                let id = cursor.encode().unwrap_or_default();
                st.cursor = Some(cursor);
                let data = crate::dashboard::api::safe_json_text(&run_json::<C::Model>(&row));
                let event = Event::default().event("run").id(id).data(data);
                return Some((Ok(event), st));
            }
            // Register for a wake-up before looking, so no write is missed.
            let changed = st.shared.tracker.inner().changed.notified();
            match changed_since::<C>(&st.shared, st.cursor.as_ref()).await {
                Ok(rows) if !rows.is_empty() => {
                    st.pending.extend(rows);
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "tasktrail dashboard: live updates could not read the runs");
                }
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(st.poll) => {}
            }
        }
    })
}

async fn changed_since<C: DashboardConfig>(
    shared: &Shared<C>,
    cursor: Option<&Cursor>,
) -> Result<Vec<C::Model>, sea_orm::DbErr> {
    let updated = C::Model::binding(Role::UpdatedAt).expect("checked").column;
    let key_binding = C::Model::binding(Role::Key).expect("a key");
    let crate::config::Encode::Key(encode_key) = key_binding.encode else {
        unreachable!("the key has a key encoder")
    };
    let key = key_binding.column;
    let mut select = <C::Model as TrackingConfig>::Entity::find();
    // Past a cursor the comparison leaves rows without a time out by itself.
    if cursor.is_none() && updated.def().is_null() {
        select = select.filter(Expr::col(updated).is_not_null());
    }
    if let Some(cursor) = cursor {
        let value = updated.save_as(Expr::val(cursor.value.clone()));
        select = select.filter(
            Condition::any()
                .add(Expr::col(updated).gt(value.clone()))
                .add(
                    Condition::all()
                        .add(Expr::col(updated).eq(value))
                        .add(Expr::col(key).gt(encode_key(&cursor.key))),
                ),
        );
    }
    let select = select
        .order_by(updated, Order::Asc)
        .order_by(key, Order::Asc)
        .limit(100);
    find_all(select, shared.tracker.db()).await
}
