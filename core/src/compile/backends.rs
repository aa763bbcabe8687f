//! backendRefs resolved to Services, ports and endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::ServicePort;

use crate::attach::Refusal;
use crate::model::{Backend, BackendId, BackendProtocol, Endpoint};
use crate::objects::{Kind, NsName, Objects};
use crate::refs;
use crate::status::Reason;

/// A backendRef (or mirror backendRef) as written.
#[derive(Clone, Copy, Debug)]
pub(super) struct BackendRef<'a> {
    pub(super) group: Option<&'a str>,
    pub(super) kind: Option<&'a str>,
    pub(super) namespace: Option<&'a str>,
    pub(super) name: &'a str,
    pub(super) port: Option<i32>,
}

/// Resolves backendRefs and remembers every backend it resolved.
pub(super) struct Resolver<'a> {
    objects: &'a Objects,
    pub(super) backends: BTreeMap<BackendId, Backend>,
}

// === impl Resolver ===

impl<'a> Resolver<'a> {
    pub(super) fn new(objects: &'a Objects) -> Self {
        Self {
            objects,
            backends: BTreeMap::new(),
        }
    }

    /// Resolves a reference from a route in `route_ns` (of `route_kind`).
    /// Errors carry the ResolvedRefs reason: InvalidKind, RefNotPermitted,
    /// BackendNotFound.
    pub(super) fn resolve(
        &mut self,
        route_kind: Kind,
        route_ns: &str,
        r: BackendRef<'_>,
    ) -> Result<BackendId, Refusal> {
        let group = r.group.unwrap_or("");
        let kind = r.kind.unwrap_or("Service");
        let namespace = r.namespace.unwrap_or(route_ns);
        let display = format!("{namespace}/{}", r.name);
        if !group.is_empty() || kind != "Service" {
            let group = if group.is_empty() { "core" } else { group };
            return Err(Refusal::new(
                Reason::InvalidKind,
                format!(
                    "backendRef {display} has kind {group}/{kind}; only Services are supported"
                ),
            ));
        }
        let from = refs::From {
            kind: route_kind,
            namespace: route_ns,
        };
        let to = refs::To {
            kind: Kind::Service,
            namespace,
            name: r.name,
        };
        if !refs::permitted(self.objects, from, to) {
            return Err(Refusal::new(
                Reason::RefNotPermitted,
                format!(
                    "backendRef to Service {display} crosses namespaces and no ReferenceGrant in {namespace} allows {route_kind}s from {route_ns}"
                ),
            ));
        }
        let Some(port) = r.port else {
            return Err(Refusal::new(
                Reason::BackendNotFound,
                format!("backendRef to Service {display} has no port"),
            ));
        };
        let id = NsName::new(namespace, r.name);
        let Some(service) = self.objects.service(&id) else {
            return Err(Refusal::new(
                Reason::BackendNotFound,
                format!("Service {display} does not exist"),
            ));
        };
        let spec = service.spec.clone().unwrap_or_default();
        let service_port = spec.ports.iter().flatten().find(|p| p.port == port);
        let external = spec.type_.as_deref() == Some("ExternalName");
        let Ok(port_u16) = u16::try_from(port) else {
            return Err(Refusal::new(
                Reason::BackendNotFound,
                format!("Service {display} has no port {port}"),
            ));
        };
        if service_port.is_none() && !external {
            return Err(Refusal::new(
                Reason::BackendNotFound,
                format!("Service {display} has no port {port}"),
            ));
        }
        let backend_id = BackendId {
            namespace: namespace.to_string(),
            name: r.name.to_string(),
            port: port_u16,
        };
        if !self.backends.contains_key(&backend_id) {
            let endpoints = match spec.external_name.as_deref().filter(|_| external) {
                Some(host) => vec![Endpoint::Dns {
                    host: host.trim_end_matches('.').to_string(),
                    port: port_u16,
                }],
                None => self.endpoints(&id, service_port),
            };
            let app_protocol = service_port.and_then(|p| p.app_protocol.as_deref());
            let protocol = match BackendProtocol::from_app_protocol(app_protocol) {
                // gRPC is HTTP/2 only.
                BackendProtocol::Http1 if route_kind == Kind::GrpcRoute => BackendProtocol::H2c,
                protocol => protocol,
            };
            self.backends.insert(
                backend_id.clone(),
                Backend {
                    endpoints,
                    protocol,
                },
            );
        }
        Ok(backend_id)
    }

    /// Ready endpoints of a Service port, from its EndpointSlices: the slice
    /// port whose name is the Service port's name gives the target port.
    fn endpoints(&self, service: &NsName, port: Option<&ServicePort>) -> Vec<Endpoint> {
        let Some(port) = port else {
            return Vec::new();
        };
        let port_name = port.name.as_deref().unwrap_or("");
        let mut endpoints = Vec::new();
        for slice in self.objects.endpoint_slices_of(service) {
            let target = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(target) = target else {
                continue;
            };
            let ready = slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
            for endpoint in ready {
                for address in &endpoint.addresses {
                    let parsed = match slice.address_type.as_str() {
                        "FQDN" => Some(Endpoint::Dns {
                            host: address.trim_end_matches('.').to_string(),
                            port: target,
                        }),
                        _ => address
                            .parse::<IpAddr>()
                            .ok()
                            .map(|ip| Endpoint::Addr(SocketAddr::new(ip, target))),
                    };
                    endpoints.extend(parsed);
                }
            }
        }
        endpoints.sort();
        endpoints.dedup();
        endpoints
    }
}
