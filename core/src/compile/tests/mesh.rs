//! GAMMA routes: a Service as parent.

use super::*;
use crate::compile::compile_service;
use crate::objects::NsName;

const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{port: 9080}, {port: 9443}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: shop}
spec: {ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec: {ports: [{port: 9080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]
  hostnames: [ignored.example.com]
  rules:
  - matches: [{headers: [{name: x-canary, value: 'yes'}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
";

fn split_for(routes: &crate::compile::ServiceRoutes, headers: &[(&str, &str)]) -> Vec<String> {
    let config = ProxyConfig {
        ports: vec![crate::model::PortConfig {
            port: 80,
            protocol: crate::model::PortProtocol::Http,
            certificates: Vec::new(),
            routes: routes.routes.clone(),
        }],
        backends: routes.backends.clone(),
    };
    split(
        &config,
        &Req {
            headers,
            ..get("reviews.shop.svc.cluster.local", "/reviews/1")
        },
    )
}

#[test]
fn producer_route_splits_calls_to_the_service() {
    let objects = objects(MESH);
    let service = NsName::new("shop", "reviews");
    let routes = compile_service(&objects, &service, 9080, "frontend").expect("routes");
    assert_eq!(
        split_for(&routes, &[]),
        ["reviews-v1:9080*90", "reviews-v2:9080*10"]
    );
    assert_eq!(
        split_for(&routes, &[("x-canary", "yes")]),
        ["reviews-v2:9080*1"]
    );
    assert_eq!(routes.backends.len(), 2);
    // The route names port 9080 only.
    assert!(compile_service(&objects, &service, 9443, "frontend").is_none());
    assert!(
        compile_service(
            &objects,
            &NsName::new("shop", "reviews-v1"),
            9080,
            "frontend"
        )
        .is_none()
    );
}

#[test]
fn consumer_routes_replace_producer_routes_for_their_namespace_only() {
    let consumer = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: pin, namespace: frontend}\nspec:\n  parentRefs: [{group: '', kind: Service, name: reviews, namespace: shop}]\n  rules: [{backendRefs: [{name: reviews-v1, namespace: shop, port: 9080}]}]\n---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: frontend}]\n  to: [{group: '', kind: Service}]\n";
    let objects = objects(&format!("{MESH}{consumer}"));
    let service = NsName::new("shop", "reviews");
    let routes = compile_service(&objects, &service, 9080, "frontend").unwrap();
    assert_eq!(
        split_for(&routes, &[("x-canary", "yes")]),
        ["reviews-v1:9080*1"]
    );
    let routes = compile_service(&objects, &service, 9080, "other").unwrap();
    assert_eq!(
        split_for(&routes, &[("x-canary", "yes")]),
        ["reviews-v2:9080*1"]
    );
}
