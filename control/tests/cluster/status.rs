//! Status written to a real apiserver: Gateway and Service parents, one
//! negative test per reason, and other controllers' entries left intact.

use anyhow::Result;
use ferry_harness::Cluster;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{apply, condition, ferry_parent, start_control, wait_for, wait_route};

pub(crate) const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: ferry
  listeners:
    - name: http
      protocol: HTTP
      port: 8080
      hostname: "*.example.com"
      allowedRoutes: {namespaces: {from: Same}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec: {ports: [{name: http, port: 9080}]}
"#;

pub(crate) fn route(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n{spec}\n---\n"
    )
}

pub(crate) const TO_V1: &str = "  rules: [{backendRefs: [{name: reviews-v1, port: 9080}]}]";

#[tokio::test]
async fn gateway_and_service_parents_get_the_specs_reasons() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let other = cluster.new_namespace("other").await?;
    let _control = start_control(&cluster, None).await?;
    apply(&client, ns, BASE).await?;

    let mut routes = String::new();
    routes += &route(
        "canary",
        "  parentRefs: [{name: web}]\n  hostnames: [reviews.example.com]\n  rules: [{backendRefs: [{name: reviews-v1, port: 9080, weight: 90}, {name: reviews-v2, port: 9080, weight: 10}]}]",
    );
    routes += &route(
        "mesh",
        &format!(
            "  parentRefs: [{{group: '', kind: Service, name: reviews, port: 9080}}]\n{TO_V1}"
        ),
    );
    routes += &route(
        "wrong-host",
        &format!("  parentRefs: [{{name: web}}]\n  hostnames: [shop.other.org]\n{TO_V1}"),
    );
    routes += &route(
        "wrong-section",
        &format!("  parentRefs: [{{name: web, sectionName: nope}}]\n{TO_V1}"),
    );
    routes += &route(
        "widget-parent",
        &format!("  parentRefs: [{{group: example.com, kind: Widget, name: web}}]\n{TO_V1}"),
    );
    routes += &route(
        "missing-backend",
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{name: nope, port: 9080}]}]",
    );
    routes += &route(
        "cross-namespace",
        &format!(
            "  parentRefs: [{{name: web}}]\n  rules: [{{backendRefs: [{{name: reviews, namespace: {other}, port: 9080}}]}}]"
        ),
    );
    routes += &route(
        "invalid-kind",
        "  parentRefs: [{name: web}]\n  rules: [{backendRefs: [{group: '', kind: ConfigMap, name: reviews}]}]",
    );
    routes += &route(
        "bad-regex",
        "  parentRefs: [{name: web}]\n  rules: [{matches: [{path: {type: RegularExpression, value: '/(['}}], backendRefs: [{name: reviews-v1, port: 9080}]}]",
    );
    apply(&client, ns, &routes).await?;
    let outsider = route(
        "outsider",
        &format!("  parentRefs: [{{name: web, namespace: {ns}}}]\n{TO_V1}"),
    );
    apply(&client, &other, &outsider).await?;

    let accepted = ("True", "Accepted");
    let resolved = ("True", "ResolvedRefs");
    for (name, parent, type_, expected) in [
        ("canary", "web", "Accepted", accepted),
        ("canary", "web", "ResolvedRefs", resolved),
        ("mesh", "reviews", "Accepted", accepted),
        ("mesh", "reviews", "ResolvedRefs", resolved),
        (
            "wrong-host",
            "web",
            "Accepted",
            ("False", "NoMatchingListenerHostname"),
        ),
        (
            "wrong-section",
            "web",
            "Accepted",
            ("False", "NoMatchingParent"),
        ),
        (
            "widget-parent",
            "web",
            "Accepted",
            ("False", "NoMatchingParent"),
        ),
        (
            "missing-backend",
            "web",
            "ResolvedRefs",
            ("False", "BackendNotFound"),
        ),
        (
            "cross-namespace",
            "web",
            "ResolvedRefs",
            ("False", "RefNotPermitted"),
        ),
        (
            "invalid-kind",
            "web",
            "ResolvedRefs",
            ("False", "InvalidKind"),
        ),
        (
            "bad-regex",
            "web",
            "Accepted",
            ("False", "UnsupportedValue"),
        ),
    ] {
        wait_route(&client, ns, name, parent, type_, expected).await?;
    }
    let outsider = wait_route(
        &client,
        &other,
        "outsider",
        "web",
        "Accepted",
        ("False", "NotAllowedByListeners"),
    )
    .await?;
    let entry = ferry_parent(&outsider, "web").unwrap();
    assert_eq!(entry["parentRef"]["namespace"], ns);
    assert_eq!(entry["conditions"][0]["observedGeneration"], 1);

    // A ReferenceGrant fixes the cross-namespace reference.
    let grant = format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: allow, namespace: {other}}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {ns}}}]\n  to: [{{group: '', kind: Service}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: {other}}}\nspec: {{ports: [{{port: 9080}}]}}\n"
    );
    apply(&client, ns, &grant).await?;
    wait_route(
        &client,
        ns,
        "cross-namespace",
        "web",
        "ResolvedRefs",
        resolved,
    )
    .await?;

    // Gateway and GatewayClass status.
    let gateway = wait_for(&client, "Gateway", ns, "web", "listener status", |gw| {
        gw["status"]["listeners"][0]["attachedRoutes"] == 5
    })
    .await?;
    let status = &gateway["status"];
    assert_eq!(
        condition(status, "Accepted"),
        Some(("True".into(), "Accepted".into())),
        "{status:#}"
    );
    let listener = &status["listeners"][0];
    assert_eq!(
        listener["supportedKinds"][0]["kind"], "HTTPRoute",
        "{listener:#}"
    );
    assert_eq!(condition(listener, "Accepted").unwrap().0, "True");
    let class = wait_for(&client, "GatewayClass", "", "ferry", "Accepted", |c| {
        condition(&c["status"], "Accepted").is_some_and(|c| c.0 == "True")
    })
    .await?;
    let features = class["status"]["supportedFeatures"].as_array().unwrap();
    assert!(
        features.iter().any(|f| f["name"] == "HTTPRoute"),
        "{class:#}"
    );

    // A route with more rules than the CRD allows never reaches the index;
    // the server refuses it and control carries on.
    let rules: String = (0..200)
        .map(|i| format!("    - matches: [{{path: {{type: PathPrefix, value: /r{i}}}}}]\n      backendRefs: [{{name: reviews-v1, port: 9080}}]\n"))
        .collect();
    let huge = route(
        "huge",
        &format!("  parentRefs: [{{name: web}}]\n  rules:\n{rules}"),
    );
    assert!(apply(&client, ns, &huge).await.is_err());
    apply(
        &client,
        ns,
        &route("after", &format!("  parentRefs: [{{name: web}}]\n{TO_V1}")),
    )
    .await?;
    wait_route(&client, ns, "after", "web", "Accepted", accepted).await?;
    Ok(())
}

