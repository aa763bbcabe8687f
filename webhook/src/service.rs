//! The HTTP side of the webhook as a tower `Service`: routing, body limits,
//! the request timeout and metrics around [`review`](crate::review()).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_injector::InjectConfig;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

use crate::config::FailurePolicy;
use crate::metrics::{Metrics, Outcome};
use crate::registration::INJECT_PATH;

/// Largest AdmissionReview accepted; the apiserver's own request limit is
/// 3 MiB of object, and a review carries it once (twice on updates).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The admission endpoint (`POST /inject`) and a liveness endpoint
/// (`GET /healthz`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdmissionService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: InjectConfig,
    failure_policy: FailurePolicy,
    metrics: Metrics,
    request_timeout: Duration,
}

/// The future of [`AdmissionService::call`](tower::Service::call).
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

// AdmissionService

impl AdmissionService {
    /// A service injecting with `config`. `failure_policy` decides what
    /// happens to pods the injector cannot decode; `request_timeout` bounds
    /// the time to read one request body.
    pub fn new(
        config: InjectConfig,
        failure_policy: FailurePolicy,
        metrics: Metrics,
        request_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                failure_policy,
                metrics,
                request_timeout,
            }),
        }
    }

    /// The injector config in use.
    pub fn config(&self) -> &InjectConfig {
        &self.inner.config
    }

    async fn handle<B>(self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        match (request.method(), request.uri().path()) {
            (&Method::GET | &Method::HEAD, "/healthz") => return text(StatusCode::OK, "ok"),
            (&Method::POST, INJECT_PATH) => {}
            (_, INJECT_PATH) => return text(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
            _ => return text(StatusCode::NOT_FOUND, "not found"),
        }
        let inner = &self.inner;
        let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
        let body = match tokio::time::timeout(inner.request_timeout, body.collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) => {
                let too_large = error
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                inner
                    .metrics
                    .record(Outcome::Malformed, "body", start.elapsed().as_secs_f64());
                return match too_large {
                    true => text(StatusCode::PAYLOAD_TOO_LARGE, "AdmissionReview too large"),
                    false => text(
                        StatusCode::BAD_REQUEST,
                        &format!("failed to read body: {error}"),
                    ),
                };
            }
            Err(_) => {
                inner
                    .metrics
                    .record(Outcome::Malformed, "timeout", start.elapsed().as_secs_f64());
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    "timed out reading the AdmissionReview",
                );
            }
        };
        let reviewed = crate::review(&body, &inner.config, inner.failure_policy);
        inner.metrics.record(
            reviewed.outcome,
            reviewed.reason,
            start.elapsed().as_secs_f64(),
        );
        let mut response = Response::new(Full::new(Bytes::from(reviewed.body)));
        *response.status_mut() = reviewed.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl<B> tower::Service<Request<B>> for AdmissionService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

#[cfg(test)]
mod tests;

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}
