//! Route filters: redirect and CORS preflight answer at once; header
//! modifiers, URL rewrite and mirrors change or copy the request; response
//! header modifiers and CORS decorate the response. [`FilterLayer`] applies
//! a rule's filters; [`super::backend`] applies a backendRef's with the
//! same functions.

mod cors;
mod mirror;
mod redirect;

use std::task::{Context, Poll};

use ferry_core::model::{Filter, HeaderModifier, PathModifier, Rewrite};
use futures_util::future::Either;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use tower::{Layer, Service};

use super::{BoxFuture, Forward, RouteCtx};
use crate::body::Body;
use crate::error::ProxyError;

/// Applies the matched rule's filters.
#[derive(Clone)]
pub struct FilterLayer {
    forward: Forward,
}

/// See [`FilterLayer`].
#[derive(Clone)]
pub struct Filters<S> {
    forward: Forward,
    inner: S,
}

/// What the response side of the filters needs from the request.
#[derive(Debug, Default)]
pub struct ResponseCtx {
    origin: Option<HeaderValue>,
}

// === impl FilterLayer ===

impl FilterLayer {
    /// Mirrors are sent through `forward`.
    pub fn new(forward: Forward) -> Self {
        Self { forward }
    }
}

impl<S> Layer<S> for FilterLayer {
    type Service = Filters<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Filters {
            forward: self.forward.clone(),
            inner,
        }
    }
}

// === impl Filters ===

impl<S> Service<Request<Body>> for Filters<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = ProxyError;
    /// The inner future itself when the rule has no filters.
    type Future = Either<S::Future, BoxFuture<Response<Body>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let ctx = match req.extensions().get::<RouteCtx>() {
            Some(ctx) if !ctx.action.filters.is_empty() => ctx.clone(),
            _ => return Either::Left(self.inner.call(req)),
        };
        let filters = &ctx.action.filters;
        let rsp_ctx = match apply_request(filters, &mut req, &ctx, &self.forward) {
            Ok(rsp_ctx) => rsp_ctx,
            Err(rsp) => return Either::Right(Box::pin(async move { Ok(*rsp) })),
        };
        let response = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let mut rsp = response.await?;
            apply_response(&ctx.action.filters, &rsp_ctx, &mut rsp);
            Ok(rsp)
        }))
    }
}

/// Applies the request side of `filters` in order. Returns the response
/// when a filter answers the request itself (redirect, CORS preflight).
pub fn apply_request(
    filters: &[Filter],
    req: &mut Request<Body>,
    ctx: &RouteCtx,
    forward: &Forward,
) -> Result<ResponseCtx, Box<Response<Body>>> {
    let mut rsp_ctx = ResponseCtx::default();
    for filter in filters {
        match filter {
            Filter::Redirect(redirect) => {
                return Err(Box::new(redirect::respond(
                    redirect,
                    req,
                    ctx.prefix.as_deref(),
                )));
            }
            Filter::Cors(cors) => {
                if cors::is_preflight(req) {
                    return Err(Box::new(cors::preflight(cors, req)));
                }
                rsp_ctx.origin = req.headers().get(header::ORIGIN).cloned();
            }
            Filter::RequestHeaders(modifier) => modify_headers(req.headers_mut(), modifier),
            Filter::Rewrite(rewrite) => apply_rewrite(rewrite, req, ctx.prefix.as_deref()),
            Filter::Mirror(mirror) => mirror::spawn(mirror, req, ctx.config.clone(), forward),
            Filter::ResponseHeaders(_) => {}
        }
    }
    Ok(rsp_ctx)
}

/// Applies the response side of `filters` in order.
pub fn apply_response(filters: &[Filter], ctx: &ResponseCtx, rsp: &mut Response<Body>) {
    for filter in filters {
        match filter {
            Filter::ResponseHeaders(modifier) => modify_headers(rsp.headers_mut(), modifier),
            Filter::Cors(cors) => cors::decorate(cors, ctx.origin.as_ref(), rsp.headers_mut()),
            _ => {}
        }
    }
}

/// Applies a header modifier: set, then add, then remove.
pub fn modify_headers(headers: &mut HeaderMap, modifier: &HeaderModifier) {
    for (name, value) in &modifier.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &modifier.add {
        headers.append(name.clone(), value.clone());
    }
    for name in &modifier.remove {
        headers.remove(name);
    }
}

fn apply_rewrite(rewrite: &Rewrite, req: &mut Request<Body>, prefix: Option<&str>) {
    if let Some(hostname) = &rewrite.hostname
        && let Ok(host) = HeaderValue::from_str(hostname)
    {
        req.headers_mut().insert(header::HOST, host);
    }
    if let Some(modifier) = &rewrite.path {
        let path = replace_path(modifier, req.uri().path(), prefix);
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

/// The path after `ReplaceFullPath` or `ReplacePrefixMatch`. `prefix` is
/// the `PathPrefix` that matched, if the match was a prefix.
pub fn replace_path(modifier: &PathModifier, path: &str, prefix: Option<&str>) -> String {
    match (modifier, prefix) {
        (PathModifier::ReplaceFullPath(full), _) => full.clone(),
        (PathModifier::ReplacePrefixMatch(replacement), Some(prefix)) => {
            let rest = if prefix == "/" {
                path
            } else {
                path.get(prefix.len()..).unwrap_or("")
            };
            let mut out = replacement.trim_end_matches('/').to_string();
            if rest.is_empty() && (out.is_empty() || replacement.ends_with('/')) {
                out.push('/');
            } else {
                out.push_str(rest);
            }
            if !out.starts_with('/') {
                out.insert(0, '/');
            }
            out
        }
        (PathModifier::ReplacePrefixMatch(replacement), None) => replacement.clone(),
    }
}
