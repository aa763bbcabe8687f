//! Messages back into the compiled model, checking what the wire cannot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::model::{
    AnchoredRegex, Backend, BackendId, BackendProtocol, Cors, Endpoint, Filter, HeaderMatch,
    HeaderModifier, HostPattern, Mirror, PathMatch, PathModifier, PortConfig, PortProtocol,
    ProxyConfig, QueryMatch, Redirect, RequestMatcher, RetryPolicy, Rewrite, RouteAction,
    RouteEntry, RouteTable, RuleRef, ServerCertificate, Timeouts, ValueMatch, VirtualHost,
    WeightedBackend,
};
use http::{HeaderName, HeaderValue, Method};

use super::ExpectedIdentities;
use crate::pb;

/// A message that does not describe a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A required field is absent.
    #[error("failed to convert {message}: field {field} is missing")]
    Missing {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field's value is invalid.
    #[error("failed to convert {message}: {field} {value:?} is invalid")]
    Invalid {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The value received.
        value: String,
    },
}

type Result<T> = std::result::Result<T, ConvertError>;

fn missing(message: &'static str, field: &'static str) -> ConvertError {
    ConvertError::Missing { message, field }
}

fn invalid(message: &'static str, field: &'static str, value: impl ToString) -> ConvertError {
    ConvertError::Invalid {
        message,
        field,
        value: value.to_string(),
    }
}

fn port_u16(message: &'static str, field: &'static str, port: u32) -> Result<u16> {
    u16::try_from(port).map_err(|_| invalid(message, field, port))
}

// === message -> model ===

impl TryFrom<pb::ProxyConfig> for ProxyConfig {
    type Error = ConvertError;

    fn try_from(config: pb::ProxyConfig) -> Result<Self> {
        let ports = config.ports.into_iter().map(port).collect::<Result<_>>()?;
        let backends = config
            .backends
            .into_iter()
            .map(backend)
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Self { ports, backends })
    }
}

fn port(p: pb::Port) -> Result<PortConfig> {
    let protocol = match pb::PortProtocol::try_from(p.protocol) {
        Ok(pb::PortProtocol::Http) => PortProtocol::Http,
        Ok(pb::PortProtocol::Https) => PortProtocol::Https,
        Err(_) => return Err(invalid("Port", "protocol", p.protocol)),
    };
    Ok(PortConfig {
        port: port_u16("Port", "port", p.port)?,
        protocol,
        certificates: p
            .certificates
            .into_iter()
            .map(certificate)
            .collect::<Result<_>>()?,
        routes: RouteTable {
            virtual_hosts: p
                .virtual_hosts
                .into_iter()
                .map(virtual_host)
                .collect::<Result<_>>()?,
        },
    })
}

fn certificate(c: pb::ServerCertificate) -> Result<ServerCertificate> {
    Ok(ServerCertificate {
        hostname: c.hostname.map(host).transpose()?,
        chain_pem: c.chain_pem,
        key_pem: c.key_pem,
    })
}

fn host(h: pb::HostPattern) -> Result<HostPattern> {
    use pb::host_pattern::Kind;
    match h.kind.ok_or_else(|| missing("HostPattern", "kind"))? {
        Kind::Any(_) => Ok(HostPattern::Any),
        Kind::Exact(name) => Ok(HostPattern::Exact(name)),
        Kind::Wildcard(suffix) => Ok(HostPattern::Wildcard(suffix)),
    }
}

/// A virtual host; entries point into its shared actions.
fn virtual_host(v: pb::VirtualHost) -> Result<VirtualHost> {
    let hostname = host(
        v.hostname
            .ok_or_else(|| missing("VirtualHost", "hostname"))?,
    )?;
    let actions: Vec<Arc<RouteAction>> = v
        .actions
        .into_iter()
        .map(|a| action(a).map(Arc::new))
        .collect::<Result<_>>()?;
    let entries = v
        .entries
        .into_iter()
        .map(|e| {
            let action = usize::try_from(e.action)
                .ok()
                .and_then(|i| actions.get(i))
                .ok_or_else(|| invalid("RouteEntry", "action", e.action))?;
            Ok(RouteEntry {
                matcher: matcher(e.matcher.ok_or_else(|| missing("RouteEntry", "matcher"))?)?,
                action: Arc::clone(action),
            })
        })
        .collect::<Result<_>>()?;
    Ok(VirtualHost { hostname, entries })
}

