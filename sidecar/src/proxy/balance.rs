//! Endpoint balancing: power of two choices over a latency EWMA weighted by
//! requests in flight, with passive failure handling: an endpoint that
//! refuses connections (or does not answer a connect in time) is avoided
//! for a while, unless every endpoint of its backend is. A retry of a
//! connect failure therefore goes to another endpoint; when every endpoint
//! of a backend is avoided, [`super::backend`] falls over to another
//! backend of the rule ([`Balancer::reachable`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::model::{BackendId, BackendProtocol, Endpoint};
use http::{Request, Response};
use rand::Rng;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::hash::ConfigMap;
use super::{BoxFuture, Target};
use crate::body::Body;
use crate::error::ProxyError;

/// Weight of the newest latency sample in the EWMA.
const EWMA_ALPHA: f64 = 0.3;

/// The endpoint a request is sent to; set by [`Balance`].
#[derive(Clone, Debug)]
pub struct Selected {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// What the backend speaks.
    pub protocol: BackendProtocol,
}

/// Endpoint statistics shared by every request of the proxy.
#[derive(Clone, Debug)]
pub struct Balancer {
    backends: Arc<Mutex<ConfigMap<BackendId, Arc<BackendStats>>>>,
    failure_penalty: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which some endpoint is avoided (0
    /// when none ever was): while it is past, no backend needs a look.
    avoiding_until_ms: Arc<AtomicU64>,
}

/// The endpoints of one backend with their statistics, index for index.
/// Rebuilt when the backend's endpoints change; statistics of endpoints
/// that remain are kept.
#[derive(Debug)]
struct BackendStats {
    endpoints: Vec<Endpoint>,
    stats: Vec<Arc<EndpointStats>>,
}

#[derive(Debug, Default)]
struct EndpointStats {
    /// Latency EWMA in microseconds, as `f64` bits.
    ewma_us: AtomicU64,
    pending: AtomicU32,
    /// Milliseconds since the balancer's epoch until which the endpoint is
    /// avoided.
    avoid_until_ms: AtomicU64,
}

/// Decrements an endpoint's in-flight count when the request ends,
/// including when it is cancelled.
struct PendingGuard(Arc<EndpointStats>);

/// Balances requests over the target backend's endpoints.
#[derive(Clone, Debug)]
pub struct BalanceLayer {
    balancer: Balancer,
}

/// See [`BalanceLayer`].
#[derive(Clone, Debug)]
pub struct Balance<S> {
    balancer: Balancer,
    inner: S,
}

// === impl Balancer ===

impl Balancer {
    /// A balancer that avoids a refusing endpoint for `failure_penalty`.
    pub fn new(failure_penalty: Duration) -> Self {
        Self {
            backends: Arc::default(),
            failure_penalty,
            epoch: Instant::now(),
            avoiding_until_ms: Arc::default(),
        }
    }

    /// Whether any endpoint of any backend is being avoided now.
    pub fn avoiding(&self) -> bool {
        let until = self.avoiding_until_ms.load(Ordering::Relaxed);
        until != 0 && self.now_ms() < until
    }

    /// Whether `endpoints` of backend `id` include one that is not being
    /// avoided (an empty backend is not reachable).
    pub fn reachable(&self, id: &BackendId, endpoints: &[Endpoint]) -> bool {
        if endpoints.is_empty() {
            return false;
        }
        let now = self.now_ms();
        self.stats_of(id, endpoints)
            .stats
            .iter()
            .any(|s| s.avoid_until_ms.load(Ordering::Relaxed) <= now)
    }

