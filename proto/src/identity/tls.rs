//! A channel to ferry-control's TLS port (`https://host:port`), checking
//! the server's certificate against the trust anchors and the host name.

use std::io;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use super::pki;

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
}

/// Connects `endpoint` (an `https://` URI) over TLS 1.2+/h2, trusting
/// `anchors_pem` for the endpoint's host name.
pub async fn connect(
    endpoint: &Endpoint,
    anchors_pem: &str,
) -> Result<Result<Channel, tonic::transport::Error>, TlsSetupError> {
    let ders = pki::certificates("trust anchors", anchors_pem)
        .map_err(|e| TlsSetupError::Anchors(e.to_string()))?;
    if ders.is_empty() {
        return Err(TlsSetupError::Anchors("no certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for der in ders {
        roots.add(CertificateDer::from(der))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let uri = endpoint.uri();
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .ok_or_else(|| TlsSetupError::ServerName(uri.to_string()))?;
    let name =
        ServerName::try_from(host.clone()).map_err(|_| TlsSetupError::ServerName(host.clone()))?;
    let port = uri.port_u16().unwrap_or(443);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let service = tower::service_fn(move |_: http::Uri| {
        let (connector, name, host) = (connector.clone(), name.clone(), host.clone());
        async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector(service).await)
}