#[tokio::test]
async fn another_controllers_parent_status_is_left_intact() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    apply(&client, ns, BASE).await?;
    let theirs = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: other}\nspec: {controllerName: example.com/other}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs}\nspec:\n  gatewayClassName: other\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n";
    apply(&client, ns, theirs).await?;
    apply(
        &client,
        ns,
        &route(
            "shared",
            &format!("  parentRefs: [{{name: web}}, {{name: theirs}}]\n{TO_V1}"),
        ),
    )
    .await?;
    let their_entry = json!({
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "theirs"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
                        "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}],
    });
    let routes: Api<ferry_core::objects::api::HttpRoute> = Api::namespaced(client.clone(), ns);
    routes
        .patch_status(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"parents": [their_entry.clone()]}})),
        )
        .await?;

    let _control = start_control(&cluster, None).await?;
    let route = wait_route(
        &client,
        ns,
        "shared",
        "web",
        "Accepted",
        ("True", "Accepted"),
    )
    .await?;
    let parents = route["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "{route:#}");
    assert_eq!(parents[0], their_entry, "their entry is untouched");
    assert!(
        ferry_parent(&route, "theirs").is_none(),
        "Ferry writes nothing for their Gateway"
    );

    // A spec change: Ferry's entry follows the generation, theirs stays.
    let mut changed = routes.get("shared").await?;
    changed.spec.hostnames = Some(vec!["shop.example.com".into()]);
    routes
        .replace("shared", &PostParams::default(), &changed)
        .await?;
    let route = wait_for(&client, "HTTPRoute", ns, "shared", "generation 2", |r| {
        ferry_parent(r, "web").is_some_and(|p| p["conditions"][0]["observedGeneration"] == 2)
    })
    .await?;
    assert_eq!(route["status"]["parents"][0], their_entry);
    Ok(())
}
