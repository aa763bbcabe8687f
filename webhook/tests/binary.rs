//! The standalone `ferry-webhook` binary against the harness's apiserver:
//! flags and environment wired, pods injected, `/metrics` served, and the
//! serving certificate kept in (and reused from) a Secret.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_harness::Cluster;
use ferry_webhook::ServingCert;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

async fn get_metrics(port: u16) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_injects_and_keeps_its_certificate_in_a_secret() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: a remote apiserver cannot reach a webhook on this host's loopback");
        return Ok(());
    }
    let (port, metrics_port) = (free_port().await?, free_port().await?);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-webhook"))
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("FERRY_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "FERRY_WEBHOOK_URL",
            format!("https://127.0.0.1:{port}/inject"),
        )
        .env("FERRY_WEBHOOK_NAMESPACE", cluster.namespace())
        .env("FERRY_WEBHOOK_CERT_SECRET", "ferry-webhook-cert")
        .env("FERRY_WEBHOOK_CERT_IPS", "127.0.0.1")
        .env("FERRY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("FERRY_PROXY_IMAGE", "ferry/proxy:binary-test")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting ferry-webhook")?;

    let meshed = cluster.new_namespace("meshed").await?;
    let labels = json!({"metadata": {"labels": {"ferry.dev/inject": "enabled"}}});
    Api::<Namespace>::all(cluster.client())
        .patch(&meshed, &PatchParams::default(), &Patch::Merge(labels))
        .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &meshed);
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0u32.. {
        if let Some(status) = child.try_wait()? {
            bail!("ferry-webhook exited with {status}");
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("app-{attempt}")},
            "spec": {"containers": [{"name": "app", "image": "app.invalid/app:1"}]}
        }))?;
        let stored = pods.create(&PostParams::default(), &pod).await?;
        let spec = stored.spec.unwrap_or_default();
        if spec
            .containers
            .iter()
            .any(|c| c.image.as_deref() == Some("ferry/proxy:binary-test"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never injected\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let metrics = get_metrics(metrics_port).await?;
    assert!(
        metrics.contains("ferry_webhook_admissions_total{outcome=\"injected\""),
        "{metrics}"
    );

    // The certificate is in the Secret, and a second start reuses it.
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), cluster.namespace());
    let secret = secrets.get("ferry-webhook-cert").await?;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let (dns, ips) = (vec!["x".to_owned()], vec!["127.0.0.1".parse()?]);
    let again = ServingCert::from_secret_or_generate(
        cluster.client(),
        cluster.namespace(),
        "ferry-webhook-cert",
        &dns,
        &ips,
    )
    .await?;
    let stored_ca = secret
        .data
        .unwrap_or_default()
        .remove("ca.crt")
        .context("ca.crt")?;
    assert_eq!(again.ca_pem.as_bytes(), stored_ca.0.as_slice());
    // ... and the registration trusts exactly that CA.
    let configs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let hooks = configs
        .get("ferry-injector")
        .await?
        .webhooks
        .unwrap_or_default();
    let bundle = hooks
        .first()
        .and_then(|h| h.client_config.ca_bundle.clone())
        .context("caBundle")?;
    assert_eq!(bundle.0, stored_ca.0);

    // SIGTERM, as the kubelet sends it, ends the process cleanly.
    let pid = child.id().context("child pid")?;
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success(), "ferry-webhook exited with {status}");
    Ok(())
}
