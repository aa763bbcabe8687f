//! Request metrics, registered on a registry passed in: requests by route,
//! backend and status code, and a latency histogram (to response headers).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body::Body;
use crate::proxy::BoxFuture;
use crate::proxy::backend::BackendLabel;
use crate::proxy::hash::ConfigMap;
use crate::proxy::route::RouteLabel;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `HTTPRoute ns/name rule N`, or empty when no route matched.
    pub route: String,
    /// `ns/name:port`, or empty when no backend was picked.
    pub backend: String,
    /// The response status code.
    pub code: u16,
}

/// The proxy's request metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// The series of each label set seen, found without building the
    /// families' `String` labels for every request.
    series: Arc<Mutex<ConfigMap<SeriesKey, Series>>>,
}

/// Labels of a request as the layers set them: shared strings.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    route: Option<Arc<str>>,
    backend: Option<Arc<str>>,
    code: u16,
}

/// The metrics of one label set.
#[derive(Clone, Debug)]
struct Series {
    requests: Counter,
    latency: Histogram,
}

/// Records every request's outcome.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Metrics,
}

/// See [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Measure<S> {
    metrics: Metrics,
    inner: S,
}

// === impl Metrics ===

impl Metrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            });
        registry.register(
            "ferry_requests",
            "HTTP requests by route, backend and status code",
            requests.clone(),
        );
        registry.register(
            "ferry_request_duration_seconds",
            "Time to response headers, by route, backend and status code",
            latency.clone(),
        );
        Self {
            requests,
            latency,
            series: Arc::default(),
        }
    }

    fn record(&self, key: SeriesKey, seconds: f64) {
        let series = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            match series.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let labels = RequestLabels {
                        route: label(key.route.as_deref()),
                        backend: label(key.backend.as_deref()),
                        code: key.code,
                    };
                    let found = Series {
                        requests: self.requests.get_or_create(&labels).clone(),
                        latency: self.latency.get_or_create(&labels).clone(),
                    };
                    series.insert(key, found.clone());
                    found
                }
            }
        };
        series.requests.inc();
        series.latency.observe(seconds);
    }
}

// === impl MetricsLayer ===

impl MetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measure {
            metrics: self.metrics.clone(),
            inner,
        }
    }
}

// === impl Measure ===

impl<S> Service<Request<Body>> for Measure<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let rsp = response.await?;
            let key = SeriesKey {
                route: rsp.extensions().get::<RouteLabel>().map(|l| l.0.clone()),
                backend: rsp.extensions().get::<BackendLabel>().map(|l| l.0.clone()),
                code: rsp.status().as_u16(),
            };
            metrics.record(key, start.elapsed().as_secs_f64());
            Ok(rsp)
        })
    }
}

fn label(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}
