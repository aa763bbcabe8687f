//! The mesh end to end, with no mock: a real apiserver, a real
//! `ferry-control` (discovery and CA), pods that are network namespaces
//! with real iptables from `ferry-proxy init`, real `ferry-proxy --mode
//! sidecar` processes, and small apps (see `world.rs` for the layout).
//!
//! * `routes_identities_and_opaque_tcp`: a client calling the ClusterIP of
//!   `reviews` gets the 90/10 split of the producer HTTPRoute (within 3
//!   points over 2,000 calls); a header match overrides it; a consumer
//!   route in another namespace wins for that namespace only; a capture on
//!   the bridge shows TLS and no plaintext HTTP or echo lines; a line-echo
//!   service and a WebSocket to the routed Service work through the mesh;
//!   a server whose certificate names another ServiceAccount than the one
//!   its Pod runs as is refused.
//! * `strict_mode_control_loss_and_renewal`: strict inbound refuses
//!   plaintext but serves the mesh; killing ferry-control under load fails
//!   no request; certificates renewed under load fail no request.
//! * `gateway::gateway_reaches_meshed_backends_over_mtls`: a gateway proxy
//!   with a workload identity calls meshed backends over mTLS and refuses
//!   one proving the wrong identity (see `gateway.rs`).
//!
//! Needs root (network namespaces); without it the tests say why and pass.

mod apps;
mod gateway;
mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_netns::{Pod, unavailable};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use world::{App, MeshPod, PodSpec, World, child};

// ---------------------------------------------------------------- child modes

/// Runs `mode` on the value of `var` when this binary was re-run as that
/// child (see `world::child`); as an ordinary test, does nothing.
fn child_mode(var: &str, mode: fn(&str) -> Result<()>) -> Result<()> {
    match std::env::var(var) {
        Ok(value) => mode(&value),
        Err(_) => Ok(()),
    }
}

/// Not a test: the HTTP app of a pod (see [`apps::http_app`]).
#[test]
fn http_app() -> Result<()> {
    child_mode("FERRY_MESH_APP", apps::http_app)
}

/// Not a test: the line-echo app of a pod.
#[test]
fn echo_app() -> Result<()> {
    child_mode("FERRY_MESH_ECHO", apps::echo_app)
}

/// Not a test: the load client run inside a client pod.
#[test]
fn load_client() -> Result<()> {
    child_mode("FERRY_MESH_LOAD", apps::load_client)
}

