use ferry_core::objects::load_yaml;
use ferry_core::status::{ConditionType, Reason};
use k8s_openapi::api::core::v1::Endpoints;

use super::*;

/// Ferry's GatewayClass and Gateway `shop/web` with one HTTP listener on
/// 8080; the index tests of other modules start from it too.
pub(super) const FERRY_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: ferry
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"#;

const REVIEWS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 9080}]}
"#;

fn items(yaml: &str) -> Vec<Item> {
    load_yaml(yaml, "test.yaml")
        .unwrap()
        .objects
        .into_iter()
        .map(Item::Object)
        .collect()
}

fn index(yaml: &str) -> ClusterIndex {
    let mut index = ClusterIndex::new();
    apply_yaml(&mut index, yaml);
    index
}

/// Applies every object in `yaml` to `index`.
pub(super) fn apply_yaml(index: &mut ClusterIndex, yaml: &str) {
    for item in items(yaml) {
        index.apply(Change::Apply(item));
    }
}

/// [`FERRY_GATEWAY`] and the Service `shop/reviews`.
fn base() -> ClusterIndex {
    let mut index = index(FERRY_GATEWAY);
    apply_yaml(&mut index, REVIEWS);
    index
}

fn route(name: &str, body: &str) -> Item {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{body}"
    );
    items(&yaml).remove(0)
}

fn accepted(index: &ClusterIndex, name: &str) -> (bool, Reason) {
    let status = index.status();
    let route = status
        .route(Kind::HttpRoute, &NsName::new("shop", name))
        .unwrap_or_else(|| panic!("no status for {name}: {status:#?}"));
    let c = route.parents[0].condition(ConditionType::Accepted).unwrap();
    (c.status, c.reason)
}

#[test]
fn relist_drops_what_was_deleted_while_the_watch_was_down() {
    let mut index = base();
    let to_service =
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{name: reviews, port: 9080}]}]\n";
    index.apply(Change::Apply(route("a", to_service)));
    index.apply(Change::Apply(route("b", to_service)));
    assert_eq!(index.counts()[&Resource::Core(Kind::HttpRoute)], 2);
    assert!(!index.is_synced(&[Resource::Core(Kind::HttpRoute)]));

    index.apply(Change::Relist(
        Resource::Core(Kind::HttpRoute),
        vec![route("b", to_service)],
    ));
    assert_eq!(index.counts()[&Resource::Core(Kind::HttpRoute)], 1);
    assert!(
        index
            .objects()
            .http_route(&NsName::new("shop", "a"))
            .is_none()
    );
    assert!(index.is_synced(&[Resource::Core(Kind::HttpRoute)]));
    assert!(
        index
            .status()
            .route(Kind::HttpRoute, &NsName::new("shop", "a"))
            .is_none()
    );
    assert_eq!(accepted(&index, "b"), (true, Reason::Accepted));

    index.apply(Change::Delete(
        Resource::Core(Kind::HttpRoute),
        NsName::new("shop", "b"),
    ));
    assert!(index.status().routes.is_empty());
}

#[test]
fn endpoints_fallback_feeds_the_same_backends_as_slices() {
    let mut index = base();
    index.apply(Change::Apply(route(
        "r",
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{name: reviews, port: 9080}]}]\n",
    )));
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reviews", "namespace": "shop"},
        "subsets": [{
            "addresses": [{"ip": "10.1.0.1", "targetRef": {"kind": "Pod", "name": "reviews-0", "namespace": "shop"}}],
            "notReadyAddresses": [{"ip": "10.1.0.2"}],
            "ports": [{"name": "http", "port": 9080}],
        }],
    }))
    .unwrap();
    let slice = endpoints_to_slice(&endpoints);
    index.apply(Change::Relist(
        Resource::Core(Kind::EndpointSlice),
        vec![Item::Object(Object::EndpointSlice(slice))],
    ));
    let config = index.gateway_config(&NsName::new("shop", "web")).unwrap();
    let backend = config.backends.values().next().expect("one backend");
    assert_eq!(
        backend.endpoints,
        vec![ferry_core::model::Endpoint::Addr(
            "10.1.0.1:9080".parse().unwrap()
        )]
    );
    assert!(index.gateway_config(&NsName::new("shop", "nope")).is_none());
}

