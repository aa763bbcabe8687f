//! Conversions of watched objects into what the index stores.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferry_core::objects::api::EndpointSlice;
use ferry_core::objects::{NsName, SERVICE_NAME_LABEL};
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Pod};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use kube::api::ObjectMeta;

use super::PodInfo;

/// Annotation (on a Pod or a Service) listing ports that speak opaque TCP.
pub const OPAQUE_PORTS: &str = "ferry.dev/opaque-ports";

/// The ports of a `ferry.dev/opaque-ports` annotation (a comma list); an
/// item that is not a port is skipped (the injector refuses such pods).
pub fn opaque_ports(meta: &ObjectMeta) -> Vec<u16> {
    let value = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(OPAQUE_PORTS))
        .map_or("", String::as_str);
    let mut ports: Vec<u16> = value
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A core/v1 Endpoints object as one EndpointSlice of the same name, for
/// servers without `discovery.k8s.io/v1` (Kubernetes 1.20). The ports of
/// every subset are merged: a subset whose pods lack one of the named ports
/// would be over-reported, which only happens with inconsistent pods.
pub fn endpoints_to_slice(endpoints: &Endpoints) -> EndpointSlice {
    let name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut ports: BTreeMap<(Option<String>, i32), EndpointPort> = BTreeMap::new();
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            ports.insert(
                (port.name.clone(), port.port),
                EndpointPort {
                    app_protocol: port.app_protocol.clone(),
                    name: port.name.clone(),
                    port: Some(port.port),
                    protocol: port.protocol.clone(),
                },
            );
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        out.extend(ready.chain(not_ready).map(|(a, ready)| endpoint(a, ready)));
    }
    let address_type = match out.first().and_then(|e| e.addresses.first()) {
        Some(ip) if ip.contains(':') => "IPv6",
        _ => "IPv4",
    };
    EndpointSlice {
        address_type: address_type.to_string(),
        endpoints: out,
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), name)])),
            resource_version: endpoints.metadata.resource_version.clone(),
            ..ObjectMeta::default()
        },
        ports: Some(ports.into_values().collect()),
    }
}

fn endpoint(address: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        hostname: address.hostname.clone(),
        node_name: address.node_name.clone(),
        target_ref: address.target_ref.clone(),
        ..Endpoint::default()
    }
}

/// What the index keeps of a Pod; `None` without a name.
pub fn pod_info(pod: &Pod) -> Option<PodInfo> {
    let name = pod.metadata.name.clone()?;
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string());
    let status = pod.status.as_ref();
    let ips = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse::<IpAddr>().ok())
        .collect();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some(PodInfo {
        id: NsName::new(namespace, name),
        service_account,
        ips,
        ready,
        opaque_ports: opaque_ports(&pod.metadata),
    })
}