/// Not a test: a line-echo exchange from inside a client pod, printed as
/// `ECHO <json lines>`; over a WebSocket when the spec starts with `ws|`.
#[test]
fn echo_client() -> Result<()> {
    child_mode("FERRY_MESH_ECHO_CLIENT", |spec| {
        let (websocket, spec) = match spec.strip_prefix("ws|") {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let (addr, lines) = spec.split_once('|').context("expected ADDR|LINES")?;
        let lines: Vec<&str> = lines.split(',').collect();
        let answers = apps::echo_exchange(addr, &lines, websocket)?;
        println!("ECHO {}", serde_json::to_string(&answers)?);
        Ok(())
    })
}

/// Not a test: the discovery relay of the node.
#[test]
fn relay() -> Result<()> {
    child_mode("FERRY_MESH_RELAY", apps::relay)
}

// ---------------------------------------------------------------- helpers

/// Runs `count` GETs from `pod` to `addr`; the answers by app name
/// (`failed` for failures).
async fn load(pod: &Pod, addr: SocketAddr, count: usize, header: &str) -> Result<Tally> {
    let spec = format!("{addr}|{count}|{header}");
    let mut command = child(pod, "load_client", "FERRY_MESH_LOAD", &spec)?;
    let out =
        tokio::task::spawn_blocking(move || command.stderr(Stdio::inherit()).output()).await??;
    parse_tally(&String::from_utf8_lossy(&out.stdout))
}

/// Starts a load in the background; [`finish_load`] collects it.
fn start_load(pod: &Pod, addr: SocketAddr, count: usize) -> Result<Child> {
    let spec = format!("{addr}|{count}|-");
    Ok(child(pod, "load_client", "FERRY_MESH_LOAD", &spec)?
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

async fn finish_load(load: Child) -> Result<Tally> {
    let out = tokio::task::spawn_blocking(move || load.wait_with_output()).await??;
    parse_tally(&String::from_utf8_lossy(&out.stdout))
}

type Tally = BTreeMap<String, usize>;

fn parse_tally(stdout: &str) -> Result<Tally> {
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("TALLY ").map(|(_, t)| t))
        .with_context(|| format!("no tally in the load client's output:\n{stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

/// What comes back from the line-echo service at `addr` for `lines`.
async fn echo(pod: &Pod, addr: SocketAddr, lines: &[&str]) -> Result<Vec<String>> {
    line_exchange(pod, format!("{addr}|{}", lines.join(","))).await
}

/// What comes back for `lines` over a WebSocket to the HTTP app at `addr`.
async fn websocket(pod: &Pod, addr: SocketAddr, lines: &[&str]) -> Result<Vec<String>> {
    line_exchange(pod, format!("ws|{addr}|{}", lines.join(","))).await
}

async fn line_exchange(pod: &Pod, spec: String) -> Result<Vec<String>> {
    let mut command = child(pod, "echo_client", "FERRY_MESH_ECHO_CLIENT", &spec)?;
    let out =
        tokio::task::spawn_blocking(move || command.stderr(Stdio::inherit()).output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("ECHO ").map(|(_, t)| t))
        .with_context(|| format!("no answer from the echo client:\n{stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Creates a Service without selector (ClusterIP assigned by the
/// apiserver) and its Endpoints naming `pods` on `port`; returns
/// `ClusterIP:port`.
async fn service(
    world: &World,
    ns: &str,
    name: &str,
    port: u16,
    pods: &[&MeshPod],
) -> Result<SocketAddr> {
    let client = world.cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"ports": [{"port": port, "name": "main"}]},
    }))?;
    let created = services.create(&PostParams::default(), &service).await?;
    let ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let addresses: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({"ip": p.ip.to_string(),
                   "targetRef": {"kind": "Pod", "namespace": p.namespace, "name": p.name}})
        })
        .collect();
    let endpoints: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": name},
        "subsets": [{"addresses": addresses, "ports": [{"port": port, "name": "main"}]}],
    }))?;
    Api::<Endpoints>::namespaced(client, ns)
        .create(&PostParams::default(), &endpoints)
        .await?;
    Ok(SocketAddr::new(ip.parse()?, port))
}

/// Creates a Gateway API object from JSON.
async fn create(world: &World, ns: &str, object: Value) -> Result<()> {
    use ferry_core::objects::api::{HttpRoute, ReferenceGrant};
    let client = world.cluster.client();
    match object["kind"].as_str() {
        Some("HTTPRoute") => {
            let route: HttpRoute = serde_json::from_value(object)?;
            Api::<HttpRoute>::namespaced(client, ns)
                .create(&PostParams::default(), &route)
                .await?;
        }
        Some("ReferenceGrant") => {
            let grant: ReferenceGrant = serde_json::from_value(object)?;
            Api::<ReferenceGrant>::namespaced(client, ns)
                .create(&PostParams::default(), &grant)
                .await?;
        }
        other => bail!("unexpected kind {other:?}"),
    }
    Ok(())
}

