//! The discovery server: answers proxies' watches from the subscribed
//! [`Views`].
//!
//! A stream sends the current view as soon as the index has computed it,
//! then every later version; views that did not change are never sent.
//!
//! On the TLS port (`--tls-addr`) a caller presenting a client certificate
//! is authenticated by it and may watch only what its identity may see
//! ([`authz`]); with `--require-client-identity` that port refuses
//! watches without a certificate. Refusals are `PERMISSION_DENIED` naming
//! the reason, counted in `ferry_control_discovery_denied`. The plaintext
//! port (`--discovery-addr`) authenticates nobody and trusts every
//! request: it is for standalone and development installs only.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use ferry_api::pb;
use ferry_api::pb::discovery_server::{Discovery, DiscoveryServer};
use ferry_core::objects::NsName;
use futures_util::{Stream, StreamExt as _};
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

pub mod authz;

use self::authz::{Transport, Watch};
use crate::ca::tls::TlsPeer;
use crate::metrics::Metrics;
use crate::views::{GatewayView, InboundKey, OutboundKey, Versioned, ViewRx, Views};

/// The gRPC service.
#[derive(Clone, Debug)]
pub struct DiscoveryService {
    views: Arc<Views>,
    metrics: Metrics,
    require_identity: bool,
}

type Updates<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Decrements the open-stream gauge when a stream is dropped.
struct StreamGuard {
    metrics: Metrics,
    watch: &'static str,
}

// === impl DiscoveryService ===

impl DiscoveryService {
    /// A service answering from `views`.
    pub fn new(views: Arc<Views>, metrics: Metrics) -> Self {
        Self {
            views,
            metrics,
            require_identity: false,
        }
    }

    /// With `require`, watches over TLS without a client certificate are
    /// refused (the plaintext port is unaffected).
    pub fn require_client_identity(mut self, require: bool) -> Self {
        self.require_identity = require;
        self
    }

    /// Refuses `watch` when the caller of `request` may not open it.
    fn authorize<T>(&self, request: &Request<T>, watch: Watch<'_>) -> Result<(), Status> {
        let tls = request.extensions().get::<TlsPeer>();
        let peer = tls.map(|t| t.remote_addr).or_else(|| request.remote_addr());
        let transport = match tls {
            None => Transport::Plaintext,
            Some(peer) => Transport::Tls(peer.certificates.as_deref().map(authz::peer_identity)),
        };
        authz::authorize(&transport, self.require_identity, watch).map_err(|denied| {
            self.metrics.discovery_denied(denied.as_str());
            tracing::debug!(?peer, %denied, "Discovery watch refused");
            Status::permission_denied(denied.to_string())
        })
    }

