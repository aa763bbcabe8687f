//! Dialling another proxy: TCP to the endpoint's address, then mutual TLS
//! with the proxy's latest credentials, the endpoint's expected identity as
//! server name, and the ALPN of what follows ([`super::ALPN_HTTP`],
//! [`super::ALPN_OPAQUE`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::identity::Identity;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::{TlsConfigError, client_config};
use super::{ALPN_HTTP, ALPN_OPAQUE, OpaqueHeader};
use crate::identity::{Credentials, CredentialsRx};

/// Dials meshed endpoints with the proxy's current credentials.
#[derive(Clone, Debug)]
pub struct Dialer {
    credentials: CredentialsRx,
    connect_timeout: Duration,
    configs: Arc<Mutex<Option<Configs>>>,
    metrics: DialMetrics,
}

/// The client configs built from one [`Credentials`].
#[derive(Debug)]
struct Configs {
    from: Arc<Credentials>,
    http: Arc<ClientConfig>,
    opaque: Arc<ClientConfig>,
}

/// Why a meshed endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The proxy has no certificate yet: it does not talk to meshed
    /// endpoints in plaintext.
    #[error("no workload certificate yet: cannot dial {identity} at {addr} with mTLS")]
    NoCredentials {
        /// The endpoint.
        addr: SocketAddr,
        /// Its expected identity.
        identity: Box<Identity>,
    },
    /// The credentials do not make a TLS config.
    #[error("failed to build the mesh client TLS config")]
    Config(#[source] TlsConfigError),
    /// TCP connect failed or timed out.
    #[error("failed to connect to {addr}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed: most often the server is not who
    /// discovery said (wrong identity, untrusted chain).
    #[error("mTLS handshake with {addr} (expecting {identity}) failed")]
    Handshake {
        /// The endpoint.
        addr: SocketAddr,
        /// Its expected identity.
        identity: Box<Identity>,
        /// Cause (a rustls error inside).
        #[source]
        source: std::io::Error,
    },
}

/// Labels of a failed dial.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DialLabels {
    /// `no_credentials`, `config`, `connect` or `handshake`.
    pub reason: &'static str,
    /// The identity expected of the endpoint.
    pub identity: String,
}

/// Failed dials, by reason and expected identity.
#[derive(Clone, Debug, Default)]
pub struct DialMetrics {
    failures: Family<DialLabels, Counter>,
    handshakes: Counter,
}

// === impl DialMetrics ===

impl DialMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "outbound_mtls_failures",
            "Dials of meshed endpoints that failed, by reason and expected identity",
            metrics.failures.clone(),
        );
        registry.register(
            "outbound_mtls_handshakes",
            "mTLS handshakes completed with meshed endpoints",
            metrics.handshakes.clone(),
        );
        metrics
    }
}

// === impl DialError ===

impl DialError {
    fn reason(&self) -> &'static str {
        match self {
            Self::NoCredentials { .. } => "no_credentials",
            Self::Config(_) => "config",
            Self::Connect { .. } => "connect",
            Self::Handshake { .. } => "handshake",
        }
    }
}

// === impl Dialer ===

impl Dialer {
    /// Dials with the latest of `credentials`, giving up a TCP connect
    /// after `connect_timeout` (the handshake gets as long again).
    pub fn new(
        credentials: CredentialsRx,
        connect_timeout: Duration,
        metrics: DialMetrics,
    ) -> Self {
        Self {
            credentials,
            connect_timeout,
            configs: Arc::default(),
            metrics,
        }
    }

    /// An mTLS connection to `addr` for HTTP/2 between proxies.
    pub async fn http(
        &self,
        addr: SocketAddr,
        identity: &Identity,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        self.dial(addr, identity, false).await
    }

    /// An mTLS connection to `addr` for opaque TCP to `port`, with the
    /// [`OpaqueHeader`] already sent.
    pub async fn opaque(
        &self,
        addr: SocketAddr,
        identity: &Identity,
        port: u16,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        let mut tls = self.dial(addr, identity, true).await?;
        let header = OpaqueHeader { port }.encode();
        let written = tls.write_all(&header).await.and(tls.flush().await);
        written.map_err(|source| self.failed(identity, DialError::Connect { addr, source }))?;
        Ok(tls)
    }

    async fn dial(
        &self,
        addr: SocketAddr,
        identity: &Identity,
        opaque: bool,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        let config = self
            .config(opaque)
            .map_err(|e| self.failed(identity, e))?
            .ok_or_else(|| {
                self.failed(
                    identity,
                    DialError::NoCredentials {
                        addr,
                        identity: Box::new(identity.clone()),
                    },
                )
            })?;
        let server_name = ServerName::try_from(identity.server_name()).map_err(|e| {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
            self.failed(identity, DialError::Connect { addr, source })
        })?;
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                return Err(self.failed(identity, DialError::Connect { addr, source }));
            }
            Err(_) => {
                let source = std::io::ErrorKind::TimedOut.into();
                return Err(self.failed(identity, DialError::Connect { addr, source }));
            }
        };
        let _ = tcp.set_nodelay(true);
        let handshake = TlsConnector::from(config).connect(server_name, tcp);
        let handshake_error = |source| DialError::Handshake {
            addr,
            identity: Box::new(identity.clone()),
            source,
        };
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(tls)) => {
                self.metrics.handshakes.inc();
                Ok(tls)
            }
            Ok(Err(source)) => Err(self.failed(identity, handshake_error(source))),
            Err(_) => Err(self.failed(
                identity,
                handshake_error(std::io::ErrorKind::TimedOut.into()),
            )),
        }
    }

    /// The config for the current credentials (`None` before the first),
    /// rebuilt only when they change.
    fn config(&self, opaque: bool) -> Result<Option<Arc<ClientConfig>>, DialError> {
        let Some(credentials) = self.credentials.borrow().clone() else {
            return Ok(None);
        };
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        let current = match configs.as_ref() {
            Some(c) if Arc::ptr_eq(&c.from, &credentials) => c,
            _ => configs.insert(Configs {
                http: client_config(&credentials, ALPN_HTTP).map_err(DialError::Config)?,
                opaque: client_config(&credentials, ALPN_OPAQUE).map_err(DialError::Config)?,
                from: credentials,
            }),
        };
        Ok(Some(if opaque {
            current.opaque.clone()
        } else {
            current.http.clone()
        }))
    }

    fn failed(&self, identity: &Identity, error: DialError) -> DialError {
        self.metrics
            .failures
            .get_or_create(&DialLabels {
                reason: error.reason(),
                identity: identity.to_string(),
            })
            .inc();
        error
    }
}
