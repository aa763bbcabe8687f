//! A sidecar's watch of one outbound target, reconnecting like
//! [`super::watch_gateway`]. A sidecar watches many targets: an
//! [`OutboundClient`] carries all of their watches on one connection.

use std::time::Duration;

use ferry_core::model::{Backend, BackendId, BackendProtocol, RouteTable};
use futures_util::Stream;
use tonic::transport::Channel;

use super::{
    ClientError, ConnectOptions, MAX_BACKOFF, MAX_MESSAGE, MIN_BACKOFF, connect, endpoint,
};
use crate::convert::ConvertError;
use crate::pb;
use crate::pb::discovery_client::DiscoveryClient;

/// What a call to one target goes through.
#[derive(Debug)]
pub enum OutboundConfig {
    /// Not a mesh Service: forward to the original destination untouched.
    Passthrough {
        /// The server's version of the view.
        version: u64,
    },
    /// A mesh Service port.
    Service {
        /// The server's version of the view.
        version: u64,
        /// The Service port called.
        service: BackendId,
        /// Its protocol, from `appProtocol`.
        protocol_hint: BackendProtocol,
        /// Whether `appProtocol` marks the port opaque TCP: no detection.
        opaque: bool,
        /// The routes that apply to this caller; empty when none does
        /// (the call goes to the Service as Kubernetes routes it).
        routes: RouteTable,
        /// Their backends, with each endpoint's expected identity by
        /// address.
        backends: Vec<(BackendId, Backend, Vec<Option<String>>)>,
    },
}

/// Watches of outbound targets sharing one connection to the server,
/// made on first use and remade by itself after failures.
#[derive(Clone, Debug)]
pub struct OutboundClient {
    addr: String,
    client: DiscoveryClient<Channel>,
}

// === impl OutboundClient ===

impl OutboundClient {
    /// A client of the server at `addr` (`host:port` or a URI); connects
    /// on the first watch, in plaintext.
    pub fn new(addr: impl Into<String>) -> Result<Self, ClientError> {
        Self::with_options(addr, &ConnectOptions::default())
    }

    /// Like [`Self::new`], connecting with `options` (TLS for `https://`,
    /// with the config of the moment at every reconnection).
    pub fn with_options(
        addr: impl Into<String>,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError> {
        let addr = addr.into();
        let endpoint = endpoint(&addr)?;
        let channel = match options.tls_for(&addr)? {
            Some(configs) => {
                crate::identity::tls::connect_lazy(&endpoint, configs).map_err(|source| {
                    ClientError::Tls {
                        addr: addr.clone(),
                        source: Some(source),
                    }
                })?
            }
            None => endpoint.connect_lazy(),
        };
        let client = DiscoveryClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        Ok(Self { addr, client })
    }

    /// Watches `target` (`IP:port`) as called from `namespace`, forever,
    /// like [`watch_outbound`].
    pub fn watch(
        &self,
        target: impl Into<String>,
        namespace: impl Into<String>,
    ) -> impl Stream<Item = Result<OutboundConfig, ClientError>> + Send + 'static {
        watch(
            self.addr.clone(),
            Some(self.client.clone()),
            target.into(),
            namespace.into(),
            ConnectOptions::default(),
        )
    }
}

/// Watches `target` (`IP:port`) as called from `namespace`, forever: an
/// `Err` item for every failure, then a reconnection with backoff. Each
/// call has its own connection; see [`OutboundClient`] for many targets.
pub fn watch_outbound(
    addr: impl Into<String>,
    target: impl Into<String>,
    namespace: impl Into<String>,
) -> impl Stream<Item = Result<OutboundConfig, ClientError>> + Send + 'static {
    watch_outbound_with(addr, target, namespace, ConnectOptions::default())
}

/// Like [`watch_outbound`], connecting with `options` (TLS for `https://`).
pub fn watch_outbound_with(
    addr: impl Into<String>,
    target: impl Into<String>,
    namespace: impl Into<String>,
    options: ConnectOptions,
) -> impl Stream<Item = Result<OutboundConfig, ClientError>> + Send + 'static {
    watch(addr.into(), None, target.into(), namespace.into(), options)
}

