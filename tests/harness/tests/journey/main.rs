//! The user's journey, end to end on a real one-node Kubernetes (issue #12,
//! part 4): everything a user does, through the Helm chart, kubectl and the
//! kubectl plugin, with Ferry's own images running as pods; nothing is set
//! by hand that a controller should do.
//!
//! 1. `helm install` → ferry-control Ready, webhook registered, GatewayClass
//!    `ferry` Accepted.
//! 2. `kubectl label ns shop ferry.dev/inject=enabled`, then Deployments →
//!    the apiserver calls the webhook through its Service; every pod runs
//!    the proxy behind the init container's iptables.
//! 3. A Service-parent HTTPRoute 90/10: 2,000 calls from inside a pod land
//!    90±3 / 10±3, a header match goes to v2, the server sees the client's
//!    SPIFFE identity.
//! 4. A Gateway → ferry-control deploys its proxies; requests through its
//!    Service (ClusterIP and NodePort) reach a strict meshed backend; a
//!    capture on the pods' bridge sees no meshed request in clear.
//! 5. `kubectl gateway status/describe/check` show what ferry-control wrote.
//! 6. Under steady load: a ferry-control pod deleted, a rollout restart of
//!    reviews-v1 and a `helm upgrade` → no failed call.
//! 7. `helm uninstall` → the control plane is gone, meshed pods keep
//!    serving with their last config, the CRDs stay.
//!
//! One test, because each step stands on the one before and a node takes
//! ~20 s to start. The images come from `images/build.sh` (tests/run.sh
//! builds them before the tests).

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ferry_harness::node::Node;
use support::{Tools, condition, landed, wait_for, workspace};

const SHOP: &str = "shop";
const SYSTEM: &str = "ferry-system";
/// The pods' bridge on the node (tests/node/env.sh).
const BRIDGE: &str = "ferry-cni0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_journey() -> Result<()> {
    let node = Node::start().await?;
    let tools = Tools {
        kubeconfig: node.kubeconfig().to_path_buf(),
        kubectl: node.kubectl_path().to_path_buf(),
        plugin: ferry_harness::workspace_binary("kubectl-gateway")?,
        started: Instant::now(),
    };
    let result = journey(&tools).await;
    if result.is_err() {
        eprintln!("{}", diagnostics(&tools).await);
    }
    result
}

async fn journey(tools: &Tools) -> Result<()> {
    let installed = install(tools).await?;
    shop(tools).await?;
    let first_routed = east_west(tools).await?;
    eprintln!(
        "helm install to the first routed request: {:.1?}",
        first_routed - installed
    );
    north_south(tools).await?;
    status(tools).await?;
    eprintln!("ferry-proxy RSS in the pods (KiB): {:?}", proxy_rss());
    under_load(tools).await?;
    uninstall(tools).await
}

