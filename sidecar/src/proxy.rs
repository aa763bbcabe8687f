//! The request path, as tower layers. [`gateway_stack`] lists the layers of
//! gateway mode, outermost first; each layer does one thing and finds what
//! it needs in the request's extensions ([`ConnInfo`], [`RouteCtx`],
//! [`Target`]).

pub mod backend;
pub mod balance;
pub mod classify;
pub mod client;
pub mod filters;
pub mod hash;
pub mod hygiene;
pub mod retry;
pub mod route;
pub mod timeout;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use ferry_core::model::{BackendId, ProxyConfig, RouteAction};
use http::{Request, Response};
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

use crate::body::Body;
use crate::config::ConfigRx;
use crate::error::ProxyError;
use crate::metrics::{Metrics, MetricsLayer};

/// A boxed, sendable future, as returned by the layers' services.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The full request path of one mode: never fails, errors are responses.
pub type ProxyService = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// The future of a [`ProxyService`].
pub type ProxyFuture = BoxFuture<Response<Body>, Infallible>;

/// The part of the path below backend selection: balances over a
/// backend's endpoints and sends. Mirrors reuse it.
pub type Forward = BoxCloneService<Request<Body>, Response<Body>, ProxyError>;

/// Where a request arrived; set by the listener on every request.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener port (the Gateway listener's port).
    pub port: u16,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The routing decision for a request; set by [`route`].
#[derive(Clone, Debug)]
pub struct RouteCtx {
    /// The config the request is routed with, kept for its whole life.
    pub config: Arc<ProxyConfig>,
    /// The matched rule.
    pub action: Arc<RouteAction>,
    /// The `PathPrefix` that matched, for `ReplacePrefixMatch`.
    pub prefix: Option<String>,
}

/// The backend a request is sent to; set by [`backend`] (or a mirror).
#[derive(Clone, Debug)]
pub struct Target {
    /// The config holding the backend.
    pub config: Arc<ProxyConfig>,
    /// The backend.
    pub id: BackendId,
}

/// The shared state the layers of a stack need.
#[derive(Clone)]
pub struct StackParams {
    /// The applied config.
    pub config: ConfigRx,
    /// Request metrics.
    pub metrics: Metrics,
    /// Retry budgets per rule.
    pub budgets: retry::Budgets,
    /// Endpoint statistics and failure avoidance.
    pub balancer: balance::Balancer,
    /// Connections to endpoints: mTLS to meshed ones (requests carrying
    /// their identities), plain to the others.
    pub client: crate::mesh::client::MeshClient,
}

/// The layers of gateway mode, outermost first.
pub fn gateway_stack(params: StackParams) -> ProxyService {
    let forward: Forward = ServiceBuilder::new()
        .boxed_clone()
        .layer(balance::BalanceLayer::new(params.balancer.clone()))
        .service(params.client);
    let service = ServiceBuilder::new()
        .layer(MetricsLayer::new(params.metrics))
        .layer(hygiene::HygieneLayer)
        .layer(route::RouteLayer::new(params.config))
        .layer(classify::ClassifyLayer)
        .layer(filters::FilterLayer::new(forward.clone()))
        .layer(timeout::RequestTimeoutLayer)
        .layer(retry::RetryLayer::new(params.budgets))
        .layer(timeout::BackendTimeoutLayer)
        .layer(backend::BackendLayer::new(
            forward.clone(),
            params.balancer.clone(),
        ))
        .service(forward);
    BoxCloneService::new(service)
}
