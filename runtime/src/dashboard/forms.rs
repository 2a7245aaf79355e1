//! The pages' actions: the htmx requests behind the action buttons and the
//! bulk form, answered with HTML fragments swapped into the page's
//! `#flash` area.
//!
//! The same checks as the JSON API apply (`X-Requested-With`, which htmx
//! sends on every request of the pages, and the Origin check). Bulk actions
//! always take two steps: the first request answers with the number of
//! runs and a confirmation form; only its submission acts.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::dashboard::actions::{
    Action, BULK_IMMEDIATE_LIMIT, Done, act, bulk, check_request, matching_keys,
};
use crate::dashboard::api::{ApiError, query_pairs};
use crate::dashboard::pages::{LinkBase, path_segment};
use crate::dashboard::{DashboardConfig, Shared};

/// How many per-run lines a result lists before "… and N more".
const DETAILS_SHOWN: usize = 10;

#[derive(Template)]
#[template(path = "flash.html")]
struct Flash {
    /// `ok` or `error`.
    kind: &'static str,
    message: String,
    link: Option<(String, String)>,
    details: Vec<String>,
    more: usize,
    /// JSON list of keys whose rows the page removes.
    removed: String,
}

impl Flash {
    fn ok(message: impl Into<String>) -> Flash {
        Flash {
            kind: "ok",
            message: message.into(),
            link: None,
            details: Vec::new(),
            more: 0,
            removed: String::new(),
        }
    }

