//! Backend selection: picks one of the rule's backendRefs by weight and
//! applies that backendRef's filters. A pick of an invalid reference, or
//! a rule whose weights are all 0, fails with a 500 cause.
//!
//! Picks follow a low-discrepancy sequence per rule (multiples of the
//! golden ratio, modulo 1) rather than independent random draws: every
//! window of requests is split in proportion to the weights, within a
//! fraction of a percent, without shared locks on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ferry_core::model::{BackendId, RuleRef, WeightedBackend};
use http::{Request, Response};
use rand::Rng;
use tower::{Layer, Service};

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
}

/// See [`BackendLayer`].
#[derive(Clone)]
pub struct PickBackend<S> {
    forward: Forward,
    sequences: Sequences,
    labels: BackendLabels,
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
    /// Backend-level mirrors are sent through `forward`.
    pub fn new(forward: Forward) -> Self {
        Self {
            forward,
            sequences: Sequences::default(),
            labels: BackendLabels::default(),
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
