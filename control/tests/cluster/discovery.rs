//! A gateway proxy's view over discovery: new routes arrive, the view
//! survives a dead control plane, and resyncs when it returns.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_api::{ClientError, GatewayConfig, watch_gateway};
use ferry_core::model::{Endpoint, HostPattern, ProxyConfig};
use ferry_harness::Cluster;
use futures_util::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Endpoints;
use kube::Api;
use kube::api::PostParams;

use crate::status::{BASE, TO_V1, route};
use crate::support::{apply, start_control};

fn hosts(config: &ProxyConfig) -> Vec<String> {
    config
        .ports
        .iter()
        .flat_map(|p| &p.routes.virtual_hosts)
        .map(|v| v.hostname.to_string())
        .collect()
}

fn serves(config: &ProxyConfig, host: &str) -> bool {
    config
        .ports
        .iter()
        .flat_map(|p| &p.routes.virtual_hosts)
        .any(|v| v.hostname == HostPattern::Exact(host.to_string()))
}

/// The next configuration the stream yields that satisfies `done`.
async fn next_config(
    stream: &mut (impl Stream<Item = Result<GatewayConfig, ClientError>> + Unpin),
    done: impl Fn(&ProxyConfig) -> bool,
) -> Result<(u64, ProxyConfig)> {
    let deadline = Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        loop {
            match stream.next().await {
                Some(Ok(GatewayConfig {
                    version,
                    config: Some(config),
                    ..
                })) if done(&config) => return Ok((version, config)),
                Some(_) => continue,
                None => bail!("the watch ended"),
            }
        }
    })
    .await
    .context("timed out waiting for a configuration")?
}

fn hosted(name: &str, host: &str) -> String {
    route(
        name,
        &format!("  parentRefs: [{{name: web}}]\n  hostnames: [{host}]\n{TO_V1}"),
    )
}

#[tokio::test]
async fn gateway_view_follows_routes_and_endpoints() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    apply(&client, ns, BASE).await?;
    apply(&client, ns, &hosted("first", "first.example.com")).await?;
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reviews-v1"},
        "subsets": [{"addresses": [{"ip": "10.9.0.1"}], "ports": [{"name": "http", "port": 9080}]}],
    }))?;
    Api::<Endpoints>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &endpoints)
        .await?;

    let control = start_control(&cluster, None).await?;
    let mut view = Box::pin(watch_gateway(control.discovery_addr.to_string(), ns, "web"));
    let (v1, config) = next_config(&mut view, |c| {
        c.backends
            .values()
            .any(|b| b.endpoints == [Endpoint::Addr("10.9.0.1:9080".parse().unwrap())])
    })
    .await?;
    assert!(serves(&config, "first.example.com"), "{:?}", hosts(&config));
    assert!(!serves(&config, "second.example.com"));

    let applied = Instant::now();
    apply(&client, ns, &hosted("second", "second.example.com")).await?;
    let (v2, config) = next_config(&mut view, |c| serves(c, "second.example.com")).await?;
    eprintln!("route applied to view received: {:?}", applied.elapsed());
    assert!(v2 > v1);
    assert!(serves(&config, "first.example.com"));

    // A Gateway that does not exist is an empty view, not an error.
    let mut missing = Box::pin(watch_gateway(
        control.discovery_addr.to_string(),
        ns,
        "nope",
    ));
    let first = tokio::time::timeout(Duration::from_secs(10), missing.next()).await?;
    assert!(
        matches!(first, Some(Ok(GatewayConfig { config: None, .. }))),
        "{first:?}"
    );
    Ok(())
}

fn free_port() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn spawn_control(cluster: &Cluster, discovery: SocketAddr) -> Result<tokio::process::Child> {
    Ok(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-control"))
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("FERRY_LOG", "warn")
            .args(["--no-leader-election", "--admin-addr", "127.0.0.1:0"])
            .args(["--discovery-addr", &discovery.to_string()])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?,
    )
}

