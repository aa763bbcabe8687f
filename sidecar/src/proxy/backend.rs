//! Backend selection: picks one of the rule's backendRefs by weight and
//! applies that backendRef's filters. A pick of an invalid reference, or
//! a rule whose weights are all 0, fails with a 500 cause.

use std::sync::Arc;
use std::task::{Context, Poll};

use ferry_core::model::{BackendId, WeightedBackend};
use http::{Request, Response};
use rand::Rng;
use tower::{Layer, Service, ServiceExt};

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
}

/// See [`BackendLayer`].
#[derive(Clone)]
pub struct PickBackend<S> {
    forward: Forward,
    inner: S,
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
        Self { forward }
    }
}

impl<S> Layer<S> for BackendLayer {
    type Service = PickBackend<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PickBackend {
            forward: self.forward.clone(),
            inner,
        }
    }
}

// === impl PickBackend ===

impl<S> Service<Request<Body>> for PickBackend<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Response<Body>, ProxyError>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
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
        let index = match pick(&ctx.action.backends, &mut rand::rng()) {
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
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut rsp = inner.oneshot(req).await?;
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

/// Picks a backendRef with probability proportional to its weight.
pub fn pick(backends: &[WeightedBackend], rng: &mut impl Rng) -> Pick {
    if backends.is_empty() {
        return Pick::NoBackends;
    }
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return Pick::AllZero;
    }
    let mut point = rng.random_range(0..total);
    for (index, backend) in backends.iter().enumerate() {
        let weight = u64::from(backend.weight);
        if point < weight {
            return Pick::Index(index);
        }
        point -= weight;
    }
    Pick::AllZero
}