    /// The tonic server wrapping this service.
    pub fn into_server(self) -> DiscoveryServer<Self> {
        DiscoveryServer::new(self)
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .add_service(self.into_server())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    type WatchGatewayStream = Updates<pb::GatewayUpdate>;
    type WatchOutboundStream = Updates<pb::OutboundUpdate>;
    type WatchInboundStream = Updates<pb::InboundUpdate>;

    async fn watch_gateway(
        &self,
        request: Request<pb::GatewayWatch>,
    ) -> Result<Response<Self::WatchGatewayStream>, Status> {
        let peer: Option<SocketAddr> = request.remote_addr();
        let namespace = &request.get_ref().namespace;
        if namespace.is_empty() || request.get_ref().name.is_empty() {
            return Err(Status::invalid_argument("namespace and name are required"));
        }
        self.authorize(&request, Watch::Gateway { namespace })?;
        let watch = request.into_inner();
        let gateway = NsName::new(watch.namespace, watch.name);
        tracing::debug!(%gateway, ?peer, "Gateway watch opened");
        let rx = self.views.watch_gateway(&gateway);
        let guard = StreamGuard::new(self.metrics.clone(), "gateway");
        // The version this subscriber last received: a delta from it, or
        // the full view when it missed one.
        let mut last: Option<u64> = None;
        let updates = WatchStream::new(rx)
            .filter_map(move |view| {
                let _guard = &guard;
                let updates = view.map(|view| {
                    let updates = gateway_updates(&view, last);
                    last = Some(view.version);
                    futures_util::stream::iter(updates.into_iter().map(Ok))
                });
                std::future::ready(updates)
            })
            .flatten();
        Ok(Response::new(Box::pin(updates)))
    }

    async fn watch_outbound(
        &self,
        request: Request<pb::OutboundWatch>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let source_namespace = &request.get_ref().source_namespace;
        self.authorize(&request, Watch::Outbound { source_namespace })?;
        let watch = request.into_inner();
        let target: SocketAddr = watch
            .target
            .parse()
            .map_err(|_| Status::invalid_argument("target must be IP:port"))?;
        let key = OutboundKey {
            target,
            namespace: watch.source_namespace,
        };
        let rx = self.views.watch_outbound(&key);
        Ok(Response::new(versioned_updates(
            rx,
            StreamGuard::new(self.metrics.clone(), "outbound"),
            |version, view: &pb::OutboundUpdate| pb::OutboundUpdate {
                version,
                ..view.clone()
            },
        )))
    }

    async fn watch_inbound(
        &self,
        request: Request<pb::InboundWatch>,
    ) -> Result<Response<Self::WatchInboundStream>, Status> {
        let watch = request.get_ref();
        let pod_ip = watch
            .pod_ip
            .parse()
            .map_err(|_| Status::invalid_argument("pod_ip must be an IP address"))?;
        let owner = self.views.pod_owner(&pod_ip);
        let pod = owner.as_ref().map(|(ns, sa)| (ns.as_str(), sa.as_str()));
        self.authorize(&request, Watch::Inbound { pod_ip, pod })?;
        let watch = request.into_inner();
        let port = u16::try_from(watch.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Status::invalid_argument("port must be 1-65535"))?;
        let rx = self.views.watch_inbound(&InboundKey { pod_ip, port });
        Ok(Response::new(versioned_updates(
            rx,
            StreamGuard::new(self.metrics.clone(), "inbound"),
            |version, view: &pb::InboundUpdate| pb::InboundUpdate {
                version,
                ..view.clone()
            },
        )))
    }
}

/// A stream of every version of a view, as the message `with_version`
/// makes of it; `guard` counts the stream while it is open.
fn versioned_updates<T, M>(
    rx: ViewRx<T>,
    guard: StreamGuard,
    with_version: fn(u64, &T) -> M,
) -> Updates<M>
where
    T: Send + Sync + 'static,
    M: Send + 'static,
{
    let updates = WatchStream::new(rx).filter_map(move |view| {
        let _guard = &guard;
        std::future::ready(view.map(|view| Ok(with_version(view.version, &view.value))))
    });
    Box::pin(updates)
}

/// Most virtual hosts and backends in one message of a full view: a
/// Gateway with many routes is sent in parts of a few hundred KiB, so
/// neither side keeps a buffer as large as the whole view per stream.
const MAX_ITEMS_PER_MESSAGE: usize = 500;

/// The messages that bring a subscriber at version `last` to `view`: a
/// delta when it has the previous version, else the full view in parts.
fn gateway_updates(view: &Versioned<GatewayView>, last: Option<u64>) -> Vec<pb::GatewayUpdate> {
    use pb::gateway_update::View;
    let message = |update, base_version, partial| pb::GatewayUpdate {
        version: view.version,
        view: Some(update),
        status_json: if partial {
            String::new()
        } else {
            view.value.status_json.clone()
        },
        base_version,
        partial,
    };
    match (&view.delta, last, &view.value.config) {
        (Some((base, delta)), Some(last), _) if *base == last => {
            vec![message(View::Delta((**delta).clone()), *base, false)]
        }
        (_, _, None) => vec![message(View::Absent(pb::Empty {}), 0, false)],
        (_, _, Some(config)) => {
            let (first, parts) = ferry_api::delta::split(config, MAX_ITEMS_PER_MESSAGE);
            let count = parts.len();
            std::iter::once(message(View::Full(first), 0, count > 0))
                .chain(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, part)| message(View::Delta(part), view.version, i + 1 < count)),
                )
                .collect()
        }
    }
}

// === impl StreamGuard ===

impl StreamGuard {
    fn new(metrics: Metrics, watch: &'static str) -> Self {
        metrics.stream(watch, 1);
        Self { metrics, watch }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics.stream(self.watch, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::gateway_update::View;

    fn view(ports: &[u32]) -> GatewayView {
        GatewayView {
            config: Some(Arc::new(pb::ProxyConfig {
                ports: ports
                    .iter()
                    .map(|&port| pb::Port {
                        port,
                        ..pb::Port::default()
                    })
                    .collect(),
                backends: Vec::new(),
            })),
            status_json: String::new(),
        }
    }

    #[test]
    fn up_to_date_subscribers_get_deltas_others_the_full_view() {
        let views = Views::new();
        let id = NsName::new("shop", "web");
        let rx = views.watch_gateway(&id);
        assert!(views.publish_gateway(&id, view(&[80])));
        let first = rx.borrow().clone().unwrap();
        assert!(
            !views.publish_gateway(&id, view(&[80])),
            "unchanged views are not sent"
        );
        assert!(views.publish_gateway(&id, view(&[80, 443])));
        let second = rx.borrow().clone().unwrap();

        let update = gateway_updates(&second, Some(first.version)).remove(0);
        assert_eq!(update.base_version, first.version);
        let Some(View::Delta(delta)) = update.view else {
            panic!("expected a delta: {update:?}");
        };
        assert_eq!(delta.ports.len(), 1);
        assert_eq!(delta.ports[0].port, 443);
        for last in [None, Some(first.version - 1)] {
            let update = gateway_updates(&second, last).remove(0);
            assert!(matches!(update.view, Some(View::Full(_))), "{update:?}");
        }
        views.publish_gateway(
            &id,
            GatewayView {
                config: None,
                status_json: String::new(),
            },
        );
        let gone = rx.borrow().clone().unwrap();
        let update = gateway_updates(&gone, Some(second.version)).remove(0);
        assert!(matches!(update.view, Some(View::Absent(_))));
    }
}