#[tokio::test]
async fn view_survives_a_dead_control_plane_and_resyncs() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    apply(&client, ns, BASE).await?;
    apply(&client, ns, &hosted("first", "first.example.com")).await?;
    let addr = free_port()?;
    let mut control = spawn_control(&cluster, addr)?;

    let mut view = Box::pin(watch_gateway(addr.to_string(), ns, "web"));
    let (_, last_good) = next_config(&mut view, |c| serves(c, "first.example.com")).await?;

    control.kill().await?;
    // The stream reports the loss; the proxy keeps `last_good`.
    let item = tokio::time::timeout(Duration::from_secs(10), view.next()).await?;
    assert!(matches!(item, Some(Err(_))), "{item:?}");
    assert!(serves(&last_good, "first.example.com"));

    // Changed while control was away; seen once it is back.
    apply(&client, ns, &hosted("second", "second.example.com")).await?;
    let _control = spawn_control(&cluster, addr)?;
    let (_, config) = next_config(&mut view, |c| serves(c, "second.example.com")).await?;
    assert!(serves(&config, "first.example.com"));
    Ok(())
}

/// The next inbound update satisfying `done`.
async fn next_inbound(
    stream: &mut tonic::Streaming<ferry_api::pb::InboundUpdate>,
    done: impl Fn(&ferry_api::pb::InboundUpdate) -> bool,
) -> Result<ferry_api::pb::InboundUpdate> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await? {
                Some(update) if done(&update) => return Ok(update),
                Some(_) => continue,
                None => bail!("the inbound watch ended"),
            }
        }
    })
    .await
    .context("timed out waiting for an inbound update")?
}

#[tokio::test]
async fn inbound_view_follows_services_and_pod_annotations() -> Result<()> {
    use ferry_api::pb::discovery_client::DiscoveryClient;
    use ferry_api::pb::{BackendProtocol, InboundWatch};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};

    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {ports: [{name: http, port: 9080, targetPort: 8080, appProtocol: kubernetes.io/h2c}]}\n";
    apply(&client, ns, service).await?;
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reviews"},
        "subsets": [{"addresses": [{"ip": "10.9.0.7"}], "ports": [{"name": "http", "port": 8080}]}],
    }))?;
    Api::<Endpoints>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &endpoints)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reviews-0"},
        "spec": {"containers": [{"name": "app", "image": "reviews:1"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let ip = serde_json::json!({"status": {"podIP": "10.9.0.7", "podIPs": [{"ip": "10.9.0.7"}]}});
    pods.patch_status("reviews-0", &PatchParams::default(), &Patch::Merge(&ip))
        .await?;

    let control = start_control(&cluster, None).await?;
    let mut discovery = DiscoveryClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", control.discovery_addr))?
            .connect()
            .await?,
    );
    let watch = InboundWatch {
        pod_ip: "10.9.0.7".to_string(),
        port: 8080,
    };
    let mut stream = discovery.watch_inbound(watch.clone()).await?.into_inner();
    let first = next_inbound(&mut stream, |u| u.protocol_hint() == BackendProtocol::H2c).await?;
    assert!(!first.opaque, "{first:?}");
    assert!(first.allowed_identities.is_empty());

    // Annotated opaque on the pod: a new version says so.
    let opaque =
        serde_json::json!({"metadata": {"annotations": {"ferry.dev/opaque-ports": "8080"}}});
    pods.patch("reviews-0", &PatchParams::default(), &Patch::Merge(&opaque))
        .await?;
    let second = next_inbound(&mut stream, |u| u.opaque).await?;
    assert!(second.version > first.version, "{first:?} then {second:?}");

    // A port no Service targets is plain, and a bad address is refused.
    let other = InboundWatch {
        port: 9999,
        ..watch
    };
    let mut plain = discovery.watch_inbound(other).await?.into_inner();
    let update = next_inbound(&mut plain, |_| true).await?;
    assert_eq!(
        (update.protocol_hint(), update.opaque),
        (BackendProtocol::Http1, false)
    );
    let bad = InboundWatch {
        pod_ip: "reviews-0".to_string(),
        port: 8080,
    };
    let refused = discovery.watch_inbound(bad).await;
    assert_eq!(
        refused.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );
    Ok(())
}
