//! Who the client is, as far as the dashboard can tell: whether a proxy
//! stands between it and the dashboard, its address (through the trusted
//! proxies), the bucket the login throttle counts it in, and whether it
//! came over HTTPS (for `Secure` cookies).

use std::net::IpAddr;
#[cfg(feature = "auth")]
use std::net::Ipv6Addr;

use axum::http::HeaderMap;

/// Headers that only a reverse proxy, a sidecar, a CDN or a tunnel agent
/// adds: a browser never sends them. Besides these, every `X-Forwarded-*`
/// header counts.
const PROXY_HEADERS: &[&str] = &[
    "forwarded",
    "via",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-envoy-external-address",
];

/// The first header of `headers` that says the request came through a
/// proxy (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host`, `X-Real-IP`,
/// `Via`, …), by its lower-case name.
pub(crate) fn proxy_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .keys()
        .map(|name| name.as_str())
        .find(|name| name.starts_with("x-forwarded-") || PROXY_HEADERS.contains(name))
}

/// `ip` with a v4-mapped IPv6 address (`::ffff:a.b.c.d`) written as IPv4.
#[cfg(feature = "auth")]
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(feature = "auth")]
fn trusted_in(ip: IpAddr, trusted: &[IpAddr]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|t| canonical(*t) == ip)
}

/// Whether `peer` is one of the `trusted` proxies.
#[cfg(feature = "auth")]
pub(crate) fn is_trusted(peer: Option<IpAddr>, trusted: &[IpAddr]) -> bool {
    peer.is_some_and(|ip| trusted_in(ip, trusted))
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the nearest address before it that is not a trusted proxy — read from
/// the right of `X-Forwarded-For` (or, without it, of `Forwarded: for=`),
/// where each proxy appends the address it saw. Whatever the client wrote
/// itself stands further left, so it is never reached. `None` without a
/// peer address.
#[cfg(feature = "auth")]
pub(crate) fn client_addr(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let mut client = canonical(peer?);
    if !trusted_in(client, trusted) {
        return Some(client);
    }
    for hop in forwarded_for(headers).into_iter().rev() {
        match hop {
            // A hop that names nothing usable (`unknown`, an obfuscated
            // name, garbage): the address before it cannot be vouched for.
            None => break,
            Some(ip) => {
                client = canonical(ip);
                if !trusted_in(client, trusted) {
                    break;
                }
            }
        }
    }
    Some(client)
}

/// The addresses a request passed through, oldest first: every
/// `X-Forwarded-For` value in order, or else every `for=` of `Forwarded`.
#[cfg(feature = "auth")]
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(node_addr)
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|element| forwarded_param(element, "for"))
        .map(|node| node_addr(&node))
        .collect()
}

/// The value of `name` in one element of a `Forwarded` header
/// (`for=192.0.2.60;proto=http;by=203.0.113.43`), unquoted.
#[cfg(feature = "auth")]
fn forwarded_param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]:4711`.
#[cfg(feature = "auth")]
fn node_addr(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(v6) = node.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    node.parse().ok().or_else(|| {
        let (host, port) = node.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

/// The bucket the login throttle counts `ip` in: an IPv4 address, or the
/// /64 network of an IPv6 address (one customer's network: a client takes
/// a fresh address from it at will).
#[cfg(feature = "auth")]
pub(crate) fn bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{network}/64")
        }
    }
}

/// What a trusted proxy says of the client's scheme (`X-Forwarded-Proto`,
/// or `Forwarded: proto=`): `Some(false)` when every value it gives is
/// `http`, `Some(true)` when one is `https`, `None` when it says nothing.
#[cfg(feature = "auth")]
pub(crate) fn forwarded_https(headers: &HeaderMap) -> Option<bool> {
    let mut protos: Vec<String> = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if protos.is_empty() {
        protos = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| forwarded_param(element, "proto"))
            .map(|p| p.to_ascii_lowercase())
            .collect();
    }
    if protos.iter().any(|p| p == "https" || p == "wss") {
        Some(true)
    } else if !protos.is_empty() && protos.iter().all(|p| p == "http" || p == "ws") {
        Some(false)
    } else {
        None
    }
}

/// Whether the page that sent this request was loaded over plain HTTP
/// from a host other than loopback (its `Origin` says `http://host`): a
/// browser there drops a `Secure` cookie.
#[cfg(feature = "auth")]
pub(crate) fn plain_http_page(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|origin| origin.strip_prefix("http://"))
        .is_some_and(|host| !loopback_name(host))
}

