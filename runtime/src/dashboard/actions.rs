//! Actions on runs through the JSON API: cancel, retry, delete.
//!
//! Every action is a state-changing request, so it must prove it comes from
//! a page or a client of the dashboard and not from another site: it needs
//! the header `X-Requested-With: tasktrail` (a cross-site form cannot set
//! it, and a cross-site script cannot without a CORS preflight, which the
//! dashboard never grants), and an `Origin`, when sent, must be the
//! dashboard's own host. The auth issue adds session-bound tokens on top.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::config::{Role, TrackingConfig, column_value};
use crate::dashboard::api::{ApiError, SafeJson, find_run};
use crate::dashboard::{DashboardConfig, Shared};
use crate::run::{CancelOutcome, RetryError, SpawnError};

/// The header every action must carry, and its value.
pub const ACTION_HEADER: &str = "x-requested-with";
/// The value of [`ACTION_HEADER`].
pub const ACTION_HEADER_VALUE: &str = "tasktrail";

fn check_request(headers: &HeaderMap) -> Result<(), ApiError> {
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
    if let Some(origin) = headers.get(header::ORIGIN) {
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

fn allowed<C: DashboardConfig>(
    shared: &Shared<C>,
    enabled: bool,
    action: &str,
) -> Result<(), ApiError> {
    if shared.settings.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only",
        ));
    }
    if !enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the `{action}` action is not enabled on this dashboard"),
        ));
    }
    Ok(())
}

/// `POST {prefix}/api/runs/{key}/cancel`
pub(crate) async fn cancel<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<SafeJson, ApiError> {
    check_request(&headers)?;
    allowed(&shared, shared.settings.actions.cancel, "cancel")?;
    let outcome = shared
        .tracker
        .cancel(&key, Some("from the dashboard".into()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    match outcome {
        CancelOutcome::Signalled => Ok(SafeJson(json!({ "key": key, "outcome": "signalled" }))),
        CancelOutcome::Recorded => Ok(SafeJson(json!({ "key": key, "outcome": "recorded" }))),
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

/// `POST {prefix}/api/runs/{key}/retry`
pub(crate) async fn retry<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, SafeJson), ApiError> {
    check_request(&headers)?;
    allowed(&shared, shared.settings.actions.retry, "retry")?;
    match shared.tracker.retry(&key).await {
        Ok(spawned) => Ok((
            StatusCode::ACCEPTED,
            SafeJson(json!({ "key": spawned.key(), "retry_of": key })),
        )),
        Err(RetryError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run has the key `{key}`"),
        )),
        Err(RetryError::Spawn(SpawnError::Conflict(c))) => Err(ApiError::new(
            StatusCode::CONFLICT,
            SpawnError::Conflict(c).to_string(),
        )),
        Err(RetryError::Db { source, .. }) => Err(source.into()),
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
        )),
    }
}

/// `DELETE {prefix}/api/runs/{key}`: only runs that have ended.
pub(crate) async fn delete<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_request(&headers)?;
    allowed(&shared, shared.settings.actions.delete, "delete")?;
    let row = find_run::<C::Model>(&shared, &key).await?;
    let status_col = C::Model::binding(Role::Status).expect("a status").column;
    let status = C::Model::decode_status(column_value::<<C::Model as TrackingConfig>::Entity>(
        &row, status_col,
    ));
    if !status.is_some_and(|s| s.is_terminal()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{key}` has not ended; cancel it first"),
        ));
    }
    let (key_col, encode_key) = crate::config::key_encoder::<C::Model>();
    let delete =
        <C::Model as TrackingConfig>::Entity::delete_many().filter(key_col.eq(encode_key(&key)));
    let result: Result<sea_orm::DeleteResult, sea_orm::DbErr> =
        Box::pin(delete.exec(shared.tracker.db())).await;
    result?;
    Ok(StatusCode::NO_CONTENT)
}
