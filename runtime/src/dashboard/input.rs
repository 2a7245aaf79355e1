//! Checks every request's path and query string before any handler reads
//! them: a NUL character (`%00`) is refused with a 400 that says so. No run
//! key, name, message or log line can hold one (PostgreSQL stores none, and
//! the tracker refuses such keys), so such a request can only be malformed;
//! handed to PostgreSQL it would be refused as a whole statement.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::dashboard::api::ApiError;

/// Refuses a request whose decoded path or query holds a NUL: JSON under
/// `{base}/api/`, plain text elsewhere.
pub(crate) async fn refuse_nul(api_prefix: &str, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let decoded_has_nul = |raw: &str| percent_encoding::percent_decode_str(raw).any(|b| b == 0);
    let in_path = decoded_has_nul(uri.path());
    let in_query = uri.query().is_some_and(decoded_has_nul);
    if !in_path && !in_query {
        return next.run(request).await;
    }
    let error = ApiError::new(
        StatusCode::BAD_REQUEST,
        if in_path {
            "the path holds a NUL character (%00), which no run key can contain"
        } else {
            "the query string holds a NUL character (%00), which no run, name or log line can contain"
        },
    );
    if uri.path().starts_with(api_prefix) {
        error.into_response()
    } else {
        error.into_plain_response()
    }
}
