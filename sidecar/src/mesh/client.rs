//! The bottom of the request path of a sidecar's outbound side and of a
//! gateway with an identity: sends a request to the endpoint the balancer
//! picked. An endpoint with an expected identity is a
//! meshed pod: the request goes over a pooled HTTP/2 connection inside
//! mTLS ([`super::dial`]), whatever HTTP version the app spoke, with that
//! version in [`super::ORIG_PROTO_HEADER`]. Other endpoints get a plain
//! connection in the app's protocol ([`crate::proxy::client::Client`]).
//! An HTTP/1.1 upgrade (WebSocket) to a meshed endpoint is an extended
//! CONNECT stream on that connection ([`super::upgrade`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::identity::Identity;
use ferry_core::model::{Backend, BackendId, Endpoint};
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tower::Service;

use super::ORIG_PROTO_HEADER;
use super::dial::Dialer;
use super::upgrade;
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::proxy::balance::Selected;
use crate::proxy::client::{Client, tunnel};
use crate::proxy::{BoxFuture, Target};

/// The expected identity of each meshed endpoint of the target a request
/// is for; set on every request by the outbound connection (or the
/// gateway, from its Gateway's view).
#[derive(Clone, Debug, Default)]
pub struct EndpointIdentities(pub Arc<HashMap<SocketAddr, Identity>>);

/// An expected identity that is not a SPIFFE identity: the view carrying
/// it is not applied.
#[derive(Debug, thiserror::Error)]
#[error("endpoint {addr} of {backend} has an invalid identity")]
pub struct BadIdentity {
    /// The endpoint.
    pub addr: SocketAddr,
    /// Its backend.
    pub backend: BackendId,
    /// Cause.
    #[source]
    pub source: ferry_core::identity::IdentityError,
}

/// Sends requests to meshed endpoints over mTLS HTTP/2, to others plainly.
#[derive(Clone, Debug)]
pub struct MeshClient {
    plain: Client,
    pool: Arc<Pool>,
}

type Sender = http2::SendRequest<Body>;

/// Connections by endpoint.
type Connections = HashMap<SocketAddr, Pooled>;

/// One HTTP/2 connection per meshed endpoint and identity, made by the
/// first request that needs it and shared by the rest. A connection
/// unused for `idle_timeout` is not reused, and is dropped (it closes once
/// its last request ends) when another endpoint is dialled, so endpoints
/// that went away do not keep connections. An endpoint now expected to prove another
/// identity (its address reused by another workload) gets a new
/// connection.
#[derive(Debug)]
struct Pool {
    dialer: Dialer,
    idle_timeout: Duration,
    connections: Mutex<Connections>,
}

/// A connection being made or made to an endpoint expected to prove
/// `identity`, and when a request last took it.
#[derive(Debug)]
struct Pooled {
    identity: Identity,
    cell: Arc<OnceCell<Sender>>,
    last_used: Instant,
}

// === impl EndpointIdentities ===

impl EndpointIdentities {
    /// The identities discovery expects of each backend's endpoints (in
    /// the order of the backend's endpoints; `None` for one not meshed),
    /// parsed; endpoints named by DNS are never meshed.
    pub fn parse<'a>(
        backends: impl IntoIterator<Item = (&'a BackendId, &'a Backend, &'a [Option<String>])>,
    ) -> Result<Self, Box<BadIdentity>> {
        let mut identities = HashMap::new();
        for (id, backend, expected) in backends {
            for (endpoint, identity) in backend.endpoints.iter().zip(expected) {
                let (Endpoint::Addr(addr), Some(identity)) = (endpoint, identity) else {
                    continue;
                };
                let parsed = identity.parse::<Identity>().map_err(|source| {
                    Box::new(BadIdentity {
                        addr: *addr,
                        backend: id.clone(),
                        source,
                    })
                })?;
                identities.insert(*addr, parsed);
            }
        }
        Ok(Self(Arc::new(identities)))
    }
}

