//! Listeners: binds the ports of the config in force, rebinding as ports
//! come and go. Connections live on their own tasks, so a config change
//! never drops them; each request routes with the config current when it
//! arrives.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use ferry_core::model::PortProtocol;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use crate::body::{self, Body};
use crate::config::ConfigRx;
use crate::proxy::{ConnInfo, ProxyFuture, ProxyService};
use crate::tls;

/// Limits applied to client connections.
#[derive(Clone, Copy, Debug)]
pub struct ServerParams {
    /// Time allowed to read a request's headers (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Largest request head accepted, in bytes.
    pub max_header_bytes: usize,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
}

/// Serves the ports of the config in force on one address.
pub struct Listeners {
    bind: IpAddr,
    service: ProxyService,
    http: Arc<auto::Builder<TokioExecutor>>,
    params: ServerParams,
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

/// One client connection's service: the proxy's service, called in place
/// rather than cloned for every request, with the connection's
/// [`ConnInfo`] added to each request.
struct Connection {
    service: RefCell<ProxyService>,
    info: ConnInfo,
}

/// The TLS acceptor of a port, rebuilt when the config changes.
struct TlsCache {
    port: u16,
    version: u64,
    acceptor: Option<TlsAcceptor>,
}

// === impl ServerParams ===

impl Default for ServerParams {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

// === impl Listeners ===

impl Listeners {
    /// Listeners on `bind` serving `service`.
    pub fn new(
        bind: IpAddr,
        service: ProxyService,
        params: ServerParams,
        config: ConfigRx,
    ) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(params.header_read_timeout)
            .max_buf_size(params.max_header_bytes.max(8192));
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(params.max_header_bytes).unwrap_or(u32::MAX));
        Self {
            bind,
            service,
            http: Arc::new(http),
            params,
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
            self.http.clone(),
            self.params,
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
    http: Arc<auto::Builder<TokioExecutor>>,
    params: ServerParams,
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
        let http = http.clone();
        if protocol == PortProtocol::Http {
            tokio::spawn(async move { serve(tcp, info, service, &http).await });
            continue;
        }
        let Some(acceptor) = tls.acceptor(&config) else {
            continue;
        };
        let handshake = params.tls_handshake_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve(stream, info, service, &http).await,
                Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

pub(crate) async fn serve<I>(
    io: I,
    info: ConnInfo,
    service: ProxyService,
    http: &auto::Builder<TokioExecutor>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Connection {
        service: RefCell::new(service),
        info,
    };
    let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(error) = conn.await {
        tracing::debug!(%error, peer = %info.peer, "Connection closed with error");
    }
}

// === impl Connection ===

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ProxyFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(body::boxed);
        req.extensions_mut().insert(self.info);
        let mut service = self.service.borrow_mut();
        // The gateway's stack is always ready; any other goes through a
        // clone that is polled ready as a future.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => service.call(req),
            _ => Box::pin(service.clone().oneshot(req)),
        }
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
