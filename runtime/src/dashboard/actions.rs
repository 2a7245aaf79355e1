//! Actions on runs: cancel, retry, delete — on one run, on a list of runs,
//! or on every run matching a filter — through the JSON API and the pages.
//!
//! Every action is a state-changing request, so it must prove it comes from
//! a page or a client of the dashboard and not from another site: it needs
//! the header `X-Requested-With: tasktrail` (a cross-site form cannot set
//! it, and a cross-site script cannot without a CORS preflight, which the
//! dashboard never grants), and an `Origin`, when sent, must be the
//! dashboard's own host. The auth issue adds session-bound tokens on top.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::config::{Role, TrackingConfig, column_value};
use crate::dashboard::api::{ApiError, SafeJson, find_run, query_pairs};
use crate::dashboard::query::{ListQuery, list};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;
use crate::run::{CancelOutcome, RetryError, SpawnError};

/// The header every action must carry, and its value.
pub const ACTION_HEADER: &str = "x-requested-with";
/// The value of [`ACTION_HEADER`].
pub const ACTION_HEADER_VALUE: &str = "tasktrail";

/// The most runs one bulk action on explicit keys takes (a list of keys in
/// one request).
pub const BULK_LIMIT: usize = 10_000;

/// The most runs an "every run matching" bulk action acts on in the
/// request itself; a filter matching more starts a background run (task
/// [`BULK_TASK`](crate::dashboard::bulk_run::BULK_TASK)) that acts on all
/// of them, with progress and cancel.
pub const BULK_IMMEDIATE_LIMIT: usize = 1_000;

/// How many runs of bulk retries run at once in a tracker without
/// `max_concurrent` (with it, its limit applies); the others wait as
/// `pending`.
pub const BULK_RETRY_CONCURRENCY: usize = crate::run::BULK_RETRY_CONCURRENCY;

pub(crate) fn check_request(headers: &HeaderMap) -> Result<(), ApiError> {
    let marked = headers
        .get(ACTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == ACTION_HEADER_VALUE);
    if !marked {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("actions need the header `X-Requested-With: {ACTION_HEADER_VALUE}`"),
        ));
    }
    // Over HTTP/2 there is no `Host` header: the header requirement above
    // (and, with sessions, the gate's token and origin checks against the
    // URI's authority) protect those requests.
    if let (Some(origin), true) = (
        headers.get(header::ORIGIN),
        headers.contains_key(header::HOST),
    ) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        if host.is_none() || origin_host != host {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin actions are refused",
            ));
        }
    }
    Ok(())
}

/// One of the actions a dashboard can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Cancel,
    Retry,
    Delete,
}

impl Action {
    pub(crate) fn parse(name: &str) -> Result<Action, ApiError> {
        match name {
            "cancel" => Ok(Action::Cancel),
            "retry" => Ok(Action::Retry),
            "delete" => Ok(Action::Delete),
            other => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown action `{other}`; expected cancel, retry or delete"),
            )),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Retry => "retry",
            Action::Delete => "delete",
        }
    }

    /// The past tense, for messages.
    pub(crate) fn done(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            Action::Retry => "retried",
            Action::Delete => "deleted",
        }
    }

    /// Refuses the action on a read-only dashboard or when it is not
    /// enabled.
    pub(crate) fn allowed<C: DashboardConfig>(
        self,
        shared: &Shared<C>,
        identity: &crate::auth::Identity,
    ) -> Result<(), ApiError> {
        let actions = &shared.settings.actions;
        let enabled = match self {
            Action::Cancel => actions.cancel,
            Action::Retry => actions.retry,
            Action::Delete => actions.delete,
        };
        if shared.settings.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this dashboard is read-only",
            ));
        }
        if !enabled {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the `{}` action is not enabled on this dashboard",
                    self.name()
                ),
            ));
        }
        if !identity.role.may_act() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "a {} may not {} runs; ask for the operator role",
                    identity.role,
                    self.name()
                ),
            ));
        }
        Ok(())
    }
}

