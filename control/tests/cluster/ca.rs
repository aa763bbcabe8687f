//! The identity CA against the real apiserver: TokenReview of projected
//! ServiceAccount tokens, CSR checks, the anchors Secret and ConfigMaps; in
//! [`proxy`], a proxy's identity client against the CA served on loopback.

mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use ferry_api::identity::{CertifyError, certify};
use ferry_api::identity_pb::CertifyResponse;
use ferry_control::ca::CaSettings;
use ferry_control::ca::material::GeneratedRoot;
use ferry_control::ca::tls::TlsSettings;
use ferry_control::run::{Running, Settings, Source, start};
use ferry_harness::Cluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::support::http_get;

const SECRET: &str = "ferry-identity";

/// ferry-control with the CA, its Secret in `ca_ns`.
pub(super) async fn start_ca(
    cluster: &Cluster,
    ca_ns: &str,
    lifetime: Duration,
) -> Result<Running> {
    start_ca_with(cluster, ca_ns, lifetime, None).await
}

/// ferry-control with the CA and, with `tls`, its TLS port.
pub(super) async fn start_ca_with(
    cluster: &Cluster,
    ca_ns: &str,
    lifetime: Duration,
    tls: Option<TlsSettings>,
) -> Result<Running> {
    let settings = Settings {
        discovery_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        lease: None,
        status_timeout: Duration::from_secs(10),
        deploy: None,
        trust_domain: "cluster.local".to_string(),
        identity: Some(CaSettings {
            namespace: ca_ns.to_string(),
            secret: SECRET.to_string(),
            lifetime,
            refresh: Duration::from_millis(500),
            tls,
        }),
    };
    Ok(start(
        Source::Cluster(cluster.client()),
        settings,
        Registry::default(),
    )
    .await?)
}

/// A token of ServiceAccount `ns/sa` (created if missing) for `audience`.
pub(super) async fn token(cluster: &Cluster, ns: &str, sa: &str, audience: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client(), ns);
    if accounts.get_opt(sa).await?.is_none() {
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": sa}
        }))?;
        accounts.create(&PostParams::default(), &account).await?;
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(sa, &PostParams::default(), &request)
        .await?;
    Ok(issued.status.context("TokenRequest without status")?.token)
}

pub(super) fn csr(uri: &str) -> Result<String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    Ok(params.serialize_request(&key)?.pem()?)
}

fn ders(pem: &str) -> Result<Vec<Vec<u8>>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .map(|block| Ok(block?.contents))
        .collect()
}

/// Certify, waiting while the CA is not ready (its Secret loading).
pub(super) async fn certify_ready(
    addr: SocketAddr,
    token: &str,
    csr: &str,
) -> Result<CertifyResponse, CertifyError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match certify(&addr.to_string(), None, token.to_owned(), csr.to_owned()).await {
            Err(e)
                if e.code() == Some(tonic::Code::Unavailable)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn secret_data(
    cluster: &Cluster,
    ns: &str,
) -> Result<(BTreeMap<String, ByteString>, String)> {
    let secret = Api::<Secret>::namespaced(cluster.client(), ns)
        .get(SECRET)
        .await?;
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    Ok((secret.data.unwrap_or_default(), version))
}

fn entry(data: &BTreeMap<String, ByteString>, key: &str) -> String {
    data.get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

fn refused(
    result: Result<CertifyResponse, CertifyError>,
    code: tonic::Code,
    says: &str,
) -> Result<()> {
    match result {
        Ok(_) => bail!("expected {code:?}, got a certificate"),
        Err(CertifyError::Refused { status, .. }) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(says),
                "{:?} should say {says:?}",
                status.message()
            );
            Ok(())
        }
        Err(other) => bail!("expected {code:?}, got {other}"),
    }
}

