//! Standalone mode: the same index, pipeline and discovery server fed by a
//! directory of YAML files instead of watches.

use std::time::Duration;

use anyhow::{Context as _, Result};
use ferry_api::{GatewayConfig, watch_gateway};
use ferry_control::run::{Running, Settings, Source, start};
use ferry_core::model::HostPattern;
use futures_util::StreamExt as _;
use prometheus_client::registry::Registry;

const OBJECTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: ferry
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{port: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-1, namespace: shop, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{port: 19080}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
"#;

fn route(name: &str, host: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  parentRefs: [{{name: web}}]\n  hostnames: [{host}]\n  rules: [{{backendRefs: [{{name: reviews, port: 9080}}]}}]\n"
    )
}

fn serves(view: &GatewayConfig, host: &str) -> bool {
    view.config
        .iter()
        .flat_map(|c| &c.ports)
        .flat_map(|p| &p.routes.virtual_hosts)
        .any(|v| v.hostname == HostPattern::Exact(host.into()))
}

/// ferry-control in standalone mode on `dir`, on free loopback ports.
async fn start_files(dir: &std::path::Path) -> Result<Running> {
    let settings = Settings {
        discovery_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        lease: None,
        status_timeout: Duration::from_secs(1),
        deploy: None,
        trust_domain: "cluster.local".to_string(),
        identity: None,
    };
    let source = Source::Files {
        dir: dir.to_path_buf(),
        interval: Duration::from_millis(50),
    };
    Ok(start(source, settings, Registry::default()).await?)
}

#[tokio::test]
async fn files_feed_the_same_discovery_as_watches() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("base.yaml"), OBJECTS)?;
    std::fs::write(dir.path().join("a.yaml"), route("a", "a.example.com"))?;
    let running = start_files(dir.path()).await?;
    let mut view = Box::pin(watch_gateway(
        running.discovery_addr.to_string(),
        "shop",
        "web",
    ));
    let first = tokio::time::timeout(Duration::from_secs(10), view.next())
        .await?
        .context("ended")??;
    assert!(serves(&first, "a.example.com"), "{first:?}");
    let config = first.config.as_ref().unwrap();
    assert_eq!(config.backends.values().next().unwrap().endpoints.len(), 1);
    assert!(
        first.status_json.contains("Accepted"),
        "{}",
        first.status_json
    );

    // A new file is picked up; a broken one keeps the last good objects.
    std::fs::write(dir.path().join("b.yaml"), route("b", "b.example.com"))?;
    let next = tokio::time::timeout(Duration::from_secs(10), view.next())
        .await?
        .context("ended")??;
    assert!(
        serves(&next, "a.example.com") && serves(&next, "b.example.com"),
        "{next:?}"
    );
    assert!(next.version > first.version);
    std::fs::write(dir.path().join("c.yaml"), "kind: [unclosed")?;
    let nothing = tokio::time::timeout(Duration::from_millis(500), view.next()).await;
    assert!(
        nothing.is_err(),
        "a broken file changed the view: {nothing:?}"
    );
    Ok(())
}

#[tokio::test]
async fn sidecars_watch_outbound_targets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mesh = OBJECTS.replace(
        "spec: {ports: [{port: 9080}]}",
        "spec: {clusterIP: 10.96.0.12, ports: [{port: 9080}]}",
    );
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: mesh, namespace: shop}\nspec:\n  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]\n  rules: [{matches: [{path: {type: PathPrefix, value: /v2}}], backendRefs: [{name: reviews, port: 9080}]}]\n";
    std::fs::write(dir.path().join("base.yaml"), mesh)?;
    std::fs::write(dir.path().join("route.yaml"), route)?;
    let running = start_files(dir.path()).await?;
    let addr = running.discovery_addr.to_string();

    let mut view = Box::pin(ferry_api::watch_outbound(
        addr.clone(),
        "10.96.0.12:9080",
        "web",
    ));
    let first = tokio::time::timeout(Duration::from_secs(10), view.next())
        .await?
        .context("ended")??;
    let ferry_api::OutboundConfig::Service {
        service,
        routes,
        backends,
        ..
    } = first
    else {
        panic!("expected a Service: {first:?}");
    };
    assert_eq!(service.name, "reviews");
    assert_eq!(routes.virtual_hosts.len(), 1);
    assert_eq!(backends[0].1.endpoints.len(), 1);

    let mut other = Box::pin(ferry_api::watch_outbound(addr, "192.0.2.1:80", "web"));
    let first = tokio::time::timeout(Duration::from_secs(10), other.next())
        .await?
        .context("ended")??;
    assert!(
        matches!(first, ferry_api::OutboundConfig::Passthrough { .. }),
        "{first:?}"
    );
    Ok(())
}

#[tokio::test]
async fn large_views_arrive_whole() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("base.yaml"), OBJECTS)?;
    let routes: String = (0..1200)
        .map(|i| route(&format!("r{i}"), &format!("r{i}.example.com")) + "---\n")
        .collect();
    std::fs::write(dir.path().join("routes.yaml"), routes)?;
    let running = start_files(dir.path()).await?;
    let mut view = Box::pin(watch_gateway(
        running.discovery_addr.to_string(),
        "shop",
        "web",
    ));
    let first = tokio::time::timeout(Duration::from_secs(30), view.next())
        .await?
        .context("ended")??;
    for i in [0, 599, 1199] {
        assert!(serves(&first, &format!("r{i}.example.com")), "r{i}");
    }
    let hosts = first.config.as_ref().unwrap().ports[0]
        .routes
        .virtual_hosts
        .len();
    assert!(hosts >= 1200, "{hosts}");
    assert!(first.status_json.contains("Accepted"));
    Ok(())
}
