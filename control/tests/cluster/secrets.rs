//! Only the Secrets that Ferry Gateways reference reach the index: one
//! referenced later is picked up, one no longer referenced is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use ferry_harness::Cluster;

use crate::support::{apply, condition, http_get, start_control, wait_for};

const CLASS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
"#;

fn secret(name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"\n  tls.key: \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\"\n"
    )
}

/// The Gateway `web` with one HTTPS listener per referenced Secret.
fn gateway(secrets: &[&str]) -> String {
    let listeners: String = secrets
        .iter()
        .map(|s| {
            format!(
                "    - {{name: {s}, protocol: HTTPS, port: 443, hostname: {s}.example.com, tls: {{certificateRefs: [{{name: {s}}}]}}}}\n"
            )
        })
        .collect();
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web}}\nspec:\n  gatewayClassName: ferry\n  listeners:\n{listeners}"
    )
}

/// Waits until the index holds `count` Secrets, per the metrics.
async fn wait_secrets(admin: SocketAddr, count: usize) -> Result<()> {
    let line = format!("ferry_control_index_objects{{resource=\"Secret\"}} {count}\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = http_get(admin, "/metrics").await?;
        if metrics.contains(&line) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {line}in:\n{metrics}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listener_resolved(gateway: &serde_json::Value, name: &str) -> bool {
    gateway["status"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["name"] == name)
        .and_then(|l| condition(l, "ResolvedRefs"))
        == Some(("True".to_string(), "ResolvedRefs".to_string()))
}

#[tokio::test]
async fn only_referenced_secrets_are_indexed() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let objects = [
        CLASS,
        &secret("used"),
        &secret("unused"),
        &gateway(&["used"]),
    ]
    .concat();
    apply(&client, ns, &objects).await?;
    let control = start_control(&cluster, None).await?;

    wait_for(
        &client,
        "Gateway",
        ns,
        "web",
        "listener used resolved",
        |gw| listener_resolved(gw, "used"),
    )
    .await?;
    // `unused` sits in the same namespace, is a TLS Secret, and is never read.
    wait_secrets(control.admin_addr, 1).await?;

    // Referenced later: picked up.
    apply(&client, ns, &gateway(&["used", "unused"])).await?;
    wait_for(
        &client,
        "Gateway",
        ns,
        "web",
        "listener unused resolved",
        |gw| listener_resolved(gw, "unused"),
    )
    .await?;
    wait_secrets(control.admin_addr, 2).await?;

    // No longer referenced: dropped.
    apply(&client, ns, &gateway(&["used"])).await?;
    wait_secrets(control.admin_addr, 1).await?;
    Ok(())
}