// === impl MeshClient ===

impl MeshClient {
    /// Meshed endpoints through `dialer`, the others through `plain`;
    /// connections to meshed endpoints unused for `idle_timeout` are
    /// dropped.
    pub fn new(dialer: Dialer, plain: Client, idle_timeout: Duration) -> Self {
        Self {
            plain,
            pool: Arc::new(Pool {
                dialer,
                idle_timeout,
                connections: Mutex::default(),
            }),
        }
    }

    /// A client that sends every request through `plain`: its dialer has
    /// no credentials and records nothing, and it is never used, as long
    /// as requests carry no [`EndpointIdentities`].
    pub fn plain(plain: Client, idle_timeout: Duration) -> Self {
        let (_, no_credentials) = tokio::sync::watch::channel(None);
        let dialer = Dialer::new(no_credentials, Duration::ZERO, Default::default());
        Self::new(dialer, plain, idle_timeout)
    }
}

impl Service<Request<Body>> for MeshClient {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Response<Body>, ProxyError>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let meshed = match (
            req.extensions().get::<Selected>(),
            req.extensions().get::<EndpointIdentities>(),
        ) {
            (Some(selected), Some(identities)) => match &selected.endpoint {
                Endpoint::Addr(addr) if identities.0.contains_key(addr) => {
                    Some((*addr, identities.0.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((addr, identities)) = meshed else {
            return self.plain.call(req);
        };
        let (Some(target), Some(selected)) = (
            req.extensions_mut().remove::<Target>(),
            req.extensions_mut().remove::<Selected>(),
        ) else {
            return self.plain.call(req);
        };
        let (backend, endpoint) = (target.id, selected.endpoint);
        let app_version = req.version();
        let orig_proto = if app_version == Version::HTTP_2 {
            HeaderValue::from_static("HTTP/2")
        } else {
            HeaderValue::from_static("HTTP/1.1")
        };
        req.headers_mut().insert(ORIG_PROTO_HEADER, orig_proto);
        *req.uri_mut() = mesh_uri(&req, addr);
        *req.version_mut() = Version::HTTP_2;
        let upgrade = upgrade::requested(&req).map(|protocol| {
            let client_side = hyper::upgrade::on(&mut req);
            upgrade::into_connect(&mut req, protocol.clone());
            (protocol, client_side)
        });
        let pool = self.pool.clone();
        Box::pin(async move {
            let identity = &identities[&addr];
            let mut sender =
                pool.sender(addr, identity)
                    .await
                    .map_err(|source| ProxyError::Connect {
                        backend: backend.clone(),
                        endpoint: endpoint.clone(),
                        source,
                    })?;
            let result = async {
                sender.ready().await?;
                sender.send_request(req).await
            }
            .await;
            let mut rsp = result.map_err(|error| {
                pool.forget(addr, identity);
                ProxyError::Upstream {
                    backend,
                    endpoint,
                    source: Box::new(error),
                }
            })?;
            *rsp.version_mut() = app_version;
            if let Some((protocol, client_side)) = upgrade
                && rsp.status().is_success()
            {
                let stream = hyper::upgrade::on(&mut rsp);
                upgrade::into_switching_response(&mut rsp, &protocol);
                tokio::spawn(tunnel(client_side, stream));
            }
            Ok(rsp.map(body::boxed))
        })
    }
}

/// The request's URI as sent between proxies: absolute, with the
/// authority the app used (so the server proxy and app see the same host),
/// else the endpoint's address.
fn mesh_uri(req: &Request<Body>, addr: SocketAddr) -> Uri {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .or_else(|| {
            let host = req.headers().get(header::HOST)?.to_str().ok()?;
            Authority::try_from(host).ok()
        })
        .or_else(|| Authority::try_from(addr.to_string()).ok());
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = authority;
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).unwrap_or_else(|_| req.uri().clone())
}

// === impl Pool ===

impl Pool {
    /// The connection to `addr`, dialled when there is none (or it closed).
    async fn sender(
        &self,
        addr: SocketAddr,
        identity: &Identity,
    ) -> Result<Sender, crate::body::BoxError> {
        let cell = {
            let now = Instant::now();
            let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            if !connections.contains_key(&addr) {
                evict_idle(&mut connections, now, self.idle_timeout);
            }
            let pooled = connections.entry(addr).or_insert_with(|| Pooled {
                identity: identity.clone(),
                cell: Arc::default(),
                last_used: now,
            });
            if !pooled.usable(identity, now, self.idle_timeout) {
                pooled.identity = identity.clone();
                pooled.cell = Arc::default();
            }
            pooled.last_used = now;
            pooled.cell.clone()
        };
        let sender = cell
            .get_or_try_init(|| async {
                let tls = self.dialer.http(addr, identity).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .handshake(TokioIo::new(tls))
                    .await?;
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%addr, %error, "Mesh connection closed with an error");
                    }
                });
                Ok::<_, crate::body::BoxError>(sender)
            })
            .await?;
        Ok(sender.clone())
    }

    /// Drops the pooled connection to `addr` after a failed request, so
    /// the next one dials anew.
    fn forget(&self, addr: SocketAddr, identity: &Identity) {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if connections
            .get(&addr)
            .is_some_and(|p| p.identity == *identity && p.cell.get().is_none_or(|s| s.is_closed()))
        {
            connections.remove(&addr);
        }
    }
}