/// 1. `helm install`: control plane Ready, webhook registered with a
///    caBundle, GatewayClass `ferry` Accepted.
async fn install(tools: &Tools) -> Result<Instant> {
    // The prerequisite: the Gateway API CRDs, as a user installs them.
    // (`--validate=false` only because kubectl checks them against the
    // 1.20 server's schema, which predates `x-kubernetes-validations`; the
    // server drops that field. The chart's `installCRDs` path is tested in
    // tests/harness/tests/chart.rs.)
    tools.step("kubectl apply the Gateway API CRDs");
    for (file, _) in ferry_harness::GATEWAY_API_STANDARD {
        if file.contains("_vap_") {
            continue; // a ValidatingAdmissionPolicy: Kubernetes 1.30+
        }
        let path = workspace()
            .join("charts/ferry/files/gateway-api/standard")
            .join(file);
        tools
            .kubectl(&["apply", "--validate=false", "-f", &path.to_string_lossy()])
            .await?;
    }
    tools.step("helm install ferry charts/ferry");
    let installed = Instant::now();
    let chart = workspace().join("charts/ferry");
    tools
        .helm(&[
            "install",
            "ferry",
            &chart.to_string_lossy(),
            "--namespace",
            SYSTEM,
            "--create-namespace",
        ])
        .await?;
    tools
        .rollout(SYSTEM, &["ferry-control"], Duration::from_secs(120))
        .await?;
    wait_for(
        "the webhook's caBundle",
        Duration::from_secs(60),
        || async {
            let config = tools
                .get_json(&["mutatingwebhookconfiguration", "ferry-injector"])
                .await?;
            Ok(config["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .filter(|b| !b.is_empty())
                .map(|_| ()))
        },
    )
    .await?;
    wait_for(
        "GatewayClass ferry Accepted",
        Duration::from_secs(60),
        || async {
            let class = tools.get_json(&["gatewayclass", "ferry"]).await?;
            Ok((condition(&class["status"]["conditions"], "Accepted")
                == Some(("True", "Accepted")))
            .then_some(()))
        },
    )
    .await?;
    Ok(installed)
}

/// 2. The namespace labelled, the shop deployed: every pod injected by the
///    apiserver's call to the webhook, Running and Ready.
async fn shop(tools: &Tools) -> Result<()> {
    tools.step("kubectl label namespace shop ferry.dev/inject=enabled");
    tools.kubectl(&["create", "namespace", SHOP]).await?;
    tools
        .kubectl(&["label", "namespace", SHOP, "ferry.dev/inject=enabled"])
        .await?;
    tools
        .apply(&workspace().join("tests/harness/tests/journey/shop.yaml"))
        .await?;
    tools
        .rollout(
            SHOP,
            &["client", "reviews-v1", "reviews-v2"],
            Duration::from_secs(120),
        )
        .await?;
    let pods = tools.get_json(&["pods", "-n", SHOP]).await?;
    let pods = pods["items"].as_array().context("no pods")?;
    ensure!(pods.len() == 4, "want 4 pods, got {}", pods.len());
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        ensure!(
            pod["metadata"]["annotations"]["ferry.dev/injected"].is_string(),
            "pod {name} was not injected: {}",
            pod["metadata"]
        );
        let containers: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        ensure!(
            containers.contains(&"ferry-proxy"),
            "pod {name}: {containers:?}"
        );
        // The init container installed the iptables rules and exited 0.
        let init = &pod["status"]["initContainerStatuses"][0];
        ensure!(
            init["state"]["terminated"]["exitCode"] == 0,
            "pod {name}: init container {init}"
        );
    }
    Ok(())
}

/// 3. East-west: the Service-parent route splits 2,000 calls made inside a
///    meshed pod 90/10, a header match picks v2, the server proxy hands the
///    app the client's SPIFFE identity. Returns when the first request was
///    routed.
async fn east_west(tools: &Tools) -> Result<Instant> {
    tools.step("kubectl apply -f routes.yaml");
    tools
        .apply(&workspace().join("tests/harness/tests/journey/routes.yaml"))
        .await?;
    let url = "http://reviews:9080/";
    // The route is applied once a call goes to v2 via the header match:
    // without the route the Service would pick any of the three pods.
    let first = wait_for("the route to apply", Duration::from_secs(60), || async {
        let canary = tools
            .call_from(
                SHOP,
                "client",
                &[url, "--count", "10", "--header", "x-canary:yes"],
            )
            .await?;
        Ok((landed(&canary, "v2") == 10).then(Instant::now))
    })
    .await?;

    tools.step("2,000 calls from the client pod");
    let split = tools
        .call_from(SHOP, "client", &[url, "--count", "2000"])
        .await?;
    ensure!(split.ok == 2000 && split.failed == 0, "{split:?}");
    let (v1, v2) = (landed(&split, "v1"), landed(&split, "v2"));
    ensure!(
        (1740..=1860).contains(&v1),
        "v1 got {v1} of 2000, want 90±3 %: {split:?}"
    );
    ensure!(
        (140..=260).contains(&v2),
        "v2 got {v2} of 2000, want 10±3 %: {split:?}"
    );

    let seen = tools.call_from(SHOP, "client", &[url]).await?;
    let body = seen.first_body.unwrap_or_default().to_ascii_lowercase();
    ensure!(
        body.contains("ferry-client-identity: spiffe://cluster.local/ns/shop/sa/client"),
        "the server did not see the client's identity:\n{body}"
    );
    Ok(first)
}

