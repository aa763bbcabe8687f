//! Channels to ferry-control's TLS port (`https://host:port`), checking
//! the server's certificate against the trust anchors and the host name.
//!
//! [`connect`] is the CA client's: anchors only, no client certificate.
//! Discovery clients pass a [`ConfigSource`], read again at every
//! (re)connection, so a renewed certificate is presented on the next one.

use std::io;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use super::pki;

/// The client config of the next connection: the trust anchors and, once
/// the proxy has one, its certificate.
pub type ConfigSource =
    Arc<dyn Fn() -> Result<Arc<rustls::ClientConfig>, TlsSetupError> + Send + Sync>;

/// Why a TLS channel could not be set up (before connecting).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The anchors do not parse or hold no certificate.
    #[error("failed to read the trust anchors: {0}")]
    Anchors(String),
    /// The address has no valid host name to check the certificate for.
    #[error("the address has no valid TLS server name: {0}")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("failed to build the TLS client config")]
    Rustls(#[from] rustls::Error),
    /// No credentials yet (the first certificate is not signed).
    #[error("no certificate to present to {0} yet")]
    NoCredentials(String),
}

/// The trust anchors of `anchors_pem`; at least one.
pub fn anchors(anchors_pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let ders = pki::certificates("trust anchors", anchors_pem)
        .map_err(|e| TlsSetupError::Anchors(e.to_string()))?;
    if ders.is_empty() {
        return Err(TlsSetupError::Anchors("no certificate".into()));
    }
    Ok(ders.into_iter().map(CertificateDer::from).collect())
}

/// A TLS 1.2+/h2 client config trusting `roots`, presenting `client`
/// (chain, leaf first, and key) when given.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store);
    let mut config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connects `endpoint` (an `https://` URI) over TLS, trusting
/// `anchors_pem` for the endpoint's host name, without a client
/// certificate.
pub async fn connect(
    endpoint: &Endpoint,
    anchors_pem: &str,
) -> Result<Result<Channel, tonic::transport::Error>, TlsSetupError> {
    let config = client_config(&anchors(anchors_pem)?, None)?;
    connect_with(endpoint, Arc::new(move || Ok(config.clone()))).await
}

/// Connects `endpoint` over TLS with the config `configs` gives for each
/// connection.
pub async fn connect_with(
    endpoint: &Endpoint,
    configs: ConfigSource,
) -> Result<Result<Channel, tonic::transport::Error>, TlsSetupError> {
    let connector = connector(endpoint, configs)?;
    Ok(endpoint.connect_with_connector(connector).await)
}

/// A channel to `endpoint` over TLS that connects on first use and again
/// after failures, each time with the config `configs` gives.
pub fn connect_lazy(endpoint: &Endpoint, configs: ConfigSource) -> Result<Channel, TlsSetupError> {
    Ok(endpoint.connect_with_connector_lazy(connector(endpoint, configs)?))
}

/// Dials the endpoint's host and port and runs the TLS handshake with the
/// current config, checking the server for the endpoint's host name.
fn connector(
    endpoint: &Endpoint,
    configs: ConfigSource,
) -> Result<
    impl tower::Service<
        http::Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
        Error = io::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    TlsSetupError,
> {
    let uri = endpoint.uri();
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .ok_or_else(|| TlsSetupError::ServerName(uri.to_string()))?;
    let name =
        ServerName::try_from(host.clone()).map_err(|_| TlsSetupError::ServerName(host.clone()))?;
    let port = uri.port_u16().unwrap_or(443);
    Ok(tower::service_fn(move |_: http::Uri| {
        let (configs, name, host) = (configs.clone(), name.clone(), host.clone());
        async move {
            let config = configs().map_err(io::Error::other)?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    }))
}
