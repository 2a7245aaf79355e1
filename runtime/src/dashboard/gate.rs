//! Who may use the dashboard. Until an auth backend is configured (the auth
//! issue), only loopback clients, unless the user opts out explicitly.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Refuses clients that are not on loopback. A request without the peer's
/// address (a router served without `into_make_service_with_connect_info`)
/// is refused too: the peer cannot be shown to be local.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    let peer: Option<IpAddr> = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match peer {
        Some(ip) if is_loopback(ip) => next.run(request).await,
        Some(ip) => (
            StatusCode::FORBIDDEN,
            format!(
                "the tasktrail dashboard answers only loopback clients (this request came from {ip}); \
                 configure an auth backend, or call .allow_remote_without_auth() to serve it to anyone"
            ),
        )
            .into_response(),
        None => (
            StatusCode::FORBIDDEN,
            "the tasktrail dashboard answers only loopback clients, and this server does not tell it \
             the client's address: serve the app with \
             `into_make_service_with_connect_info::<SocketAddr>()`",
        )
            .into_response(),
    }
}

/// Without an auth backend, every (loopback) client may do what the
/// configuration allows.
pub(crate) async fn local_identity(mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(crate::auth::Identity::local());
    next.run(request).await
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}