    fn error(err: &ApiError) -> Flash {
        Flash {
            kind: "error",
            ..Flash::ok(err.message())
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct Confirm {
    prefix: String,
    question: String,
    note: Option<String>,
    action: &'static str,
    scope: &'static str,
    filter: String,
    count: usize,
    keys: Vec<String>,
}

fn fragment(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "tasktrail dashboard: a fragment failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

fn error_fragment(err: ApiError) -> Response {
    fragment(err.status(), &Flash::error(&err))
}

/// `POST {prefix}/runs/{key}/{action}` from a run's page.
pub(crate) async fn run_action<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    Path((key, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        check_request(&headers)?;
        let action = Action::parse(&action)?;
        act(&shared, &identity, action, &key, "page").await
    }
    .await;
    match result {
        Ok(Done::Cancelled { signalled }) => fragment(
            StatusCode::OK,
            &Flash::ok(if signalled {
                format!("Cancellation requested: run {key} stops at its next check.")
            } else {
                format!("Run {key} was cancelled before it started.")
            }),
        ),
        Ok(Done::Retried { new_key }) => fragment(
            StatusCode::OK,
            &Flash {
                link: Some((
                    format!("{}/runs/{}", links.0, path_segment(&new_key)),
                    format!("Open run {new_key}"),
                )),
                ..Flash::ok(format!("Run {key} is being retried as {new_key}."))
            },
        ),
        Ok(Done::Deleted) => {
            // The run is gone: back to the list.
            let mut response = fragment(
                StatusCode::OK,
                &Flash::ok(format!("Run {key} was deleted.")),
            );
            if let Ok(to) = HeaderValue::from_str(&format!("{}/runs", links.0)) {
                response.headers_mut().insert("hx-redirect", to);
            }
            response
        }
        Err(err) => error_fragment(err),
    }
}

/// The bulk form's fields.
struct BulkForm {
    action: String,
    scope: String,
    filter: String,
    keys: Vec<String>,
    confirmed: Option<String>,
}

impl BulkForm {
    fn parse(body: &[u8]) -> BulkForm {
        let mut form = BulkForm {
            action: String::new(),
            scope: String::new(),
            filter: String::new(),
            keys: Vec::new(),
            confirmed: None,
        };
        for (k, v) in form_urlencoded::parse(body) {
            match &*k {
                "action" => form.action = v.into_owned(),
                "scope" => form.scope = v.into_owned(),
                "filter" => form.filter = v.into_owned(),
                "key" => form.keys.push(v.into_owned()),
                "confirmed" => form.confirmed = Some(v.into_owned()),
                _ => {}
            }
        }
        form
    }
}

/// A filter query string as people read it: `status = failed, search “x”`.
fn describe_filter(filter: &str) -> String {
    let parts: Vec<String> = query_pairs(Some(filter))
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && k != "sort" && k != "after" && k != "limit")
        .map(|(k, v)| {
            if k == "q" {
                format!("search “{v}”")
            } else {
                format!("{k} = {v}")
            }
        })
        .collect();
    if parts.is_empty() {
        "no filter (every run)".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `POST {prefix}/runs/bulk`: the list page's bulk form, and its
/// confirmation.
pub(crate) async fn bulk_form<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
    Extension(identity): Extension<crate::auth::Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match bulk_step(&shared, &links, &identity, &headers, BulkForm::parse(&body)).await {
        Ok(response) => response,
        Err(err) => error_fragment(err),
    }
}

async fn bulk_step<C: DashboardConfig>(
    shared: &Shared<C>,
    links: &LinkBase,
    identity: &crate::auth::Identity,
    headers: &HeaderMap,
    form: BulkForm,
) -> Result<Response, ApiError> {
    check_request(headers)?;
    let action = Action::parse(&form.action)?;
    action.allowed(shared, identity)?;
    let (scope, keys) = match form.scope.as_str() {
        "selected" | "" => {
            if form.keys.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "select at least one run, or choose “every run matching”",
                ));
            }
            ("selected", form.keys)
        }
        "matching" => match matching_keys(shared, &form.filter, BULK_IMMEDIATE_LIMIT).await? {
            Some(keys) => ("matching", keys),
            None => return background_step(shared, links, identity, action, form).await,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown scope `{other}`; expected selected or matching"),
            ));
        }
    };
    let count = keys.len();
    let confirmed = form.confirmed.as_deref().map(str::parse::<usize>);
    let changed = matches!(confirmed, Some(Ok(n)) if n != count);
    if confirmed.is_none() || changed || count == 0 {
        if count == 0 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no run matches this filter",
            ));
        }
        let what = if scope == "matching" {
            format!("matching {}", describe_filter(&form.filter))
        } else {
            "selected".to_owned()
        };
        let runs = if count == 1 { "run" } else { "runs" };
        return Ok(fragment(
            StatusCode::OK,
            &Confirm {
                prefix: links.0.clone(),
                question: format!("{} {count} {what} {runs}?", capitalised(action.name())),
                note: changed
                    .then(|| "The number of matching runs changed since you asked.".to_owned())
                    .or_else(|| {
                        (action == Action::Delete).then(|| "Deleting cannot be undone.".to_owned())
                    }),
                action: action.name(),
                scope,
                filter: form.filter,
                count,
                keys: if scope == "selected" {
                    keys
                } else {
                    Vec::new()
                },
            },
        ));
    }
    let outcome = bulk(shared, identity, action, keys).await?;
    let done = outcome.done.len();
    let skipped = outcome.skipped.len();
    let runs = if done == 1 { "run" } else { "runs" };
    let mut message = format!("{} {done} {runs}.", capitalised(outcome.action.done()));
    if skipped > 0 {
        message.push_str(&format!(" Skipped {skipped}:"));
    }
    let removed = if outcome.action == Action::Delete {
        serde_json::to_string(&outcome.done.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut details: Vec<String> = outcome
        .skipped
        .iter()
        .map(|(key, why)| format!("{key}: {why}"))
        .collect();
    let more = details.len().saturating_sub(DETAILS_SHOWN);
    details.truncate(DETAILS_SHOWN);
    Ok(fragment(
        StatusCode::OK,
        &Flash {
            details,
            more,
            removed,
            ..Flash::ok(message)
        },
    ))
}

/// "Every run matching" a filter that matches more than
/// [`BULK_IMMEDIATE_LIMIT`] runs: asked with the count, then started as a
/// background run, whose page the browser opens (`HX-Redirect`).
async fn background_step<C: DashboardConfig>(
    shared: &Shared<C>,
    links: &LinkBase,
    identity: &crate::auth::Identity,
    action: Action,
    form: BulkForm,
) -> Result<Response, ApiError> {
    if form.confirmed.is_none() {
        let query = crate::dashboard::bulk_run::walk_query(shared, &form.filter)?;
        let count = crate::dashboard::query::count::<C::Model>(
            shared.tracker.db(),
            &shared.settings,
            &query,
        )
        .await?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        return Ok(fragment(
            StatusCode::OK,
            &Confirm {
                prefix: links.0.clone(),
                question: format!(
                    "{} all {count} runs matching {}?",
                    capitalised(action.name()),
                    describe_filter(&form.filter)
                ),
                note: Some(format!(
                    "More than {BULK_IMMEDIATE_LIMIT} runs: they are {} by a background run, whose page shows its progress and can stop it.{}",
                    action.done(),
                    if action == Action::Delete {
                        " Deleting cannot be undone."
                    } else {
                        ""
                    }
                )),
                action: action.name(),
                scope: "matching",
                filter: form.filter,
                count,
                keys: Vec::new(),
            },
        ));
    }
    let (key, total) =
        crate::dashboard::bulk_run::start(shared, identity, action, &form.filter).await?;
    let href = format!("{}/runs/{}", links.0, path_segment(&key));
    let mut response = fragment(
        StatusCode::OK,
        &Flash {
            link: Some((href.clone(), format!("Open run {key}"))),
            ..Flash::ok(format!(
                "Started a background run to {} {total} matching runs.",
                action.name()
            ))
        },
    );
    if let Ok(to) = HeaderValue::from_str(&href) {
        response.headers_mut().insert("hx-redirect", to);
    }
    Ok(response)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
