//! GRPCRoute status for Gateway parents, written to a real apiserver: the
//! same reasons as HTTPRoutes, and listeners that list GRPCRoute.

use anyhow::Result;
use ferry_harness::Cluster;

use crate::status::BASE;
use crate::support::{apply, condition, start_control, wait_for, wait_route_of};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: users}
spec: {ports: [{name: grpc, port: 50051}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: http-only}
spec:
  gatewayClassName: ferry
  listeners:
    - {name: http, protocol: HTTP, port: 8081, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
"#;

fn grpc_route(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: {name}}}\nspec:\n{spec}\n"
    )
}

const TO_USERS: &str = "  rules: [{matches: [{method: {service: shop.Users, method: Get}}], backendRefs: [{name: users, port: 50051}]}]";

#[tokio::test]
async fn grpc_routes_get_gateway_parent_status() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let _control = start_control(&cluster, None).await?;
    apply(&client, ns, BASE).await?;
    apply(&client, ns, OBJECTS).await?;
    let mut routes = String::new();
    routes += &grpc_route(
        "api",
        &format!("  parentRefs: [{{name: web}}]\n  hostnames: [api.example.com]\n{TO_USERS}"),
    );
    routes += &grpc_route(
        "missing-backend",
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{name: gone, port: 50051}]}]",
    );
    routes += &grpc_route(
        "wrong-section",
        &format!("  parentRefs: [{{name: web, sectionName: nope}}]\n{TO_USERS}"),
    );
    routes += &grpc_route(
        "wrong-host",
        &format!("  parentRefs: [{{name: web}}]\n  hostnames: [api.other.org]\n{TO_USERS}"),
    );
    routes += &grpc_route(
        "http-only",
        &format!("  parentRefs: [{{name: http-only}}]\n{TO_USERS}"),
    );
    apply(&client, ns, &routes).await?;

    let cases = [
        ("api", "web", "Accepted", ("True", "Accepted")),
        ("api", "web", "ResolvedRefs", ("True", "ResolvedRefs")),
        ("missing-backend", "web", "Accepted", ("True", "Accepted")),
        (
            "missing-backend",
            "web",
            "ResolvedRefs",
            ("False", "BackendNotFound"),
        ),
        (
            "wrong-section",
            "web",
            "Accepted",
            ("False", "NoMatchingParent"),
        ),
        (
            "wrong-host",
            "web",
            "Accepted",
            ("False", "NoMatchingListenerHostname"),
        ),
        (
            "http-only",
            "http-only",
            "Accepted",
            ("False", "NotAllowedByListeners"),
        ),
    ];
    for (name, parent, type_, expected) in cases {
        wait_route_of(&client, ns, ("GRPCRoute", name), parent, type_, expected).await?;
    }

    let web = wait_for(&client, "Gateway", ns, "web", "attached routes", |gw| {
        gw["status"]["listeners"][0]["attachedRoutes"] == 2
    })
    .await?;
    let listener = &web["status"]["listeners"][0];
    let kinds: Vec<&str> = listener["supportedKinds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["HTTPRoute", "GRPCRoute"], "{listener:#}");
    assert_eq!(condition(listener, "ResolvedRefs").unwrap().0, "True");
    let class = wait_for(&client, "GatewayClass", "", "ferry", "features", |c| {
        c["status"]["supportedFeatures"].is_array()
    })
    .await?;
    let features = class["status"]["supportedFeatures"].as_array().unwrap();
    assert!(
        features.iter().any(|f| f["name"] == "GRPCRoute"),
        "{class:#}"
    );
    Ok(())
}
