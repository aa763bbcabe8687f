//! Authenticated discovery over real TLS on loopback: ferry-control's TLS
//! acceptor and discovery service, a CA made by the CA's own code, and the
//! proxy's discovery client presenting a certificate it signed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use ferry_api::client::{ClientError, ConnectOptions, OutboundConfig};
use ferry_api::identity::tls::{anchors, client_config};
use ferry_api::pb;
use ferry_control::ca::material::{GeneratedRoot, Material};
use ferry_control::ca::tls::{TlsSettings, incoming, server_config};
use ferry_control::discovery::DiscoveryService;
use ferry_control::metrics::Metrics;
use ferry_control::views::{OutboundKey, Views};
use ferry_core::identity::Identity;
use futures_util::StreamExt as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;

const TARGET: &str = "10.96.0.10:9080";

struct Control {
    addr: String,
    views: Arc<Views>,
    material: Material,
    registry: Arc<prometheus_client::registry::Registry>,
}

/// A TLS discovery server on loopback publishing a passthrough view of
/// `TARGET` for namespace `shop`.
async fn start(require_client_identity: bool) -> Result<Control> {
    let root = GeneratedRoot::generate("cluster.local", SystemTime::now())?;
    let material = Material::from_pem(&root.cert_pem, &root.cert_pem, &root.key_pem)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let settings = TlsSettings {
        addr: listener.local_addr()?,
        identity: Identity::new("cluster.local", "ferry-system", "ferry-control")?,
        dns_names: vec!["localhost".into()],
        lifetime: Duration::from_secs(3600),
        require_client_identity,
    };
    let (config, _) = server_config(&material, &settings, SystemTime::now())?;
    let (_tx, configs) = watch::channel(Some(config));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let views = Views::new();
    let published = views.clone();
    let service = DiscoveryService::new(views.clone(), metrics)
        .require_client_identity(require_client_identity);
    let incoming = incoming(listener, configs);
    tokio::spawn(async move {
        let _tx = _tx;
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(incoming)
            .await
    });
    // Publish once a subscriber exists (views are computed on demand).
    tokio::spawn(async move {
        let key = OutboundKey {
            target: TARGET.parse().expect("a valid target"),
            namespace: "shop".into(),
        };
        loop {
            views.publish_outbound(&key, pb::OutboundUpdate::default());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Ok(Control {
        addr: format!("https://localhost:{}", settings.addr.port()),
        views: published,
        material,
        registry: Arc::new(registry),
    })
}

/// TLS options trusting `control`'s anchors, presenting a certificate the
/// CA signed for `sa` in `ns` (none with `None`).
fn options(control: &Control, who: Option<(&str, &str)>) -> Result<ConnectOptions> {
    let config = config(control, who)?;
    Ok(ConnectOptions::with_tls(Arc::new(move || {
        Ok(config.clone())
    })))
}

/// The client config of [`options`].
fn config(control: &Control, who: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>> {
    let roots = anchors(control.material.anchors_pem())?;
    let client = match who {
        None => None,
        Some((ns, sa)) => {
            let (chain, key, _) = signed(control, ns, sa)?;
            Some((chain, key))
        }
    };
    Ok(client_config(&roots, client)?)
}

/// A chain and key the CA signed for `sa` in `ns`, and its `notAfter`.
fn signed(
    control: &Control,
    ns: &str,
    sa: &str,
) -> Result<(
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    SystemTime,
)> {
    let identity = Identity::new("cluster.local", ns, sa)?;
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    let csr = rcgen::CertificateSigningRequestParams::from_der(csr.der())?;
    let lifetime = Duration::from_secs(3600);
    let issued = control
        .material
        .sign(&csr, &identity, lifetime, SystemTime::now())?;
    let chain = ferry_api::identity::pki::certificates("chain", &issued.chain_pem)?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((chain, key, issued.not_after))
}

/// The next item of `watch`, within 10 s.
async fn next<S: futures_util::Stream + Unpin>(watch: &mut S) -> Result<S::Item> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .context("no answer within 10 s")?
        .context("the watch ended")
}

/// The first item of an outbound watch of `TARGET` as `namespace`.
async fn first(
    control: &Control,
    options: ConnectOptions,
    namespace: &str,
) -> Result<Result<OutboundConfig, ClientError>> {
    let watch =
        ferry_api::client::watch_outbound_with(control.addr.clone(), TARGET, namespace, options);
    next(&mut std::pin::pin!(watch)).await
}

fn denied_code(item: Result<OutboundConfig, ClientError>) -> Option<(tonic::Code, String)> {
    match item {
        Err(ClientError::Stream { status, .. }) => {
            Some((status.code(), status.message().to_owned()))
        }
        _ => None,
    }
}

fn metrics(control: &Control) -> Result<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &control.registry)?;
    Ok(text)
}

#[tokio::test]
async fn a_caller_sees_its_own_namespace_and_is_refused_others() -> Result<()> {
    let control = start(true).await?;
    let shop = options(&control, Some(("shop", "web")))?;

    let own = first(&control, shop.clone(), "shop").await?;
    assert!(
        matches!(own, Ok(OutboundConfig::Passthrough { .. })),
        "{own:?}"
    );

    let other = first(&control, shop, "bank").await?;
    let (code, message) = denied_code(other).context("expected a refusal")?;
    assert_eq!(code, tonic::Code::PermissionDenied);
    assert!(
        message.contains("spiffe://cluster.local/ns/shop/sa/web")
            && message.contains("namespace bank"),
        "{message}"
    );

    let anonymous = first(&control, options(&control, None)?, "shop").await?;
    let (code, message) = denied_code(anonymous).context("expected a refusal")?;
    assert_eq!(code, tonic::Code::PermissionDenied);
    assert!(
        message.contains("client certificate is required"),
        "{message}"
    );

    let text = metrics(&control)?;
    for reason in ["other_namespace", "no_certificate"] {
        let line = format!("ferry_control_discovery_denied_total{{reason=\"{reason}\"}} 1");
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn without_the_requirement_anonymous_tls_callers_are_trusted() -> Result<()> {
    let control = start(false).await?;
    let anonymous = first(&control, options(&control, None)?, "shop").await?;
    assert!(
        matches!(anonymous, Ok(OutboundConfig::Passthrough { .. })),
        "{anonymous:?}"
    );
    // A certificate still binds its caller to its namespace.
    let shop = options(&control, Some(("shop", "web")))?;
    let other = first(&control, shop, "bank").await?;
    let (code, _) = denied_code(other).context("expected a refusal")?;
    assert_eq!(code, tonic::Code::PermissionDenied);
    Ok(())
}

#[tokio::test]
async fn an_https_address_without_tls_options_is_an_error() -> Result<()> {
    let control = start(false).await?;
    let item = first(&control, ConnectOptions::default(), "shop").await?;
    assert!(
        matches!(item, Err(ClientError::Tls { source: None, .. })),
        "{item:?}"
    );
    Ok(())
}

#[tokio::test]
async fn each_reconnection_presents_the_certificate_of_the_moment() -> Result<()> {
    let control = start(true).await?;
    let (tx, rx) = watch::channel(config(&control, Some(("bank", "teller")))?);
    let options = ConnectOptions::with_tls(Arc::new(move || Ok(rx.borrow().clone())));
    let watch =
        ferry_api::client::watch_outbound_with(control.addr.clone(), TARGET, "shop", options);
    let mut watch = std::pin::pin!(watch);
    let refused = next(&mut watch).await?;
    let (code, _) = denied_code(refused).context("expected a refusal as bank")?;
    assert_eq!(code, tonic::Code::PermissionDenied);
    // The proxy's certificate changes (here: to another identity); the
    // next connection presents it.
    tx.send_replace(config(&control, Some(("shop", "web")))?);
    let served = next(&mut watch).await?;
    assert!(
        matches!(served, Ok(OutboundConfig::Passthrough { .. })),
        "{served:?}"
    );
    Ok(())
}

#[tokio::test]
async fn inbound_policy_only_of_a_pod_running_as_the_caller() -> Result<()> {
    let control = start(true).await?;
    control.views.publish_pods(
        [("10.1.0.1".parse()?, ("shop".to_owned(), "web".to_owned()))]
            .into_iter()
            .collect(),
    );
    let watch = async |who, pod_ip: &str| -> Result<tonic::Code> {
        let configs = config(&control, Some(who))?;
        let endpoint = ferry_api::client::endpoint(&control.addr)?;
        let channel = ferry_api::identity::tls::connect_with(
            &endpoint,
            Arc::new(move || Ok(configs.clone())),
        )
        .await??;
        let request = pb::InboundWatch {
            pod_ip: pod_ip.to_owned(),
            port: 8080,
        };
        let answer = pb::discovery_client::DiscoveryClient::new(channel)
            .watch_inbound(request)
            .await;
        Ok(answer.err().map_or(tonic::Code::Ok, |status| status.code()))
    };
    assert_eq!(watch(("shop", "web"), "10.1.0.1").await?, tonic::Code::Ok);
    let denied = tonic::Code::PermissionDenied;
    assert_eq!(watch(("shop", "admin"), "10.1.0.1").await?, denied);
    assert_eq!(watch(("bank", "web"), "10.1.0.1").await?, denied);
    assert_eq!(watch(("shop", "web"), "10.1.0.2").await?, denied);
    Ok(())
}

#[tokio::test]
async fn a_sidecar_presents_its_published_credentials() -> Result<()> {
    let control = start(true).await?;
    let (tx, rx) = watch::channel(None);
    let options = ferry_proxy::identity::discovery_options(rx);
    let watch =
        ferry_api::client::watch_outbound_with(control.addr.clone(), TARGET, "shop", options);
    let mut watch = std::pin::pin!(watch);
    let before = next(&mut watch).await?;
    assert!(
        matches!(before, Err(ClientError::Connect { .. })),
        "no connection before the first certificate: {before:?}"
    );

    let (chain, key, not_after) = signed(&control, "shop", "web")?;
    tx.send_replace(Some(Arc::new(ferry_proxy::identity::Credentials {
        identity: Identity::new("cluster.local", "shop", "web")?,
        chain,
        key,
        roots: anchors(control.material.anchors_pem())?,
        not_after,
    })));
    let after = next(&mut watch).await?;
    assert!(
        matches!(after, Ok(OutboundConfig::Passthrough { .. })),
        "{after:?}"
    );
    Ok(())
}
