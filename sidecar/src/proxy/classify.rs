//! The one place where request-path errors become responses: 500 for
//! configuration that cannot route, 502 for failed exchanges, 503 when no
//! endpoint is available, 504 for timeouts, and 400 or 408 when the
//! exchange failed because the client's request was bad or its body too
//! slow ([`BodyWatch`]). Each carries a `ferry-error` header naming the
//! cause and a short body.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use super::BoxFuture;
use super::backend::BackendLabel;
use super::route::FERRY_ERROR;
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::server::body::{BodyFailure, BodyWatch};

/// Turns [`ProxyError`]s into responses.
#[derive(Clone, Copy, Debug)]
pub struct ClassifyLayer;

/// See [`ClassifyLayer`].
#[derive(Debug)]
pub struct Classify<S> {
    inner: S,
    /// The error of the inner service's readiness, answered on the next
    /// call.
    unready: Option<ProxyError>,
}

// === impl ClassifyLayer ===

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify {
            inner,
            unready: None,
        }
    }
}

// === impl Classify ===

impl<S: Clone> Clone for Classify<S> {
    fn clone(&self) -> Self {
        // A clone has not been polled ready.
        Self {
            inner: self.inner.clone(),
            unready: None,
        }
    }
}

impl<S> Service<Request<Body>> for Classify<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A readiness error becomes the response of the next call.
        if let Err(error) = std::task::ready!(self.inner.poll_ready(cx)) {
            self.unready = Some(error);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if let Some(error) = self.unready.take() {
            return Box::pin(async move { Ok(error_response(&error)) });
        }
        // A failure of the client's body fails the attempt sending it,
        // with an error of the backend's side: the body says whose it is.
        let body = req.extensions().get::<BodyWatch>().cloned();
        let response = self.inner.call(req);
        Box::pin(async move {
            match response.await {
                Ok(rsp) => Ok(rsp),
                Err(error) => match body.and_then(|body| body.failure()) {
                    Some(failure) => Ok(error_response(&ProxyError::RequestBody {
                        failure,
                        backend: error.backend().cloned(),
                    })),
                    None => Ok(error_response(&error)),
                },
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
        ProxyError::RequestBody { failure, .. } => match failure {
            BodyFailure::TimedOut => (StatusCode::REQUEST_TIMEOUT, "request-body-timeout"),
            BodyFailure::Malformed => (StatusCode::BAD_REQUEST, "request-body-malformed"),
            BodyFailure::Incomplete => (StatusCode::BAD_REQUEST, "request-body-incomplete"),
        },
    }
}