/// 4. North-south: ferry-control deploys the Gateway's proxies; a request
///    through its Service (ClusterIP, then NodePort) reaches strict reviews
///    pods over mTLS, as the gateway's own identity.
async fn north_south(tools: &Tools) -> Result<()> {
    tools.step("Gateway public");
    tools
        .rollout(SHOP, &["public-ferry"], Duration::from_secs(120))
        .await?;
    wait_for(
        "Gateway public Programmed",
        Duration::from_secs(60),
        || async {
            let gateway = tools.get_json(&["gateway", "-n", SHOP, "public"]).await?;
            Ok(
                (condition(&gateway["status"]["conditions"], "Programmed").map(|c| c.0)
                    == Some("True"))
                .then_some(()),
            )
        },
    )
    .await?;
    let service = tools
        .get_json(&["service", "-n", SHOP, "public-ferry"])
        .await?;
    let cluster_ip = service["spec"]["clusterIP"]
        .as_str()
        .context("no clusterIP")?;
    let node_port = service["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .context("no nodePort")?;
    let node_ip = node_ip(tools).await?;
    for url in [
        format!("http://{cluster_ip}:8080/reviews"),
        format!("http://{node_ip}:{node_port}/reviews"),
    ] {
        let body = wait_for(
            &format!("{url} to answer"),
            Duration::from_secs(60),
            || async { Ok(curl(&url).await.ok()) },
        )
        .await?;
        let lower = body.to_ascii_lowercase();
        ensure!(lower.contains("hostname: reviews-v1-"), "{url}:\n{body}");
        ensure!(
            lower.contains("ferry-client-identity: spiffe://cluster.local/ns/shop/sa/public-ferry"),
            "{url} did not reach reviews over mTLS as the gateway:\n{body}"
        );
    }
    only_tls_between_pods(tools, &format!("{cluster_ip}:8080")).await
}

/// Only TLS crosses the pods' bridge between meshed pods: with tcpdump on
/// the bridge, a marker in a plain request from the host to the gateway is
/// seen (the capture works), and a marker in calls from the client pod to
/// `reviews` (sidecar to sidecar, and gateway to reviews) is not.
async fn only_tls_between_pods(tools: &Tools, gateway: &str) -> Result<()> {
    tools.step("tcpdump on the pods' bridge");
    let file = tempfile_path("journey-bridge.pcap");
    let mut tcpdump = tokio::process::Command::new("tcpdump")
        .args(["-i", BRIDGE, "-U", "--immediate-mode", "-s", "0", "-w"])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("failed to start tcpdump")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    curl(&format!("http://{gateway}/reviews/marker-plain-from-host")).await?;
    let mesh = tools
        .call_from(
            SHOP,
            "client",
            &[
                "http://reviews:9080/marker-inside-the-mesh",
                "--count",
                "50",
            ],
        )
        .await?;
    ensure!(mesh.ok == 50, "{mesh:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = tokio::process::Command::new("kill")
        .args(["-INT", &tcpdump.id().unwrap_or_default().to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), tcpdump.wait()).await;
    let bytes =
        std::fs::read(&file).with_context(|| format!("no capture at {}", file.display()))?;
    let _ = std::fs::remove_file(&file);
    let seen = |marker: &str| bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
    ensure!(
        seen("marker-plain-from-host"),
        "the capture ({} bytes) missed the plain request: it proves nothing",
        bytes.len()
    );
    ensure!(
        !seen("marker-inside-the-mesh"),
        "a meshed call crossed the bridge in clear"
    );
    Ok(())
}

/// A path for a scratch file of this test process.
fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", std::process::id()))
}

/// 5. The plugin shows the status ferry-control wrote on this cluster.
async fn status(tools: &Tools) -> Result<()> {
    tools.step("kubectl gateway status -A");
    let table = tools.plugin(&["status", "-A"]).await?;
    // One row per (route, parent): status written by ferry-control on this
    // cluster, with each backend's share.
    let row = |route: &str, parent: &str| {
        table
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .take(4)
                    .eq(["shop", route, "HTTPRoute", parent])
            })
            .with_context(|| format!("no row for {route} under {parent}:\n{table}"))
    };
    let reviews = row("reviews", "svc/shop/reviews:9080")?;
    ensure!(
        reviews.contains("True       True")
            && reviews.contains("reviews-v1:9080=90%,reviews-v2:9080=10%"),
        "{table}"
    );
    let storefront = row("storefront", "gw/shop/public")?;
    ensure!(storefront.contains("True       True"), "{table}");
    let described = tools
        .plugin(&["describe", "httproute/reviews", "-n", SHOP])
        .await?;
    ensure!(described.contains("Accepted"), "{described}");
    tools
        .plugin(&["check", "-A"])
        .await
        .context("kubectl gateway check -A")?;
    Ok(())
}

