//! Backend selection: picks one of the rule's backendRefs by weight and
//! applies that backendRef's filters. A pick of an invalid reference, or
//! a rule whose weights are all 0, fails with a 500 cause.
//!
//! Picks follow a low-discrepancy sequence per rule (multiples of the
//! golden ratio, modulo 1) rather than independent random draws: every
//! window of requests is split in proportion to the weights, within a
//! fraction of a percent, without shared locks on the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ferry_core::model::{BackendId, RuleRef, WeightedBackend};
use http::{Request, Response};
use rand::Rng;
use tower::{Layer, Service};

use super::filters::{apply_request, apply_response};
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
}

/// See [`BackendLayer`].
#[derive(Clone)]
pub struct PickBackend<S> {
    forward: Forward,
    sequences: Sequences,
    inner: S,
}

/// A request counter per rule, driving its sequence of picks.
#[derive(Clone, Debug, Default)]
pub struct Sequences {
    by_rule: Arc<Mutex<HashMap<RuleRef, Arc<AtomicU64>>>>,
}

// === impl BackendLabel ===

impl BackendLabel {
    /// The label for `id`.
    pub fn new(id: &BackendId) -> Self {
        Self(Arc::from(id.to_string()))
    }
}

// === impl BackendLayer ===

impl BackendLayer {
    /// Backend-level mirrors are sent through `forward`.
    pub fn new(forward: Forward) -> Self {
        Self {
            forward,
            sequences: Sequences::default(),
        }
    }
}

impl<S> Layer<S> for BackendLayer {
    type Service = PickBackend<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PickBackend {
            forward: self.forward.clone(),
            sequences: self.sequences.clone(),
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
        let Some(ctx) = req.extensions().get::<RouteCtx>().cloned() else {
            return Box::pin(async {
                Err(ProxyError::NoBackends {
                    rule: String::new(),
                })
            });
        };
        let rule = ctx.action.rule.to_string();
        let point = self.sequences.next_point(&ctx.action.rule);
        let index = match pick(&ctx.action.backends, point) {
            Pick::Index(index) => index,
            Pick::NoBackends => {
                return Box::pin(async move { Err(ProxyError::NoBackends { rule }) });
            }
            Pick::AllZero => {
                return Box::pin(async move { Err(ProxyError::InvalidBackend { rule }) });
            }
        };
        let chosen = &ctx.action.backends[index];
        let Some(id) = chosen.target.clone() else {
            return Box::pin(async move { Err(ProxyError::InvalidBackend { rule }) });
        };
        let rsp_ctx = match apply_request(&chosen.filters, &mut req, &ctx, &self.forward) {
            Ok(rsp_ctx) => rsp_ctx,
            Err(rsp) => return Box::pin(async move { Ok(*rsp) }),
        };
        let label = BackendLabel::new(&id);
        req.extensions_mut().insert(Target {
            config: ctx.config.clone(),
            id,
        });
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut rsp = response.await?;
            apply_response(&ctx.action.backends[index].filters, &rsp_ctx, &mut rsp);
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
