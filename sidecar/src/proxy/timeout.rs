//! `timeouts.request` (the whole request, retries included, up to the
//! response headers) and `timeouts.backendRequest` (one attempt).

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{BoxFuture, RouteCtx};
use crate::body::Body;
use crate::error::ProxyError;

/// Bounds the whole request by the rule's `timeouts.request`.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeoutLayer;

/// Bounds each attempt by the rule's `timeouts.backendRequest`.
#[derive(Clone, Copy, Debug)]
pub struct BackendTimeoutLayer;

/// See [`RequestTimeoutLayer`] and [`BackendTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Request,
    Backend,
}

// === impl RequestTimeoutLayer ===

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            kind: Kind::Request,
        }
    }
}

// === impl BackendTimeoutLayer ===

impl<S> Layer<S> for BackendTimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            kind: Kind::Backend,
        }
    }
}

// === impl Timeout ===

impl<S> Service<Request<Body>> for Timeout<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    /// The inner future itself when the rule sets no limit.
    type Future = Either<S::Future, BoxFuture<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let limit = req
            .extensions()
            .get::<RouteCtx>()
            .and_then(|ctx| match self.kind {
                Kind::Request => ctx.action.timeouts.request,
                Kind::Backend => ctx.action.timeouts.backend_request,
            });
        let inner = self.inner.call(req);
        let Some(limit) = limit.filter(|d| !d.is_zero()) else {
            return Either::Left(inner);
        };
        let kind = self.kind;
        Either::Right(Box::pin(async move {
            match tokio::time::timeout(limit, inner).await {
                Ok(result) => result,
                Err(_) => Err(kind.error(limit)),
            }
        }))
    }
}

// === impl Kind ===

impl Kind {
    fn error(self, after: Duration) -> ProxyError {
        match self {
            Kind::Request => ProxyError::RequestTimeout { after },
            Kind::Backend => ProxyError::BackendTimeout {
                backend: None,
                after,
            },
        }
    }
}