#[test]
fn bad_objects_become_status_not_crashes() {
    let mut index = base();
    let many_rules: String = (0..200)
        .map(|i| format!("    - matches: [{{path: {{type: PathPrefix, value: /r{i}}}}}]\n      backendRefs: [{{name: reviews, port: 9080}}]\n"))
        .collect();
    index.apply(Change::Apply(route(
        "huge",
        &format!("  parentRefs: [{{name: web}}]\n  rules:\n{many_rules}"),
    )));
    index.apply(Change::Apply(route(
        "regex",
        "  parentRefs: [{name: web}]\n  rules: [{matches: [{path: {type: RegularExpression, value: '/(['}}], backendRefs: [{name: reviews, port: 9080}]}]\n",
    )));
    index.apply(Change::Apply(route(
        "kind",
        "  parentRefs: [{name: web, kind: Widget, group: example.com}]\n  rules: [{backendRefs: [{name: reviews, port: 9080}]}]\n",
    )));
    let mut nameless = route("x", "  parentRefs: [{name: web}]\n");
    if let Item::Object(Object::HttpRoute(r)) = &mut nameless {
        r.metadata.name = None;
    }
    index.apply(Change::Apply(nameless));
    assert_eq!(index.rejected(), 1);

    assert_eq!(accepted(&index, "huge"), (false, Reason::UnsupportedValue));
    assert!(!accepted(&index, "regex").0);
    // Other routes and the index keep working.
    index.apply(Change::Apply(route(
        "fine",
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{name: reviews, port: 9080}]}]\n",
    )));
    assert_eq!(accepted(&index, "fine"), (true, Reason::Accepted));
    assert!(index.gateway_config(&NsName::new("shop", "web")).is_some());
}

#[test]
fn pods_are_indexed_by_name_with_their_identity() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reviews-0", "namespace": "shop"},
        "spec": {"serviceAccountName": "reviews", "containers": []},
        "status": {"podIPs": [{"ip": "10.1.0.1"}], "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap();
    let mut index = ClusterIndex::new();
    index.apply(Change::Relist(
        Resource::Pod,
        vec![Item::Pod(pod_info(&pod).unwrap())],
    ));
    let info = index.pod(&NsName::new("shop", "reviews-0")).unwrap();
    assert_eq!(info.service_account, "reviews");
    assert!(info.ready);
    assert_eq!(info.ips, vec!["10.1.0.1".parse::<IpAddr>().unwrap()]);
    let owners = index.pod_owners();
    let owner = owners.get(&"10.1.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(owner, Some(&("shop".to_owned(), "reviews".to_owned())));
    index.apply(Change::Relist(Resource::Pod, Vec::new()));
    assert!(index.pod(&NsName::new("shop", "reviews-0")).is_none());
    assert!(index.pod_owners().is_empty());
}

#[test]
fn outbound_views_resolve_cluster_ips_routes_and_identities() {
    use crate::views::OutboundKey;
    use ferry_api::pb;

    let mesh = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 9080, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec: {clusterIP: 10.96.0.13, ports: [{name: http, port: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-v2-a, namespace: shop, labels: {kubernetes.io/service-name: reviews-v2}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints: [{addresses: [10.1.0.7], conditions: {ready: true}, targetRef: {kind: Pod, name: v2-0, namespace: shop}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-v2, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules: [{backendRefs: [{name: reviews-v2, port: 9080}]}]
"#;
    let mut index = index(mesh);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "v2-0", "namespace": "shop"},
        "spec": {"serviceAccountName": "reviews-v2", "containers": []},
        "status": {"podIPs": [{"ip": "10.1.0.7"}]},
    }))
    .unwrap();
    index.apply(Change::Apply(Item::Pod(pod_info(&pod).unwrap())));
    let key = |target: &str| OutboundKey {
        target: target.parse().unwrap(),
        namespace: "web".to_string(),
    };

    let view = index.outbound(&key("10.96.0.12:9080"), "cluster.local");
    let Some(pb::outbound_update::Target::Service(service)) = view.target else {
        panic!("expected a Service: {view:?}");
    };
    assert_eq!(service.service.unwrap().name, "reviews");
    assert_eq!(service.protocol_hint, pb::BackendProtocol::H2c as i32);
    assert_eq!(service.virtual_hosts.len(), 1);
    let endpoint = &service.backends[0].endpoints[0];
    assert_eq!(
        endpoint.identity.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/reviews-v2")
    );

    for not_mesh in ["10.96.0.12:80", "192.0.2.1:9080"] {
        let view = index.outbound(&key(not_mesh), "cluster.local");
        assert!(
            matches!(
                view.target,
                Some(pb::outbound_update::Target::Passthrough(_))
            ),
            "{not_mesh}: {view:?}"
        );
    }
    // The Service goes away: its IP is no longer a mesh target.
    index.apply(Change::Delete(
        Resource::Core(Kind::Service),
        NsName::new("shop", "reviews"),
    ));
    let view = index.outbound(&key("10.96.0.12:9080"), "cluster.local");
    assert!(matches!(
        view.target,
        Some(pb::outbound_update::Target::Passthrough(_))
    ));
}

mod inbound;
mod secrets;