/// Polls `done` on fresh tallies of 20 calls from `pod` until it holds
/// (routes reach sidecars asynchronously), for at most 30 seconds; a
/// timeout reports what the pod's sidecar and ferry-control know, and
/// whether the node's relay answers the pod.
async fn eventually(
    world: &World,
    pod: &MeshPod,
    addr: SocketAddr,
    header: &str,
    what: &str,
    done: impl Fn(&Tally) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tally = load(&pod.netns, addr, 20, header).await?;
        if done(&tally) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let known = world.diagnostics(pod).await;
            bail!("timed out waiting until {what}; last tally {tally:?}\n{known}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A packet capture on the node's bridge: every byte between pods.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(world: &World) -> Result<Self> {
        let file = world.dir.path().join("bridge.pcap");
        let child = world
            .node
            .command("tcpdump")
            // Immediate mode: each packet is written when it is seen, not
            // in batches up to a second late. A 32 MiB buffer: nothing is
            // dropped while tcpdump lags.
            .args([
                "-i",
                "br0",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-B",
                "32768",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start tcpdump (tests/setup.sh installs it)")?;
        // tcpdump needs a moment before it captures.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self { child, file })
    }

    /// Stops tcpdump with SIGINT, so that it writes every packet the
    /// kernel still holds for it before exiting (SIGKILL would lose them),
    /// and returns the capture.
    fn stop(mut self) -> Result<Vec<u8>> {
        // tcpdump may still be writing out a backlog (SIGINT makes it stop
        // reading at once): wait until the file stops growing.
        let size = |file| std::fs::metadata(file).map_or(0, |m| m.len());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = size(&self.file);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = size(&self.file);
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        if !interrupted.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        self.child.wait()?;
        Ok(std::fs::read(&self.file)?)
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn skip() -> bool {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return true;
    }
    false
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread")]
async fn routes_identities_and_opaque_tcp() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let mut world = World::start(&[]).await?;
    let shop = world.namespace("shop").await?;
    let front = world.namespace("front").await?;
    let other = world.namespace("other").await?;
    for ns in [&shop, &front, &other] {
        world.trust_anchors(ns).await?;
    }
    let pod = PodSpec::new;
    let v1 = world
        .pod(pod(
            &shop,
            "reviews-v1",
            "reviews",
            App::Http {
                name: "v1",
                port: 9080,
            },
        ))
        .await?;
    let v2 = world
        .pod(pod(
            &shop,
            "reviews-v2",
            "reviews",
            App::Http {
                name: "v2",
                port: 9080,
            },
        ))
        .await?;
    let echoer = world
        .pod(pod(&shop, "echo", "echo", App::Echo { port: 7000 }))
        .await?;
    // Its Pod runs as `reviews`, its sidecar holds the identity of `impostor`.
    let impostor = world
        .pod(PodSpec {
            token_account: Some("impostor"),
            ..pod(
                &shop,
                "reviews-v3",
                "reviews",
                App::Http {
                    name: "v3",
                    port: 9080,
                },
            )
        })
        .await?;
    let client = world
        .pod(pod(&front, "client", "client", App::None))
        .await?;
    let outsider = world
        .pod(pod(&other, "outsider", "client", App::None))
        .await?;

    let reviews = service(&world, &shop, "reviews", 9080, &[&v1, &v2]).await?;
    service(&world, &shop, "reviews-v1", 9080, &[&v1]).await?;
    service(&world, &shop, "reviews-v2", 9080, &[&v2]).await?;
    let fake = service(&world, &shop, "reviews-v3", 9080, &[&impostor]).await?;
    let echo_addr = service(&world, &shop, "echo", 7000, &[&echoer]).await?;
    let parent = json!([{"group": "", "kind": "Service", "name": "reviews", "namespace": shop, "port": 9080}]);
    create(
        &world,
        &shop,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reviews"},
            "spec": {"parentRefs": parent, "rules": [
                {"matches": [{"headers": [{"name": "env", "value": "canary"}]}],
                 "backendRefs": [{"name": "reviews-v2", "port": 9080}]},
                {"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 90},
                                 {"name": "reviews-v2", "port": 9080, "weight": 10}]},
            ]},
        }),
    )
    .await?;
    // A consumer route: callers in `other` get v2 only.
    create(
        &world,
        &other,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reviews-for-other"},
            "spec": {"parentRefs": parent, "rules": [
                {"backendRefs": [{"name": "reviews-v2", "namespace": shop, "port": 9080}]},
            ]},
        }),
    )
    .await?;
    create(&world, &shop, json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "from-other"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": other}],
                 "to": [{"group": "", "kind": "Service"}]},
    })).await?;

    // Everything between pods from here on is captured.
    let capture = Capture::start(&world)?;
    // The routes reach the sidecars.
    eventually(
        &world,
        &client,
        reviews,
        "env: canary",
        "the header match applies",
        |t| t.get("v2") == Some(&20),
    )
    .await?;
    eventually(
        &world,
        &outsider,
        reviews,
        "-",
        "the consumer route applies",
        |t| t.get("v2") == Some(&20),
    )
    .await?;

    // 90/10 within 3 points over 2,000 calls, none failed.
    let tally = load(&client.netns, reviews, 2000, "-").await?;
    let v1_share = *tally.get("v1").unwrap_or(&0) as f64 / 2000.0;
    assert_eq!(tally.get("failed"), None, "{tally:?}");
    assert!(
        (v1_share - 0.9).abs() <= 0.03,
        "v1 got {v1_share:.3}: {tally:?}"
    );
    // The consumer route is for `other` only: `front` still splits, and
    // `other` gets v2 every time.
    let tally = load(&outsider.netns, reviews, 200, "-").await?;
    assert_eq!(tally, Tally::from([("v2".to_owned(), 200)]));

    // Opaque TCP through the mesh.
    let answers = echo(&client.netns, echo_addr, &["hello", "mesh"]).await?;
    assert_eq!(answers, ["echo: hello", "echo: mesh"]);
    // A WebSocket to the routed Service: the handshake is the app's, and
    // the bytes after it cross in HTTP/2 streams inside mTLS.
    let answers = websocket(&client.netns, reviews, &["over", "websocket"]).await?;
    let app = answers
        .first()
        .and_then(|a| a.strip_prefix("ws "))
        .and_then(|a| a.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .with_context(|| format!("not a WebSocket echo: {answers:?}"))?;
    assert!(["v1", "v2"].contains(&app.as_str()), "{answers:?}");
    assert_eq!(
        answers,
        [format!("ws {app}: over"), format!("ws {app}: websocket")]
    );
    // On the wire: TLS only.
    let wire = capture.stop()?;
    assert!(
        wire.len() > 10_000,
        "the capture saw almost nothing ({} bytes)",
        wire.len()
    );
    for plaintext in [
        "GET / HTTP",
        "name=v1",
        "echo: hello",
        "hello\n",
        "sec-websocket-key",
        ": websocket",
    ] {
        assert!(
            !contains(&wire, plaintext),
            "{plaintext:?} crossed in clear"
        );
    }
    assert!(contains(&wire, "ferry.h2"), "no mesh TLS handshake seen");
    assert!(
        contains(&wire, "ferry.opaque"),
        "no opaque mesh handshake seen"
    );

    // A server proving another identity than its Pod's is refused.
    let tally = load(&client.netns, fake, 5, "-").await?;
    assert_eq!(tally.get("v3"), None, "the impostor was trusted: {tally:?}");
    assert_eq!(tally.get("failed"), Some(&5), "{tally:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_mode_control_loss_and_renewal() -> Result<()> {
    if skip() {
        return Ok(());
    }
    // Short-lived certificates, so that renewals (at ~70%) happen while
    // the load runs.
    let mut world = World::start(&["--identity-lifetime", "20s"]).await?;
    let shop = world.namespace("shop").await?;
    let front = world.namespace("front").await?;
    for ns in [&shop, &front] {
        world.trust_anchors(ns).await?;
    }
    let strict = world
        .pod(PodSpec {
            env: vec![("FERRY_INBOUND_POLICY", "strict")],
            ..PodSpec::new(
                &shop,
                "strict",
                "reviews",
                App::Http {
                    name: "strict",
                    port: 9080,
                },
            )
        })
        .await?;
    let client = world
        .pod(PodSpec::new(&front, "client", "client", App::None))
        .await?;
    let reviews = service(&world, &shop, "reviews", 9080, &[&strict]).await?;

    // Through the mesh: served.
    eventually(
        &world,
        &client,
        reviews,
        "-",
        "the mesh call is served",
        |t| t.get("strict") == Some(&20),
    )
    .await?;
    // In clear from outside the mesh (the node has no sidecar): refused.
    let direct = SocketAddr::new(strict.ip.into(), 9080);
    let tally = load(&world.node, direct, 3, "-").await?;
    assert_eq!(
        tally,
        Tally::from([("failed".to_owned(), 3)]),
        "strict mode let plaintext in"
    );

    // ferry-control dies and comes back under load: no request fails.
    let running = start_load(&client.netns, reviews, 4000)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.kill_control()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.start_control().await?;
    let tally = finish_load(running).await?;
    assert_eq!(tally, Tally::from([("strict".to_owned(), 4000)]));

    // Certificates are renewed under load: no request fails, and both
    // sidecars hold a newer certificate afterwards.
    let before = (expiry(&client).await?, expiry(&strict).await?);
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut total = 0;
    while Instant::now() < deadline {
        let tally = load(&client.netns, reviews, 500, "-").await?;
        assert_eq!(tally, Tally::from([("strict".to_owned(), 500)]));
        total += 500;
    }
    let after = (expiry(&client).await?, expiry(&strict).await?);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "no renewal: {before:?} -> {after:?} after {total} calls"
    );
    Ok(())
}

