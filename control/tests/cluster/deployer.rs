//! Gateway deployer: a Deployment and a Service per Ferry Gateway, owned by
//! it, tuned by `spec.infrastructure`, and the Gateway's addresses.

use anyhow::Result;
use ferry_harness::Cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

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
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let args = container.args.clone().unwrap().join(" ");
    assert!(args.contains("--mode gateway"), "{args}");
    assert!(args.contains(&format!("--gateway {ns}/internal")), "{args}");

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
