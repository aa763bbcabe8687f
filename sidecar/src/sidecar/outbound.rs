//! The outbound side of sidecar mode: what happens to a connection the app
//! opens.
//!
//! 1. Its original destination is the target. Without discovery, or when
//!    discovery does not answer in time, or says the target is not a mesh
//!    Service, the bytes go to it untouched.
//! 2. A mesh Service's connection is HTTP when its port's `appProtocol`
//!    says so (h2c, WebSocket), opaque when it says `tcp` or the port is in
//!    `FERRY_OPAQUE_PORTS`, else what [`super::detect`] finds.
//! 3. HTTP is served with hyper and routed by the target's routes through
//!    [`super::stack::sidecar_stack`], down to the endpoint over mTLS HTTP/2
//!    ([`crate::mesh::client`]).
//! 4. Opaque TCP goes to one endpoint of the Service (over mTLS with an
//!    [`crate::mesh::OpaqueHeader`] when it is meshed, plain otherwise).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::model::{BackendProtocol, Endpoint};
use http::Request;
use prometheus_client::registry::Registry;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower::util::BoxCloneService;

use super::detect::{Detected, Prefixed, detect};
use super::forward::{Direction, TcpLabels, TcpMetrics, redirected_target, splice};
use super::settings::SidecarSettings;
use super::stack::{SharedLayers, sidecar_stack};
use super::targets::{ServiceView, Target, TargetState, Targets};
use crate::body::Body;
use crate::identity::CredentialsRx;
use crate::mesh::client::MeshClient;
use crate::mesh::dial::{DialMetrics, Dialer};
use crate::metrics::Metrics;
use crate::proxy::ConnInfo;
use crate::proxy::backend::{Pick, pick};
use crate::proxy::balance::Balancer;
use crate::proxy::client::{Client, ClientParams};
use crate::proxy::retry::{BudgetParams, Budgets};
use crate::server::{HttpServer, ServerMetrics};

/// Everything the outbound side needs, shared by its connections.
#[derive(Clone)]
pub struct Outbound {
    /// Subscribed targets; `None` without discovery (all passthrough).
    pub targets: Option<Targets>,
    /// How long a first connection waits for its target's first view.
    pub first_view_wait: Duration,
    /// Ports never detected: opaque TCP.
    pub opaque_ports: Arc<BTreeSet<u16>>,
    /// Limit of one plain connect.
    pub connect_timeout: Duration,
    /// The layers every target's stack shares.
    pub layers: SharedLayers,
    /// mTLS to meshed endpoints, for opaque TCP.
    pub dialer: Dialer,
    /// Connection metrics.
    pub tcp: TcpMetrics,
    /// The HTTP server of detected connections, whose limits also bound
    /// detection (`detect_timeout`).
    pub server: Arc<HttpServer>,
}

/// How a connection to a mesh Service is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handling {
    Http,
    Opaque,
}

// === impl Outbound ===

impl Outbound {
    /// The outbound side described by `settings`, dialling meshed
    /// endpoints with `credentials`; its metrics go to `registry`.
    pub fn new(
        settings: &SidecarSettings,
        credentials: CredentialsRx,
        tcp: TcpMetrics,
        registry: &mut Registry,
    ) -> Self {
        let client = ClientParams {
            connect_timeout: settings.connect_timeout,
            ..ClientParams::default()
        };
        let discovery = crate::identity::discovery_options(credentials.clone());
        let dialer = Dialer::new(
            credentials,
            settings.connect_timeout,
            DialMetrics::register(registry),
        );
        let layers = SharedLayers {
            metrics: Metrics::register(registry),
            budgets: Budgets::new(BudgetParams::default()),
            balancer: Balancer::new(Duration::from_secs(5)),
            client: MeshClient::new(dialer.clone(), Client::new(client), client.idle_timeout),
        };
        let (targets, first_view_wait) = match &settings.discovery {
            // The address was checked with the settings.
            Some(d) => match Targets::discovery_with(&d.addr, d.namespace.clone(), &discovery) {
                Ok(subscribe) => (
                    Some(Targets::new(subscribe, d.max_targets, d.idle_after)),
                    d.first_view_wait,
                ),
                Err(error) => {
                    tracing::error!(%error, "Outbound discovery is off: every connection is forwarded untouched");
                    (None, Duration::ZERO)
                }
            },
            None => (None, Duration::ZERO),
        };
        Self {
            targets,
            first_view_wait,
            opaque_ports: Arc::new(settings.opaque_ports.clone()),
            connect_timeout: settings.connect_timeout,
            layers,
            dialer,
            tcp,
            server: Arc::new(HttpServer::new(
                settings.server,
                ServerMetrics::register(registry),
            )),
        }
    }

