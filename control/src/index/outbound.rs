//! Outbound views for sidecars: what a call to `IP:port` from a namespace
//! goes through (GAMMA producer and consumer routes), and who may answer.

use std::net::IpAddr;
use std::sync::Arc;

use ferry_api::{convert, pb};
use ferry_core::compile::{ServiceRoutes, compile_service, service_backend};
use ferry_core::model::{
    BackendProtocol, HostPattern, PathMatch, RequestMatcher, RouteAction, RouteEntry, RouteTable,
    RuleRef, VirtualHost, WeightedBackend,
};
use ferry_core::objects::NsName;
use ferry_core::objects::api::Service;

use super::ClusterIndex;
use crate::views::{OutboundKey, OutboundView};

/// The cluster IPs of a Service.
pub(super) fn service_ips(service: &Service) -> Vec<IpAddr> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    spec.cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// The routes of a Service port no route has as parent: one catch-all
/// entry sending everything to the Service port itself (weight 1), so calls
/// still get the proxy's load balancing, retries of refused connections
/// and mTLS. `None` when the Service or port does not resolve.
fn default_routes(
    objects: &ferry_core::objects::Objects,
    id: &NsName,
    port: u16,
) -> Option<ServiceRoutes> {
    let (backend_id, backend) = service_backend(objects, id, port)?;
    let action = RouteAction {
        rule: RuleRef {
            kind: "Service".to_string(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            index: 0,
            section: None,
        },
        filters: Vec::new(),
        backends: vec![WeightedBackend {
            weight: 1,
            target: Some(backend_id.clone()),
            filters: Vec::new(),
        }],
        timeouts: Default::default(),
        retry: None,
    };
    let entry = RouteEntry {
        matcher: RequestMatcher {
            path: PathMatch::Prefix("/".to_string()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        },
        action: Arc::new(action),
    };
    Some(ServiceRoutes {
        routes: RouteTable {
            virtual_hosts: vec![VirtualHost {
                hostname: HostPattern::Any,
                entries: vec![entry],
            }],
        },
        backends: [(backend_id, backend)].into_iter().collect(),
    })
}

/// Whether a Service port's `appProtocol` marks it opaque TCP.
fn is_opaque(app_protocol: Option<&str>) -> bool {
    matches!(
        app_protocol.map(str::to_ascii_lowercase).as_deref(),
        Some("tcp" | "ferry.dev/opaque")
    )
}

/// The protocol a Service port's `appProtocol` announces.
fn protocol_hint(app_protocol: Option<&str>) -> BackendProtocol {
    match app_protocol {
        Some("kubernetes.io/h2c") => BackendProtocol::H2c,
        Some("kubernetes.io/ws" | "kubernetes.io/wss") => BackendProtocol::WebSocket,
        _ => BackendProtocol::Http1,
    }
}

// === impl ClusterIndex ===

impl ClusterIndex {
    /// The Service that owns a cluster IP.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&NsName> {
        self.service_ips.get(&ip)
    }

    /// The SPIFFE identity of the Pod with this IP, if it is known.
    pub fn identity_of(&self, ip: IpAddr, trust_domain: &str) -> Option<String> {
        let pod = self.pods.get(self.pod_ips.get(&ip)?)?;
        Some(format!(
            "spiffe://{trust_domain}/ns/{}/sa/{}",
            pod.id.namespace, pod.service_account
        ))
    }

    /// Sets the expected identity of every endpoint of `backends` whose
    /// address is a known Pod's (outbound and Gateway views alike); others
    /// get none and are called in plaintext.
    pub fn fill_identities(&self, backends: &mut [pb::Backend], trust_domain: &str) {
        for endpoint in backends.iter_mut().flat_map(|b| &mut b.endpoints) {
            if let Some(pb::endpoint::Address::SocketAddr(addr)) = &endpoint.address {
                let ip = addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
                endpoint.identity = ip.and_then(|ip| self.identity_of(ip, trust_domain));
            }
        }
    }

    /// The view of a sidecar calling `key.target` from `key.namespace`:
    /// pass-through when the target is not a Service port; otherwise the
    /// routes that apply (none: one catch-all entry to the Service itself,
    /// [`default_routes`]), their backends, and each endpoint's expected
    /// identity.
    pub fn outbound(&self, key: &OutboundKey, trust_domain: &str) -> OutboundView {
        use pb::outbound_update::Target;
        let passthrough = OutboundView {
            version: 0,
            target: Some(Target::Passthrough(pb::Empty {})),
        };
        let Some(id) = self.service_by_ip(key.target.ip()) else {
            return passthrough;
        };
        let Some(service) = self.objects.service(id) else {
            return passthrough;
        };
        let port = key.target.port();
        let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
        let Some(service_port) = ports
            .into_iter()
            .flatten()
            .find(|p| p.port == i32::from(port))
        else {
            return passthrough;
        };
        let hint = protocol_hint(service_port.app_protocol.as_deref());
        let opaque = is_opaque(service_port.app_protocol.as_deref());
        let routes = compile_service(&self.objects, id, port, &key.namespace)
            .or_else(|| default_routes(&self.objects, id, port));
        let (virtual_hosts, mut backends) = match routes {
            Some(routes) => (
                routes
                    .routes
                    .virtual_hosts
                    .iter()
                    .map(convert::virtual_host)
                    .collect(),
                routes
                    .backends
                    .iter()
                    .map(|(id, b)| convert::backend(id, b))
                    .collect::<Vec<_>>(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        self.fill_identities(&mut backends, trust_domain);
        OutboundView {
            version: 0,
            target: Some(Target::Service(pb::OutboundService {
                service: Some(pb::BackendId {
                    namespace: id.namespace.clone(),
                    name: id.name.clone(),
                    port: u32::from(port),
                }),
                protocol_hint: convert::backend_protocol(hint) as i32,
                virtual_hosts,
                backends,
                opaque,
            })),
        }
    }
}

#[cfg(test)]
mod tests;