/// Whether the request names this machine by a loopback name: its `Host`
/// (or, over HTTP/2, its URI's authority) is `localhost`, a `*.localhost`
/// name, a 127.0.0.0/8 address or `[::1]`, with any port. A request naming
/// nothing (HTTP/1.0) passes: browsers always name the host, and only a
/// browser can be made to rebind a name.
pub(crate) fn local_host(request: &axum::extract::Request) -> bool {
    let named = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    named.is_none_or(|named| loopback_name(&named))
}

/// Whether `named` (a host with an optional port, as in `Host`) is a
/// loopback name: `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`.
pub(crate) fn loopback_name(named: &str) -> bool {
    let host = match named.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => named.rsplit_once(':').map_or(named, |(h, _)| h),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// Whether `ip` is a loopback address (IPv4, IPv6 or v4-mapped).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(all(test, feature = "auth"))]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_found_through_trusted_proxies_only() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // (peer, headers, the client found)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            // Not a proxy: the peer, whatever it says.
            (
                "198.51.100.1",
                &[("x-forwarded-for", "192.0.2.9")],
                "198.51.100.1",
            ),
            // A trusted proxy: the address it appended.
            ("10.0.0.1", &[("x-forwarded-for", "192.0.2.9")], "192.0.2.9"),
            // What the client wrote before it is never read.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "1.2.3.4, 10.0.0.2, 192.0.2.9")],
                "192.0.2.9",
            ),
            // Through two trusted proxies.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "1.2.3.4, 192.0.2.9, 10.0.0.2")],
                "192.0.2.9",
            ),
            // Two header lines are one list.
            (
                "10.0.0.1",
                &[
                    ("x-forwarded-for", "1.2.3.4"),
                    ("x-forwarded-for", "192.0.2.9"),
                ],
                "192.0.2.9",
            ),
            // Ports and brackets.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "192.0.2.9:4711")],
                "192.0.2.9",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "[2001:db8::7]:4711")],
                "2001:db8::7",
            ),
            // RFC 7239.
            (
                "10.0.0.1",
                &[(
                    "forwarded",
                    "for=1.2.3.4, for=\"[2001:db8::7]:80\";proto=https",
                )],
                "2001:db8::7",
            ),
            // X-Forwarded-For wins over Forwarded.
            (
                "10.0.0.1",
                &[
                    ("forwarded", "for=1.2.3.4"),
                    ("x-forwarded-for", "192.0.2.9"),
                ],
                "192.0.2.9",
            ),
            // Nothing usable: the proxy itself.
            ("10.0.0.1", &[], "10.0.0.1"),
            ("10.0.0.1", &[("x-forwarded-for", "unknown")], "10.0.0.1"),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "192.0.2.9, garbage")],
                "10.0.0.1",
            ),
            // v4-mapped peers are the same proxies.
            (
                "::ffff:10.0.0.1",
                &[("x-forwarded-for", "192.0.2.9")],
                "192.0.2.9",
            ),
        ];
        for (peer, pairs, expected) in cases {
            assert_eq!(
                client_addr(Some(ip(peer)), &headers(pairs), &trusted),
                Some(ip(expected)),
                "{peer} {pairs:?}"
            );
        }
        assert_eq!(client_addr(None, &headers(&[]), &trusted), None);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket(ip("192.0.2.9")), "192.0.2.9");
        assert_eq!(bucket(ip("::ffff:192.0.2.9")), "192.0.2.9");
        assert_eq!(bucket(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_eq!(
            bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "2001:db8:1:2::/64"
        );
        assert_ne!(bucket(ip("2001:db8:1:3::1")), "2001:db8:1:2::/64");
    }

    #[test]
    fn proxy_headers_and_schemes() {
        assert_eq!(proxy_header(&headers(&[("host", "localhost")])), None);
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-real-ip",
            "via",
            "cf-connecting-ip",
        ] {
            assert_eq!(proxy_header(&headers(&[(name, "x")])), Some(name));
        }
        assert_eq!(forwarded_https(&headers(&[])), None);
        assert_eq!(
            forwarded_https(&headers(&[("x-forwarded-proto", "http")])),
            Some(false)
        );
        assert_eq!(
            forwarded_https(&headers(&[("x-forwarded-proto", "https, http")])),
            Some(true)
        );
        assert_eq!(
            forwarded_https(&headers(&[("forwarded", "for=1.2.3.4;proto=http")])),
            Some(false)
        );
        assert_eq!(
            forwarded_https(&headers(&[("x-forwarded-proto", "gopher")])),
            None
        );
        assert!(plain_http_page(&headers(&[(
            "origin",
            "http://10.0.0.5:8080"
        )])));
        assert!(!plain_http_page(&headers(&[(
            "origin",
            "http://localhost:8080"
        )])));
        assert!(!plain_http_page(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
        assert!(!plain_http_page(&headers(&[(
            "origin",
            "https://dash.example"
        )])));
        assert!(!plain_http_page(&headers(&[])));
    }
}