    /// Accepts and handles redirected connections until the task is
    /// dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept outbound connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let outbound = self.clone();
            tokio::spawn(async move {
                let Some((orig, to)) =
                    redirected_target(&tcp, peer, Direction::Outbound, &outbound.tcp)
                else {
                    return;
                };
                outbound.handle(tcp, peer, orig, to).await;
            });
        }
    }

    /// Handles one connection from `peer` whose original destination is
    /// `orig`, forwarded untouched to `to` when it is not meshed.
    pub async fn handle<I>(&self, mut io: I, peer: SocketAddr, orig: SocketAddr, to: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let labels = TcpLabels {
            direction: Direction::Outbound,
            target_addr: orig.to_string(),
        };
        let Some(targets) = &self.targets else {
            return splice(io, &labels, to, self.connect_timeout, &self.tcp).await;
        };
        let target = targets.get(orig);
        let TargetState::Service(view) = target.first_state(self.first_view_wait).await else {
            return splice(io, &labels, to, self.connect_timeout, &self.tcp).await;
        };
        let empty = bytes::Bytes::new();
        let (handling, prefix) = if view.opaque || self.opaque_ports.contains(&orig.port()) {
            (Handling::Opaque, empty)
        } else if view.protocol_hint != BackendProtocol::Http1 {
            // `appProtocol` says HTTP (h2c, WebSocket): no detection.
            (Handling::Http, empty)
        } else {
            match detect(&mut io, self.server.params().detect_timeout).await {
                Ok((Detected::Http1 | Detected::Http2, prefix)) => (Handling::Http, prefix),
                Ok((Detected::Opaque, prefix)) => (Handling::Opaque, prefix),
                Err(error) => {
                    tracing::debug!(%peer, %orig, %error, "Outbound connection failed during detection");
                    return;
                }
            }
        };
        let io = Prefixed::new(prefix, io);
        tracing::debug!(%peer, %orig, service = %view.service, ?handling, "Outbound connection to a mesh Service");
        match handling {
            Handling::Http => self.serve_http(io, peer, orig, target).await,
            Handling::Opaque => self.opaque(io, &labels, &view, orig, to).await,
        }
    }

    async fn serve_http<I>(&self, io: I, peer: SocketAddr, orig: SocketAddr, target: Arc<Target>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let layers = self.layers.clone();
        let stack = target.stack(|config| sidecar_stack(config, layers));
        // Every request carries the identities of the target's endpoints
        // as they are when it arrives; the closure keeps the target (and
        // its subscription) alive while the connection is open.
        let service = BoxCloneService::new(stack.map_request(move |mut req: Request<Body>| {
            if let TargetState::Service(view) = target.state() {
                req.extensions_mut().insert(view.identities.clone());
            }
            req
        }));
        let info = ConnInfo {
            peer,
            port: orig.port(),
            tls: false,
        };
        self.server.serve(io, info, service).await;
    }

    /// Opaque TCP to the Service: one of its endpoints, over mTLS when
    /// it is meshed; to the original destination when it has none.
    async fn opaque<I>(
        &self,
        mut io: I,
        labels: &TcpLabels,
        view: &ServiceView,
        orig: SocketAddr,
        to: SocketAddr,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(endpoint) = opaque_endpoint(view) else {
            return splice(io, labels, to, self.connect_timeout, &self.tcp).await;
        };
        let Some(identity) = view.identities.0.get(&endpoint) else {
            return splice(io, labels, endpoint, self.connect_timeout, &self.tcp).await;
        };
        let mut upstream = match self.dialer.opaque(endpoint, identity, orig.port()).await {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::warn!(%orig, %endpoint, %error, "Failed to open opaque mTLS connection");
                return;
            }
        };
        match tokio::io::copy_bidirectional(&mut io, &mut upstream).await {
            Ok((up, down)) => {
                tracing::trace!(%orig, %endpoint, up, down, "Opaque mTLS connection closed")
            }
            Err(error) => {
                tracing::debug!(%orig, %endpoint, %error, "Opaque mTLS connection failed")
            }
        }
    }
}

/// The endpoint an opaque connection to the Service goes to: one of the
/// Service's own endpoints, else one of the first route entry's backends
/// picked by weight; `None` when there is no address to go to.
fn opaque_endpoint(view: &ServiceView) -> Option<SocketAddr> {
    let mut rng = rand::rng();
    let backend = match view.config.backends.get(&view.service) {
        Some(backend) => backend,
        None => {
            let action = &view
                .config
                .ports
                .first()?
                .routes
                .virtual_hosts
                .first()?
                .entries
                .first()?
                .action;
            let Pick::Index(index) = pick(&action.backends, rng.random::<f64>()) else {
                return None;
            };
            let id = action.backends[index].target.as_ref()?;
            view.config.backends.get(id)?
        }
    };
    let addrs: Vec<SocketAddr> = backend
        .endpoints
        .iter()
        .filter_map(|e| match e {
            Endpoint::Addr(addr) => Some(*addr),
            Endpoint::Dns { .. } => None,
        })
        .collect();
    (!addrs.is_empty()).then(|| addrs[rng.random_range(0..addrs.len())])
}
#[cfg(test)]
mod tests;
