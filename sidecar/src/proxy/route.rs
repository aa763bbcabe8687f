//! Routing: finds the rule for a request in the port's route table of the
//! config in force when the request arrives. Unmatched requests get 404;
//! a CONNECT gets 501, since no route describes a tunnel.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ferry_core::model::{PathMatch, RequestHead, RuleRef};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::hash::ConfigMap;
use super::{BoxFuture, ConnInfo, RouteCtx};
use crate::body::{self, Body};
use crate::config::ConfigRx;

/// The header naming why the proxy answered instead of a backend.
pub const FERRY_ERROR: HeaderName = HeaderName::from_static("ferry-error");

/// Labels a response with the rule that routed it, for metrics.
#[derive(Clone, Debug)]
pub struct RouteLabel(pub Arc<str>);

/// Routes requests with the current config.
#[derive(Clone, Debug)]
pub struct RouteLayer {
    config: ConfigRx,
    labels: RuleLabels,
}

/// See [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct Route<S> {
    config: ConfigRx,
    labels: RuleLabels,
    inner: S,
}

/// The label of each rule seen, formatted once rather than per request.
#[derive(Clone, Debug, Default)]
struct RuleLabels(Arc<Mutex<ConfigMap<RuleRef, RouteLabel>>>);

// === impl RouteLayer ===

impl RouteLayer {
    /// Routes with whatever `config` holds when each request arrives.
    pub fn new(config: ConfigRx) -> Self {
        Self {
            config,
            labels: RuleLabels::default(),
        }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Route {
            config: self.config.clone(),
            labels: self.labels.clone(),
            inner,
        }
    }
}

// === impl Route ===

impl<S> Service<Request<Body>> for Route<S>
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if req.method() == Method::CONNECT {
            return Box::pin(async { Ok(connect_refused()) });
        }
        let Some(ctx) = self.route(&req) else {
            return Box::pin(async { Ok(not_found()) });
        };
        let label = self.labels.get(&ctx.action.rule);
        req.extensions_mut().insert(ctx);
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut rsp = response.await?;
            rsp.extensions_mut().insert(label);
            Ok(rsp)
        })
    }
}

impl<S> Route<S> {
    fn route(&self, req: &Request<Body>) -> Option<RouteCtx> {
        let snapshot = self.config.borrow().clone()?;
        let port = req.extensions().get::<ConnInfo>()?.port;
        let port = snapshot.config.ports.iter().find(|p| p.port == port)?;
        let host = request_host(req)?;
        let head = RequestHead {
            host: &host,
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        };
        let matched = port.routes.find(&head)?;
        let prefix = match matched.path {
            PathMatch::Prefix(prefix) => Some(prefix.clone()),
            _ => None,
        };
        Some(RouteCtx {
            config: snapshot.config.clone(),
            action: matched.action.clone(),
            prefix,
        })
    }
}

// === impl RuleLabels ===

impl RuleLabels {
    fn get(&self, rule: &RuleRef) -> RouteLabel {
        let mut labels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = labels.get(rule) {
            return label.clone();
        }
        let label = RouteLabel(Arc::from(rule.to_string()));
        labels.insert(rule.clone(), label.clone());
        label
    }
}

/// The request's host, from the authority or `Host`, lowercase and without
/// a port.
pub fn request_host<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = match req.uri().host() {
        Some(host) => host,
        None => {
            let host = req.headers().get(header::HOST)?.to_str().ok()?;
            strip_port(host)
        }
    };
    if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(raw.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(raw))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(v6, _)| &host[..v6.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// A CONNECT asks for a tunnel, which no HTTPRoute describes: sent on as a
/// request, it would reach a backend as a CONNECT to that backend itself.
fn connect_refused() -> Response<Body> {
    let mut rsp = Response::new(body::full(
        "CONNECT is not proxied by HTTP routes; to reach a forward proxy through \
         the mesh, mark its port opaque (appProtocol: tcp)\n",
    ));
    *rsp.status_mut() = StatusCode::NOT_IMPLEMENTED;
    rsp.headers_mut()
        .insert(FERRY_ERROR, HeaderValue::from_static("connect"));
    rsp
}

fn not_found() -> Response<Body> {
    let mut rsp = Response::new(body::full("no route matches the request\n"));
    *rsp.status_mut() = StatusCode::NOT_FOUND;
    rsp.headers_mut()
        .insert(FERRY_ERROR, HeaderValue::from_static("no-route"));
    rsp
}
