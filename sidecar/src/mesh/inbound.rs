//! The inbound side of the mesh: what the sidecar does with each connection
//! redirected to its inbound listener.
//!
//! 1. The original destination says which app port the client dialled.
//! 2. The first bytes are peeked ([`detect`]): a TLS ClientHello offering
//!    one of the mesh's ALPN values ([`crate::mesh::ALPN_HTTP`],
//!    [`crate::mesh::ALPN_OPAQUE`]) is another proxy's; anything else
//!    (plaintext, the app's own TLS, silence) is not.
//! 3. Mesh traffic is terminated ([`server_config`]: TLS 1.3, a client
//!    certificate leading to the trust anchors is required) and the client
//!    identity read from the certificate's URI SAN. `ferry.h2` is served as
//!    HTTP/2 and each request sent to the app in its own protocol
//!    ([`http`]); `ferry.opaque` is spliced to the app after its header
//!    ([`opaque`]), only when the header names the port dialled.
//! 4. Anything else is forwarded unchanged in [`InboundPolicy::Permissive`]
//!    mode and closed in [`InboundPolicy::Strict`] mode.
//!
//! The app is reached on loopback (`127.0.0.1`, or `[::1]` for a connection
//! that arrived over IPv6) at the original port. Settings:
//! `FERRY_INBOUND_POLICY` (`permissive`, the default, or `strict`) and
//! `FERRY_INBOUND_IDENTITY_HEADER` (`true` to pass the verified client
//! identity to the app as [`crate::mesh::CLIENT_IDENTITY_HEADER`]).

pub mod client_hello;
pub mod detect;
pub mod http;
pub mod metrics;
pub mod opaque;
pub mod server_config;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::identity::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use self::detect::{Detected, detect};
use self::http::{AppClient, Forward};
use self::metrics::{ConnectionKind, InboundMetrics, RefuseReason};
use self::server_config::ServerConfigs;
use crate::identity::CredentialsRx;
use crate::mesh::tls::peer_identity;
use crate::mesh::{ALPN_HTTP, ALPN_OPAQUE};
use crate::server::{HttpServer, Limit, ServerMetrics, ServerParams};
use crate::sidecar::{Direction, TcpLabels, TcpMetrics, redirected_target, splice};

/// What happens to inbound connections that are not mesh traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InboundPolicy {
    /// Forwarded unchanged to the app.
    #[default]
    Permissive,
    /// Closed (and counted).
    Strict,
}

/// A policy name that is neither `permissive` nor `strict`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected permissive or strict, got {0:?}")]
pub struct BadPolicy(pub String);

/// How the inbound side behaves.
#[derive(Clone, Debug)]
pub struct InboundParams {
    /// What to do with traffic that is not the mesh's.
    pub policy: InboundPolicy,
    /// Whether the app gets the verified client identity as a header.
    pub identity_header: bool,
    /// Limit of one connect to the app.
    pub connect_timeout: Duration,
    /// The server of mesh HTTP, and the limits on clients: how long to
    /// wait for a ClientHello before deciding a connection is not mesh
    /// traffic (`detect_timeout`: a server-first protocol waits this
    /// long), the TLS handshake's limit (also reading an opaque header's),
    /// and HTTP/2's.
    pub server: Arc<HttpServer>,
}

/// Serves inbound listeners; cloned for each (IPv4 and IPv6), sharing the
/// app connections and the TLS config.
#[derive(Clone, Debug)]
pub struct Inbound {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    params: InboundParams,
    configs: ServerConfigs,
    app: Arc<AppClient>,
    metrics: InboundMetrics,
    tcp: TcpMetrics,
}

// === impl InboundPolicy ===

impl FromStr for InboundPolicy {
    type Err = BadPolicy;

    fn from_str(value: &str) -> Result<Self, BadPolicy> {
        match value.trim() {
            "permissive" => Ok(Self::Permissive),
            "strict" => Ok(Self::Strict),
            _ => Err(BadPolicy(value.to_owned())),
        }
    }
}

impl fmt::Display for InboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permissive => "permissive",
            Self::Strict => "strict",
        })
    }
}

// === impl InboundParams ===

impl InboundParams {
    /// `policy` and `identity_header` with sidecar mode's default limits
    /// ([`ServerParams::sidecar`]), their hits not counted anywhere.
    pub fn new(policy: InboundPolicy, identity_header: bool, connect_timeout: Duration) -> Self {
        Self {
            policy,
            identity_header,
            connect_timeout,
            server: Arc::new(HttpServer::new(
                ServerParams::sidecar(),
                ServerMetrics::default(),
            )),
        }
    }

    /// These parameters, serving through `server`.
    pub fn with_server(self, server: Arc<HttpServer>) -> Self {
        Self { server, ..self }
    }
}

// === impl Inbound ===