/// What one action on one run did.
pub(crate) enum Done {
    /// Cancel: the running task was told, or a pending run recorded.
    Cancelled { signalled: bool },
    /// Retry: the key of the new run.
    Retried { new_key: String },
    /// Delete.
    Deleted,
}

/// Checks that `identity` may take `action`, applies it to run `key` and
/// records it in the audit trail with its outcome; `via` says where it came
/// from (`api`, `page`, `bulk`).
pub(crate) async fn act<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
    action: Action,
    key: &str,
    via: &str,
) -> Result<Done, ApiError> {
    act_as(shared, identity, action, key, via, false).await
}

/// [`act`]; `in_bulk` runs a retry through the bulk retries' limit.
pub(crate) async fn act_as<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
    action: Action,
    key: &str,
    via: &str,
    in_bulk: bool,
) -> Result<Done, ApiError> {
    use crate::auth::audit::{Keep, Outcome, record};
    let (result, keep) = match action.allowed(shared, identity) {
        Ok(()) => {
            let by = identity.user.as_ref().map(|u| u.name.clone());
            let result = apply(shared, action, key, in_bulk, by).await;
            // A 404 is about a run that does not exist: nothing to keep.
            let keep = match &result {
                Err(err) if err.status() == StatusCode::NOT_FOUND => Keep::TraceOnly,
                _ => Keep::Row,
            };
            (result, keep)
        }
        // A refusal is kept only about a run that exists, so that requests
        // for made-up keys cannot fill the table.
        Err(err) => (Err(err), run_exists(shared, key).await),
    };
    let (outcome, detail) = match &result {
        Ok(Done::Retried { new_key }) => (Outcome::Done, format!("{via}: new run {new_key}")),
        Ok(Done::Cancelled { signalled: true }) => (Outcome::Done, format!("{via}: signalled")),
        Ok(_) => (Outcome::Done, via.to_owned()),
        Err(err) if err.status().is_server_error() => {
            (Outcome::Failed, format!("{via}: {}", err.message()))
        }
        Err(err) => (Outcome::Refused, format!("{via}: {}", err.message())),
    };
    record(
        &shared.tracker.inner().writer,
        identity,
        action.name(),
        key,
        outcome,
        &detail,
        keep,
    )
    .await;
    result
}

/// Whether a refusal about run `key` goes in the table: only when the run
/// exists (a failed lookup keeps nothing either; it is traced).
async fn run_exists<C: DashboardConfig>(shared: &Shared<C>, key: &str) -> crate::auth::audit::Keep {
    use crate::auth::audit::Keep;
    let (key_col, encode_key) = crate::config::key_encoder::<C::Model>();
    let select = <C::Model as TrackingConfig>::Entity::find().filter(key_col.eq(encode_key(key)));
    match crate::config::find_one(select, shared.tracker.db()).await {
        Ok(Some(_)) => Keep::Row,
        Ok(None) => Keep::TraceOnly,
        Err(err) => {
            tracing::warn!(error = %err, "tasktrail dashboard: could not tell whether a refused action's run exists");
            Keep::TraceOnly
        }
    }
}

/// Applies `action` to the run `key`: 404 for an unknown run, 409 when the
/// run's state does not allow it, 422 when a retry cannot rebuild the task.
/// Database errors go through `ApiError`'s conversion: logged, never sent.
pub(crate) async fn apply<C: DashboardConfig>(
    shared: &Shared<C>,
    action: Action,
    key: &str,
    in_bulk: bool,
    by: Option<String>,
) -> Result<Done, ApiError> {
    match action {
        Action::Cancel => cancel_run(shared, key, by).await,
        Action::Retry => retry_run(shared, key, in_bulk).await,
        Action::Delete => delete_run(shared, key, by).await,
    }
}