/// 6. Steady calls from the client pod while a ferry-control pod is
///    deleted, reviews-v1 is restarted and the chart upgraded: no call
///    fails.
async fn under_load(tools: &Tools) -> Result<()> {
    tools.step("under load: delete a ferry-control pod, restart reviews-v1, helm upgrade");
    let load = {
        let kubeconfig = tools.kubeconfig.clone();
        let kubectl = tools.kubectl.clone();
        tokio::spawn(async move {
            let tools = Tools {
                kubeconfig,
                kubectl,
                plugin: Default::default(),
                started: Instant::now(),
            };
            tools
                .call_from(
                    SHOP,
                    "client",
                    &["http://reviews:9080/", "--duration", "90s", "--rate", "20"],
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pods = tools
        .kubectl(&[
            "get",
            "pods",
            "-n",
            SYSTEM,
            "-l",
            "app.kubernetes.io/component=control",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .await?;
    tools
        .kubectl(&["delete", "pod", "-n", SYSTEM, pods.trim(), "--wait=false"])
        .await?;
    tools
        .kubectl(&["rollout", "restart", "-n", SHOP, "deployment/reviews-v1"])
        .await?;
    tools
        .rollout(SHOP, &["reviews-v1"], Duration::from_secs(120))
        .await?;
    let chart = workspace().join("charts/ferry");
    tools
        .helm(&[
            "upgrade",
            "ferry",
            &chart.to_string_lossy(),
            "--namespace",
            SYSTEM,
            "--set",
            "proxy.logLevel=debug",
        ])
        .await?;
    tools
        .rollout(SYSTEM, &["ferry-control"], Duration::from_secs(120))
        .await?;
    let summary = load.await??;
    ensure!(
        summary.failed == 0 && summary.total > 1000,
        "{} of {} calls failed under load: {}",
        summary.failed,
        summary.total,
        summary.errors.join("; ")
    );
    Ok(())
}

/// 7. `helm uninstall`: ferry-control gone, the meshed pods keep serving
///    the route they had, the CRDs stay.
async fn uninstall(tools: &Tools) -> Result<()> {
    tools.step("helm uninstall ferry");
    tools
        .helm(&["uninstall", "ferry", "--namespace", SYSTEM])
        .await?;
    wait_for(
        "ferry-control pods gone",
        Duration::from_secs(90),
        || async {
            let pods = tools.get_json(&["pods", "-n", SYSTEM]).await?;
            Ok(pods["items"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(()))
        },
    )
    .await?;
    let config = tools
        .kubectl(&[
            "get",
            "mutatingwebhookconfiguration",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .await?;
    ensure!(
        config.trim().is_empty(),
        "webhook registration left behind: {config}"
    );
    let canary = tools
        .call_from(
            SHOP,
            "client",
            &[
                "http://reviews:9080/",
                "--count",
                "20",
                "--header",
                "x-canary:yes",
            ],
        )
        .await?;
    ensure!(
        landed(&canary, "v2") == 20,
        "the last config was lost: {canary:?}"
    );
    tools
        .kubectl(&["get", "crd", "httproutes.gateway.networking.k8s.io"])
        .await?;
    Ok(())
}

/// VmRSS of every ferry-proxy process on the machine: the node's pods'.
fn proxy_rss() -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let dir = e.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "ferry-proxy").then_some(())?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

/// The node's InternalIP.
async fn node_ip(tools: &Tools) -> Result<String> {
    let nodes = tools.get_json(&["nodes"]).await?;
    nodes["items"][0]["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_owned)
        .context("the node has no InternalIP")
}

/// `curl -sS --max-time 5 URL` from the host.
async fn curl(url: &str) -> Result<String> {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", url])
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What a failed journey prints: pods, events, the control plane's logs.
async fn diagnostics(tools: &Tools) -> String {
    let mut out = String::from("--- diagnostics ---\n");
    for args in [
        &["get", "pods", "-A", "-o", "wide"][..],
        &["get", "events", "-A", "--sort-by=.lastTimestamp"],
        &[
            "logs",
            "-n",
            SYSTEM,
            "-l",
            "app.kubernetes.io/component=control",
            "--tail=40",
        ],
        &[
            "logs",
            "-n",
            SHOP,
            "-l",
            "app=client",
            "-c",
            "ferry-proxy",
            "--tail=40",
        ],
    ] {
        out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
        match tools.kubectl(args).await {
            Ok(text) => out.push_str(&text),
            Err(error) => out.push_str(&format!("{error:#}\n")),
        }
    }
    out
}
