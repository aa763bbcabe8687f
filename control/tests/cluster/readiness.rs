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

/// A Lease namespace that does not exist (ferry-control started outside
/// its install) is named in `/ready`, which stays 503, instead of a bare
/// "failed to write Lease" every round.
#[tokio::test]
async fn a_missing_lease_namespace_is_not_ready_and_says_why() -> Result<()> {
    let cluster = Cluster::start().await?;
    let lease = ferry_control::leader::LeaseConfig {
        namespace: "ferry-nowhere".to_string(),
        name: "ferry-control".to_string(),
        identity: "only".to_string(),
        lease_duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(300),
    };
    let mut control = start_control(&cluster, Some(lease)).await?;
    tokio::time::timeout(Duration::from_secs(30), control.synced.wait_for(|s| *s)).await??;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = http_get(control.admin_addr, "/ready").await?;
        if ready.contains("does not exist") || tokio::time::Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(
        ready.contains("failed to write Lease ferry-nowhere/ferry-control: namespace ferry-nowhere does not exist"),
        "{ready}"
    );
    assert!(!*control.leader.borrow());
    Ok(())
}