async fn cancel_run<C: DashboardConfig>(
    shared: &Shared<C>,
    key: &str,
    by: Option<String>,
) -> Result<Done, ApiError> {
    use crate::lifecycle::TrackError;
    let outcome = match shared
        .tracker
        .cancel_by(key, Some("from the dashboard".into()), by)
        .await
    {
        Ok(outcome) => outcome,
        Err(TrackError::Refused { source, .. }) => return Err(source.into()),
        Err(err @ TrackError::QueueFull { .. }) => {
            tracing::error!(error = %err, "tasktrail dashboard: a cancel could not be recorded");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the runs database did not answer and the tracker's queue is full; try again",
            ));
        }
        Err(err @ TrackError::InvalidKey { .. }) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, err.to_string()));
        }
        Err(err @ (TrackError::EmptyKey | TrackError::UnknownExtra { .. })) => {
            tracing::error!(error = %err, "tasktrail dashboard: a cancel could not be recorded");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the cancel could not be recorded",
            ));
        }
    };
    match outcome {
        CancelOutcome::Signalled => Ok(Done::Cancelled { signalled: true }),
        CancelOutcome::Recorded => Ok(Done::Cancelled { signalled: false }),
        CancelOutcome::AlreadyEnded(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{key}` has already ended ({status})"),
        )),
        CancelOutcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run has the key `{key}`"),
        )),
    }
}

/// Retries run `key`: 409 for a run that has not ended or whose earlier
/// retry is still pending or running (see [`Tracker::retry`]).
///
/// [`Tracker::retry`]: crate::Tracker::retry
async fn retry_run<C: DashboardConfig>(
    shared: &Shared<C>,
    key: &str,
    in_bulk: bool,
) -> Result<Done, ApiError> {
    let retried = shared.tracker.retry_anywhere(key, in_bulk).await;
    let refused = |status: StatusCode, err: RetryError| Err(ApiError::new(status, err.to_string()));
    match retried {
        Ok(new_key) => Ok(Done::Retried { new_key }),
        Err(err @ RetryError::NotFound(_)) => refused(StatusCode::NOT_FOUND, err),
        Err(
            err @ (RetryError::NotEnded { .. }
            | RetryError::AlreadyRetrying { .. }
            | RetryError::Spawn(SpawnError::Conflict(_) | SpawnError::AlreadyRunning(_))),
        ) => refused(StatusCode::CONFLICT, err),
        Err(
            err @ (RetryError::Unmapped(_)
            | RetryError::UnknownKind { .. }
            | RetryError::Remote { .. }
            | RetryError::BadArgs { .. }
            | RetryError::Spawn(
                SpawnError::UnknownKind(_)
                | SpawnError::BadArgs { .. }
                | SpawnError::EmptyKey
                | SpawnError::InvalidKey { .. },
            )),
        ) => refused(StatusCode::UNPROCESSABLE_ENTITY, err),
        Err(err @ (RetryError::Spawn(SpawnError::ShuttingDown) | RetryError::Enqueue { .. })) => {
            refused(StatusCode::SERVICE_UNAVAILABLE, err)
        }
        Err(
            RetryError::Db { source, .. } | RetryError::Spawn(SpawnError::Locks { source, .. }),
        ) => Err(source.into()),
    }
}

/// Only runs that have ended, and that no instance still runs, can be
/// deleted.
async fn delete_run<C: DashboardConfig>(
    shared: &Shared<C>,
    key: &str,
    by: Option<String>,
) -> Result<Done, ApiError> {
    let row = find_run::<C::Model>(shared, key).await?;
    if !status_of(&row).is_some_and(|s| s.is_terminal()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{key}` has not ended; cancel it first"),
        ));
    }
    // A run whose lease is still held has an instance that may still run
    // it (a cancel recorded from here takes effect at its next heartbeat):
    // deleting its row now would let its next event bring the row back.
    // Checked in the delete itself, so no lease can slip in between.
    use crate::run::store::lease;
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let mut leased = Query::select();
    leased
        .expr(Expr::val(1))
        .from(lease::Entity)
        .and_where(Expr::col(lease::Column::Scope).eq(shared.tracker.scope()))
        .and_where(Expr::col(lease::Column::RunKey).eq(key));
    let (key_col, encode_key) = crate::config::key_encoder::<C::Model>();
    let delete = <C::Model as TrackingConfig>::Entity::delete_many()
        .filter(key_col.eq(encode_key(key)))
        .filter(Expr::exists(leased).not());
    // Through the writer: the delete and its change in the feed commit
    // together (the live streams learn of it).
    let stmt = sea_orm::QueryTrait::build(&delete, shared.tracker.db().get_database_backend());
    let deleted = Box::pin(shared.tracker.write_run_statement(key, stmt, "delete", by)).await?;
    if deleted == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run `{key}` is still stopping: the instance that runs it has not let it go yet; try again in a few seconds"
            ),
        ));
    }
    Ok(Done::Deleted)
}

