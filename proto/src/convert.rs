//! Conversions between ferry-core's compiled model and the protocol's
//! messages. Model to message cannot fail; message to model checks what
//! the wire cannot guarantee (regexes, header names, addresses) and names
//! the field that is wrong.

mod from_pb;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::model::{
    Backend, BackendId, BackendProtocol, Cors, Endpoint, Filter, HeaderMatch, HeaderModifier,
    HostPattern, Mirror, PathMatch, PathModifier, PortConfig, PortProtocol, ProxyConfig,
    QueryMatch, Redirect, RequestMatcher, RetryPolicy, Rewrite, RouteAction, RuleRef,
    ServerCertificate, Timeouts, ValueMatch, VirtualHost, WeightedBackend,
};

use crate::pb;

pub use from_pb::{ConvertError, expected_identities};

/// The expected SPIFFE identity of each backend's endpoints, in the order
/// of the backend's endpoints; `None` for an endpoint that is not meshed.
pub type ExpectedIdentities = BTreeMap<BackendId, Vec<Option<String>>>;

// === model -> message ===

impl From<&ProxyConfig> for pb::ProxyConfig {
    fn from(config: &ProxyConfig) -> Self {
        Self {
            ports: config.ports.iter().map(port).collect(),
            backends: config
                .backends
                .iter()
                .map(|(id, b)| backend(id, b))
                .collect(),
        }
    }
}

fn port(p: &PortConfig) -> pb::Port {
    pb::Port {
        port: u32::from(p.port),
        protocol: match p.protocol {
            PortProtocol::Http => pb::PortProtocol::Http,
            PortProtocol::Https => pb::PortProtocol::Https,
        } as i32,
        certificates: p.certificates.iter().map(certificate).collect(),
        virtual_hosts: p.routes.virtual_hosts.iter().map(virtual_host).collect(),
    }
}

fn certificate(c: &ServerCertificate) -> pb::ServerCertificate {
    pb::ServerCertificate {
        hostname: c.hostname.as_ref().map(host),
        chain_pem: c.chain_pem.clone(),
        key_pem: c.key_pem.clone(),
    }
}

fn host(h: &HostPattern) -> pb::HostPattern {
    use pb::host_pattern::Kind;
    let kind = match h {
        HostPattern::Any => Kind::Any(pb::Empty {}),
        HostPattern::Exact(name) => Kind::Exact(name.clone()),
        HostPattern::Wildcard(suffix) => Kind::Wildcard(suffix.clone()),
    };
    pb::HostPattern { kind: Some(kind) }
}

/// A virtual host, with each rule's action sent once however many of its
/// matches are entries.
pub fn virtual_host(v: &VirtualHost) -> pb::VirtualHost {
    let mut actions: Vec<pb::RouteAction> = Vec::new();
    let mut seen: BTreeMap<*const RouteAction, u32> = BTreeMap::new();
    let entries = v
        .entries
        .iter()
        .map(|e| {
            let index = *seen.entry(Arc::as_ptr(&e.action)).or_insert_with(|| {
                actions.push(action(&e.action));
                u32::try_from(actions.len() - 1).unwrap_or(u32::MAX)
            });
            pb::RouteEntry {
                matcher: Some(matcher(&e.matcher)),
                action: index,
            }
        })
        .collect();
    pb::VirtualHost {
        hostname: Some(host(&v.hostname)),
        actions,
        entries,
    }
}

fn matcher(m: &RequestMatcher) -> pb::RequestMatcher {
    use pb::path_match::Kind;
    let path = match &m.path {
        PathMatch::Exact(p) => Kind::Exact(p.clone()),
        PathMatch::Prefix(p) => Kind::Prefix(p.clone()),
        PathMatch::Regex(r) => Kind::Regex(r.to_string()),
    };
    pb::RequestMatcher {
        path: Some(pb::PathMatch { kind: Some(path) }),
        method: m.method.as_ref().map(ToString::to_string),
        headers: m.headers.iter().map(header_match).collect(),
        query: m.query.iter().map(query_match).collect(),
    }
}

fn value(v: &ValueMatch) -> pb::ValueMatch {
    use pb::value_match::Kind;
    let kind = match v {
        ValueMatch::Exact(s) => Kind::Exact(s.clone()),
        ValueMatch::Regex(r) => Kind::Regex(r.to_string()),
    };
    pb::ValueMatch { kind: Some(kind) }
}

fn header_match(h: &HeaderMatch) -> pb::HeaderMatch {
    pb::HeaderMatch {
        name: h.name.to_string(),
        value: Some(value(&h.value)),
    }
}

fn query_match(q: &QueryMatch) -> pb::QueryMatch {
    pb::QueryMatch {
        name: q.name.clone(),
        value: Some(value(&q.value)),
    }
}

