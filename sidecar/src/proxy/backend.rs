//! Backend selection: picks one of the rule's backendRefs by weight and
//! applies that backendRef's filters. A pick of an invalid reference, or
//! a rule whose weights are all 0, fails with a 500 cause; a pick of a
//! backend without endpoints goes on to fail with 503.
//!
//! A pick of a backend whose every endpoint is failing to connect (the
//! balancer avoids them, [`Balancer::reachable`]) falls over to the rule's
//! other backends, by their weights, as Linkerd's distribution skips
//! backends that are not available: a split whose one Service is down
//! answers from the others for the outage instead of failing its share.
//! The configured weights hold whenever every backend is reachable, and
//! the spec's 500 and 503 shares (invalid references, no endpoints) are
//! kept.
//!
//! Picks follow a low-discrepancy sequence per rule (multiples of the
//! golden ratio, modulo 1) rather than independent random draws: every
//! window of requests is split in proportion to the weights, within a
//! fraction of a percent, without shared locks on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ferry_core::model::{BackendId, ProxyConfig, RuleRef, WeightedBackend};
use http::{Request, Response};
use rand::Rng;
use tower::{Layer, Service};

use super::balance::Balancer;
use super::filters::{apply_request, apply_response};
use super::hash::ConfigMap;
use super::{BoxFuture, Forward, RouteCtx, Target};
use crate::body::Body;
use crate::error::ProxyError;

/// Labels a response with the backend that served it, for metrics.
#[derive(Clone, Debug)]
pub struct BackendLabel(pub Arc<str>);

/// Picks a backend by weight.
#[derive(Clone)]
pub struct BackendLayer {
    forward: Forward,
    sequences: Sequences,
    labels: BackendLabels,
    balancer: Balancer,
}

/// See [`BackendLayer`].
#[derive(Clone)]
pub struct PickBackend<S> {
    forward: Forward,
    sequences: Sequences,
    labels: BackendLabels,
    balancer: Balancer,
    inner: S,
}

/// The label of each backend seen, formatted once rather than per request.
#[derive(Clone, Debug, Default)]
struct BackendLabels(Arc<Mutex<ConfigMap<BackendId, BackendLabel>>>);

/// A request counter per rule, driving its sequence of picks.
#[derive(Clone, Debug, Default)]
pub struct Sequences {
    by_rule: Arc<Mutex<ConfigMap<RuleRef, Arc<AtomicU64>>>>,
}

// === impl BackendLabel ===

impl BackendLabel {
    /// The label for `id`.
    pub fn new(id: &BackendId) -> Self {
        Self(Arc::from(id.to_string()))
    }
}

// === impl BackendLabels ===

impl BackendLabels {
    fn get(&self, id: &BackendId) -> BackendLabel {
        let mut labels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = labels.get(id) {
            return label.clone();
        }
        let label = BackendLabel::new(id);
        labels.insert(id.clone(), label.clone());
        label
    }
}

// === impl BackendLayer ===

impl BackendLayer {
    /// Backend-level mirrors are sent through `forward`; which endpoints
    /// are failing is `balancer`'s.
    pub fn new(forward: Forward, balancer: Balancer) -> Self {
        Self {
            forward,
            sequences: Sequences::default(),
            labels: BackendLabels::default(),
            balancer,
        }
    }
}

impl<S> Layer<S> for BackendLayer {
    type Service = PickBackend<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PickBackend {
            forward: self.forward.clone(),
            sequences: self.sequences.clone(),
            labels: self.labels.clone(),
            balancer: self.balancer.clone(),
            inner,
        }
    }
}

// === impl PickBackend ===