#[tokio::test]
async fn certify_signs_exactly_the_token_identity() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let control = start_ca(&cluster, ns, Duration::from_secs(24 * 3600)).await?;
    let addr = control.discovery_addr;
    let me = format!("spiffe://cluster.local/ns/{ns}/sa/default");
    let good = token(&cluster, ns, "default", "ferry").await?;

    let response = certify_ready(addr, &good, &csr(&me)?).await?;
    let chain = ders(&response.certificate_chain_pem)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])?;
    let sans = leaf.subject_alternative_name()?.context("no SAN")?;
    assert_eq!(
        sans.value.general_names,
        vec![GeneralName::URI(me.as_str())]
    );
    let validity = leaf.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(lifetime, 24 * 3600 + 5 * 60, "24 h after a 5 min backdate");
    assert_eq!(response.valid_until_unix, validity.not_after.timestamp());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let now = i64::try_from(now)?;
    assert!((validity.not_after.timestamp() - now - 24 * 3600).abs() < 60);
    // The leaf chains to the published anchors, which are the Secret's.
    let anchors = ders(&response.trust_anchors_pem)?;
    let (_, anchor) = x509_parser::parse_x509_certificate(&anchors[0])?;
    leaf.verify_signature(Some(anchor.public_key()))?;
    let (data, _) = secret_data(&cluster, ns).await?;
    assert_eq!(entry(&data, "ca.crt"), response.trust_anchors_pem);

    // Another ServiceAccount's identity, an extra name, a bad or
    // wrongly-audienced token: each refused with its reason.
    let other = format!("spiffe://cluster.local/ns/{ns}/sa/ratings");
    refused(
        certify_ready(addr, &good, &csr(&other)?).await,
        tonic::Code::PermissionDenied,
        &other,
    )?;
    let elsewhere = token(&cluster, ns, "ratings", "someone-else").await?;
    refused(
        certify_ready(addr, &elsewhere, &csr(&other)?).await,
        tonic::Code::Unauthenticated,
        "not authenticated",
    )?;
    let mut forged = good.clone();
    forged.truncate(good.len() - 4);
    forged.push_str("AAAA");
    refused(
        certify_ready(addr, &forged, &csr(&me)?).await,
        tonic::Code::Unauthenticated,
        "not authenticated",
    )?;
    refused(
        certify_ready(addr, "", &csr(&me)?).await,
        tonic::Code::Unauthenticated,
        "no ServiceAccount token",
    )?;
    refused(
        certify_ready(addr, &good, "junk").await,
        tonic::Code::InvalidArgument,
        "CSR is invalid",
    )?;

    let metrics = http_get(control.admin_addr, "/metrics").await?;
    for line in [
        r#"ferry_control_certificates_total{result="issued",reason="ok"} 1"#,
        r#"ferry_control_certificates_total{result="permission_denied",reason="csr_identity"} 1"#,
        r#"ferry_control_certificates_total{result="unauthenticated",reason="token_not_authenticated"} 2"#,
        r#"ferry_control_certificates_total{result="invalid_argument",reason="csr_invalid"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    Ok(())
}

#[tokio::test]
async fn the_anchors_secret_is_created_once_and_a_supplied_one_is_kept() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let me = format!("spiffe://cluster.local/ns/{ns}/sa/default");
    let good = token(&cluster, ns, "default", "ferry").await?;

    // Two replicas start at once: one creates the Secret, the other reads it.
    let (a, b) = tokio::join!(
        start_ca(&cluster, ns, Duration::from_secs(3600)),
        start_ca(&cluster, ns, Duration::from_secs(3600))
    );
    let (a, b) = (a?, b?);
    let from_a = certify_ready(a.discovery_addr, &good, &csr(&me)?).await?;
    let from_b = certify_ready(b.discovery_addr, &good, &csr(&me)?).await?;
    assert_eq!(from_a.trust_anchors_pem, from_b.trust_anchors_pem);
    let (data, version) = secret_data(&cluster, ns).await?;
    assert_eq!(entry(&data, "ca.crt"), from_a.trust_anchors_pem);
    drop((a, b));
    // A restart reuses it.
    let c = start_ca(&cluster, ns, Duration::from_secs(3600)).await?;
    let from_c = certify_ready(c.discovery_addr, &good, &csr(&me)?).await?;
    assert_eq!(from_c.trust_anchors_pem, from_a.trust_anchors_pem);
    assert_eq!(
        secret_data(&cluster, ns).await?.1,
        version,
        "the Secret was rewritten"
    );
    drop(c);

    // The installer's Secret (two anchors: a rotation) is used as is.
    let ca_ns = cluster.new_namespace("ferry-system").await?;
    let old = GeneratedRoot::generate("cluster.local", SystemTime::now())?;
    let new = GeneratedRoot::generate("cluster.local", SystemTime::now())?;
    let anchors = format!("{}{}", old.cert_pem, new.cert_pem);
    let supplied: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": SECRET},
        "type": "kubernetes.io/tls",
        "stringData": {"ca.crt": anchors, "tls.crt": new.cert_pem, "tls.key": new.key_pem},
    }))?;
    Api::<Secret>::namespaced(cluster.client(), &ca_ns)
        .create(&PostParams::default(), &supplied)
        .await?;
    let version = secret_data(&cluster, &ca_ns).await?.1;
    let d = start_ca(&cluster, &ca_ns, Duration::from_secs(3600)).await?;
    let from_d = certify_ready(d.discovery_addr, &good, &csr(&me)?).await?;
    assert_eq!(from_d.trust_anchors_pem, anchors);
    let leaf = ders(&from_d.certificate_chain_pem)?.remove(0);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf)?;
    let issuer = ders(&new.cert_pem)?.remove(0);
    let (_, issuer) = x509_parser::parse_x509_certificate(&issuer)?;
    leaf.verify_signature(Some(issuer.public_key()))?;
    assert_eq!(
        secret_data(&cluster, &ca_ns).await?.1,
        version,
        "the supplied Secret was rewritten"
    );
    Ok(())
}