pub(crate) fn status_of<M: TrackingConfig>(row: &M) -> Option<Status> {
    let status_col = M::binding(Role::Status).expect("a status").column;
    M::decode_status(column_value::<M::Entity>(row, status_col))
}

fn done_json(key: &str, done: &Done) -> serde_json::Value {
    match done {
        Done::Cancelled { signalled } => json!({
            "key": key,
            "outcome": if *signalled { "signalled" } else { "recorded" },
        }),
        Done::Retried { new_key } => json!({ "key": new_key, "retry_of": key }),
        Done::Deleted => json!({ "key": key, "outcome": "deleted" }),
    }
}

/// `POST {prefix}/api/runs/{key}/cancel`
pub(crate) async fn cancel<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<SafeJson, ApiError> {
    check_request(&headers)?;
    let done = act(&shared, &identity, Action::Cancel, &key, "api").await?;
    Ok(SafeJson(done_json(&key, &done)))
}

/// `POST {prefix}/api/runs/{key}/retry`
pub(crate) async fn retry<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, SafeJson), ApiError> {
    check_request(&headers)?;
    let done = act(&shared, &identity, Action::Retry, &key, "api").await?;
    Ok((StatusCode::ACCEPTED, SafeJson(done_json(&key, &done))))
}

/// `DELETE {prefix}/api/runs/{key}`: only runs that have ended.
pub(crate) async fn delete<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_request(&headers)?;
    act(&shared, &identity, Action::Delete, &key, "api").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The runs a bulk action names: explicit keys, or every run matching a
/// filter (the list's query string, e.g. `status=failed&q=import`).
pub(crate) enum Target {
    Keys(Vec<String>),
    Matching(String),
}

/// The keys of every run matching the list query `filter` (sorted as the
/// list sorts) when at most `most` match; `None` when more do.
pub(crate) async fn matching_keys<C: DashboardConfig>(
    shared: &Shared<C>,
    filter: &str,
    most: usize,
) -> Result<Option<Vec<String>>, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(Some(filter))
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && k != "after" && k != "limit")
        .collect();
    let mut query = ListQuery::parse::<C::Model>(&shared.settings, &pairs)?;
    query.limit = crate::dashboard::query::MAX_LIMIT.min(most as u64 + 1);
    let (key_col, _) = crate::config::key_encoder::<C::Model>();
    let mut keys = Vec::new();
    loop {
        let page = list::<C::Model>(shared.tracker.db(), &shared.settings, &query).await?;
        keys.extend(page.rows.iter().filter_map(|row| {
            crate::config::value_text(column_value::<<C::Model as TrackingConfig>::Entity>(
                row, key_col,
            ))
        }));
        if keys.len() > most {
            return Ok(None);
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(Some(keys)),
        }
    }
}

/// What a bulk action did, run by run.
pub(crate) struct BulkOutcome {
    pub action: Action,
    /// The runs it applied to, with what it did.
    pub done: Vec<(String, Done)>,
    /// The runs it skipped, with why.
    pub skipped: Vec<(String, String)>,
}