/// The watch, over `shared` when given, else over a connection of its own
/// to `addr` made with `options`.
fn watch(
    addr: String,
    shared: Option<DiscoveryClient<Channel>>,
    target: String,
    namespace: String,
    options: ConnectOptions,
) -> impl Stream<Item = Result<OutboundConfig, ClientError>> + Send + 'static {
    let request = pb::OutboundWatch {
        target,
        source_namespace: namespace,
    };
    let state = (addr, request, None, MIN_BACKOFF, None::<Duration>);
    futures_util::stream::unfold(state, move |mut s| {
        let shared = shared.clone();
        let options = options.clone();
        async move {
            let (addr, request, stream, backoff, delay) = &mut s;
            if let Some(delay) = delay.take() {
                tokio::time::sleep(delay).await;
            }
            let what = format!("outbound {}", request.target);
            if stream.is_none() {
                let client = match shared {
                    Some(client) => Ok(client),
                    None => connect(addr, &options).await,
                };
                let opened = match client {
                    Ok(mut client) => {
                        client
                            .watch_outbound(request.clone())
                            .await
                            .map_err(|status| ClientError::Stream {
                                what: what.clone(),
                                addr: addr.clone(),
                                status: Box::new(status),
                            })
                    }
                    Err(error) => Err(error),
                };
                match opened {
                    Ok(response) => *stream = Some(response.into_inner()),
                    Err(error) => {
                        *delay = Some(*backoff);
                        *backoff = (*backoff * 2).min(MAX_BACKOFF);
                        return Some((Err(error), s));
                    }
                }
            }
            let message = match stream.as_mut() {
                Some(stream) => stream.message().await,
                None => Ok(None),
            };
            let item = match message {
                Ok(Some(update)) => {
                    *backoff = MIN_BACKOFF;
                    convert(update).map_err(|source| ClientError::Convert {
                        what,
                        version: 0,
                        source,
                    })
                }
                Ok(None) | Err(_) => {
                    let status = message.err().unwrap_or_else(|| {
                        tonic::Status::unavailable("the server ended the stream")
                    });
                    *stream = None;
                    *delay = Some(Duration::ZERO);
                    Err(ClientError::Stream {
                        what,
                        addr: addr.clone(),
                        status: Box::new(status),
                    })
                }
            };
            Some((item, s))
        }
    })
}

fn convert(update: pb::OutboundUpdate) -> Result<OutboundConfig, ConvertError> {
    use pb::outbound_update::Target;
    let version = update.version;
    let Some(Target::Service(service)) = update.target else {
        return Ok(OutboundConfig::Passthrough { version });
    };
    // Reuse the ProxyConfig conversion for the routes and backends.
    let mut identities = crate::convert::expected_identities(&service.backends)?;
    let config = ferry_core::model::ProxyConfig::try_from(pb::ProxyConfig {
        ports: vec![pb::Port {
            port: service.service.as_ref().map_or(0, |s| s.port),
            virtual_hosts: service.virtual_hosts,
            ..pb::Port::default()
        }],
        backends: service.backends,
    })?;
    let service_id = service.service.unwrap_or_default();
    let service_id = BackendId {
        namespace: service_id.namespace,
        name: service_id.name,
        port: u16::try_from(service_id.port).unwrap_or(0),
    };
    let opaque = service.opaque;
    let protocol_hint = match pb::BackendProtocol::try_from(service.protocol_hint) {
        Ok(pb::BackendProtocol::H2c) => BackendProtocol::H2c,
        Ok(pb::BackendProtocol::Websocket) => BackendProtocol::WebSocket,
        _ => BackendProtocol::Http1,
    };
    let routes = config
        .ports
        .into_iter()
        .next()
        .map(|p| p.routes)
        .unwrap_or_default();
    let backends = config
        .backends
        .into_iter()
        .map(|(id, backend)| {
            let ids = identities.remove(&id).unwrap_or_default();
            (id, backend, ids)
        })
        .collect();
    Ok(OutboundConfig::Service {
        version,
        service: service_id,
        protocol_hint,
        opaque,
        routes,
        backends,
    })
}
