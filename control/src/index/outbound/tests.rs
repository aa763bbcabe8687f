use ferry_api::pb;

use super::super::tests::{FERRY_GATEWAY, apply_yaml as apply};
use super::super::{Change, ClusterIndex, Item, pod_info};
use crate::views::OutboundKey;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ratings-a, namespace: shop, labels: {kubernetes.io/service-name: ratings}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.1.0.8], conditions: {ready: true}}
- {addresses: [10.1.0.9], conditions: {ready: true}}
"#;

fn service_view(index: &ClusterIndex) -> pb::OutboundService {
    let key = OutboundKey {
        target: "10.96.0.20:9080".parse().unwrap(),
        namespace: "web".to_string(),
    };
    match index.outbound(&key, "cluster.local").target {
        Some(pb::outbound_update::Target::Service(service)) => service,
        other => panic!("expected a Service: {other:?}"),
    }
}

#[test]
fn a_service_without_routes_gets_one_catch_all_entry_to_itself() {
    let mut index = ClusterIndex::new();
    apply(&mut index, SERVICE);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ratings-0", "namespace": "shop"},
        "spec": {"serviceAccountName": "ratings", "containers": []},
        "status": {"podIPs": [{"ip": "10.1.0.8"}]},
    }))
    .unwrap();
    index.apply(Change::Apply(Item::Pod(pod_info(&pod).unwrap())));

    let service = service_view(&index);
    let [vhost] = service.virtual_hosts.as_slice() else {
        panic!("expected one virtual host: {service:?}");
    };
    let ([entry], [action]) = (vhost.entries.as_slice(), vhost.actions.as_slice()) else {
        panic!("expected one entry and action: {vhost:?}");
    };
    assert_eq!(entry.action, 0);
    let [backend] = action.backends.as_slice() else {
        panic!("expected one backend: {action:?}");
    };
    let target = backend.target.as_ref().unwrap();
    assert_eq!(
        (
            target.namespace.as_str(),
            target.name.as_str(),
            target.port,
            backend.weight
        ),
        ("shop", "ratings", 9080, 1)
    );
    // The table the proxy compiles from it routes any request there.
    let config = ferry_core::model::ProxyConfig::try_from(pb::ProxyConfig {
        ports: vec![pb::Port {
            port: 9080,
            virtual_hosts: service.virtual_hosts.clone(),
            ..pb::Port::default()
        }],
        backends: service.backends.clone(),
    })
    .unwrap();
    let head = ferry_core::model::RequestHead {
        host: "10.96.0.20",
        method: &http::Method::DELETE,
        path: "/any/path",
        query: Some("x=1"),
        headers: &http::HeaderMap::new(),
    };
    assert!(config.ports[0].routes.find(&head).is_some());

    let [backend] = service.backends.as_slice() else {
        panic!("expected the Service's backend: {service:?}");
    };
    assert_eq!(
        endpoint_identities(backend),
        vec![
            (
                addr("10.1.0.8:8080"),
                Some("spiffe://cluster.local/ns/shop/sa/ratings")
            ),
            (addr("10.1.0.9:8080"), None),
        ]
    );

    // A route with the Service as parent replaces the default.
    apply(
        &mut index,
        r#"
apiVersion: v1
kind: Service
metadata: {name: ratings-v2, namespace: shop}
spec: {clusterIP: 10.96.0.21, ports: [{name: http, port: 9080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-v2, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings, port: 9080}]
  rules: [{backendRefs: [{name: ratings-v2, port: 9080}]}]
"#,
    );
    let service = service_view(&index);
    assert!(!service.opaque);
    let names: Vec<&str> = service
        .backends
        .iter()
        .map(|b| b.id.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["ratings-v2"]);

    // `appProtocol: tcp` marks the port opaque.
    apply(
        &mut index,
        r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080, appProtocol: tcp}]}
"#,
    );
    assert!(service_view(&index).opaque);
}

#[test]
fn a_gateway_view_expects_the_identity_of_meshed_endpoints() {
    let mut index = ClusterIndex::new();
    apply(&mut index, FERRY_GATEWAY);
    apply(
        &mut index,
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-ratings, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: ratings, port: 9080}]}]
"#,
    );
    apply(&mut index, SERVICE);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ratings-0", "namespace": "shop"},
        "spec": {"serviceAccountName": "ratings", "containers": []},
        "status": {"podIPs": [{"ip": "10.1.0.9"}]},
    }))
    .unwrap();
    index.apply(Change::Apply(Item::Pod(pod_info(&pod).unwrap())));

    let gateway = ferry_core::objects::NsName::new("shop", "web");
    let (view, _) = crate::pipeline::gateway_view(&index, &gateway, "example.org");
    let config = view.config.expect("a Ferry Gateway has a view");
    let [backend] = config.backends.as_slice() else {
        panic!("expected the Service's backend: {config:?}");
    };
    assert_eq!(
        endpoint_identities(backend),
        vec![
            (addr("10.1.0.8:8080"), None),
            (
                addr("10.1.0.9:8080"),
                Some("spiffe://example.org/ns/shop/sa/ratings")
            ),
        ]
    );
}

/// Each endpoint of `backend` with the identity it is expected to prove.
fn endpoint_identities(
    backend: &pb::Backend,
) -> Vec<(Option<pb::endpoint::Address>, Option<&str>)> {
    backend
        .endpoints
        .iter()
        .map(|e| (e.address.clone(), e.identity.as_deref()))
        .collect()
}

fn addr(a: &str) -> Option<pb::endpoint::Address> {
    Some(pb::endpoint::Address::SocketAddr(a.to_string()))
}
