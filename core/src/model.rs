//! The compiled configuration a proxy applies.
//!
//! Everything here is the output of compilation: Gateway API objects have
//! been attached, validated, sorted by the spec's precedence and resolved to
//! backends, so the data path only matches and forwards. The same values are
//! shown as JSON on a proxy's admin `/config`, and later travel over
//! discovery.

mod filters;
mod matching;
mod serde_util;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use filters::{Cors, Filter, HeaderModifier, Mirror, PathModifier, Redirect, Rewrite};
pub use matching::{
    AnchoredRegex, HeaderMatch, HostPattern, Matched, PathMatch, QueryMatch, RequestHead,
    RequestMatcher, ValueMatch,
};

/// Everything one proxy serves: the ports it listens on and the backends
/// its routes point at.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyConfig {
    /// One entry per bound port, sorted by port.
    pub ports: Vec<PortConfig>,
    /// Backends referenced by any route of any port.
    pub backends: BTreeMap<BackendId, Backend>,
}

/// One bound port. Several Gateway listeners may share a port when they
/// differ by hostname; they are merged here.
#[derive(Clone, Debug, Serialize)]
pub struct PortConfig {
    /// The TCP port to bind.
    pub port: u16,
    /// Whether connections are plain HTTP or TLS-terminated HTTPS.
    pub protocol: PortProtocol,
    /// Server certificates for HTTPS, chosen by SNI. Empty for HTTP.
    pub certificates: Vec<ServerCertificate>,
    /// Routes by hostname.
    pub routes: RouteTable,
}

/// How a port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PortProtocol {
    /// HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
    Http,
    /// TLS terminated by the proxy, then HTTP/1.1 or HTTP/2 by ALPN.
    Https,
}

/// A certificate served on an HTTPS port.
#[derive(Clone, Serialize)]
pub struct ServerCertificate {
    /// The listener hostname it serves (SNI). `None` serves any name and is
    /// the fallback when no SNI matches.
    pub hostname: Option<HostPattern>,
    /// PEM certificate chain, leaf first.
    pub chain_pem: String,
    /// PEM private key. Never serialized.
    #[serde(skip_serializing)]
    pub key_pem: String,
}

/// The routes of one port, grouped by hostname.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteTable {
    /// Most specific hostname first: exact names, then wildcards by length
    /// of their suffix, then the catch-all. A request is routed by the first
    /// virtual host whose pattern matches its host; there is no fallback to
    /// a less specific one.
    pub virtual_hosts: Vec<VirtualHost>,
}

/// The rules that apply to one hostname pattern.
#[derive(Clone, Debug, Serialize)]
pub struct VirtualHost {
    /// Which request hosts this applies to.
    pub hostname: HostPattern,
    /// Rules in precedence order; the first whose matcher matches wins.
    pub entries: Vec<RouteEntry>,
}

/// One match of one route rule, with what to do when it matches.
#[derive(Clone, Debug, Serialize)]
pub struct RouteEntry {
    /// When the entry applies.
    pub matcher: RequestMatcher,
    /// What the rule does; shared by every match of the rule.
    pub action: Arc<RouteAction>,
}

/// What a matched rule does with a request.
#[derive(Clone, Debug, Serialize)]
pub struct RouteAction {
    /// The route and rule this came from, for metrics, logs and errors.
    pub rule: RuleRef,
    /// Rule-level filters, in the order written.
    pub filters: Vec<Filter>,
    /// Weighted backends. Empty with no redirect filter means 500.
    pub backends: Vec<WeightedBackend>,
    /// `timeouts.request` and `timeouts.backendRequest`.
    pub timeouts: Timeouts,
    /// The rule's `retry`, if any.
    pub retry: Option<RetryPolicy>,
}

/// Names the rule of a route: `HTTPRoute shop/reviews rule 2 (name)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RuleRef {
    /// The route kind, e.g. `HTTPRoute`.
    pub kind: String,
    /// The route's namespace.
    pub namespace: String,
    /// The route's name.
    pub name: String,
    /// Index of the rule in `spec.rules`.
    pub index: usize,
    /// The rule's optional `name`.
    pub section: Option<String>,
}

