//! Listeners: binds the ports of the config in force, rebinding as ports
//! come and go. Connections live on their own tasks, so a config change
//! never drops them; each request routes with the config current when it
//! arrives.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_core::model::PortProtocol;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigRx;
use crate::proxy::{ConnInfo, ProxyService};
use crate::server::{HttpServer, Limit};
use crate::tls;

/// Serves the ports of the config in force on one address.
pub struct Listeners {
    bind: IpAddr,
    service: ProxyService,
    server: Arc<HttpServer>,
    config: ConfigRx,
    applied: Applied,
}

/// The version of the last config whose ports the listeners have bound
/// (0 before the first); readiness waits for it.
#[derive(Clone, Debug, Default)]
pub struct Applied(Arc<AtomicU64>);

/// A bound port; dropping it stops accepting (open connections stay).
struct Bound {
    protocol: PortProtocol,
    accept: JoinHandle<()>,
}

/// The TLS acceptor of a port, rebuilt when the config changes.
struct TlsCache {
    port: u16,
    version: u64,
    acceptor: Option<TlsAcceptor>,
}

// === impl Listeners ===

impl Listeners {
    /// Listeners on `bind` serving `service` through `server`.
    pub fn new(bind: IpAddr, service: ProxyService, server: HttpServer, config: ConfigRx) -> Self {
        Self {
            bind,
            service,
            server: Arc::new(server),
            config,
            applied: Applied::default(),
        }
    }

    /// Tells which config the listeners have applied.
    pub fn applied(&self) -> Applied {
        self.applied.clone()
    }

    /// Binds and rebinds ports as the config changes, until the config
    /// source goes away.
    pub async fn run(mut self) {
        let mut bound: HashMap<u16, Bound> = HashMap::new();
        loop {
            let snapshot = self.config.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                let wanted: HashMap<u16, PortProtocol> = snapshot
                    .config
                    .ports
                    .iter()
                    .map(|p| (p.port, p.protocol))
                    .collect();
                bound.retain(|port, b| wanted.get(port) == Some(&b.protocol));
                for (port, protocol) in wanted {
                    if bound.contains_key(&port) {
                        continue;
                    }
                    match self.bind(port, protocol) {
                        Ok(b) => {
                            bound.insert(port, b);
                        }
                        Err(error) => {
                            tracing::error!(%error, addr = %SocketAddr::new(self.bind, port), "Failed to bind listener");
                        }
                    }
                }
                self.applied.set(snapshot.version);
            }
            if self.config.changed().await.is_err() {
                return;
            }
        }
    }

    fn bind(&self, port: u16, protocol: PortProtocol) -> std::io::Result<Bound> {
        let addr = SocketAddr::new(self.bind, port);
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        tracing::info!(%addr, ?protocol, "Listening");
        let accept = tokio::spawn(accept(
            listener,
            port,
            protocol,
            self.service.clone(),
            self.server.clone(),
            self.config.clone(),
        ));
        Ok(Bound { protocol, accept })
    }
}

// === impl Applied ===

impl Applied {
    /// The version of the last config applied, 0 before the first.
    pub fn version(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, version: u64) {
        self.0.store(version, Ordering::Release);
    }
}

// === impl Bound ===

impl Drop for Bound {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept(
    listener: TcpListener,
    port: u16,
    protocol: PortProtocol,
    service: ProxyService,
    server: Arc<HttpServer>,
    config: ConfigRx,
) {
    let mut tls = TlsCache {
        port,
        version: 0,
        acceptor: None,
    };
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, port, "Failed to accept connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let info = ConnInfo {
            peer,
            port,
            tls: protocol == PortProtocol::Https,
        };
        let service = service.clone();
        let server = server.clone();
        if protocol == PortProtocol::Http {
            tokio::spawn(async move { server.serve(tcp, info, service).await });
            continue;
        }
        let Some(acceptor) = tls.acceptor(&config) else {
            continue;
        };
        tokio::spawn(async move {
            let limit = server.params().tls_handshake_timeout;
            match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => server.serve(stream, info, service).await,
                Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                Err(_) => {
                    server.cut_off(Limit::TlsHandshake);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

// === impl TlsCache ===

impl TlsCache {
    fn acceptor(&mut self, config: &ConfigRx) -> Option<TlsAcceptor> {
        let snapshot = config.borrow().clone()?;
        if snapshot.version != self.version {
            self.version = snapshot.version;
            let certificates = snapshot
                .config
                .ports
                .iter()
                .find(|p| p.port == self.port)
                .map(|p| p.certificates.as_slice())
                .unwrap_or_default();
            let (result, errors) = tls::server_config(certificates);
            for error in errors {
                tracing::warn!(%error, port = self.port, "Skipping certificate");
            }
            self.acceptor = match result {
                Ok(config) => Some(TlsAcceptor::from(config)),
                Err(error) => {
                    tracing::error!(%error, port = self.port, "HTTPS listener cannot accept connections");
                    None
                }
            };
        }
        self.acceptor.clone()
    }
}
