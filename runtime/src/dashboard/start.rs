//! Starting a run of a registered task kind from the dashboard: a form per
//! kind whose arguments are written as JSON, and the same through the API.
//!
//! The arguments are checked by deserialising them into the kind's `Args`
//! type before anything is recorded; a refusal names the problem (serde's
//! message) and keeps the text in the form. Starting a run is an action:
//! the operator role, the action header and (with sessions) the CSRF
//! token, and an audit row for each run started.
//!
//! - `GET {prefix}/kinds/{name}/start`: the form.
//! - `POST {prefix}/kinds/{name}/start` (field `args`): starts the run;
//!   answers `303 See Other` to the new run's page (`HX-Redirect` for htmx).
//! - `POST {prefix}/api/kinds/{name}/runs` with `{"args": …}`: `201` with
//!   `{"key", "kind", "url"}`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::dashboard::actions::check_request;
use crate::dashboard::api::{ApiError, SafeJson};
use crate::dashboard::pages::{Layout, LinkBase, path_segment, render};
use crate::dashboard::{DashboardConfig, Shared};
use crate::run::{SpawnError, StartError};

/// The largest arguments taken, in bytes of JSON text (64 KiB).
pub(crate) const MAX_ARGS_BYTES: usize = 64 * 1024;

/// What the form starts with: no arguments written yet.
const EMPTY_ARGS: &str = "{}";

#[derive(Template)]
#[template(path = "start.html")]
struct StartPage {
    layout: Layout,
    kind: String,
    action_url: String,
    args: String,
    error: Option<String>,
    may_start: bool,
    refusal: String,
    /// The other kinds that can be started, with their forms' URLs.
    others: Vec<(String, String)>,
}

/// The form alone: what an htmx submission swaps in.
#[derive(Template)]
#[template(path = "start_form.html")]
struct StartForm {
    action_url: String,
    args: String,
    error: Option<String>,
    may_start: bool,
    refusal: String,
}

/// The names of the kinds that can be started from the dashboard: the kinds
/// registered in this process (`Tracker::register`) and those enqueued on a
/// job queue's workers, sorted.
pub(crate) fn startable_kinds<C: DashboardConfig>(shared: &Shared<C>) -> Vec<String> {
    shared.tracker.startable_kinds()
}

/// The start form's URL for kind `name`, under `links`.
pub(crate) fn form_url(links: &LinkBase, name: &str) -> String {
    format!("{}/kinds/{}/start", links.0, path_segment(name))
}

/// `text` cut to `max` characters, for messages that repeat a request.
fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    } else {
        text.to_owned()
    }
}

/// 404 unless `name` is a kind that can be started here.
fn registered<C: DashboardConfig>(shared: &Shared<C>, name: &str) -> Result<(), ApiError> {
    let kinds = startable_kinds(shared);
    if kinds.iter().any(|k| k == name) {
        return Ok(());
    }
    let known = if kinds.is_empty() {
        "no task kind is registered (tracker.register(…))".to_owned()
    } else {
        format!("the kinds that can be started here: {}", kinds.join(", "))
    };
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no task kind `{}` is registered in this process, so it cannot be started here; {known}",
            excerpt(name, 100)
        ),
    ))
}

/// 403 unless `identity` may start runs on this dashboard.
fn allowed<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
) -> Result<(), ApiError> {
    if shared.settings.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only",
        ));
    }
    if !identity.role.may_act() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a {} may not start runs; ask for the operator role",
                identity.role
            ),
        ));
    }
    Ok(())
}

/// The arguments' text as JSON: 413 past [`MAX_ARGS_BYTES`], 422 when it
/// is not JSON.
fn parse_args(text: &str) -> Result<serde_json::Value, ApiError> {
    if text.len() > MAX_ARGS_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the arguments are {} bytes; at most {MAX_ARGS_BYTES} bytes (64 KiB) are taken",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the arguments are empty: write them as JSON (`{}` or `null` when the kind takes none)",
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the arguments are not valid JSON: {e}"),
        )
    })
}

/// Starts a run of `name` with `args` as `identity`, and records it in the
/// audit trail; `via` says where it came from (`page`, `api`).
async fn start<C: DashboardConfig>(
    shared: &Shared<C>,
    identity: &crate::auth::Identity,
    name: &str,
    args: serde_json::Value,
    via: &str,
) -> Result<String, ApiError> {
    use crate::auth::audit::{Keep, Outcome, record};
    let result = match allowed(shared, identity) {
        Ok(()) => {
            let actor = identity.user.as_ref().map(|u| u.name.clone());
            shared
                .tracker
                .start_by_name(name, args, actor.as_deref())
                .await
                .map_err(|err| start_error(name, err))
        }
        Err(err) => Err(err),
    };
    // A row for each run started; a refusal is about no run, so it is only
    // traced (a loop of bad requests writes no row).
    let (target, outcome, detail, keep) = match &result {
        Ok(key) => (
            key.clone(),
            Outcome::Done,
            format!("{via}: a new `{name}` run"),
            Keep::Row,
        ),
        Err(err) => (
            name.to_owned(),
            if err.status().is_server_error() {
                Outcome::Failed
            } else {
                Outcome::Refused
            },
            format!("{via}: {}", err.message()),
            Keep::TraceOnly,
        ),
    };
    record(
        &shared.tracker.inner().writer,
        identity,
        "start",
        &target,
        outcome,
        &detail,
        keep,
    )
    .await;
    result
}