impl<S> Service<Request<Body>> for PickBackend<S>
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
        let Some(ctx) = req.extensions().get::<RouteCtx>() else {
            return Box::pin(async {
                Err(ProxyError::NoBackends {
                    rule: String::new(),
                })
            });
        };
        let (config, action) = (ctx.config.clone(), ctx.action.clone());
        let point = self.sequences.next_point(&action.rule);
        let index = match pick(&action.backends, point) {
            Pick::Index(index) => index,
            Pick::NoBackends => {
                let rule = action.rule.to_string();
                return Box::pin(async move { Err(ProxyError::NoBackends { rule }) });
            }
            Pick::AllZero => {
                let rule = action.rule.to_string();
                return Box::pin(async move { Err(ProxyError::InvalidBackend { rule }) });
            }
        };
        let index = if action.backends.len() > 1 && self.balancer.avoiding() {
            fall_over(&self.balancer, &config, &action.backends, index)
        } else {
            index
        };
        let chosen = &action.backends[index];
        let Some(id) = chosen.target.clone() else {
            let rule = action.rule.to_string();
            return Box::pin(async move { Err(ProxyError::InvalidBackend { rule }) });
        };
        // Most backendRefs have no filters: then the route context is not
        // needed again.
        let rsp_ctx = if chosen.filters.is_empty() {
            None
        } else {
            let ctx = ctx.clone();
            match apply_request(&chosen.filters, &mut req, &ctx, &self.forward) {
                Ok(rsp_ctx) => Some(rsp_ctx),
                Err(rsp) => return Box::pin(async move { Ok(*rsp) }),
            }
        };
        let label = self.labels.get(&id);
        req.extensions_mut().insert(Target { config, id });
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut rsp = response.await?;
            if let Some(rsp_ctx) = rsp_ctx {
                apply_response(&action.backends[index].filters, &rsp_ctx, &mut rsp);
            }
            rsp.extensions_mut().insert(label);
            Ok(rsp)
        })
    }
}

/// The outcome of a weighted pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The chosen backendRef.
    Index(usize),
    /// The rule has no backendRefs.
    NoBackends,
    /// Every backendRef has weight 0.
    AllZero,
}

/// Picks the backendRef whose share of the total weight contains `point`
/// (in `[0, 1)`).
pub fn pick(backends: &[WeightedBackend], point: f64) -> Pick {
    if backends.is_empty() {
        return Pick::NoBackends;
    }
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return Pick::AllZero;
    }
    // Truncation is the intent: `point` scaled onto the integer weights.
    let mut point = ((point.clamp(0.0, 1.0) * total as f64) as u64).min(total - 1);
    for (index, backend) in backends.iter().enumerate() {
        let weight = u64::from(backend.weight);
        if point < weight {
            return Pick::Index(index);
        }
        point -= weight;
    }
    Pick::AllZero
}

/// `picked`, or when its every endpoint is failing, another backend of
/// `backends` that is reachable, picked at random by weight (the rule's
/// sequence point, which fell in `picked`'s share, would favour its
/// neighbours).
fn fall_over(
    balancer: &Balancer,
    config: &ProxyConfig,
    backends: &[WeightedBackend],
    picked: usize,
) -> usize {
    let reachable = |index: usize| {
        backends[index]
            .target
            .as_ref()
            .and_then(|id| Some((id, config.backends.get(id)?)))
            .is_some_and(|(id, backend)| balancer.reachable(id, &backend.endpoints))
    };
    let failing = backends[picked]
        .target
        .as_ref()
        .and_then(|id| config.backends.get(id))
        .is_some_and(|backend| !backend.endpoints.is_empty())
        && !reachable(picked);
    if !failing {
        return picked;
    }
    let others =
        |index: &usize| *index != picked && backends[*index].weight > 0 && reachable(*index);
    let total: u64 = (0..backends.len())
        .filter(others)
        .map(|i| u64::from(backends[i].weight))
        .sum();
    if total == 0 {
        return picked;
    }
    let mut point = rand::rng().random_range(0..total);
    for index in (0..backends.len()).filter(others) {
        let weight = u64::from(backends[index].weight);
        if point < weight {
            return index;
        }
        point -= weight;
    }
    picked
}

// === impl Sequences ===

impl Sequences {
    /// The fractional part of the golden ratio.
    const STEP: f64 = 0.618_033_988_749_894_9;

    /// The next point in `[0, 1)` of `rule`'s sequence.
    pub fn next_point(&self, rule: &RuleRef) -> f64 {
        let counter = {
            let mut by_rule = self.by_rule.lock().unwrap_or_else(|e| e.into_inner());
            match by_rule.get(rule) {
                Some(counter) => counter.clone(),
                None => {
                    // Start each rule at a random place so that replicas
                    // do not move in step.
                    let start = rand::rng().random_range(0..1 << 20);
                    let counter = Arc::new(AtomicU64::new(start));
                    by_rule.insert(rule.clone(), counter.clone());
                    counter
                }
            }
        };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        // Exact modular arithmetic in fixed point, so precision does not
        // decay as the counter grows.
        let step = (Self::STEP * (1u64 << 32) as f64) as u64;
        let fraction = n.wrapping_mul(step) & 0xffff_ffff;
        fraction as f64 / (1u64 << 32) as f64
    }
}
