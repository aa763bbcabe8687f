//! The bottom of the path: sends a request to the selected endpoint over
//! pooled keep-alive connections (HTTP/1.1, or h2c for backends that speak
//! it) and, for an accepted upgrade, splices client and backend together.
//! Endpoints named by DNS are resolved by [`dns`] (hickory-resolver).

mod dns;
mod http1;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::model::{BackendId, BackendProtocol, Endpoint};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::{self, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::Service;

use self::dns::Resolver;
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

    /// Sends over the HTTP/1.1 pool, splicing an accepted upgrade.
    fn send_http1(
        &self,
        backend: BackendId,
        endpoint: Endpoint,
        mut req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, ProxyError>> + Send + 'static {
        *req.version_mut() = Version::HTTP_11;
        let client_upgrade: Option<OnUpgrade> =
            is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let pool = self.pools.http1.clone();
        async move {
            let mut rsp = match pool.send(endpoint.clone(), req).await {
                Ok(rsp) => rsp,
                Err(http1::SendError::Connect(source)) => {
                    return Err(ProxyError::Connect {
                        backend,
                        endpoint,
                        source,
                    });
                }
                Err(http1::SendError::Upstream(source)) => {
                    return Err(ProxyError::Upstream {
                        backend,
                        endpoint,
                        source,
                    });
                }
            };
            if rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_upgrade) = client_upgrade
            {
                let backend_upgrade = hyper::upgrade::on(&mut rsp);
                tokio::spawn(tunnel(client_upgrade, backend_upgrade));
            }
            Ok(rsp)
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
        let backend = target.id;
        let endpoint = selected.endpoint;
        if selected.protocol != BackendProtocol::H2c {
            return Box::pin(self.send_http1(backend, endpoint, req));
        }
        let uri = match endpoint_uri(&endpoint, req.uri()) {
            Ok(uri) => uri,
            Err(error) => {
                return Box::pin(async move {
                    Err(ProxyError::Connect {
                        backend,
                        endpoint,
                        source: Box::new(error),
                    })
                });
            }
        };
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        let response = self.pools.h2c.request(req);
        Box::pin(async move {
            let rsp = response.await.map_err(|error| {
                let source = Box::new(error);
                if source.is_connect() {
                    ProxyError::Connect {
                        backend: backend.clone(),
                        endpoint: endpoint.clone(),
                        source,
                    }
                } else {
                    ProxyError::Upstream {
                        backend: backend.clone(),
                        endpoint: endpoint.clone(),
                        source,
                    }
                }
            })?;
            Ok(rsp.map(body::boxed))
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
