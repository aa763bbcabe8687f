//! `ferry-control --webhook` hosts the admission webhook: the apiserver
//! calls it for pods of a labelled namespace, and the injected proxy is
//! given the discovery address and image that ferry-control's shared flags
//! name.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_harness::Cluster;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::net::TcpListener;

async fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_hosts_the_injection_webhook() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: a remote apiserver cannot reach a webhook on this host's loopback");
        return Ok(());
    }
    let port = free_port().await?;
    let mut control = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-control"))
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("FERRY_LOG", "warn")
        .args(["--webhook", "--no-deploy", "--no-leader-election"])
        .arg("--discovery-addr")
        .arg(format!("127.0.0.1:{}", free_port().await?))
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{}", free_port().await?))
        .arg("--webhook-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--webhook-url")
        .arg(format!("https://127.0.0.1:{port}/inject"))
        .args(["--webhook-cert-ip", "127.0.0.1"])
        .args(["--webhook-namespace", cluster.namespace()])
        .args(["--proxy-image", "ferry/proxy:control-test"])
        .args(["--proxy-discovery", "ferry-control.test.svc:8090"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting ferry-control")?;

    let meshed = cluster.new_namespace("meshed").await?;
    let labels = json!({"metadata": {"labels": {"ferry.dev/inject": "enabled"}}});
    Api::<Namespace>::all(cluster.client())
        .patch(&meshed, &PatchParams::default(), &Patch::Merge(labels))
        .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &meshed);
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0u32.. {
        if let Some(status) = control.try_wait()? {
            bail!("ferry-control exited with {status}");
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("app-{attempt}")},
            "spec": {"containers": [{"name": "app", "image": "app.invalid/app:1"}]}
        }))?;
        let spec = pods
            .create(&PostParams::default(), &pod)
            .await?
            .spec
            .unwrap_or_default();
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        if let Some(proxy) = all.into_iter().find(|c| {
            c.image.as_deref() == Some("ferry/proxy:control-test") && c.name == "ferry-proxy"
        }) {
            let discovery = proxy
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "FERRY_DISCOVERY_ADDR")
                .and_then(|e| e.value.clone());
            assert_eq!(discovery.as_deref(), Some("ferry-control.test.svc:8090"));
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "never injected\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    unreachable!("the loop returns or panics")
}