/// A backendRef after resolution.
#[derive(Clone, Debug, Serialize)]
pub struct WeightedBackend {
    /// Relative weight; 0 is never chosen.
    pub weight: u32,
    /// The resolved backend, or `None` when the reference is invalid
    /// (missing, not permitted, wrong kind): requests that would have gone
    /// there get a 500, as the spec asks.
    pub target: Option<BackendId>,
    /// Filters that apply only when this backend is chosen.
    pub filters: Vec<Filter>,
}

/// Identifies a backend: a Service port in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BackendId {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port (resolved from a name if needed).
    pub port: u16,
}

/// A backend and where its endpoints are.
#[derive(Clone, Debug, Serialize)]
pub struct Backend {
    /// Endpoints that are ready to receive traffic. Empty means 503.
    pub endpoints: Vec<Endpoint>,
    /// What the backend speaks, from the Service port's `appProtocol`.
    pub protocol: BackendProtocol,
}

/// One place to send a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Endpoint {
    /// A known address (EndpointSlice address and target port).
    Addr(SocketAddr),
    /// A name to resolve with DNS (ExternalName Services, FQDN endpoints).
    Dns {
        /// The fully qualified name.
        host: String,
        /// The port to connect to.
        port: u16,
    },
}

/// The application protocol of a backend port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum BackendProtocol {
    /// HTTP/1.1 (default).
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (`kubernetes.io/h2c`).
    H2c,
    /// WebSocket (`kubernetes.io/ws`): HTTP/1.1 with upgrades.
    WebSocket,
}

// === impl BackendProtocol ===

impl BackendProtocol {
    /// The protocol a Service port's `appProtocol` names (HTTP/1.1 when it
    /// names none Ferry knows).
    pub fn from_app_protocol(app_protocol: Option<&str>) -> Self {
        match app_protocol {
            Some("kubernetes.io/h2c") => Self::H2c,
            Some("kubernetes.io/ws" | "kubernetes.io/wss") => Self::WebSocket,
            _ => Self::Http1,
        }
    }
}

/// Whether a Service port's `appProtocol` marks it opaque TCP (`tcp` or
/// `ferry.dev/opaque`): no protocol detection, no HTTP handling.
pub fn is_opaque_app_protocol(app_protocol: Option<&str>) -> bool {
    matches!(app_protocol, Some("tcp" | "ferry.dev/opaque"))
}

/// Request timeouts of a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// Whole request, from receiving the request to the end of the
    /// response headers, retries included.
    #[serde(with = "serde_util::opt_duration")]
    pub request: Option<Duration>,
    /// One attempt against one backend.
    #[serde(with = "serde_util::opt_duration")]
    pub backend_request: Option<Duration>,
}

/// When and how often to retry a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Response codes that are retried (connection errors always are).
    pub codes: Vec<u16>,
    /// Attempts after the first one.
    pub attempts: u32,
    /// Base backoff between attempts.
    #[serde(with = "serde_util::opt_duration")]
    pub backoff: Option<Duration>,
}

// === impl BackendId ===

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

// === impl RuleRef ===

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} rule {}",
            self.kind, self.namespace, self.name, self.index
        )?;
        if let Some(section) = &self.section {
            write!(f, " ({section})")?;
        }
        Ok(())
    }
}

// === impl ServerCertificate ===

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("hostname", &self.hostname)
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .finish_non_exhaustive()
    }
}

// === impl RouteTable ===

impl RouteTable {
    /// Finds the entry that routes `req`: the most specific virtual host
    /// matching `req.host`, then its first entry whose matcher matches.
    pub fn find<'a>(&'a self, req: &RequestHead<'_>) -> Option<Matched<'a>> {
        let vhost = self
            .virtual_hosts
            .iter()
            .find(|vhost| vhost.hostname.matches(req.host))?;
        vhost
            .entries
            .iter()
            .find(|entry| entry.matcher.matches(req))
            .map(|entry| Matched {
                path: &entry.matcher.path,
                action: &entry.action,
            })
    }
}
