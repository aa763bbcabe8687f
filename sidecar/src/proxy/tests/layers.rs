//! Layers against mock inner services, on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_core::model::{ProxyConfig, RetryPolicy, Timeouts};
use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use super::support::*;
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::proxy::backend::{Pick, Sequences, pick};
use crate::proxy::retry::{BudgetParams, Budgets, RetryLayer};
use crate::proxy::timeout::{BackendTimeoutLayer, RequestTimeoutLayer};
use crate::proxy::{RouteCtx, Target};

fn routed(retry: Option<RetryPolicy>, timeouts: Timeouts, body: Body) -> Request<Body> {
    let mut act = action(0, vec![weighted(1, Some(id("a")))], vec![]);
    act.retry = retry;
    act.timeouts = timeouts;
    let mut req = Request::new(body);
    req.extensions_mut().insert(RouteCtx {
        config: Arc::new(ProxyConfig::default()),
        action: Arc::new(act),
        prefix: None,
    });
    req
}

fn status(code: StatusCode) -> Response<Body> {
    let mut rsp = Response::new(body::empty());
    *rsp.status_mut() = code;
    rsp
}

/// A mock answering 503 for the first `failures` calls, then 200.
fn flaky(
    failures: usize,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = ProxyError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Body>| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        assert!(
            req.extensions().get::<Target>().is_none(),
            "retries start above backend choice"
        );
        async move {
            Ok(if call < failures {
                status(StatusCode::SERVICE_UNAVAILABLE)
            } else {
                status(StatusCode::OK)
            })
        }
    })
}

fn policy(attempts: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        codes: vec![503],
        attempts,
        backoff: Some(Duration::from_millis(100)),
    })
}

#[tokio::test(start_paused = true)]
async fn retry_backs_off_then_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service =
        RetryLayer::new(Budgets::new(BudgetParams::default())).layer(flaky(2, calls.clone()));
    let start = Instant::now();
    let rsp = service
        .oneshot(routed(policy(3), Timeouts::default(), body::empty()))
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Backoffs of 100ms then 200ms, each with jitter down to half.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_attempts_and_skips_bodies() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service =
        RetryLayer::new(Budgets::new(BudgetParams::default())).layer(flaky(100, calls.clone()));
    let rsp = service
        .clone()
        .oneshot(routed(policy(2), Timeouts::default(), body::empty()))
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    calls.store(0, Ordering::SeqCst);
    let rsp = service
        .oneshot(routed(
            policy(2),
            Timeouts::default(),
            body::full("streamed"),
        ))
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a body is never replayed");
}

#[tokio::test(start_paused = true)]
async fn retry_budget_caps_retries_during_an_outage() {
    let calls = Arc::new(AtomicUsize::new(0));
    let budget = BudgetParams {
        ttl: Duration::from_secs(1),
        min_per_sec: 2,
        ratio: 0.1,
    };
    let service = RetryLayer::new(Budgets::new(budget)).layer(flaky(usize::MAX, calls.clone()));
    for _ in 0..100 {
        service
            .clone()
            .oneshot(routed(policy(3), Timeouts::default(), body::empty()))
            .await
            .unwrap();
    }
    let retries = calls.load(Ordering::SeqCst) - 100;
    // 2 in reserve plus 10% of requests: far from the 300 the policy
    // alone would allow.
    assert!(retries <= 15, "{retries} retries");
}

#[tokio::test(start_paused = true)]
async fn request_and_backend_timeouts() {
    let slow = service_fn(|_: Request<Body>| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, ProxyError>(status(StatusCode::OK))
    });
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(1)),
        backend_request: Some(Duration::from_millis(300)),
    };
    let start = Instant::now();
    let error = RequestTimeoutLayer
        .layer(slow)
        .oneshot(routed(None, timeouts, body::empty()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProxyError::RequestTimeout { .. }),
        "{error}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    let start = Instant::now();
    let error = BackendTimeoutLayer
        .layer(slow)
        .oneshot(routed(None, timeouts, body::empty()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProxyError::BackendTimeout { .. }),
        "{error}"
    );
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[test]
fn weighted_pick() {
    assert_eq!(pick(&[], 0.5), Pick::NoBackends);
    assert_eq!(
        pick(&[weighted(0, None), weighted(0, None)], 0.5),
        Pick::AllZero
    );
    let backends = [weighted(0, None), weighted(3, None), weighted(1, None)];
    assert_eq!(pick(&backends, 0.0), Pick::Index(1));
    assert_eq!(pick(&backends, 0.74), Pick::Index(1));
    assert_eq!(pick(&backends, 0.76), Pick::Index(2));
    assert_eq!(pick(&backends, 1.0), Pick::Index(2));
}

#[test]
fn sequences_split_every_window_by_weight() {
    let sequences = Sequences::default();
    let rule = action(0, vec![], vec![]).rule;
    let backends = [weighted(90, None), weighted(10, None)];
    for window in [20usize, 100, 2000] {
        let mut first = 0;
        for _ in 0..window {
            if pick(&backends, sequences.next_point(&rule)) == Pick::Index(0) {
                first += 1;
            }
        }
        let share = first as f64 / window as f64;
        let tolerance = 2.0 / window as f64 + 0.005;
        assert!((share - 0.9).abs() <= tolerance, "{share} over {window}");
    }
}

/// A service that is never ready: its readiness fails with `NoEndpoints`.
#[derive(Clone)]
struct Unready;

impl tower::Service<Request<Body>> for Unready {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = std::future::Ready<Result<Response<Body>, ProxyError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ProxyError>> {
        std::task::Poll::Ready(Err(ProxyError::NoEndpoints { backend: id("a") }))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        panic!("called although its readiness failed")
    }
}

#[tokio::test]
async fn readiness_errors_become_responses() {
    let service = crate::proxy::classify::ClassifyLayer.layer(Unready);
    let rsp = service.oneshot(Request::new(body::empty())).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rsp.headers()["ferry-error"], "no-endpoints");
}
