//! The bottom of the path: sends a request to the selected endpoint over
//! pooled keep-alive connections (HTTP/1.1, or h2c for backends that speak
//! it) and, for an accepted upgrade, splices client and backend together.
//! Endpoints named by DNS are resolved by [`dns`] (hickory-resolver).

mod dns;
mod http1;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::model::{BackendProtocol, Endpoint};
use futures_util::future::Either;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::{self, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::Service;

use self::dns::Resolver;
pub use self::http1::SendError;
use super::hygiene::is_upgrade;
use super::{BoxFuture, Target, balance::Selected};
use crate::body::{self, Body};
use crate::error::ProxyError;

/// How connections to endpoints are made and kept.
#[derive(Clone, Copy, Debug)]
pub struct ClientParams {
    /// Limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
}

/// Pools of connections to endpoints, one per protocol: HTTP/1.1 (also
/// for WebSocket backends) in [`http1`], h2c in hyper-util's client, which
/// multiplexes requests over one connection.
#[derive(Clone, Debug)]
pub struct Client {
    pools: Arc<Pools>,
}

#[derive(Debug)]
struct Pools {
    http1: Arc<http1::Pool>,
    h2c: legacy::Client<HttpConnector<Resolver>, Body>,
}

// === impl ClientParams ===

impl Default for ClientParams {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

// === impl Client ===

impl Client {
    /// Pools configured by `params`.
    pub fn new(params: ClientParams) -> Self {
        let resolver = Resolver::from_system();
        let mut connector = HttpConnector::new_with_resolver(resolver.clone());
        connector.set_connect_timeout(Some(params.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(params.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let h2c = builder.http2_only(true).build(connector);
        let http1 = Arc::new(http1::Pool::new(params, resolver));
        Self {
            pools: Arc::new(Pools { http1, h2c }),
        }
    }

    /// Sends `req` to `endpoint` over the HTTP/1.1 pool. When the endpoint
    /// accepts an upgrade the request asked for, the request's side of it
    /// (the calling connection, or a stream carrying it) is spliced to the
    /// endpoint's.
    pub fn send_http1(
        &self,
        endpoint: Endpoint,
        mut req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, SendError>> + Send + 'static {
        *req.version_mut() = Version::HTTP_11;
        let client_upgrade: Option<OnUpgrade> =
            is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let pool = self.pools.http1.clone();
        async move {
            let mut rsp = pool.send(endpoint, req).await?;
            if rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_upgrade) = client_upgrade
            {
                let backend_upgrade = hyper::upgrade::on(&mut rsp);
                tokio::spawn(tunnel(client_upgrade, backend_upgrade));
            }
            Ok(rsp)
        }
    }

    /// Sends `req` to `endpoint` over its multiplexed h2c connection.
    fn send_h2c(
        &self,
        endpoint: &Endpoint,
        mut req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, SendError>> + Send + 'static {
        let uri = endpoint_uri(endpoint, req.uri());
        let pools = self.pools.clone();
        async move {
            *req.uri_mut() = uri.map_err(|error| SendError::Connect(Box::new(error)))?;
            *req.version_mut() = Version::HTTP_2;
            let rsp = pools.h2c.request(req).await.map_err(|error| {
                if error.is_connect() {
                    SendError::Connect(Box::new(error))
                } else {
                    SendError::Upstream(Box::new(error))
                }
            })?;
            Ok(rsp.map(body::boxed))
        }
    }
}

impl Service<Request<Body>> for Client {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Response<Body>, ProxyError>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let (Some(target), Some(selected)) = (
            req.extensions_mut().remove::<Target>(),
            req.extensions_mut().remove::<Selected>(),
        ) else {
            return Box::pin(async {
                Err(ProxyError::InvalidBackend {
                    rule: String::new(),
                })
            });
        };
        let (backend, endpoint) = (target.id, selected.endpoint);
        let response = if selected.protocol == BackendProtocol::H2c {
            Either::Left(self.send_h2c(&endpoint, req))
        } else {
            Either::Right(self.send_http1(endpoint.clone(), req))
        };
        Box::pin(async move {
            response.await.map_err(|error| match error {
                SendError::Connect(source) => ProxyError::Connect {
                    backend,
                    endpoint,
                    source,
                },
                SendError::Upstream(source) => ProxyError::Upstream {
                    backend,
                    endpoint,
                    source,
                },
            })
        })
    }
}

fn endpoint_uri(endpoint: &Endpoint, original: &Uri) -> Result<Uri, http::Error> {
    let authority = match endpoint {
        Endpoint::Addr(addr) => Authority::try_from(addr.to_string())?,
        Endpoint::Dns { host, port } => Authority::try_from(format!("{host}:{port}"))?,
    };
    let path_and_query = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
}

/// Copies bytes both ways between an upgraded client and backend, once
/// both upgrades complete.
pub(crate) async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "Upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::trace!(up, down, "Upgraded connection closed"),
        Err(error) => tracing::debug!(%error, "Upgraded connection failed"),
    }
}
