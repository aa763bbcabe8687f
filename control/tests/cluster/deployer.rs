//! Gateway deployer: a ServiceAccount, a Deployment running as it and a
//! Service per Ferry Gateway, owned by it, tuned by `spec.infrastructure`,
//! and the Gateway's addresses.

use anyhow::Result;
use ferry_harness::Cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use crate::status::BASE;
use crate::support::{apply, start_control, wait_for};

#[tokio::test]
async fn ferry_gateways_get_proxies_a_service_and_addresses() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let _control = start_control(&cluster, None).await?;
    apply(&client, ns, BASE).await?;
    let tuned = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: internal}
spec:
  gatewayClassName: ferry
  infrastructure:
    labels: {team: shop}
    annotations: {ferry.dev/service-type: ClusterIP, ferry.dev/replicas: "3"}
  listeners:
    - {name: http, protocol: HTTP, port: 8080}
    - {name: other, protocol: HTTP, port: 8081}
"#;
    apply(&client, ns, tuned).await?;

    let gateway = wait_for(&client, "Gateway", ns, "internal", "addresses", |gw| {
        gw["status"]["addresses"][0]["value"].is_string()
    })
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let service = services.get("internal-ferry").await?;
    let spec = service.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
    assert_eq!(ports, [8080, 8081]);
    assert_eq!(
        gateway["status"]["addresses"][0]["value"].as_str(),
        spec.cluster_ip.as_deref()
    );
    let owner = &service.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Gateway", "internal")
    );
    assert_eq!(
        Some(owner.uid.as_str()),
        gateway["metadata"]["uid"].as_str()
    );

    let deployment = deployments.get("internal-ferry").await?;
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(deployment.metadata.labels.as_ref().unwrap()["team"], "shop");
    let pod_spec = deployment.spec.unwrap().template.spec.unwrap();
    // The proxies run as the Gateway's own ServiceAccount, owned by it like
    // the rest, without an API token.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account = accounts.get("internal-ferry").await?;
    assert_eq!(
        account.metadata.owner_references.as_ref(),
        service.metadata.owner_references.as_ref()
    );
    assert_eq!(account.metadata.labels.as_ref().unwrap()["team"], "shop");
    assert_eq!(
        pod_spec.service_account_name.as_deref(),
        Some("internal-ferry")
    );
    assert_eq!(pod_spec.automount_service_account_token, Some(false));
    // The apiserver admits a pod of the template (its ServiceAccount
    // exists) and adds no API token volume to it.
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "internal-ferry-0"},
        "spec": pod_spec,
    }))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods.create(&PostParams::default(), &pod).await?;
    let volumes: Vec<String> = pod
        .spec
        .and_then(|s| s.volumes)
        .into_iter()
        .flatten()
        .map(|v| v.name)
        .collect();
    assert_eq!(volumes, ["ferry-identity", "ferry-trust-anchors"]);
    let container = &pod_spec.containers[0];
    let args = container.args.clone().unwrap().join(" ");
    assert!(args.contains("--mode gateway"), "{args}");
    assert!(args.contains(&format!("--gateway {ns}/internal")), "{args}");
    // The proxy's workload identity: a token for audience `ferry` and the
    // trust anchors, mounted where the variables say.
    let env: Vec<(&str, Option<&str>)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert!(
        env.contains(&(
            "FERRY_IDENTITY_TOKEN",
            Some("/var/run/secrets/ferry/identity/token")
        )),
        "{env:?}"
    );
    assert!(
        env.contains(&("FERRY_TRUST_ANCHORS", Some("/var/run/ferry/trust/ca.pem"))),
        "{env:?}"
    );
    assert!(
        env.contains(&("FERRY_TRUST_DOMAIN", Some("cluster.local"))),
        "{env:?}"
    );
    let volumes = pod_spec.volumes.clone().unwrap_or_default();
    let token = volumes
        .iter()
        .find_map(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s[0].service_account_token.as_ref())
        .expect("a projected token volume");
    assert_eq!(token.audience.as_deref(), Some("ferry"));
    assert!(
        volumes.iter().any(|v| v
            .config_map
            .as_ref()
            .is_some_and(|c| c.name == "ferry-trust-anchors")),
        "{volumes:?}"
    );

    // The default: a LoadBalancer Service, one replica.
    wait_for(&client, "Gateway", ns, "web", "addresses", |gw| {
        gw["status"]["addresses"][0]["value"].is_string()
    })
    .await?;
    let web = services.get("web-ferry").await?;
    assert_eq!(web.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        deployments.get("web-ferry").await?.spec.unwrap().replicas,
        Some(1)
    );
    Ok(())
}

