//! Proxy hygiene: hop-by-hop headers removed both ways (upgrade headers
//! kept for an upgrade), `Host` kept or derived from the authority, and the
//! `X-Forwarded-*` headers set.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::task::{Context, Poll};

use bytes::BytesMut;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use super::{BoxFuture, ConnInfo};
use crate::body::Body;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Applies proxy hygiene to requests and responses.
#[derive(Clone, Copy, Debug)]
pub struct HygieneLayer;

/// See [`HygieneLayer`].
#[derive(Clone, Debug)]
pub struct Hygiene<S> {
    inner: S,
}

// === impl HygieneLayer ===

impl<S> Layer<S> for HygieneLayer {
    type Service = Hygiene<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hygiene { inner }
    }
}

// === impl Hygiene ===

impl<S, E> Service<Request<Body>> for Hygiene<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = E>,
    S::Future: Send + 'static,
    E: 'static,
{
    type Response = Response<Body>;
    type Error = E;
    type Future = BoxFuture<Response<Body>, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let upgrade = is_upgrade(req.headers());
        strip_hop_by_hop(req.headers_mut(), upgrade);
        if !req.headers().contains_key(header::HOST)
            && let Some(authority) = req.uri().authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        if let Some(info) = req.extensions().get::<ConnInfo>().copied() {
            set_forwarded(req.headers_mut(), &info);
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut rsp = response.await?;
            let upgraded = rsp.status() == StatusCode::SWITCHING_PROTOCOLS;
            strip_hop_by_hop(rsp.headers_mut(), upgraded);
            Ok(rsp)
        })
    }
}

/// Appends `ip` as text: IPv4 by hand, as `Ipv4Addr`'s `Display` (which
/// handles padding) is a visible cost on every request.
fn push_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b".");
                }
                if octet >= 100 {
                    out.extend_from_slice(&[b'0' + octet / 100]);
                }
                if octet >= 10 {
                    out.extend_from_slice(&[b'0' + octet / 10 % 10]);
                }
                out.extend_from_slice(&[b'0' + octet % 10]);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Whether the request asks for a protocol upgrade (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, and any header the `Connection` header
/// names. With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: then there is nothing to remove,
    // and no lookup is made per name.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| !(keep_upgrade && name == header::UPGRADE))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    // `TE: trailers` is end-to-end in practice: gRPC needs it.
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Whether `name` is one of the headers [`strip_hop_by_hop`] may remove
/// without being listed in `Connection`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ]
    .contains(name)
}

fn set_forwarded(headers: &mut HeaderMap, info: &ConnInfo) {
    let prior = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::as_bytes);
    let mut xff = BytesMut::with_capacity(prior.map_or(0, |p| p.len() + 2) + 39);
    if let Some(prior) = prior {
        xff.extend_from_slice(prior);
        xff.extend_from_slice(b", ");
    }
    push_ip(&mut xff, info.peer.ip());
    if let Ok(value) = HeaderValue::from_maybe_shared(xff.freeze()) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    let proto = if info.tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn ips_are_written_as_display_writes_them() {
        let ips: Vec<IpAddr> = vec![
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(127, 0, 0, 1).into(),
            Ipv4Addr::new(10, 99, 100, 255).into(),
            Ipv4Addr::new(192, 168, 9, 10).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8::ff00:42:8329".parse::<Ipv6Addr>().unwrap().into(),
        ];
        for ip in ips {
            let mut out = BytesMut::new();
            push_ip(&mut out, ip);
            assert_eq!(&out[..], ip.to_string().as_bytes());
        }
    }
}