impl Inbound {
    /// The inbound side with TLS from `credentials`.
    pub fn new(
        params: InboundParams,
        credentials: CredentialsRx,
        metrics: InboundMetrics,
        tcp: TcpMetrics,
    ) -> Self {
        let app = Arc::new(AppClient::new(params.connect_timeout));
        Self {
            shared: Arc::new(Shared {
                params,
                configs: ServerConfigs::new(credentials),
                app,
                metrics,
                tcp,
            }),
        }
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept inbound connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            tokio::spawn(async move {
                if let Some((orig, to)) =
                    redirected_target(&tcp, peer, Direction::Inbound, &shared.tcp)
                {
                    shared.handle(tcp, peer, orig, to).await;
                }
            });
        }
    }

    /// Handles a connection whose original destination is `orig`, for the
    /// app at `to`.
    pub async fn handle(&self, tcp: TcpStream, peer: SocketAddr, orig: SocketAddr, to: SocketAddr) {
        self.shared.handle(tcp, peer, orig, to).await;
    }
}

// === impl Shared ===

impl Shared {
    async fn handle(&self, tcp: TcpStream, peer: SocketAddr, orig: SocketAddr, to: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        match detect(&tcp, self.params.server.params().detect_timeout).await {
            Err(error) => tracing::debug!(%peer, %orig, %error, "Inbound connection failed"),
            Ok(Detected::Mesh) => self.mesh(tcp, peer, orig, to).await,
            Ok(Detected::NotMesh(why)) => match self.params.policy {
                InboundPolicy::Permissive => {
                    tracing::trace!(%peer, %orig, ?why, "Not mesh traffic: passthrough");
                    self.metrics.connection(ConnectionKind::Passthrough, None);
                    splice(
                        tcp,
                        &self.labels(orig),
                        to,
                        self.params.connect_timeout,
                        &self.tcp,
                    )
                    .await;
                }
                InboundPolicy::Strict => {
                    tracing::debug!(%peer, %orig, ?why, "Not mesh traffic: refused (strict mode)");
                    self.metrics.refused(RefuseReason::NotMesh, None);
                }
            },
        }
    }

    async fn mesh(&self, tcp: TcpStream, peer: SocketAddr, orig: SocketAddr, to: SocketAddr) {
        let Some(config) = self.configs.current() else {
            tracing::debug!(%peer, %orig, "Mesh connection refused: no certificate yet");
            self.metrics.refused(RefuseReason::NoCredentials, None);
            return;
        };
        let limit = self.params.server.params().tls_handshake_timeout;
        let mut tls = match tokio::time::timeout(limit, TlsAcceptor::from(config).accept(tcp)).await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %orig, %error, "Inbound TLS handshake failed");
                self.metrics.refused(RefuseReason::Handshake, None);
                return;
            }
            Err(_) => {
                self.params.server.cut_off(Limit::TlsHandshake);
                tracing::debug!(%peer, %orig, ?limit, "Inbound TLS handshake timed out");
                self.metrics.refused(RefuseReason::Handshake, None);
                return;
            }
        };
        let (_, session) = tls.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let identity = match session
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(peer_identity)
        {
            Some(Ok(identity)) => identity,
            Some(Err(error)) => {
                tracing::debug!(%peer, %orig, %error, "Mesh connection refused: no client identity");
                self.metrics.refused(RefuseReason::NoIdentity, None);
                return;
            }
            None => {
                self.metrics.refused(RefuseReason::NoIdentity, None);
                return;
            }
        };
        match alpn.as_deref() {
            Some(ALPN_HTTP) => self.mesh_http(tls, peer, to, identity).await,
            Some(ALPN_OPAQUE) => match opaque::read_header(&mut tls, orig, limit).await {
                Ok(_) => {
                    self.metrics
                        .connection(ConnectionKind::MeshOpaque, Some(&identity));
                    splice(
                        tls,
                        &self.labels(orig),
                        to,
                        self.params.connect_timeout,
                        &self.tcp,
                    )
                    .await;
                }
                Err(error @ opaque::OpaqueError::OtherPort { .. }) => {
                    tracing::warn!(%peer, client = %identity, %error, "Opaque connection refused");
                    self.metrics
                        .refused(RefuseReason::OpaquePort, Some(&identity));
                }
                Err(error) => {
                    tracing::debug!(%peer, client = %identity, %error, "Opaque connection refused");
                    self.metrics
                        .refused(RefuseReason::OpaqueHeader, Some(&identity));
                }
            },
            other => {
                // The server offers only the mesh's values, so rustls
                // refuses any other; kept total all the same.
                tracing::debug!(%peer, ?other, "Mesh connection without a mesh ALPN");
                self.metrics
                    .refused(RefuseReason::Handshake, Some(&identity));
            }
        }
    }

    async fn mesh_http<I>(&self, tls: I, peer: SocketAddr, to: SocketAddr, identity: Identity)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.metrics
            .connection(ConnectionKind::MeshHttp, Some(&identity));
        let identity_header = self
            .params
            .identity_header
            .then(|| ::http::HeaderValue::from_str(&identity.to_string()).ok())
            .flatten();
        let forward = Forward {
            app: to,
            identity_header,
        };
        if let Err(error) = http::serve(&self.params.server, tls, self.app.clone(), forward).await {
            tracing::debug!(%peer, client = %identity, %error, "Mesh HTTP connection ended with an error");
        }
    }

    fn labels(&self, orig: SocketAddr) -> TcpLabels {
        TcpLabels {
            direction: Direction::Inbound,
            target_addr: orig.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
