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
        Some(ip) if is_loopback(ip) && !local_host(&request) => (
            StatusCode::FORBIDDEN,
            "the tasktrail dashboard answers loopback clients only at a loopback name \
             (localhost, 127.0.0.1, [::1]); this request named another host, as a page \
             rebinding its own name to this machine would",
        )
            .into_response(),
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

/// Whether the request names this machine by a loopback name: its `Host`
/// (or, over HTTP/2, its URI's authority) is `localhost`, a `*.localhost`
/// name, a 127.0.0.0/8 address or `[::1]`, with any port. A request naming
/// nothing (HTTP/1.0) passes: browsers always name the host, and only a
/// browser can be made to rebind a name.
fn local_host(request: &Request) -> bool {
    let named = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(named) = named else { return true };
    let host = match named.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => named.rsplit_once(':').map_or(named.as_str(), |(h, _)| h),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::Request;

    #[test]
    fn loopback_names_only() {
        let named = |host: &str| {
            let request = Request::builder()
                .uri("/ops/")
                .header("host", host)
                .body(axum::body::Body::empty())
                .unwrap();
            super::local_host(&request)
        };
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:80",
            "app.localhost:3000",
            "LOCALHOST.",
        ] {
            assert!(named(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1",
            "localhost.evil.example",
            "[::2]:80",
            "127.0.0.1.evil.example",
        ] {
            assert!(!named(bad), "{bad}");
        }
    }
}
