//! A gateway pod in the mesh: `ferry-proxy --mode gateway` with a workload
//! identity (the token of the ServiceAccount the deployer gives its
//! Gateway, and the trust anchors) serving a Gateway streamed from
//! ferry-control, in a network namespace of its own
//! (no nat rules: a gateway is called directly).
//!
//! * `gateway_reaches_meshed_backends_over_mtls`: a route to a Service
//!   whose pod's sidecar is strict (it refuses anything but mesh mTLS) is
//!   served through the gateway, WebSocket included; a route to a Service
//!   whose pod's sidecar holds another identity than its Pod's
//!   ServiceAccount (permissive: it would serve plaintext) fails, since the
//!   gateway checks who answers; the gateway's `/config` shows its
//!   certificate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferry_control::deployer::render::object_name;
use ferry_core::objects::api::{Gateway, GatewayClass};
use ferry_netns::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::world::{App, NODE, PodSpec, RELAY_PORT, TRUST_DOMAIN, World};
use crate::{Tally, create, load, service, skip, websocket};

/// The gateway's listener port.
const LISTENER: u16 = 8080;

/// Creates GatewayClass `ferry` and Gateway `namespace/web` with one HTTP
/// listener on [`LISTENER`].
async fn gateway_objects(world: &World, namespace: &str) -> Result<()> {
    let client = world.cluster.client();
    let class: GatewayClass = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "ferry"},
        "spec": {"controllerName": "ferry.dev/gateway-controller"},
    }))?;
    Api::<GatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let gateway: Gateway = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web"},
        "spec": {
            "gatewayClassName": "ferry",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": LISTENER,
                           "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }))?;
    Api::<Gateway>::namespaced(client, namespace)
        .create(&PostParams::default(), &gateway)
        .await?;
    Ok(())
}

/// Starts the gateway proxy of Gateway `namespace/web` in its own pod, as
/// the ServiceAccount the deployer runs it as, and waits until it serves.
async fn gateway_pod(world: &mut World, namespace: &str) -> Result<(Pod, SocketAddr)> {
    let (netns, ip) = world.plain_pod("gateway", App::None)?;
    let account = object_name("web");
    let token = world.token(namespace, &account).await?;
    let anchors = world.dir.path().join(format!("{namespace}-ca.pem"));
    let proxy = ferry_harness::workspace_binary("ferry-proxy")?;
    let log = std::env::var("FERRY_TEST_MESH_LOG").unwrap_or_else(|_| "warn".into());
    let mut command = netns.command(&proxy.to_string_lossy());
    command
        .args(["--mode", "gateway"])
        .args(["--discovery", &format!("{NODE}:{RELAY_PORT}")])
        .args(["--gateway", &format!("{namespace}/web")])
        .env("FERRY_LOG", log)
        .env("FERRY_POD_NAMESPACE", namespace)
        .env("FERRY_SERVICE_ACCOUNT", &account)
        .env("FERRY_TRUST_DOMAIN", TRUST_DOMAIN)
        .env("FERRY_IDENTITY_TOKEN", &token)
        .env("FERRY_TRUST_ANCHORS", &anchors);
    netns.spawn(command)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while config(&netns)?["identity"]["identity"].is_null() {
        if Instant::now() > deadline {
            bail!("the gateway never got a certificate: {}", config(&netns)?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((netns, SocketAddr::from((ip, LISTENER))))
}

/// The gateway's `/config` (`null` while its admin server is not up).
fn config(netns: &Pod) -> Result<Value> {
    let out = netns
        .command("curl")
        .args(["-s", "http://127.0.0.1:4191/config"])
        .output()?;
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_reaches_meshed_backends_over_mtls() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let mut world = World::start(&[]).await?;
    let shop = world.namespace("shop").await?;
    let edge = world.namespace("edge").await?;
    for ns in [&shop, &edge] {
        world.trust_anchors(ns).await?;
    }
    let pod = |name: &'static str, service_account, env| PodSpec {
        env,
        ..PodSpec::new(&shop, name, service_account, App::Http { name, port: 9080 })
    };
    let strict = world
        .pod(pod(
            "strict",
            "reviews",
            vec![("FERRY_INBOUND_POLICY", "strict")],
        ))
        .await?;
    // Its Pod runs as `ratings`, its sidecar holds the identity of
    // `impostor`; permissive, it would answer plaintext.
    let impostor = world
        .pod(PodSpec {
            token_account: Some("impostor"),
            ..pod("impostor", "ratings", Vec::new())
        })
        .await?;
    service(&world, &shop, "reviews", 9080, &[&strict]).await?;
    service(&world, &shop, "ratings", 9080, &[&impostor]).await?;

    gateway_objects(&world, &edge).await?;
    let parent = json!([{"name": "web", "namespace": edge}]);
    create(
        &world,
        &shop,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {"parentRefs": parent, "rules": [
                {"matches": [{"headers": [{"name": "to", "value": "ratings"}]}],
                 "backendRefs": [{"name": "ratings", "port": 9080}]},
                {"backendRefs": [{"name": "reviews", "port": 9080}]},
            ]},
        }),
    )
    .await?;
    let (gateway, listener) = gateway_pod(&mut world, &edge).await?;
    let identity = config(&gateway)?["identity"].clone();
    assert_eq!(
        identity["identity"],
        format!("spiffe://{TRUST_DOMAIN}/ns/{edge}/sa/web-ferry"),
        "{identity}"
    );
    assert!(identity["expiresInSecs"].as_u64() > Some(0), "{identity}");

    // From outside the mesh (the node), through the gateway, to the strict
    // pod: served, so the gateway spoke mesh mTLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tally = load(&world.node, listener, 20, "-").await?;
        if tally.get("strict") == Some(&20) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway never served the strict pod; last tally {tally:?}\n/config: {}",
                config(&gateway)?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = load(&world.node, listener, 200, "-").await?;
    assert_eq!(tally, Tally::from([("strict".to_owned(), 200)]));
    // A WebSocket through the gateway to the strict pod: an extended
    // CONNECT stream inside the gateway's mesh mTLS.
    let answers = websocket(&world.node, listener, &["through", "the gateway"]).await?;
    assert_eq!(answers, ["ws strict: through", "ws strict: the gateway"]);
    let backends = config(&gateway)?;
    assert!(
        backends["backends"]
            .as_object()
            .is_some_and(|b| b.keys().any(|k| k.contains("reviews"))),
        "the gateway's view has no reviews backend: {backends}"
    );

    // The endpoint that proves another identity than its Pod's is refused.
    let tally = load(&world.node, listener, 5, "to: ratings").await?;
    assert_eq!(
        tally.get("impostor"),
        None,
        "the impostor was trusted: {tally:?}"
    );
    assert_eq!(tally.get("failed"), Some(&5), "{tally:?}");
    // The plain path to it works, so that failure was the identity check.
    let direct = SocketAddr::new(impostor.ip.into(), 9080);
    let tally = load(&world.node, direct, 3, "-").await?;
    assert_eq!(
        tally,
        Tally::from([("impostor".to_owned(), 3)]),
        "the impostor does not answer plaintext"
    );
    Ok(())
}