fn start_error(name: &str, err: StartError) -> ApiError {
    match err {
        StartError::NotRegistered => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no task kind `{name}` is registered in this process"),
        ),
        StartError::BadArgs(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the arguments do not fit `{name}`'s arguments: {message}"),
        ),
        StartError::Spawn(err @ (SpawnError::Conflict(_) | SpawnError::AlreadyRunning(_))) => {
            ApiError::new(StatusCode::CONFLICT, err.to_string())
        }
        StartError::Spawn(err @ SpawnError::ShuttingDown) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
        StartError::Spawn(SpawnError::Locks { source, .. }) => source.into(),
        StartError::Spawn(err) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
        StartError::Enqueue(message) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the job could not be enqueued: {message}"),
        ),
        StartError::Record(message) => {
            tracing::error!(kind = name, error = %message, "tasktrail dashboard: an enqueued run could not be recorded");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the job was enqueued but its run could not be recorded; the server's log has the detail",
            )
        }
    }
}

fn form_view<C: DashboardConfig>(
    shared: &Shared<C>,
    links: &LinkBase,
    identity: &crate::auth::Identity,
    name: &str,
    args: String,
    error: Option<String>,
) -> StartForm {
    let refusal = allowed(shared, identity)
        .err()
        .map(|e| format!("You cannot start runs here: {}.", e.message()))
        .unwrap_or_default();
    StartForm {
        action_url: form_url(links, name),
        args,
        error,
        may_start: refusal.is_empty(),
        refusal,
    }
}

fn page<C: DashboardConfig>(
    shared: &Shared<C>,
    links: &LinkBase,
    identity: &crate::auth::Identity,
    name: &str,
    form: StartForm,
) -> StartPage {
    StartPage {
        layout: Layout::of(shared, links, identity),
        kind: name.to_owned(),
        action_url: form.action_url,
        args: form.args,
        error: form.error,
        may_start: form.may_start,
        refusal: form.refusal,
        others: startable_kinds(shared)
            .into_iter()
            .filter(|k| k != name)
            .map(|k| {
                let href = form_url(links, &k);
                (k, href)
            })
            .collect(),
    }
}

/// `GET {prefix}/kinds/{name}/start`: the form.
pub(crate) async fn form<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(name): Path<String>,
) -> Response {
    if let Err(err) = registered(&shared, &name) {
        return err.into_plain_response();
    }
    let form = form_view(&shared, &links, &identity, &name, EMPTY_ARGS.into(), None);
    render(&page(&shared, &links, &identity, &name, form))
}

/// `POST {prefix}/kinds/{name}/start` with the form's `args`: starts the
/// run and sends the browser to its page; a refusal shows the form again
/// with the message and the text as written — the whole page with the
/// refusal's status (403, 413, 422), or for htmx the form alone with 200
/// and the status in `X-Tasktrail-Status`.
pub(crate) async fn submit<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(err) = check_request(&headers) {
        return err.into_plain_response();
    }
    if let Err(err) = registered(&shared, &name) {
        return err.into_plain_response();
    }
    let text = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "args")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let result = match parse_args(&text) {
        Ok(args) => start(&shared, &identity, &name, args, "page").await,
        Err(err) => Err(err),
    };
    let htmx = headers.contains_key("hx-request");
    match result {
        Ok(key) => {
            let to = format!("{}/runs/{}", links.0, path_segment(&key));
            let Ok(location) = HeaderValue::from_str(&to) else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            if htmx {
                // htmx follows a 303 itself and would swap the run's page
                // into the form: it navigates on `HX-Redirect`.
                let escaped: String = key
                    .chars()
                    .map(|c| match c {
                        '&' => "&amp;".to_owned(),
                        '<' => "&lt;".to_owned(),
                        '>' => "&gt;".to_owned(),
                        '"' => "&quot;".to_owned(),
                        '\'' => "&#39;".to_owned(),
                        c => c.to_string(),
                    })
                    .collect();
                let mut response = Html(format!(
                    "<p class=\"flash flash-ok\">Started run {escaped}.</p>"
                ))
                .into_response();
                response.headers_mut().insert("hx-redirect", location);
                response
            } else {
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
        }
        Err(err) => {
            let status = err.status();
            // The text is kept as written (a huge one is not echoed back).
            let kept = if text.len() > MAX_ARGS_BYTES {
                String::new()
            } else {
                text
            };
            let form = form_view(
                &shared,
                &links,
                &identity,
                &name,
                kept,
                Some(err.message().to_owned()),
            );
            if htmx {
                // The form again, with the message: a 200, so that htmx
                // swaps it in without reporting an error to the console
                // (the status is in `X-Tasktrail-Status`).
                let mut response = render(&form);
                response
                    .headers_mut()
                    .insert("x-tasktrail-status", HeaderValue::from(status.as_u16()));
                return response;
            }
            let mut response = render(&page(&shared, &links, &identity, &name, form));
            if response.status().is_success() {
                *response.status_mut() = status;
            }
            response
        }
    }
}

/// The body of `POST {prefix}/api/kinds/{name}/runs`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    args: serde_json::Value,
}

/// `POST {prefix}/api/kinds/{name}/runs` with `{"args": …}`: `201` with the
/// new run's key and URL.
pub(crate) async fn api<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_request(&headers)?;
    allowed(&shared, &identity)?;
    registered(&shared, &name)?;
    // The arguments' limit, and room for `{"args": }` around them.
    if body.len() > MAX_ARGS_BYTES + 64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {} bytes; the arguments may take at most {MAX_ARGS_BYTES} bytes (64 KiB)",
                body.len()
            ),
        ));
    }
    let request: StartRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object `{{\"args\": …}}`: {e}"),
        )
    })?;
    let key = start(&shared, &identity, &name, request.args, "api").await?;
    let url = format!("{}/runs/{}", links.0, path_segment(&key));
    let mut response = (
        StatusCode::CREATED,
        SafeJson(json!({ "key": key, "kind": name, "url": url })),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