/// Applies `action` to every key in turn; a run whose state does not allow
/// it is skipped with the reason.
pub(crate) async fn bulk<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
    action: Action,
    keys: Vec<String>,
) -> Result<BulkOutcome, ApiError> {
    if let Err(err) = action.allowed(shared, identity) {
        crate::auth::audit::record(
            &shared.tracker.inner().writer,
            identity,
            action.name(),
            &format!("bulk of {} runs", keys.len()),
            crate::auth::audit::Outcome::Refused,
            err.message(),
            // Not about one run: traced, not kept.
            crate::auth::audit::Keep::TraceOnly,
        )
        .await;
        return Err(err);
    }
    if keys.len() > BULK_LIMIT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a bulk action takes at most {BULK_LIMIT} runs"),
        ));
    }
    let mut outcome = BulkOutcome {
        action,
        done: Vec::new(),
        skipped: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            continue;
        }
        match act_as(shared, identity, action, &key, "bulk", true).await {
            Ok(done) => outcome.done.push((key, done)),
            Err(err) if err.status().is_server_error() => return Err(err),
            Err(err) => outcome.skipped.push((key, err.message().to_owned())),
        }
    }
    Ok(outcome)
}

/// The body of `POST {prefix}/api/runs/bulk`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    action: String,
    #[serde(default)]
    keys: Option<Vec<String>>,
    /// A list query string: every run matching it.
    #[serde(default)]
    filter: Option<String>,
    /// With `filter`: act in a background run whatever the count (it is
    /// always one past [`BULK_IMMEDIATE_LIMIT`] matching runs).
    #[serde(default)]
    background: bool,
}

/// `POST {prefix}/api/runs/bulk` with `{"action": "cancel", "keys": […]}` or
/// `{"action": "delete", "filter": "status=failed"}`: `200` with what was
/// done, or — for a filter matching more than [`BULK_IMMEDIATE_LIMIT`]
/// runs, or with `"background": true` — `202` with the background run's
/// key (`bulk_run`) and page (`url`).
pub(crate) async fn bulk_api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<crate::dashboard::pages::LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    headers: HeaderMap,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    check_request(&headers)?;
    let Json(request) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let action = Action::parse(&request.action)?;
    action.allowed(&shared, &identity)?;
    let target = match (request.keys, request.filter) {
        (Some(keys), None) => Target::Keys(keys),
        (None, Some(filter)) => Target::Matching(filter),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give either `keys` (a list of run keys) or `filter` (a list query string)",
            ));
        }
    };
    let keys = match &target {
        Target::Keys(_) if request.background => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "`background` applies to `filter` (every run matching); explicit `keys` are acted on at once",
            ));
        }
        Target::Keys(keys) => Some(keys.clone()),
        Target::Matching(_) if request.background => None,
        Target::Matching(filter) => matching_keys(&shared, filter, BULK_IMMEDIATE_LIMIT).await?,
    };
    let Some(keys) = keys else {
        let Target::Matching(filter) = target else {
            unreachable!("explicit keys are acted on at once")
        };
        let (key, total) =
            crate::dashboard::bulk_run::start(&shared, &identity, action, &filter).await?;
        let url = format!(
            "{}/runs/{}",
            links.0,
            crate::dashboard::pages::path_segment(&key)
        );
        return Ok((
            StatusCode::ACCEPTED,
            SafeJson(json!({
                "action": action.name(),
                "bulk_run": key,
                "url": url,
                "matching": total,
            })),
        )
            .into_response());
    };
    let outcome = bulk(&shared, &identity, action, keys).await?;
    Ok(SafeJson(json!({
        "action": action.name(),
        "done": outcome.done.iter().map(|(k, d)| done_json(k, d)).collect::<Vec<_>>(),
        "skipped": outcome
            .skipped
            .iter()
            .map(|(k, why)| json!({ "key": k, "reason": why }))
            .collect::<Vec<_>>(),
    }))
    .into_response())
}
