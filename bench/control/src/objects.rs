//! Generated objects: Services with EndpointSlices and one HTTPRoute each,
//! spread over namespaces, all attached to one Gateway.

use anyhow::Result;
use ferry_control::index::{Change, Item, Resource};
use ferry_core::objects::{Kind, Object, load_yaml};
use serde_json::{Value, json};

/// The size of the generated cluster.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size {
    pub(crate) services: usize,
    pub(crate) endpoints_per_service: usize,
    pub(crate) namespaces: usize,
}

/// The namespace of the Gateway.
pub(crate) const GATEWAY_NS: &str = "gateway";
/// The Gateway.
pub(crate) const GATEWAY: &str = "web";

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: gateway}
spec:
  gatewayClassName: ferry
  listeners:
    - {name: http, protocol: HTTP, port: 8080, hostname: "*.example.com", allowedRoutes: {namespaces: {from: All}}}
"#;

fn object<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    Ok(serde_json::from_value(value)?)
}

fn namespace(size: Size, i: usize) -> String {
    format!("ns-{}", i % size.namespaces)
}

/// HTTPRoute `i`, with `variant` in its header match so a change can be
/// made.
pub(crate) fn route(size: Size, i: usize, variant: &str) -> Result<Change> {
    let route = object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": format!("route-{i}"), "namespace": namespace(size, i), "generation": 1},
        "spec": {
            "parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NS}],
            "hostnames": [format!("svc-{i}.example.com")],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                                 "headers": [{"name": "x-variant", "value": variant}]}],
                    "backendRefs": [{"name": format!("svc-{i}"), "port": 80}],
                },
                {"backendRefs": [{"name": format!("svc-{i}"), "port": 80}]},
            ],
        },
    }))?;
    Ok(Change::Apply(Item::Object(Object::HttpRoute(route))))
}

/// Every object, as one relist per kind.
pub(crate) fn generate(size: Size) -> Result<Vec<Change>> {
    let mut by_kind: Vec<(Kind, Vec<Item>)> =
        Kind::ALL.into_iter().map(|k| (k, Vec::new())).collect();
    let mut push = |object: Object| {
        if let Some((_, items)) = by_kind.iter_mut().find(|(k, _)| *k == object.kind()) {
            items.push(Item::Object(object));
        }
    };
    for object in load_yaml(BASE, "base.yaml")?.objects {
        push(object);
    }
    for n in 0..size.namespaces {
        push(Object::Namespace(object(
            json!({"metadata": {"name": format!("ns-{n}")}}),
        )?));
    }
    for i in 0..size.services {
        let ns = namespace(size, i);
        push(Object::Service(object(json!({
            "metadata": {"name": format!("svc-{i}"), "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }))?));
        let endpoints: Vec<Value> = (0..size.endpoints_per_service)
            .map(|e| {
                let ip = format!("10.{}.{}.{}", (i >> 8) & 0xff, i & 0xff, e + 1);
                json!({"addresses": [ip], "conditions": {"ready": true}})
            })
            .collect();
        push(Object::EndpointSlice(object(json!({
            "metadata": {"name": format!("svc-{i}-0"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints,
        }))?));
        if let Change::Apply(Item::Object(object)) = route(size, i, "a")? {
            push(object);
        }
    }
    Ok(by_kind
        .into_iter()
        .map(|(kind, items)| Change::Relist(Resource::Core(kind), items))
        .collect())
}