    /// Avoids the endpoint of `stats` for the failure penalty.
    fn avoid(&self, stats: &EndpointStats) {
        let until =
            self.now_ms() + u64::try_from(self.failure_penalty.as_millis()).unwrap_or(u64::MAX / 2);
        stats.avoid_until_ms.store(until, Ordering::Relaxed);
        self.avoiding_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn stats_of(&self, id: &BackendId, endpoints: &[Endpoint]) -> Arc<BackendStats> {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = backends.get(id)
            && current.endpoints == endpoints
        {
            return current.clone();
        }
        let previous = backends.remove(id);
        let stats = endpoints
            .iter()
            .map(|ep| {
                previous
                    .as_ref()
                    .and_then(|p| p.endpoints.iter().position(|old| old == ep))
                    .and_then(|i| previous.as_ref().map(|p| p.stats[i].clone()))
                    .unwrap_or_default()
            })
            .collect();
        let fresh = Arc::new(BackendStats {
            endpoints: endpoints.to_vec(),
            stats,
        });
        backends.insert(id.clone(), fresh.clone());
        fresh
    }

    /// Picks an endpoint of `backend` (which has at least one): the cheaper
    /// of two random endpoints that are not being avoided. When every
    /// endpoint is avoided, any may be picked.
    fn pick(&self, id: &BackendId, endpoints: &[Endpoint]) -> (Endpoint, Arc<EndpointStats>) {
        let backend = self.stats_of(id, endpoints);
        let now = self.now_ms();
        let n = backend.stats.len();
        let healthy = |i: usize| backend.stats[i].avoid_until_ms.load(Ordering::Relaxed) <= now;
        let mut rng = rand::rng();
        let first = rng.random_range(0..n);
        let a = if healthy(first) {
            first
        } else {
            // Rare: scan from there for one that is not avoided.
            (0..n)
                .map(|k| (first + k) % n)
                .find(|&i| healthy(i))
                .unwrap_or(first)
        };
        let b = match n {
            1 => a,
            _ => (a + 1 + rng.random_range(0..n - 1)) % n,
        };
        let b = if healthy(b) { b } else { a };
        let chosen = if backend.stats[b].cost() < backend.stats[a].cost() {
            b
        } else {
            a
        };
        (
            backend.endpoints[chosen].clone(),
            backend.stats[chosen].clone(),
        )
    }
}

// === impl EndpointStats ===

impl EndpointStats {
    fn cost(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_us.load(Ordering::Relaxed));
        let pending = f64::from(self.pending.load(Ordering::Relaxed));
        (ewma + 1.0) * (pending + 1.0)
    }

    fn observe(&self, latency: Duration) {
        let sample = latency.as_secs_f64() * 1e6;
        let _ = self
            .ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }
}

// === impl PendingGuard ===

impl PendingGuard {
    fn new(stats: Arc<EndpointStats>) -> Self {
        stats.pending.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl BalanceLayer ===

impl BalanceLayer {
    /// Balances with `balancer`'s shared statistics.
    pub fn new(balancer: Balancer) -> Self {
        Self { balancer }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Balance {
            balancer: self.balancer.clone(),
            inner,
        }
    }
}

// === impl Balance ===

impl<S> Service<Request<Body>> for Balance<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Response<Body>, ProxyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let Some(target) = req.extensions().get::<Target>() else {
            return Box::pin(async {
                Err(ProxyError::InvalidBackend {
                    rule: String::new(),
                })
            });
        };
        let Some(backend) = target.config.backends.get(&target.id) else {
            let rule = format!("backend {}", target.id);
            return Box::pin(async move { Err(ProxyError::InvalidBackend { rule }) });
        };
        if backend.endpoints.is_empty() {
            let backend = target.id.clone();
            return Box::pin(async move { Err(ProxyError::NoEndpoints { backend }) });
        }
        let (endpoint, stats) = self.balancer.pick(&target.id, &backend.endpoints);
        let selected = Selected {
            endpoint,
            protocol: backend.protocol,
        };
        req.extensions_mut().insert(selected);
        let balancer = self.balancer.clone();
        let guard = PendingGuard::new(stats);
        let start = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            match &result {
                Err(ProxyError::Connect { .. }) => balancer.avoid(&guard.0),
                _ => guard.0.observe(start.elapsed()),
            }
            result
        })
    }
}