// === impl Pooled ===

impl Pooled {
    /// Whether a request for an endpoint expected to prove `identity` may
    /// take this connection at `now`: it proved that identity, is open, and
    /// was used within `idle`. A connection unused for longer is replaced
    /// rather than reused, so the client always lets go of it before the
    /// server's idle timeout (`http2_idle_timeout`, longer) sends a GOAWAY
    /// that a request could race.
    fn usable(&self, identity: &Identity, now: Instant, idle: Duration) -> bool {
        self.identity == *identity
            && now.duration_since(self.last_used) < idle
            && !self.cell.get().is_some_and(|s| s.is_closed())
    }
}

/// Drops the connections unused for `idle` at `now`, and closed ones.
fn evict_idle(connections: &mut Connections, now: Instant, idle: Duration) {
    connections.retain(|_, p| {
        now.duration_since(p.last_used) < idle && !p.cell.get().is_some_and(|s| s.is_closed())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_unused_for_the_idle_timeout_is_not_reused() {
        let id = |sa: &str| Identity::new("cluster.local", "shop", sa).unwrap();
        let pooled = Pooled {
            identity: id("a"),
            cell: Arc::default(),
            last_used: Instant::now(),
        };
        let idle = Duration::from_secs(60);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(pooled.usable(&id("a"), Instant::now(), idle));
        assert!(!pooled.usable(&id("b"), Instant::now(), idle));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!pooled.usable(&id("a"), Instant::now(), idle));
    }

    #[tokio::test(start_paused = true)]
    async fn connections_unused_for_the_idle_timeout_are_dropped() {
        let id = |sa: &str| Identity::new("cluster.local", "shop", sa).unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mut connections = Connections::new();
        let pooled = |sa: &str| Pooled {
            identity: id(sa),
            cell: Arc::default(),
            last_used: Instant::now(),
        };
        connections.insert(addr("10.1.0.1:80"), pooled("a"));
        tokio::time::advance(Duration::from_secs(40)).await;
        connections.insert(addr("10.1.0.2:80"), pooled("b"));
        tokio::time::advance(Duration::from_secs(30)).await;
        evict_idle(&mut connections, Instant::now(), Duration::from_secs(60));
        let kept: Vec<_> = connections.keys().copied().collect();
        assert_eq!(kept, [addr("10.1.0.2:80")]);
    }
}