const TUNED: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry-tuned}
spec:
  controllerName: ferry.dev/gateway-controller
  parametersRef: {group: "", kind: ConfigMap, name: class-params, namespace: "{ns}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: class-params}
data:
  serviceType: NodePort
  replicas: "4"
  serviceAnnotations: |
    lb.example.com/scheme: internal
    lb.example.com/class: from-class
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gateway-params}
data:
  replicas: "2"
  serviceAnnotations: '{"lb.example.com/class": "from-gateway"}'
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tuned}
spec:
  gatewayClassName: ferry-tuned
  infrastructure:
    labels: {team: shop}
    parametersRef: {group: "", kind: ConfigMap, name: gateway-params}
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: broken}
spec:
  gatewayClassName: ferry-tuned
  infrastructure:
    parametersRef: {group: "", kind: ConfigMap, name: later}
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry-bad}
spec:
  controllerName: ferry.dev/gateway-controller
  parametersRef: {group: example.com, kind: Params, name: x}
"#;

fn accepted(object: &serde_json::Value) -> Option<(String, String)> {
    crate::support::condition(&object["status"], "Accepted")
}

/// Waits until `kind` `ns/name` has `Accepted` with (status, reason).
async fn wait_accepted(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    expected: (&str, &str),
) -> Result<serde_json::Value> {
    let wanted = Some((expected.0.to_string(), expected.1.to_string()));
    wait_for(client, kind, ns, name, expected.1, |o| {
        accepted(o) == wanted
    })
    .await
}

#[tokio::test]
async fn parameters_ref_configures_the_deployment_or_rejects_the_gateway() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let _control = start_control(&cluster, None).await?;
    apply(&client, ns, TUNED).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    wait_for(&client, "Gateway", ns, "tuned", "addresses", |gw| {
        gw["status"]["addresses"][0]["value"].is_string()
    })
    .await?;
    let service = services.get("tuned-ferry").await?;
    assert_eq!(
        service.spec.as_ref().unwrap().type_.as_deref(),
        Some("NodePort")
    );
    let annotations = service.metadata.annotations.unwrap();
    assert_eq!(annotations["lb.example.com/class"], "from-gateway");
    assert_eq!(annotations["lb.example.com/scheme"], "internal");
    let deployment = deployments.get("tuned-ferry").await?;
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(deployment.metadata.labels.as_ref().unwrap()["team"], "shop");
    wait_accepted(
        &client,
        "GatewayClass",
        "",
        "ferry-tuned",
        ("True", "Accepted"),
    )
    .await?;

    // A missing ConfigMap: rejected, not deployed with defaults.
    let invalid = ("False", "InvalidParameters");
    let broken = wait_accepted(&client, "Gateway", ns, "broken", invalid).await?;
    let message = broken["status"]["conditions"][0]["message"].to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(deployments.get_opt("broken-ferry").await?.is_none());
    wait_accepted(&client, "GatewayClass", "", "ferry-bad", invalid).await?;

    // Created later: picked up, and the Gateway is deployed.
    let later =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {replicas: \"0\"}\n";
    apply(&client, ns, later).await?;
    wait_accepted(&client, "Gateway", ns, "broken", ("True", "Accepted")).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let deployment = loop {
        if let Some(d) = deployments.get_opt("broken-ferry").await? {
            break d;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "broken-ferry not deployed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(deployment.spec.unwrap().replicas, Some(0));

    // A bad value: rejected again.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {replicas: many}\n";
    apply(&client, ns, bad).await?;
    wait_accepted(&client, "Gateway", ns, "broken", invalid).await?;
    Ok(())
}
