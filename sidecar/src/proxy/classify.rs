//! The one place where request-path errors become responses: 500 for
//! configuration that cannot route, 502 for failed exchanges, 503 when no
//! endpoint is available, 504 for timeouts. Each carries a `ferry-error`
//! header naming the cause and a short body.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};

use super::BoxFuture;
use super::backend::BackendLabel;
use super::route::FERRY_ERROR;
use crate::body::{self, Body};
use crate::error::ProxyError;

/// Turns [`ProxyError`]s into responses.
#[derive(Clone, Copy, Debug)]
pub struct ClassifyLayer;

/// See [`ClassifyLayer`].
#[derive(Clone, Debug)]
pub struct Classify<S> {
    inner: S,
}

// === impl ClassifyLayer ===

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify { inner }
    }
}

// === impl Classify ===

impl<S> Service<Request<Body>> for Classify<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            match inner.oneshot(req).await {
                Ok(rsp) => Ok(rsp),
                Err(error) => Ok(error_response(&error)),
            }
        })
    }
}

/// The response for `error`.
pub fn error_response(error: &ProxyError) -> Response<Body> {
    let (status, cause) = classify(error);
    tracing::debug!(%error, source = ?std::error::Error::source(error), status = status.as_u16(), "Request failed");
    let text = format!(
        "{}: {cause}\n",
        status.canonical_reason().unwrap_or("error")
    );
    let mut rsp = Response::new(body::full(text));
    *rsp.status_mut() = status;
    let headers = rsp.headers_mut();
    headers.insert(FERRY_ERROR, HeaderValue::from_static(cause));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(backend) = error.backend() {
        rsp.extensions_mut().insert(BackendLabel::new(backend));
    }
    rsp
}

/// The status and `ferry-error` cause for `error`.
pub fn classify(error: &ProxyError) -> (StatusCode, &'static str) {
    match error {
        ProxyError::NoBackends { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "no-backends"),
        ProxyError::InvalidBackend { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "invalid-backend"),
        ProxyError::NoEndpoints { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no-endpoints"),
        ProxyError::Connect { .. } => (StatusCode::BAD_GATEWAY, "connect-failed"),
        ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "upstream-failed"),
        ProxyError::BackendTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "backend-timeout"),
        ProxyError::RequestTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "request-timeout"),
        ProxyError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request"),
    }
}
