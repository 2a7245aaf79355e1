//! Who may use the dashboard without an auth backend: loopback clients
//! only, asking for a loopback name, and not through a proxy — unless the
//! user opts out explicitly.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::client::{is_loopback, local_host};

/// Refuses clients that are not on loopback. A request without the peer's
/// address (a router served without `into_make_service_with_connect_info`,
/// or driven by `oneshot` without a `ConnectInfo` extension) is refused
/// too: the peer cannot be shown to be local. So is a loopback request
/// that came through a proxy (it carries `Forwarded`, `X-Forwarded-*`,
/// `X-Real-IP`, `Via`, …): a reverse proxy, a sidecar or a tunnel agent on
/// this host connects from loopback on behalf of clients from anywhere.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    let peer: Option<IpAddr> = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let refuse = |message: String| (StatusCode::FORBIDDEN, message).into_response();
    match peer {
        Some(ip) if is_loopback(ip) => {
            if let Some(header) = crate::auth::client::proxy_header(request.headers()) {
                return refuse(format!(
                    "the tasktrail dashboard answers loopback clients only, and this request came \
                     through a proxy or a tunnel (it carries the `{header}` header): behind one, \
                     every client would look local, so it is refused. Give the dashboard users with \
                     `.auth(…)` (`HeaderAuth` for a proxy that logs them in) and list the proxy's \
                     address in `.trusted_proxies(…)`, or call `.allow_remote_without_auth()` if \
                     everyone who can reach the proxy may see and act on every run"
                ));
            }
            if !local_host(&request) {
                return refuse(
                    "the tasktrail dashboard answers loopback clients only at a loopback name \
                     (localhost, 127.0.0.1, [::1]); this request named another host, as a page \
                     rebinding its own name to this machine would"
                        .to_owned(),
                );
            }
            next.run(request).await
        }
        Some(ip) => refuse(format!(
            "the tasktrail dashboard answers only loopback clients (this request came from {ip}); \
             configure an auth backend, or call .allow_remote_without_auth() to serve it to anyone"
        )),
        None => refuse(
            "the tasktrail dashboard answers only loopback clients, and this request does not say \
             the client's address: serve the app with \
             `into_make_service_with_connect_info::<SocketAddr>()`; when you drive the router \
             yourself (a test with `tower::ServiceExt::oneshot`), insert the peer's address into \
             the request: `request.extensions_mut().insert(ConnectInfo(addr))`, with \
             `axum::extract::ConnectInfo` and a `SocketAddr` such as 127.0.0.1:50000"
                .to_owned(),
        ),
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
            crate::auth::client::local_host(&request)
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
