//! The rule's `retry`: resends a request whose attempt failed to connect,
//! timed out or answered with a listed code, with exponential backoff.
//! Each rule has a retry budget, so retries stay a bounded share of its
//! traffic and cannot multiply an outage. Only requests without a body are
//! retried: bodies are streamed, never kept for a second attempt.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::model::{RetryPolicy, RuleRef};
use futures_util::future::Either;
use http::{Request, Response};
use http_body::Body as _;
use rand::Rng;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt};

use super::hash::ConfigMap;
use super::hygiene::is_upgrade;
use super::{BoxFuture, RouteCtx};
use crate::body::{self, Body};
use crate::error::ProxyError;

/// Backoff when the rule gives none.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a rule's retry budget is sized.
#[derive(Clone, Copy, Debug)]
pub struct BudgetParams {
    /// How long a deposit counts.
    pub ttl: Duration,
    /// Retries per second always allowed.
    pub min_per_sec: u32,
    /// Retries allowed as a share of requests (0.2 = 20%).
    pub ratio: f32,
}

/// Retry budgets, one per rule.
#[derive(Clone, Debug)]
pub struct Budgets {
    params: BudgetParams,
    by_rule: Arc<Mutex<ConfigMap<RuleRef, Arc<TpsBudget>>>>,
}

/// Retries requests by their rule's policy.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    budgets: Budgets,
}

/// See [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct Retry<S> {
    budgets: Budgets,
    inner: S,
}

// === impl BudgetParams ===

impl Default for BudgetParams {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            min_per_sec: 10,
            ratio: 0.2,
        }
    }
}

// === impl Budgets ===

impl Budgets {
    /// Budgets sized by `params`.
    pub fn new(params: BudgetParams) -> Self {
        Self {
            params,
            by_rule: Arc::default(),
        }
    }

    fn get(&self, rule: &RuleRef) -> Arc<TpsBudget> {
        let mut by_rule = self.by_rule.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(budget) = by_rule.get(rule) {
            return budget.clone();
        }
        // TpsBudget panics outside these ranges.
        let p = self.params;
        let ttl = p.ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if p.ratio.is_finite() {
            p.ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let min_per_sec = p.min_per_sec.min(i32::MAX as u32 - 1);
        let budget = Arc::new(TpsBudget::new(ttl, min_per_sec, ratio));
        by_rule.insert(rule.clone(), budget.clone());
        budget
    }
}

// === impl RetryLayer ===

impl RetryLayer {
    /// Retries within `budgets`.
    pub fn new(budgets: Budgets) -> Self {
        Self { budgets }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            budgets: self.budgets.clone(),
            inner,
        }
    }
}

// === impl Retry ===

impl<S> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    /// The inner future itself when the request is not retried.
    type Future = Either<S::Future, BoxFuture<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let policy = req
            .extensions()
            .get::<RouteCtx>()
            .and_then(|ctx| Some((ctx.action.retry.clone()?, ctx.action.rule.clone())));
        let Some((policy, rule)) = policy.filter(|(p, _)| p.attempts > 0) else {
            return Either::Left(self.inner.call(req));
        };
        if !req.body().is_end_stream() || is_upgrade(req.headers()) {
            return Either::Left(self.inner.call(req));
        }
        // Every attempt goes to a clone, made ready by `oneshot`.
        let inner = self.inner.clone();
        let budget = self.budgets.get(&rule);
        budget.deposit();
        Either::Right(Box::pin(retry(inner, req, policy, budget)))
    }
}

async fn retry<S>(
    inner: S,
    req: Request<Body>,
    policy: RetryPolicy,
    budget: Arc<TpsBudget>,
) -> Result<Response<Body>, ProxyError>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError> + Clone,
{
    let (parts, _) = req.into_parts();
    let mut attempt = 0;
    loop {
        let mut req = Request::new(body::empty());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        *req.extensions_mut() = parts.extensions.clone();
        let result = inner.clone().oneshot(req).await;
        let retryable = match &result {
            Ok(rsp) => policy.codes.contains(&rsp.status().as_u16()),
            Err(error) => error.is_retryable(),
        };
        if !retryable || attempt >= policy.attempts || !budget.withdraw() {
            return result;
        }
        tokio::time::sleep(backoff(policy.backoff, attempt)).await;
        attempt += 1;
    }
}

/// Exponential backoff from `base`, with jitter, capped.
fn backoff(base: Option<Duration>, attempt: u32) -> Duration {
    let base = base.unwrap_or(DEFAULT_BACKOFF);
    let exp = base
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF.max(base));
    let jitter = rand::rng().random_range(0.5..=1.0);
    exp.mul_f64(jitter)
}
