//! TLS for ferry-control's gRPC services, so a proxy's token never crosses
//! the network in clear: a server certificate for the control plane's own
//! identity (plus the DNS names proxies dial), signed by the CA and renewed
//! at ~70% of its lifetime or when the CA's material changes. Client
//! certificates are optional and checked against the trust anchors when
//! presented ([`TlsPeer::certificates`]); discovery authorizes watches by
//! the identity they name (`crate::discovery::authz`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use ferry_core::identity::Identity;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::material::{Material, MaterialError, certificates};

/// Time limit of one TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Delay before trying again to make a server certificate.
const RETRY: Duration = Duration::from_secs(5);

/// The TLS port's settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// Address of the TLS listener; port 0 picks one.
    pub addr: SocketAddr,
    /// The control plane's own identity (URI SAN of its certificate).
    pub identity: Identity,
    /// DNS names proxies dial the control plane by.
    pub dns_names: Vec<String>,
    /// Lifetime of the server certificate.
    pub lifetime: Duration,
    /// Refuse discovery watches without a client certificate (`Certify`
    /// never needs one: it is how a proxy gets its first).
    pub require_client_identity: bool,
}

/// The current server config; `None` until the CA has material.
pub type ServerConfigRx = watch::Receiver<Option<Arc<ServerConfig>>>;

/// One accepted TLS connection.
#[derive(Debug)]
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    peer: TlsPeer,
}

/// What a request on a TLS connection knows of its peer (a request
/// extension, through tonic's `Connected`).
#[derive(Clone, Debug)]
pub struct TlsPeer {
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The client's verified certificate chain, when it presented one.
    pub certificates: Option<Vec<CertificateDer<'static>>>,
}

/// Why a server config cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Making or signing the server certificate failed.
    #[error("failed to sign the control plane's server certificate")]
    Sign(#[from] MaterialError),
    /// rustls refused the certificate, key or anchors.
    #[error("failed to build the TLS server config")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built from the anchors.
    #[error("failed to build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A server config with a new certificate from `material`, and when that
/// certificate expires.
pub fn server_config(
    material: &Material,
    settings: &TlsSettings,
    now: SystemTime,
) -> Result<(Arc<ServerConfig>, SystemTime), TlsError> {
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| MaterialError::Rcgen {
            what: "generate the server key",
            source,
        })?;
    let issued = material.sign_server(
        &key,
        &settings.identity,
        &settings.dns_names,
        settings.lifetime,
        now,
    )?;
    let chain = certificates("server chain", &issued.chain_pem).map_err(MaterialError::from)?;
    let anchors = certificates("ca.crt", material.anchors_pem()).map_err(MaterialError::from)?;
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots.add(CertificateDer::from(anchor))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), issued.not_after))
}

/// Keeps `tx` holding a server config with a valid certificate: a new one
/// when the material changes and at ~70% of the certificate's lifetime.
pub async fn keep_server_config(
    mut material: watch::Receiver<Option<Arc<Material>>>,
    settings: TlsSettings,
    tx: watch::Sender<Option<Arc<ServerConfig>>>,
) {
    loop {
        let current = material.borrow_and_update().clone();
        let wait = match current {
            None => None,
            Some(material) => match server_config(&material, &settings, SystemTime::now()) {
                Ok((config, not_after)) => {
                    tx.send_replace(Some(config));
                    let remaining = not_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    Some(remaining.mul_f64(0.7).max(Duration::from_secs(1)))
                }
                Err(error) => {
                    tracing::warn!(%error, "Failed to make the TLS server certificate");
                    Some(RETRY)
                }
            },
        };
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = material.changed() => if changed.is_err() { return },
            () = sleep => {}
        }
    }
}

/// Accepts TLS connections on `listener` with the latest of `configs`
/// (connections arriving before the first config are closed). Ends when
/// the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    configs: ServerConfigRx,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, remote_addr) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "Failed to accept a TLS connection");
                    continue;
                }
            };
            let Some(config) = configs.borrow().clone() else {
                tracing::debug!(%remote_addr, "TLS connection before the CA is ready");
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(inner)) => {
                        let certificates = inner
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
                        let peer = TlsPeer {
                            remote_addr,
                            certificates,
                        };
                        // The server is gone when this fails: drop it.
                        let _ = tx.send(Ok(TlsConn { inner, peer })).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %remote_addr, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%remote_addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

// === impl TlsConn ===

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