/// The `notAfter` (Unix seconds) of a sidecar's certificate, from its
/// `/config`.
async fn expiry(pod: &MeshPod) -> Result<u64> {
    let out = pod
        .netns
        .command("curl")
        .args(["-s", "http://127.0.0.1:4191/config"])
        .output()?;
    let config: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("/config of {} is not JSON", pod.name))?;
    config["identity"]["notAfterUnix"]
        .as_u64()
        .with_context(|| {
            format!(
                "no identity.notAfterUnix in /config of {}: {config}",
                pod.name
            )
        })
}

// ---------------------------------------------------------------- benchmark

/// Not a test: the mesh benchmark of `bench/mesh/run.sh` (set
/// `FERRY_MESH_BENCH=<seconds>`). Measures latency at a fixed 2,000
/// requests per second (hey, 10 connections) on the direct path (a client
/// and a server outside the mesh) and through the mesh (client app →
/// outbound sidecar → mTLS → inbound sidecar → server app), alternating,
/// and the proxies' resident memory afterwards. Prints a Markdown table.
#[tokio::test(flavor = "multi_thread")]
async fn mesh_bench() -> Result<()> {
    let Ok(seconds) = std::env::var("FERRY_MESH_BENCH") else {
        return Ok(());
    };
    if skip() {
        return Ok(());
    }
    let rounds: usize = std::env::var("FERRY_MESH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut world = World::start(&[]).await?;
    let shop = world.namespace("shop").await?;
    let front = world.namespace("front").await?;
    for ns in [&shop, &front] {
        world.trust_anchors(ns).await?;
    }
    let spec = PodSpec::new;
    let server = world
        .pod(spec(
            &shop,
            "server",
            "server",
            App::Http {
                name: "server",
                port: 9080,
            },
        ))
        .await?;
    let client = world
        .pod(spec(&front, "client", "client", App::None))
        .await?;
    let (plain_client, _) = world.plain_pod("plain-client", App::None)?;
    let (plain_server, plain_ip) = world.plain_pod(
        "plain-server",
        App::Http {
            name: "plain",
            port: 9080,
        },
    )?;
    let service_addr = service(&world, &shop, "server", 9080, &[&server]).await?;
    eventually(&world, &client, service_addr, "-", "the mesh serves", |t| {
        t.get("server") == Some(&20)
    })
    .await?;
    // The floor any pair of proxies pays here: HAProxy relaying HTTP in
    // the same two places (client pod, server pod), plaintext.
    let relay = haproxy_relays(&world, &plain_client, &plain_server, plain_ip)?;
    let tally = load(&plain_client, relay, 5, "-").await?;
    anyhow::ensure!(tally.get("plain") == Some(&5), "the relays: {tally:?}");

    let mut direct = Vec::new();
    let mut mesh = Vec::new();
    let mut relays = Vec::new();
    for _ in 0..rounds {
        direct.push(hey(
            &plain_client,
            &format!("http://{plain_ip}:9080/"),
            &seconds,
        )?);
        mesh.push(hey(
            &client.netns,
            &format!("http://{service_addr}/"),
            &seconds,
        )?);
        relays.push(hey(&plain_client, &format!("http://{relay}/"), &seconds)?);
    }
    let median = |runs: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (d50, d99) = (median(&direct, |r| r.0), median(&direct, |r| r.1));
    let (m50, m99) = (median(&mesh, |r| r.0), median(&mesh, |r| r.1));
    let (r50, r99) = (median(&relays, |r| r.0), median(&relays, |r| r.1));
    println!("| path | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|");
    println!("| direct | {d50:.3} | {d99:.3} |");
    println!("| mesh (2 sidecars, mTLS) | {m50:.3} | {m99:.3} |");
    println!("| 2 HAProxy relays (HTTP, no TLS) | {r50:.3} | {r99:.3} |");
    println!(
        "| added by the mesh | {:.3} | {:.3} |",
        m50 - d50,
        m99 - d99
    );
    println!(
        "| added by the HAProxy relays | {:.3} | {:.3} |",
        r50 - d50,
        r99 - d99
    );
    for pod in [&client, &server] {
        println!(
            "RSS of the {} sidecar: {:.1} MiB",
            pod.name,
            proxy_rss_mib(&pod.netns)?
        );
    }
    Ok(())
}

/// HAProxy (one process, HTTP mode, keep-alive to the next hop) in the
/// client pod on `127.0.0.1:9082`, relaying to one in the server pod on
/// `:9081`, relaying to the app on `127.0.0.1:9080`: the sidecars' places
/// without interception or TLS. Returns the client-side address.
fn haproxy_relays(
    world: &World,
    client: &Pod,
    server: &Pod,
    server_ip: std::net::Ipv4Addr,
) -> Result<SocketAddr> {
    let relay = |pod: &Pod, name: &str, bind: &str, to: &str| -> Result<()> {
        let file = world.dir.path().join(format!("haproxy-{name}.cfg"));
        std::fs::write(
            &file,
            format!(
                "global\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 2s\n  \
                 timeout client 30s\n  timeout server 30s\n  http-reuse always\n\
                 frontend in\n  bind {bind}\n  default_backend out\n\
                 backend out\n  server next {to}\n"
            ),
        )?;
        let mut command = pod.command("haproxy");
        command
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null());
        pod.spawn(command)
            .context("failed to start haproxy (bench/mesh/run.sh installs it)")
    };
    relay(server, "server", "0.0.0.0:9081", "127.0.0.1:9080")?;
    relay(
        client,
        "client",
        "127.0.0.1:9082",
        &format!("{server_ip}:9081"),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(SocketAddr::from(([127, 0, 0, 1], 9082)))
}

/// p50 and p99 in milliseconds of `hey` at 2,000 requests per second
/// (10 connections × 200/s) for `seconds`, run inside `pod`.
fn hey(pod: &Pod, url: &str, seconds: &str) -> Result<(f64, f64)> {
    let out = pod
        .command("hey")
        .args(["-z", &format!("{seconds}s"), "-c", "10", "-q", "200", url])
        .output()
        .context("failed to run hey (bench/mesh/run.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let percentile = |p: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{p}% in")))
            .with_context(|| format!("no {p}% line in hey's output:\n{text}"))?;
        let secs: f64 = line
            .split_whitespace()
            .nth(2)
            .context("hey's percentile line")?
            .parse()?;
        Ok(secs * 1000.0)
    };
    if !text.contains("[200]") || text.contains("Error distribution") {
        bail!("hey saw failures:\n{text}");
    }
    Ok((percentile("50")?, percentile("99")?))
}

/// Resident memory of the `ferry-proxy` running in `pod`.
fn proxy_rss_mib(pod: &Pod) -> Result<f64> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", pod.name()])
        .output()?;
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    for pid in pids.split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "ferry-proxy" {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let kib: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .context("no VmRSS")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            return Ok(kib / 1024.0);
        }
    }
    bail!("no ferry-proxy process in {}", pod.name())
}
