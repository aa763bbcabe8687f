//! Proxy hygiene: hop-by-hop headers removed both ways (upgrade headers
//! kept for an upgrade), one `Host` that agrees with the authority the
//! request is routed by, and the `X-Forwarded-*` headers set.
//!
//! `Host`: a request with more than one `Host` line, or one that is not a
//! `host[:port]`, or an HTTP/1.1 request with neither `Host` nor an
//! absolute-form target, is answered 400 (RFC 9112 §3.2). When the target
//! carries an authority (HTTP/1.1's absolute form, HTTP/2's `:authority`),
//! that authority is the request's host: routing uses it, and `Host` is
//! replaced by it (RFC 9112 §3.2.2, RFC 9113 §8.3.1), so the backend and
//! `X-Forwarded-Host` see the host the request was routed by.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use bytes::BytesMut;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use tower::{Layer, Service};

use super::classify::error_response;
use super::{BoxFuture, ConnInfo};
use crate::body::Body;
use crate::error::ProxyError;

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
        let info = req.extensions().get::<ConnInfo>().copied();
        if let Err(reason) = settle_host(&mut req) {
            let peer = info.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |i| i.peer);
            let rsp = error_response(&ProxyError::BadRequest { peer, reason });
            return Box::pin(async move { Ok(rsp) });
        }
        let upgrade = is_upgrade(req.headers());
        strip_hop_by_hop(req.headers_mut(), upgrade);
        if let Some(info) = info {
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

/// Leaves `req` with one valid `Host`, the target's authority when it has
/// one; or says why the request is a bad one.
fn settle_host(req: &mut Request<Body>) -> Result<(), &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if host.is_some_and(|h| !is_host(h.as_bytes())) {
        return Err("a Host header that is not host[:port]");
    }
    let Some(authority) = req.uri().authority() else {
        if host.is_none() && req.version() == Version::HTTP_11 {
            return Err("an HTTP/1.1 request without Host");
        }
        return Ok(());
    };
    // The authority without userinfo, which never belongs in Host.
    let target = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    if host.is_some_and(|h| h.as_bytes() == target.as_bytes()) {
        return Ok(());
    }
    if !is_host(target.as_bytes()) {
        return Err("a target authority that is not host[:port]");
    }
    let value =
        HeaderValue::from_str(target).map_err(|_| "a target authority that is not host[:port]")?;
    req.headers_mut().insert(header::HOST, value);
    Ok(())
}

/// Whether `value` is `host[:port]`: a name of letters, digits and
/// `-._~!$&'()*+;=%` (RFC 3986's reg-name, without the comma that only
/// ever joins two hosts) or a bracketed IP literal, and a numeric port.
fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b":.%-_~".contains(&b));
                if !ok {
                    return false;
                }
                (&value[..=end], &value[end + 1..])
            }
            None => return false,
        },
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        },
    };
    let name_ok = host.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=%".contains(&b)));
    let port_ok = match port.split_first() {
        None => true,
        // RFC 3986 allows an empty port.
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    name_ok && port_ok
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
    fn hosts_are_host_and_port() {
        for good in [
            "a.example",
            "a.example:8080",
            "a.example:",
            "[::1]",
            "[::1]:80",
            "10.0.0.1:1",
            "x_y-z",
        ] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a,b",
            "a.example:http",
            "[::1",
            "[]",
            "a@b",
            "a/b",
            "a.example:123456",
            "[::1]x",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }

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