fn regex(message: &'static str, source: &str) -> Result<AnchoredRegex> {
    AnchoredRegex::new(source).map_err(|_| invalid(message, "regex", source))
}

fn matcher(m: pb::RequestMatcher) -> Result<RequestMatcher> {
    use pb::path_match::Kind;
    let path = match m.path.and_then(|p| p.kind) {
        None => PathMatch::Prefix("/".to_string()),
        Some(Kind::Exact(p)) => PathMatch::Exact(p),
        Some(Kind::Prefix(p)) => PathMatch::Prefix(p),
        Some(Kind::Regex(r)) => PathMatch::Regex(regex("PathMatch", &r)?),
    };
    let method = m
        .method
        .map(|s| {
            Method::from_bytes(s.as_bytes()).map_err(|_| invalid("RequestMatcher", "method", s))
        })
        .transpose()?;
    let headers = m
        .headers
        .into_iter()
        .map(|h| {
            Ok(HeaderMatch {
                name: header_name("HeaderMatch", &h.name)?,
                value: value(h.value)?,
            })
        })
        .collect::<Result<_>>()?;
    let query = m
        .query
        .into_iter()
        .map(|q| {
            Ok(QueryMatch {
                name: q.name,
                value: value(q.value)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(RequestMatcher {
        path,
        method,
        headers,
        query,
    })
}

fn value(v: Option<pb::ValueMatch>) -> Result<ValueMatch> {
    use pb::value_match::Kind;
    match v
        .and_then(|v| v.kind)
        .ok_or_else(|| missing("ValueMatch", "kind"))?
    {
        Kind::Exact(s) => Ok(ValueMatch::Exact(s)),
        Kind::Regex(r) => Ok(ValueMatch::Regex(regex("ValueMatch", &r)?)),
    }
}

fn header_name(message: &'static str, name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(message, "name", name))
}

fn action(a: pb::RouteAction) -> Result<RouteAction> {
    Ok(RouteAction {
        rule: rule(a.rule.ok_or_else(|| missing("RouteAction", "rule"))?),
        filters: a.filters.into_iter().map(filter).collect::<Result<_>>()?,
        backends: a
            .backends
            .into_iter()
            .map(weighted)
            .collect::<Result<_>>()?,
        timeouts: a.timeouts.map(timeouts).unwrap_or_default(),
        retry: a.retry.map(retry).transpose()?,
    })
}

fn rule(r: pb::RuleRef) -> RuleRef {
    RuleRef {
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        index: usize::try_from(r.index).unwrap_or(usize::MAX),
        section: r.section,
    }
}

fn weighted(w: pb::WeightedBackend) -> Result<WeightedBackend> {
    Ok(WeightedBackend {
        weight: w.weight,
        target: w.target.map(backend_id).transpose()?,
        filters: w.filters.into_iter().map(filter).collect::<Result<_>>()?,
    })
}

/// A backend's identity.
fn backend_id(id: pb::BackendId) -> Result<BackendId> {
    Ok(BackendId {
        port: port_u16("BackendId", "port", id.port)?,
        namespace: id.namespace,
        name: id.name,
    })
}

/// A backend and its endpoints.
fn backend(b: pb::Backend) -> Result<(BackendId, Backend)> {
    let id = backend_id(b.id.ok_or_else(|| missing("Backend", "id"))?)?;
    let endpoints = b
        .endpoints
        .into_iter()
        .map(endpoint)
        .collect::<Result<_>>()?;
    let protocol = backend_protocol(b.protocol)?;
    Ok((
        id,
        Backend {
            endpoints,
            protocol,
        },
    ))
}

/// The expected identity of each backend's endpoints, in the order of its
/// endpoints (`None` for one that is not meshed): what a proxy checks the
/// endpoint's certificate against.
pub fn expected_identities(backends: &[pb::Backend]) -> Result<ExpectedIdentities> {
    backends
        .iter()
        .map(|b| {
            let id = backend_id(b.id.clone().ok_or_else(|| missing("Backend", "id"))?)?;
            Ok((id, b.endpoints.iter().map(|e| e.identity.clone()).collect()))
        })
        .collect()
}

/// The protocol hint of a backend.
fn backend_protocol(p: i32) -> Result<BackendProtocol> {
    match pb::BackendProtocol::try_from(p) {
        Ok(pb::BackendProtocol::Http1) => Ok(BackendProtocol::Http1),
        Ok(pb::BackendProtocol::H2c) => Ok(BackendProtocol::H2c),
        Ok(pb::BackendProtocol::Websocket) => Ok(BackendProtocol::WebSocket),
        Err(_) => Err(invalid("Backend", "protocol", p)),
    }
}

fn endpoint(e: pb::Endpoint) -> Result<Endpoint> {
    use pb::endpoint::Address;
    match e.address.ok_or_else(|| missing("Endpoint", "address"))? {
        Address::SocketAddr(addr) => addr
            .parse()
            .map(Endpoint::Addr)
            .map_err(|_| invalid("Endpoint", "socket_addr", addr)),
        Address::Dns(dns) => Ok(Endpoint::Dns {
            port: port_u16("DnsName", "port", dns.port)?,
            host: dns.host,
        }),
    }
}

fn timeouts(t: pb::Timeouts) -> Timeouts {
    Timeouts {
        request: t.request_nanos.map(Duration::from_nanos),
        backend_request: t.backend_request_nanos.map(Duration::from_nanos),
    }
}

fn retry(r: pb::RetryPolicy) -> Result<RetryPolicy> {
    let codes = r
        .codes
        .into_iter()
        .map(|c| u16::try_from(c).map_err(|_| invalid("RetryPolicy", "codes", c)))
        .collect::<Result<_>>()?;
    Ok(RetryPolicy {
        codes,
        attempts: r.attempts,
        backoff: r.backoff_nanos.map(Duration::from_nanos),
    })
}

fn filter(f: pb::Filter) -> Result<Filter> {
    use pb::filter::Kind;
    Ok(match f.kind.ok_or_else(|| missing("Filter", "kind"))? {
        Kind::RequestHeaders(m) => Filter::RequestHeaders(headers(m)?),
        Kind::ResponseHeaders(m) => Filter::ResponseHeaders(headers(m)?),
        Kind::Redirect(r) => Filter::Redirect(Redirect {
            scheme: r.scheme,
            hostname: r.hostname,
            port: r
                .port
                .map(|p| port_u16("Redirect", "port", p))
                .transpose()?,
            path: r.path.map(path_modifier).transpose()?,
            status: u16::try_from(r.status).map_err(|_| invalid("Redirect", "status", r.status))?,
        }),
        Kind::Rewrite(r) => Filter::Rewrite(Rewrite {
            hostname: r.hostname,
            path: r.path.map(path_modifier).transpose()?,
        }),
        Kind::Mirror(m) => Filter::Mirror(Mirror {
            target: m.target.map(backend_id).transpose()?,
            percent: m.percent,
        }),
        Kind::Cors(c) => Filter::Cors(Cors {
            allow_origins: c.allow_origins,
            allow_methods: c.allow_methods,
            allow_headers: c.allow_headers,
            expose_headers: c.expose_headers,
            max_age: c.max_age,
            allow_credentials: c.allow_credentials,
        }),
    })
}

fn headers(m: pb::HeaderModifier) -> Result<HeaderModifier> {
    let pairs = |pairs: Vec<pb::Header>| -> Result<Vec<(HeaderName, HeaderValue)>> {
        pairs
            .into_iter()
            .map(|h| {
                let value = HeaderValue::from_str(&h.value)
                    .map_err(|_| invalid("Header", "value", &h.value))?;
                Ok((header_name("Header", &h.name)?, value))
            })
            .collect()
    };
    Ok(HeaderModifier {
        set: pairs(m.set)?,
        add: pairs(m.add)?,
        remove: m
            .remove
            .iter()
            .map(|n| header_name("HeaderModifier", n))
            .collect::<Result<_>>()?,
    })
}

fn path_modifier(p: pb::PathModifier) -> Result<PathModifier> {
    use pb::path_modifier::Kind;
    match p.kind.ok_or_else(|| missing("PathModifier", "kind"))? {
        Kind::ReplaceFullPath(s) => Ok(PathModifier::ReplaceFullPath(s)),
        Kind::ReplacePrefixMatch(s) => Ok(PathModifier::ReplacePrefixMatch(s)),
    }
}
