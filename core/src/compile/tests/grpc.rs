//! GRPCRoutes: lowered to path matches, served beside HTTPRoutes, with the
//! same attachment and references (ReferenceGrants naming GRPCRoute).

use super::*;
use crate::model::{BackendId, BackendProtocol};
use crate::objects::{Kind, NsName};
use crate::status::ConditionType::{Accepted, ResolvedRefs};

const BACKENDS: &str = "\
---
apiVersion: v1
kind: Service
metadata: {name: users, namespace: default}
spec: {ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: default}
spec: {ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
";

fn grpc_route(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

const ROUTES: &str = r#"  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: shop.Users, method: Get}}]
    backendRefs: [{name: users, port: 50051}]
  - matches: [{method: {service: shop.Orders}}]
    backendRefs: [{name: orders, port: 50051}]
  - matches: [{method: {method: Health}}]
    backendRefs: [{name: users, port: 50051}]
  - matches: [{method: {type: RegularExpression, service: 'shop\..*', method: 'List.*'}, headers: [{name: tenant, value: a}]}]
    backendRefs: [{name: orders, port: 50051}]
"#;

fn call<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Req<'a> {
    Req {
        port: 80,
        host: "api.example.com",
        method: Method::POST,
        target: path,
        headers,
    }
}

#[test]
fn method_matches_become_path_matches_beside_http_routes() {
    let http = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: site, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{matches: [{path: {value: /static}}], backendRefs: [{name: web, port: 80}]}]\n";
    let yaml = format!(
        "{GATEWAY}{BACKENDS}{http}{}",
        grpc_route("api", "default", ROUTES)
    );
    let (config, status) = compiled(&yaml);
    let route = status
        .route(Kind::GrpcRoute, &NsName::new("default", "api"))
        .unwrap();
    assert_eq!(
        condition(&route.parents[0], Accepted),
        (true, Reason::Accepted)
    );
    assert_eq!(
        condition(&route.parents[0], ResolvedRefs),
        (true, Reason::ResolvedRefs)
    );

    let cases = [
        ("/shop.Users/Get", &[][..], "default/api#0"),
        ("/shop.Users/Delete", &[], "404"),
        ("/shop.Orders/Create", &[], "default/api#1"),
        ("/shop.OrdersArchive/Create", &[], "404"),
        ("/grpc.health.v1.Health/Health", &[], "default/api#2"),
        ("/shop.Users/ListAll", &[("tenant", "a")], "default/api#3"),
        ("/shop.Users/ListAll", &[("tenant", "b")], "404"),
        ("/static/app.js", &[], "default/site#0"),
    ];
    for (path, headers, expected) in cases {
        assert_eq!(
            winner(&config, &call(path, headers)),
            expected,
            "{path} {headers:?}"
        );
    }
    let action = route_action(&config, "/shop.Users/Get");
    assert_eq!(action.rule.kind, "GRPCRoute");
    // gRPC backends are reached over HTTP/2; HTTPRoute backends as before.
    let backend = |name: &str, port| {
        config.backends[&BackendId {
            namespace: "default".to_string(),
            name: name.to_string(),
            port,
        }]
            .protocol
    };
    assert_eq!(backend("users", 50051), BackendProtocol::H2c);
    assert_eq!(backend("web", 80), BackendProtocol::Http1);
}

fn route_action<'a>(config: &'a ProxyConfig, path: &str) -> &'a RouteAction {
    route(config, &call(path, &[])).expect("routed")
}

#[test]
fn listeners_admit_grpc_routes_unless_their_kinds_exclude_them() {
    let (_, status) = compiled(&format!(
        "{GATEWAY}{BACKENDS}{}",
        grpc_route("api", "default", ROUTES)
    ));
    let listener = status
        .gateway(&NsName::new("default", "gw"))
        .unwrap()
        .listener("http")
        .unwrap();
    assert_eq!(listener.supported_kinds, [Kind::HttpRoute, Kind::GrpcRoute]);
    assert_eq!(listener.attached_routes, 1);

    let http_only = GATEWAY.replace(
        "allowedRoutes: {",
        "allowedRoutes: {kinds: [{kind: HTTPRoute}], ",
    );
    let (config, status) = compiled(&format!(
        "{http_only}{BACKENDS}{}",
        grpc_route("api", "default", ROUTES)
    ));
    let route = status
        .route(Kind::GrpcRoute, &NsName::new("default", "api"))
        .unwrap();
    assert_eq!(
        condition(&route.parents[0], Accepted),
        (false, Reason::NotAllowedByListeners)
    );
    assert!(
        route.parents[0].conditions[0]
            .message
            .contains("does not allow GRPCRoute routes")
    );
    assert_eq!(winner(&config, &call("/shop.Users/Get", &[])), "404");
}

#[test]
fn cross_namespace_backends_need_a_grant_naming_grpc_routes() {
    let grant = |kind: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: default}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: {kind}, namespace: apps}}]\n  to: [{{group: '', kind: Service}}]\n"
        )
    };
    let spec = "  parentRefs: [{name: gw, namespace: default}]\n  rules: [{backendRefs: [{name: users, namespace: default, port: 50051}]}]\n";
    for (kind, expected) in [
        ("HTTPRoute", (false, Reason::RefNotPermitted)),
        ("GRPCRoute", (true, Reason::ResolvedRefs)),
    ] {
        let yaml = format!(
            "{GATEWAY}{BACKENDS}{}{}",
            grant(kind),
            grpc_route("api", "apps", spec)
        );
        let (_, status) = compiled(&yaml);
        let route = status
            .route(Kind::GrpcRoute, &NsName::new("apps", "api"))
            .unwrap();
        assert_eq!(
            condition(&route.parents[0], ResolvedRefs),
            expected,
            "grant from {kind}"
        );
    }
}

#[test]
fn a_method_match_naming_nothing_refuses_the_route() {
    let spec = "  parentRefs: [{name: gw}]\n  rules: [{matches: [{method: {type: Exact}}], backendRefs: [{name: users, port: 50051}]}]\n";
    let (_, status) = compiled(&format!(
        "{GATEWAY}{BACKENDS}{}",
        grpc_route("api", "default", spec)
    ));
    let route = status
        .route(Kind::GrpcRoute, &NsName::new("default", "api"))
        .unwrap();
    assert_eq!(
        condition(&route.parents[0], Accepted),
        (false, Reason::UnsupportedValue)
    );
}
