//! Readiness: every watch listed once, even for resources the server does
//! not serve.

use std::time::Duration;

use anyhow::Result;
use ferry_harness::Cluster;

use crate::support::{http_get, start_control};

#[tokio::test]
async fn ready_without_gateway_api_crds() -> Result<()> {
    let cluster = Cluster::builder().without_gateway_api().start().await?;
    let mut control = start_control(&cluster, None).await?;
    let synced =
        tokio::time::timeout(Duration::from_secs(30), control.synced.wait_for(|s| *s)).await;
    if synced.is_err() {
        let metrics = http_get(control.admin_addr, "/metrics").await?;
        anyhow::bail!("not synced:\n{metrics}");
    }
    let ready = http_get(control.admin_addr, "/ready").await?;
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let metrics = http_get(control.admin_addr, "/metrics").await?;
    assert!(
        metrics.contains(r#"ferry_control_watch_errors_total{resource="HTTPRoute"}"#),
        "{metrics}"
    );
    Ok(())
}
