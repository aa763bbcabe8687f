//! What a Gateway deploys: its ServiceAccount, and its proxies' identity.

use ferry_core::objects::{Object, load_yaml};

use super::*;

fn gateway() -> Gateway {
    let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop, uid: 0d5c6a1e}
spec:
  gatewayClassName: ferry
  infrastructure:
    labels: {team: shop}
    annotations: {example.com/owner: shop}
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"#;
    match load_yaml(yaml, "test.yaml").unwrap().objects.remove(0) {
        Object::Gateway(gw) => gw,
        other => panic!("expected a Gateway: {other:?}"),
    }
}

fn rendered(settings: &DeploySettings) -> Rendered {
    let id = NsName::new("shop", "web");
    render(&id, &gateway(), &InfraParams::default(), settings).unwrap()
}

fn pod_spec(settings: &DeploySettings) -> Value {
    let deployment = serde_json::to_value(&rendered(settings).deployment).unwrap();
    deployment["spec"]["template"]["spec"].clone()
}

fn plain() -> DeploySettings {
    DeploySettings {
        proxy_image: "ferry/proxy:test".into(),
        discovery: "ferry-control.ferry-system.svc:8090".into(),
        identity: None,
    }
}

#[test]
fn proxies_run_as_a_service_account_of_their_own() {
    let rendered = rendered(&plain());
    let account = serde_json::to_value(&rendered.service_account).unwrap();
    assert_eq!(
        account,
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "web-ferry",
                "namespace": "shop",
                "labels": {
                    "team": "shop",
                    "gateway.networking.k8s.io/gateway-name": "web",
                    "app.kubernetes.io/managed-by": "ferry-control",
                },
                "annotations": {"example.com/owner": "shop"},
                "ownerReferences": [{
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "name": "web",
                    "uid": "0d5c6a1e",
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
        })
    );
    // The same labels and owner as the Deployment and the Service.
    for object in [
        serde_json::to_value(&rendered.deployment).unwrap(),
        serde_json::to_value(&rendered.service).unwrap(),
    ] {
        for field in ["labels", "ownerReferences"] {
            assert_eq!(
                object["metadata"][field], account["metadata"][field],
                "{field} of {}",
                object["kind"]
            );
        }
    }
    // The proxies run as it, without an API token: they never call the
    // Kubernetes API.
    let spec = pod_spec(&plain());
    assert_eq!(spec["serviceAccountName"], "web-ferry");
    assert_eq!(spec["automountServiceAccountToken"], false);
}

#[test]
fn proxies_get_an_identity_when_the_ca_runs() {
    let mut settings = plain();
    let plain = pod_spec(&settings);
    assert_eq!(plain["volumes"], Value::Null);
    assert_eq!(plain["containers"][0]["env"], Value::Null);

    settings.identity = Some(GatewayIdentity {
        trust_domain: "example.org".into(),
        control_tls: Some("https://ferry-control.ferry-system.svc:8443".into()),
    });
    let spec = pod_spec(&settings);
    let container = &spec["containers"][0];
    let args = container["args"].as_array().unwrap();
    let discovery = args.iter().position(|a| a == "--discovery").unwrap();
    assert_eq!(
        args[discovery + 1],
        "https://ferry-control.ferry-system.svc:8443"
    );
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e
                .get("value")
                .unwrap_or(&e["valueFrom"]["fieldRef"]["fieldPath"]);
            (e["name"].as_str().unwrap(), value)
        })
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("FERRY_POD_NAMESPACE", &json!("metadata.namespace")),
            ("FERRY_SERVICE_ACCOUNT", &json!("spec.serviceAccountName")),
            ("FERRY_TRUST_DOMAIN", &json!("example.org")),
            (
                "FERRY_IDENTITY_TOKEN",
                &json!("/var/run/secrets/ferry/identity/token")
            ),
            ("FERRY_TRUST_ANCHORS", &json!("/var/run/ferry/trust/ca.pem")),
            (
                "FERRY_IDENTITY_ADDR",
                &json!("https://ferry-control.ferry-system.svc:8443")
            ),
        ])
    );
    let token = &spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(
        (&token["audience"], &token["path"]),
        (&json!("ferry"), &json!("token"))
    );
    assert_eq!(
        spec["volumes"][1]["configMap"]["name"],
        "ferry-trust-anchors"
    );
    let mounts: Vec<&Value> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["mountPath"])
        .collect();
    assert_eq!(
        mounts,
        [
            &json!("/var/run/secrets/ferry/identity"),
            &json!("/var/run/ferry/trust")
        ]
    );
}
