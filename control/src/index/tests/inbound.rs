//! Inbound views: the protocol hint and opacity of a pod port.

use std::net::IpAddr;

use ferry_api::pb;

use super::*;
use crate::views::InboundKey;

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 9080, targetPort: 8080, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: shop, annotations: {ferry.dev/opaque-ports: "6379"}}
spec: {ports: [{name: redis, port: 6379}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {ports: [{name: sql, port: 5432, appProtocol: tcp}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-a, namespace: shop, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.1.0.7]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: cache-a, namespace: shop, labels: {kubernetes.io/service-name: cache}}
addressType: IPv4
ports: [{name: redis, port: 6379}]
endpoints: [{addresses: [10.1.0.7]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-a, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: sql, port: 5432}]
endpoints: [{addresses: [10.1.0.7]}]
"#;

const POD_IP: &str = "10.1.0.7";

fn view(index: &ClusterIndex, ip: &str, port: u16) -> (pb::BackendProtocol, bool) {
    let key = InboundKey {
        pod_ip: ip.parse::<IpAddr>().unwrap(),
        port,
    };
    let view = index.inbound(&key);
    assert!(view.allowed_identities.is_empty());
    (view.protocol_hint(), view.opaque)
}

#[test]
fn inbound_ports_take_their_services_app_protocol_and_opaque_ports() {
    let mut index = super::index(MESH);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "v2-0", "namespace": "shop", "annotations": {"ferry.dev/opaque-ports": "9000, 9001"}},
        "spec": {"containers": []},
        "status": {"podIPs": [{"ip": POD_IP}]},
    }))
    .unwrap();
    index.apply(Change::Apply(Item::Pod(pod_info(&pod).unwrap())));
    use pb::BackendProtocol::{H2c, Http1};

    assert_eq!(
        view(&index, POD_IP, 8080),
        (H2c, false),
        "appProtocol of the Service port"
    );
    assert_eq!(
        view(&index, POD_IP, 6379),
        (Http1, true),
        "opaque-ports on the Service"
    );
    assert_eq!(view(&index, POD_IP, 5432), (Http1, true), "appProtocol tcp");
    assert_eq!(
        view(&index, POD_IP, 9001),
        (Http1, true),
        "opaque-ports on the pod"
    );
    assert_eq!(
        view(&index, POD_IP, 7000),
        (Http1, false),
        "no Service targets it"
    );
    assert_eq!(
        view(&index, "10.1.0.8", 8080),
        (Http1, false),
        "another pod"
    );

    // The slice moves to another address: the pod port loses its hint.
    let moved = items(&MESH.replace("endpoints: [{addresses: [10.1.0.7]}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: cache-a", "endpoints: [{addresses: [10.1.0.8]}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: cache-a"))
        .remove(3);
    index.apply(Change::Apply(moved));
    assert_eq!(view(&index, POD_IP, 8080), (Http1, false));
    assert_eq!(view(&index, "10.1.0.8", 8080), (H2c, false));
    index.apply(Change::Delete(
        Resource::Core(Kind::EndpointSlice),
        NsName::new("shop", "reviews-a"),
    ));
    assert_eq!(view(&index, "10.1.0.8", 8080), (Http1, false));
}