fn action(a: &RouteAction) -> pb::RouteAction {
    pb::RouteAction {
        rule: Some(rule(&a.rule)),
        filters: a.filters.iter().map(filter).collect(),
        backends: a.backends.iter().map(weighted).collect(),
        timeouts: Some(timeouts(&a.timeouts)),
        retry: a.retry.as_ref().map(retry),
    }
}

fn rule(r: &RuleRef) -> pb::RuleRef {
    pb::RuleRef {
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        index: u32::try_from(r.index).unwrap_or(u32::MAX),
        section: r.section.clone(),
    }
}

fn weighted(w: &WeightedBackend) -> pb::WeightedBackend {
    pb::WeightedBackend {
        weight: w.weight,
        target: w.target.as_ref().map(backend_id),
        filters: w.filters.iter().map(filter).collect(),
    }
}

/// A backend's identity.
pub fn backend_id(id: &BackendId) -> pb::BackendId {
    pb::BackendId {
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        port: u32::from(id.port),
    }
}

/// A backend and its endpoints (without expected identities).
pub fn backend(id: &BackendId, b: &Backend) -> pb::Backend {
    pb::Backend {
        id: Some(backend_id(id)),
        endpoints: b.endpoints.iter().map(endpoint).collect(),
        protocol: backend_protocol(b.protocol) as i32,
    }
}

/// The protocol hint of a backend.
pub fn backend_protocol(p: BackendProtocol) -> pb::BackendProtocol {
    match p {
        BackendProtocol::Http1 => pb::BackendProtocol::Http1,
        BackendProtocol::H2c => pb::BackendProtocol::H2c,
        BackendProtocol::WebSocket => pb::BackendProtocol::Websocket,
    }
}

fn endpoint(e: &Endpoint) -> pb::Endpoint {
    use pb::endpoint::Address;
    let address = match e {
        Endpoint::Addr(addr) => Address::SocketAddr(addr.to_string()),
        Endpoint::Dns { host, port } => Address::Dns(pb::DnsName {
            host: host.clone(),
            port: u32::from(*port),
        }),
    };
    pb::Endpoint {
        address: Some(address),
        identity: None,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn timeouts(t: &Timeouts) -> pb::Timeouts {
    pb::Timeouts {
        request_nanos: t.request.map(nanos),
        backend_request_nanos: t.backend_request.map(nanos),
    }
}

fn retry(r: &RetryPolicy) -> pb::RetryPolicy {
    pb::RetryPolicy {
        codes: r.codes.iter().map(|c| u32::from(*c)).collect(),
        attempts: r.attempts,
        backoff_nanos: r.backoff.map(nanos),
    }
}

fn filter(f: &Filter) -> pb::Filter {
    use pb::filter::Kind;
    let kind = match f {
        Filter::RequestHeaders(m) => Kind::RequestHeaders(headers(m)),
        Filter::ResponseHeaders(m) => Kind::ResponseHeaders(headers(m)),
        Filter::Redirect(r) => Kind::Redirect(redirect(r)),
        Filter::Rewrite(r) => Kind::Rewrite(rewrite(r)),
        Filter::Mirror(m) => Kind::Mirror(mirror(m)),
        Filter::Cors(c) => Kind::Cors(cors(c)),
    };
    pb::Filter { kind: Some(kind) }
}

fn headers(m: &HeaderModifier) -> pb::HeaderModifier {
    let pairs = |pairs: &[(http::HeaderName, http::HeaderValue)]| {
        pairs
            .iter()
            .map(|(n, v)| pb::Header {
                name: n.to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect()
    };
    pb::HeaderModifier {
        set: pairs(&m.set),
        add: pairs(&m.add),
        remove: m.remove.iter().map(ToString::to_string).collect(),
    }
}

fn path_modifier(p: &PathModifier) -> pb::PathModifier {
    use pb::path_modifier::Kind;
    let kind = match p {
        PathModifier::ReplaceFullPath(s) => Kind::ReplaceFullPath(s.clone()),
        PathModifier::ReplacePrefixMatch(s) => Kind::ReplacePrefixMatch(s.clone()),
    };
    pb::PathModifier { kind: Some(kind) }
}

fn redirect(r: &Redirect) -> pb::Redirect {
    pb::Redirect {
        scheme: r.scheme.clone(),
        hostname: r.hostname.clone(),
        port: r.port.map(u32::from),
        path: r.path.as_ref().map(path_modifier),
        status: u32::from(r.status),
    }
}

fn rewrite(r: &Rewrite) -> pb::Rewrite {
    pb::Rewrite {
        hostname: r.hostname.clone(),
        path: r.path.as_ref().map(path_modifier),
    }
}

fn mirror(m: &Mirror) -> pb::Mirror {
    pb::Mirror {
        target: m.target.as_ref().map(backend_id),
        percent: m.percent,
    }
}

fn cors(c: &Cors) -> pb::Cors {
    pb::Cors {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age,
        allow_credentials: c.allow_credentials,
    }
}

#[cfg(test)]
mod tests;
