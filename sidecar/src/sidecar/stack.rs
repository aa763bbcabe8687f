//! The request path of sidecar mode's outbound HTTP, as tower layers.

use tower::ServiceBuilder;
use tower::util::BoxCloneService;

use crate::config::ConfigRx;
use crate::mesh::client::MeshClient;
use crate::metrics::{Metrics, MetricsLayer};
use crate::proxy::balance::{BalanceLayer, Balancer};
use crate::proxy::retry::{Budgets, RetryLayer};
use crate::proxy::{Forward, ProxyService, backend, classify, filters, hygiene, route, timeout};

/// What every target's stack shares: metrics, retry budgets, endpoint
/// statistics and the connections to endpoints.
#[derive(Clone)]
pub struct SharedLayers {
    /// Request metrics.
    pub metrics: Metrics,
    /// Retry budgets per rule.
    pub budgets: Budgets,
    /// Endpoint statistics and failure avoidance.
    pub balancer: Balancer,
    /// mTLS HTTP/2 to meshed endpoints, plain connections to the others.
    pub client: MeshClient,
}

/// The layers of one outbound target, outermost first: the gateway's,
/// routing with the target's `config` (one port, the target's), over the
/// mesh client.
pub fn sidecar_stack(config: ConfigRx, shared: SharedLayers) -> ProxyService {
    let forward: Forward = ServiceBuilder::new()
        .boxed_clone()
        .layer(BalanceLayer::new(shared.balancer.clone()))
        .service(shared.client);
    let service = ServiceBuilder::new()
        .layer(MetricsLayer::new(shared.metrics))
        .layer(hygiene::HygieneLayer)
        .layer(route::RouteLayer::new(config))
        .layer(classify::ClassifyLayer)
        .layer(filters::FilterLayer::new(forward.clone()))
        .layer(timeout::RequestTimeoutLayer)
        .layer(RetryLayer::new(shared.budgets))
        .layer(timeout::BackendTimeoutLayer)
        .layer(backend::BackendLayer::new(
            forward.clone(),
            shared.balancer.clone(),
        ))
        .service(forward);
    BoxCloneService::new(service)
}
