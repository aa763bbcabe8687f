//! What the echo server answers: the request it saw, as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::EchoIdentity;

/// The request header in which a Ferry sidecar passes the verified SPIFFE
/// identity of a mesh client to the app (`FERRY_INBOUND_IDENTITY_HEADER`,
/// ferry-proxy's `mesh::CLIENT_IDENTITY_HEADER`).
pub const CLIENT_IDENTITY_HEADER: &str = "ferry-client-identity";

/// The JSON answer (`Accept: application/json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echoed {
    /// The server's name (the pod's name in a cluster).
    pub name: String,
    /// The server's namespace, when it knows one.
    pub namespace: Option<String>,
    /// Request method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Query string, without the `?`.
    pub query: Option<String>,
    /// HTTP version as received (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    /// The authority: the `Host` header, or the HTTP/2 `:authority`.
    pub host: Option<String>,
    /// Request headers by lower-case name; repeated ones joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The address of the TCP peer (with a sidecar: the sidecar's).
    pub peer: String,
    /// The client's mesh identity (the `ferry-client-identity` header), if
    /// a sidecar passed one.
    pub identity: Option<String>,
    /// Request body, as text.
    pub body: String,
}

// === impl Echoed ===

impl Echoed {
    /// What `identity` answers to a request from `peer`.
    pub(crate) fn new(
        identity: &EchoIdentity,
        peer: SocketAddr,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Self {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let host = headers
            .get(http::header::HOST.as_str())
            .cloned()
            .or_else(|| parts.uri.authority().map(ToString::to_string));
        Self {
            name: identity.name.clone(),
            namespace: identity.namespace.clone(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            version: format!("{:?}", parts.version),
            host,
            identity: headers.get(CLIENT_IDENTITY_HEADER).cloned(),
            headers,
            peer: peer.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The server name in an answer body, JSON or text.
    pub fn name_in(body: &str) -> Option<String> {
        if let Ok(echoed) = serde_json::from_str::<Echoed>(body) {
            return Some(echoed.name);
        }
        body.lines()
            .find_map(|line| line.strip_prefix("Hostname: "))
            .map(|name| name.trim().to_owned())
    }
}

/// The plain-text answer: `Hostname:`, `Namespace:` (when known),
/// `RemoteAddr:`, the request line, the headers as received, then the body.
pub(crate) fn text(
    identity: &EchoIdentity,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: &[u8],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Hostname: {}", identity.name);
    if let Some(namespace) = &identity.namespace {
        let _ = writeln!(text, "Namespace: {namespace}");
    }
    let _ = writeln!(text, "RemoteAddr: {peer}");
    let _ = writeln!(text, "{} {} {:?}", parts.method, parts.uri, parts.version);
    for (header, value) in &parts.headers {
        let _ = writeln!(
            text,
            "{header}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    if !body.is_empty() {
        let _ = writeln!(text, "\n{}", String::from_utf8_lossy(body));
    }
    text
}

/// Whether the request accepts `application/json` (with a non-zero `q`).
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut params = range.split(';');
            let media = params.next().unwrap_or_default().trim();
            let refused = params.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            media.eq_ignore_ascii_case("application/json") && !refused
        })
}
