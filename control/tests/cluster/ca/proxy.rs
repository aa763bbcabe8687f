//! A proxy's identity client (ferry-proxy) against ferry-control's CA on
//! loopback: renewal before expiry, credentials kept through refusals, and
//! the TLS port.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use ferry_api::identity::{CertifyError, certify};
use ferry_control::ca::material::GeneratedRoot;
use ferry_control::ca::tls::TlsSettings;
use ferry_core::identity::Identity;
use ferry_harness::Cluster;
use ferry_proxy::identity::{Credentials, CredentialsRx, IdentitySettings, summary};

use super::{certify_ready, csr, start_ca, start_ca_with, token};
use crate::support::http_get;

/// The next credentials `rx` publishes, within `limit`.
async fn next_credentials(rx: &mut CredentialsRx, limit: Duration) -> Result<Arc<Credentials>> {
    tokio::time::timeout(limit, rx.changed())
        .await
        .context("timed out waiting for credentials")??;
    rx.borrow_and_update()
        .clone()
        .context("credentials were withdrawn")
}

#[tokio::test]
async fn a_proxy_renews_before_expiry_and_keeps_its_credentials_on_failure() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let lifetime = Duration::from_secs(8);
    let control = start_ca(&cluster, ns, lifetime).await?;
    let dir = tempfile::tempdir()?;
    let token_path = dir.path().join("token");
    let good = token(&cluster, ns, "default", "ferry").await?;
    std::fs::write(&token_path, &good)?;
    let vars = [
        ("FERRY_TRUST_DOMAIN", "cluster.local".to_string()),
        ("FERRY_POD_NAMESPACE", ns.to_string()),
        ("FERRY_SERVICE_ACCOUNT", "default".to_string()),
        ("FERRY_DISCOVERY_ADDR", control.discovery_addr.to_string()),
        ("FERRY_IDENTITY_TOKEN", token_path.display().to_string()),
        // Not mounted in this test: the response's anchors are used.
        (
            "FERRY_TRUST_ANCHORS",
            dir.path().join("ca.pem").display().to_string(),
        ),
    ];
    let settings = IdentitySettings::from_env(vars.map(|(k, v)| (k.to_string(), v)))?;
    let mut rx = ferry_proxy::identity::spawn(settings);

    let first = next_credentials(&mut rx, Duration::from_secs(30)).await?;
    assert_eq!(
        first.identity.to_string(),
        format!("spiffe://cluster.local/ns/{ns}/sa/default")
    );
    let summary = summary(Some(&first), SystemTime::now());
    assert!(
        summary.expires_in_secs.is_some_and(|s| s <= 8),
        "{summary:?}"
    );
    // Renewed at ~70% of the lifetime: after 4 s, before the old one expires.
    let renewed = next_credentials(&mut rx, lifetime).await?;
    let arrived = SystemTime::now();
    assert!(arrived < first.not_after, "renewed only after expiry");
    assert!(
        arrived + Duration::from_secs(4) > first.not_after,
        "renewed too early"
    );
    assert!(renewed.not_after > first.not_after);
    assert_ne!(renewed.chain[0], first.chain[0]);
    assert_ne!(renewed.key, first.key, "a new key for each certificate");

    // The CA refuses (the token is garbage): the last credentials stay,
    // even past their expiry, until new ones arrive.
    std::fs::write(&token_path, "garbage")?;
    let until = renewed
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until + Duration::from_secs(1)).await;
    let held = rx
        .borrow_and_update()
        .clone()
        .context("credentials withdrawn")?;
    assert!(
        Arc::ptr_eq(&held, &renewed),
        "credentials replaced by a refused request"
    );
    // A rotated (valid) token: the retries succeed.
    std::fs::write(&token_path, &good)?;
    let third = next_credentials(&mut rx, Duration::from_secs(10)).await?;
    assert!(third.not_after > renewed.not_after);
    let metrics = http_get(control.admin_addr, "/metrics").await?;
    assert!(
        metrics.contains(r#"ferry_control_certificates_total{result="unauthenticated",reason="token_not_authenticated"}"#),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn the_tls_port_serves_clients_that_trust_the_anchors() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let tls = TlsSettings {
        addr: "127.0.0.1:0".parse()?,
        identity: Identity::new("cluster.local", ns, "ferry-control")?,
        dns_names: vec!["localhost".to_string()],
        lifetime: Duration::from_secs(3600),
        require_client_identity: false,
    };
    let control = start_ca_with(&cluster, ns, Duration::from_secs(3600), Some(tls)).await?;
    let https = format!(
        "https://localhost:{}",
        control.tls_addr.context("no TLS address")?.port()
    );
    let me = format!("spiffe://cluster.local/ns/{ns}/sa/default");
    let good = token(&cluster, ns, "default", "ferry").await?;
    let anchors = certify_ready(control.discovery_addr, &good, &csr(&me)?)
        .await?
        .trust_anchors_pem;

    // A proxy with the mounted anchors gets its certificate over TLS.
    let dir = tempfile::tempdir()?;
    let token_path = dir.path().join("token");
    let anchors_path = dir.path().join("ca.pem");
    std::fs::write(&token_path, &good)?;
    std::fs::write(&anchors_path, &anchors)?;
    let vars = [
        ("FERRY_TRUST_DOMAIN", "cluster.local".to_string()),
        ("FERRY_POD_NAMESPACE", ns.to_string()),
        ("FERRY_SERVICE_ACCOUNT", "default".to_string()),
        ("FERRY_DISCOVERY_ADDR", control.discovery_addr.to_string()),
        ("FERRY_IDENTITY_ADDR", https.clone()),
        ("FERRY_IDENTITY_TOKEN", token_path.display().to_string()),
        ("FERRY_TRUST_ANCHORS", anchors_path.display().to_string()),
    ];
    let settings = IdentitySettings::from_env(vars.map(|(k, v)| (k.to_string(), v)))?;
    let mut rx = ferry_proxy::identity::spawn(settings);
    let credentials = next_credentials(&mut rx, Duration::from_secs(30)).await?;
    assert_eq!(credentials.identity.to_string(), me);

    // A client trusting other anchors never sends its token: the
    // handshake fails before any request.
    let stranger = GeneratedRoot::generate("cluster.local", SystemTime::now())?;
    let refused = certify(&https, Some(&stranger.cert_pem), good.clone(), csr(&me)?).await;
    assert!(
        matches!(refused, Err(CertifyError::Connect(_))),
        "{refused:?}"
    );
    let refused = certify(&https, None, good.clone(), csr(&me)?).await;
    assert!(
        matches!(refused, Err(CertifyError::NoAnchors { .. })),
        "{refused:?}"
    );
    certify(&https, Some(&anchors), good, csr(&me)?).await?;
    Ok(())
}
