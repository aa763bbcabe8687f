//! Inbound views for sidecars: how a port of the sidecar's own pod speaks.
//!
//! The pod is found by IP. The Service ports that send traffic to that pod
//! port are the EndpointSlice ports (of slices holding the pod's address)
//! whose port is the pod port; each gives its `appProtocol` (the slice's,
//! else the Service port's of the same name). The port is opaque TCP when
//! the pod's or one of those Services' `ferry.dev/opaque-ports` annotation
//! lists it (a Service may list its own port or the target port), or an
//! `appProtocol` says so ([`is_opaque_app_protocol`]). Otherwise the hint is
//! the first `appProtocol` Ferry knows, by Service name; HTTP/1.1 without
//! one. No policy resource exists yet, so every meshed caller is allowed.

use std::net::IpAddr;

use ferry_api::{convert, pb};
use ferry_core::model::{BackendProtocol, is_opaque_app_protocol};
use ferry_core::objects::api::EndpointSlice;
use ferry_core::objects::{NsName, SERVICE_NAME_LABEL};

use super::{ClusterIndex, opaque_ports};
use crate::views::{InboundKey, InboundView};

/// One Service port that targets the pod port.
struct Targeting {
    app_protocol: Option<String>,
    /// The Service lists the port in `ferry.dev/opaque-ports`.
    opaque: bool,
}

/// The endpoint addresses of an EndpointSlice.
pub(super) fn slice_ips(slice: &EndpointSlice) -> Vec<IpAddr> {
    slice
        .endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .filter_map(|a| a.parse().ok())
        .collect()
}

// === impl ClusterIndex ===

impl ClusterIndex {
    /// The inbound view of one port of the pod with `key.pod_ip`.
    pub fn inbound(&self, key: &InboundKey) -> InboundView {
        let pod_opaque = self
            .pod_ips
            .get(&key.pod_ip)
            .and_then(|id| self.pods.get(id))
            .is_some_and(|pod| pod.opaque_ports.contains(&key.port));
        let targeting = self.targeting(key);
        let opaque = pod_opaque
            || targeting
                .iter()
                .any(|t| t.opaque || is_opaque_app_protocol(t.app_protocol.as_deref()));
        let hint = targeting
            .iter()
            .map(|t| BackendProtocol::from_app_protocol(t.app_protocol.as_deref()))
            .find(|p| *p != BackendProtocol::Http1)
            .unwrap_or_default();
        pb::InboundUpdate {
            version: 0,
            protocol_hint: convert::backend_protocol(hint) as i32,
            allowed_identities: Vec::new(),
            opaque,
        }
    }

    /// The Service ports whose endpoints include the pod port, by Service.
    fn targeting(&self, key: &InboundKey) -> Vec<Targeting> {
        let mut out = Vec::new();
        let slices = self.slice_ips.get(&key.pod_ip).into_iter().flatten();
        for slice_id in slices {
            let Some(slice) = self.objects.endpoint_slice(slice_id) else {
                continue;
            };
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(|name| {
                    self.objects
                        .service(&NsName::new(&slice_id.namespace, name))
                });
            let ports = slice.ports.iter().flatten();
            for port in ports.filter(|p| p.port == Some(i32::from(key.port))) {
                let service_port = service
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.ports.as_ref())
                    .into_iter()
                    .flatten()
                    .find(|p| p.name == port.name);
                let app_protocol = port
                    .app_protocol
                    .clone()
                    .or_else(|| service_port.and_then(|p| p.app_protocol.clone()));
                let listed = service
                    .map(|s| opaque_ports(&s.metadata))
                    .unwrap_or_default();
                let opaque = listed.contains(&key.port)
                    || service_port
                        .and_then(|p| u16::try_from(p.port).ok())
                        .is_some_and(|p| listed.contains(&p));
                out.push(Targeting {
                    app_protocol,
                    opaque,
                });
            }
        }
        out
    }
}
