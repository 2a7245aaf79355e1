//! "Every run matching" bulk actions over any count: a tracked background
//! run of the task `tasktrail.bulk` (arguments: the action and the list
//! query) that walks the matching runs page by page with the list's keyset
//! pagination, applies the action to each (each with its audit row, as an
//! immediate bulk action does), reports its progress, and stops when it is
//! cancelled. Its page shows the progress live and has the cancel button.
//!
//! A selection of at most [`BULK_IMMEDIATE_LIMIT`] matching runs (and a
//! list of explicit keys) is still acted on in the request itself.
//!
//! [`BULK_IMMEDIATE_LIMIT`]: crate::dashboard::actions::BULK_IMMEDIATE_LIMIT

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value as JsonValue, json};

use crate::config::{Role, TrackingConfig, column_value, value_text};
use crate::dashboard::actions::{Action, Done, act_as};
use crate::dashboard::api::{ApiError, query_pairs};
use crate::dashboard::query::{ListQuery, MAX_LIMIT, count, list};
use crate::dashboard::{DashboardConfig, Shared};
use crate::run::{SpawnError, TaskContext};

/// The task name of background bulk actions.
pub const BULK_TASK: &str = "tasktrail.bulk";

/// How many runs between two progress reports.
const REPORT_EVERY: u64 = 25;

/// The list query of "every run matching `filter`", walked newest first by
/// creation time (when the entity maps it), so that the runs a retry
/// creates meanwhile are behind the walk, never ahead of it.
pub(crate) fn walk_query<C: DashboardConfig>(
    shared: &Shared<C>,
    filter: &str,
) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(Some(filter))
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && k != "after" && k != "limit")
        .collect();
    let mut query = ListQuery::parse::<C::Model>(&shared.settings, &pairs)?;
    query.limit = MAX_LIMIT;
    if let Some(created) = C::Model::field(Role::CreatedAt) {
        query.sort = created.field;
        query.descending = true;
    }
    Ok(query)
}

/// Starts the background run acting on every run matching `filter`;
/// answers its key and how many runs matched when it started.
pub(crate) async fn start<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
    action: Action,
    filter: &str,
) -> Result<(String, u64), ApiError> {
    use crate::auth::audit::{Keep, Outcome, record};
    action.allowed(shared, identity)?;
    let query = walk_query(shared, filter)?;
    let total = count::<C::Model>(shared.tracker.db(), &shared.settings, &query).await?;
    let mut builder = shared
        .tracker
        .begin(BULK_TASK)
        .args(&json!({ "action": action.name(), "filter": filter }))
        .message(format!(
            "{} every run matching {} (about {total})",
            action.name(),
            if filter.is_empty() {
                "(all runs)"
            } else {
                filter
            }
        ));
    if let Some(user) = &identity.user {
        builder = builder.actor(user.name.as_str());
    }
    let walker = (shared.clone(), identity.clone());
    let spawned = builder
        .spawn(move |ctx| walk(walker.0, walker.1, action, query, total, ctx))
        .await
        .map_err(|err| match err {
            SpawnError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            }
            SpawnError::Locks { source, .. } => source.into(),
            other => ApiError::new(StatusCode::CONFLICT, other.to_string()),
        })?;
    let key = spawned.key().to_owned();
    record(
        &shared.tracker.inner().writer,
        identity,
        action.name(),
        &key,
        Outcome::Done,
        &format!("bulk in the background: every run matching `{filter}` ({total} when it started)"),
        Keep::Row,
    )
    .await;
    Ok((key, total))
}

fn report(ctx: &TaskContext, action: Action, done: u64, skipped: u64, total: u64) {
    let seen = done + skipped;
    let percent = if total == 0 {
        0.0
    } else {
        (seen as f64 * 100.0 / total as f64).min(99.0)
    };
    ctx.progress_with_message(
        percent,
        format!(
            "{} {done} of about {total} runs{}",
            action.done(),
            if skipped > 0 {
                format!(", skipped {skipped}")
            } else {
                String::new()
            }
        ),
    );
}

/// The background run: every matching run, page by page.
async fn walk<C: DashboardConfig>(
    shared: Shared<C>,
    identity: crate::auth::Identity,
    action: Action,
    mut query: ListQuery,
    total: u64,
    ctx: TaskContext,
) -> Result<JsonValue, String> {
    let (key_col, _) = crate::config::key_encoder::<C::Model>();
    let own = ctx.key().to_owned();
    // The runs this walk's retries made: never acted on again.
    let mut made: HashSet<String> = HashSet::new();
    let (mut done, mut skipped) = (0_u64, 0_u64);
    report(&ctx, action, done, skipped, total);
    loop {
        ctx.check().map_err(|c| c.to_string())?;
        let page = list::<C::Model>(shared.tracker.db(), &shared.settings, &query)
            .await
            .map_err(|err| format!("reading the matching runs failed after {done}: {err}"))?;
        for row in &page.rows {
            ctx.check().map_err(|c| c.to_string())?;
            let Some(key) = value_text(column_value::<<C::Model as TrackingConfig>::Entity>(
                row, key_col,
            )) else {
                continue;
            };
            if key == own || made.contains(&key) {
                continue;
            }
            match act_as(&shared, &identity, action, &key, "bulk", true).await {
                Ok(Done::Retried { new_key }) => {
                    made.insert(new_key);
                    done += 1;
                }
                Ok(_) => done += 1,
                Err(err) if err.status().is_server_error() => {
                    return Err(format!(
                        "stopped after {} {done} runs: {}",
                        action.done(),
                        err.message()
                    ));
                }
                Err(_) => skipped += 1,
            }
            if (done + skipped) % REPORT_EVERY == 0 {
                report(&ctx, action, done, skipped, total);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    ctx.progress_with_message(
        100.0,
        format!(
            "{} {done} runs{}",
            capitalised(action.done()),
            if skipped > 0 {
                format!("; skipped {skipped} whose state did not allow it")
            } else {
                String::new()
            }
        ),
    );
    Ok(json!({ "action": action.name(), "done": done, "skipped": skipped }))
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
