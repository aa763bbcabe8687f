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