/// Waits for the anchors ConfigMap in `ns`; returns its `ca.pem`.
async fn anchors_map(cluster: &Cluster, ns: &str) -> Result<String> {
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(map) = maps.get_opt("ferry-trust-anchors").await?
            && let Some(pem) = map.data.and_then(|mut d| d.remove("ca.pem"))
        {
            return Ok(pem);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no ConfigMap ferry-trust-anchors in {ns}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn label(cluster: &Cluster, ns: &str) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"labels": {"ferry.dev/inject": "enabled"}}});
    Api::<Namespace>::all(cluster.client())
        .patch(ns, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_anchors_config_map_reaches_namespaces_with_a_ferry_gateway() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ca_ns = cluster.namespace();
    let edge = cluster.new_namespace("edge").await?;
    let foreign = cluster.new_namespace("foreign").await?;
    let _control = start_ca(&cluster, ca_ns, Duration::from_secs(3600)).await?;
    let gateway = |class: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: {class}}}\nspec: {{controllerName: {class}.dev/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web}}\nspec:\n  gatewayClassName: {class}\n  listeners: [{{name: http, protocol: HTTP, port: 8080}}]\n"
        )
    };
    // Neither namespace is labelled for injection: the Ferry Gateway is
    // why `edge` gets the anchors its deployed proxies mount.
    crate::support::apply(&cluster.client(), &foreign, &gateway("other")).await?;
    crate::support::apply(&cluster.client(), &edge, &gateway("ferry")).await?;
    let pem = anchors_map(&cluster, &edge).await?;
    let (data, _) = secret_data(&cluster, ca_ns).await?;
    assert_eq!(pem, entry(&data, "ca.crt"));
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), &foreign);
    assert!(
        maps.get_opt("ferry-trust-anchors").await?.is_none(),
        "a Gateway of another class got the anchors"
    );
    Ok(())
}

#[tokio::test]
async fn the_anchors_config_map_follows_labelled_namespaces() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ca_ns = cluster.namespace();
    let early = cluster.new_namespace("meshed").await?;
    label(&cluster, &early).await?;
    let unlabelled = cluster.new_namespace("plain").await?;
    let _control = start_ca(&cluster, ca_ns, Duration::from_secs(3600)).await?;

    let pem = anchors_map(&cluster, &early).await?;
    let (data, _) = secret_data(&cluster, ca_ns).await?;
    assert_eq!(pem, entry(&data, "ca.crt"));
    // A namespace labelled later gets it too; an unlabelled one never.
    let late = cluster.new_namespace("later").await?;
    label(&cluster, &late).await?;
    assert_eq!(anchors_map(&cluster, &late).await?, pem);
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), &unlabelled);
    assert!(maps.get_opt("ferry-trust-anchors").await?.is_none());

    // A rotation the installer writes (a second anchor) reaches them.
    let next = GeneratedRoot::generate("cluster.local", SystemTime::now())?;
    let rotated = format!("{pem}{}", next.cert_pem);
    let patch = serde_json::json!({"stringData": {"ca.crt": rotated}});
    Api::<Secret>::namespaced(cluster.client(), ca_ns)
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while anchors_map(&cluster, &early).await? != rotated {
        if tokio::time::Instant::now() > deadline {
            bail!("the rotated anchors did not reach {early}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
