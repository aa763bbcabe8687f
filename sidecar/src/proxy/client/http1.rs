//! HTTP/1.1 to endpoints over pooled keep-alive connections: one list of
//! idle `SendRequest` handles per endpoint. A connection goes back to the
//! pool when its response body ends; requests take the most recently used
//! one that is ready. Compared with hyper-util's legacy client this keeps
//! no per-request pool key, checkout future or idle-waiting task.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::model::Endpoint;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ClientParams;
use super::dns::Resolver;
use crate::body::{Body, BoxError};
use crate::proxy::hash::ConfigMap;

/// Idle connections to endpoints.
#[derive(Debug)]
pub(super) struct Pool {
    params: ClientParams,
    resolver: Resolver,
    idle: Mutex<ConfigMap<Endpoint, Vec<Idle>>>,
    reaper: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why an exchange with an endpoint failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(BoxError),
    /// The request was sent (or sending began) and no response came back.
    Upstream(BoxError),
}

/// A response body that returns its connection to the pool once it ends.
struct Pooled {
    inner: Incoming,
    checkin: Option<Checkin>,
}

struct Checkin {
    pool: Arc<Pool>,
    endpoint: Endpoint,
    sender: SendRequest<Body>,
}

#[derive(Debug, thiserror::Error)]
#[error("connecting timed out after {0:?}")]
struct ConnectTimeout(Duration);

#[derive(Debug, thiserror::Error)]
#[error("name resolved to no address")]
struct NoAddress;

// === impl Pool ===

impl Pool {
    pub(super) fn new(params: ClientParams, resolver: Resolver) -> Self {
        Self {
            params,
            resolver,
            idle: Mutex::default(),
            reaper: AtomicBool::new(false),
        }
    }

    /// Sends `req` (origin-form, HTTP/1.1) to `endpoint`. An idle
    /// connection that turns out to be closed before the request was
    /// written is replaced by a new one, once.
    pub(super) async fn send(
        self: Arc<Self>,
        endpoint: Endpoint,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        prepare(&endpoint, &mut req);
        if let Some(mut sender) = self.checkout(&endpoint) {
            match sender.try_send_request(req).await {
                Ok(rsp) => return Ok(self.pooled(endpoint, sender, rsp)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Upstream(error.into_error().into())),
                },
            }
        }
        let mut sender = self.connect(&endpoint).await?;
        match sender.send_request(req).await {
            Ok(rsp) => Ok(self.pooled(endpoint, sender, rsp)),
            Err(error) => Err(SendError::Upstream(error.into())),
        }
    }

    /// The most recently used idle connection to `endpoint` that is ready.
    /// Closed and expired ones are dropped; busy ones stay.
    fn checkout(&self, endpoint: &Endpoint) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(endpoint)?;
        let now = Instant::now();
        let mut found = None;
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let entry = &list[i];
            if entry.sender.is_closed() || now - entry.since > self.params.idle_timeout {
                list.swap_remove(i);
            } else if entry.sender.is_ready() {
                found = Some(list.swap_remove(i).sender);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(endpoint);
        }
        found
    }

    fn checkin(&self, endpoint: Endpoint, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(endpoint).or_default().push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    async fn connect(
        self: &Arc<Self>,
        endpoint: &Endpoint,
    ) -> Result<SendRequest<Body>, SendError> {
        let limit = self.params.connect_timeout;
        let tcp = match tokio::time::timeout(limit, tcp_connect(&self.resolver, endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(SendError::Connect(error)),
            Err(_) => return Err(SendError::Connect(Box::new(ConnectTimeout(limit)))),
        };
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|error| SendError::Connect(error.into()))?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "Backend connection failed");
            }
        });
        self.start_reaper();
        Ok(sender)
    }

    fn pooled(
        self: Arc<Self>,
        endpoint: Endpoint,
        sender: SendRequest<Body>,
        rsp: Response<Incoming>,
    ) -> Response<Body> {
        // An upgraded connection is the client's from now on.
        let reusable = rsp.status() != StatusCode::SWITCHING_PROTOCOLS;
        rsp.map(|inner| {
            let mut body = Pooled {
                inner,
                checkin: reusable.then_some(Checkin {
                    pool: self,
                    endpoint,
                    sender,
                }),
            };
            // A body that is already over is never polled.
            if body.inner.is_end_stream() {
                body.release();
            }
            crate::body::boxed(body)
        })
    }

    /// Closes idle connections past the idle timeout, while the pool lives.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Self> = Arc::downgrade(self);
        let period = (self.params.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|_, list| {
                    list.retain(|entry| {
                        !entry.sender.is_closed() && now - entry.since <= pool.params.idle_timeout
                    });
                    !list.is_empty()
                });
            }
        });
    }
}

/// What the legacy client did to a request for an HTTP/1 endpoint: a
/// `Host` when there is none, and the target in origin form (authority
/// form for CONNECT).
fn prepare(endpoint: &Endpoint, req: &mut Request<Body>) {
    let authority = || match endpoint {
        Endpoint::Addr(addr) => addr.to_string(),
        Endpoint::Dns { host, port } => format!("{host}:{port}"),
    };
    if !req.headers().contains_key(header::HOST) {
        let host = match endpoint {
            Endpoint::Addr(addr) if addr.port() == 80 => host_of(addr),
            Endpoint::Dns { host, port: 80 } => host.clone(),
            _ => authority(),
        };
        if let Ok(host) = HeaderValue::try_from(host) {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    if req.method() == Method::CONNECT {
        if let Ok(uri) = Uri::try_from(authority()) {
            *req.uri_mut() = uri;
        }
        return;
    }
    let origin_form = req.uri().scheme().is_none() && req.uri().authority().is_none();
    if !origin_form {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
}

fn host_of(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

async fn tcp_connect(resolver: &Resolver, endpoint: &Endpoint) -> Result<TcpStream, BoxError> {
    match endpoint {
        Endpoint::Addr(addr) => Ok(TcpStream::connect(addr).await?),
        Endpoint::Dns { host, port } => {
            let mut last: Option<std::io::Error> = None;
            for addr in resolver.lookup(host, *port).await? {
                match TcpStream::connect(addr).await {
                    Ok(tcp) => return Ok(tcp),
                    Err(error) => last = Some(error),
                }
            }
            Err(match last {
                Some(error) => Box::new(error),
                None => Box::new(NoAddress),
            })
        }
    }
}

// === impl Pooled ===

impl Pooled {
    fn release(&mut self) {
        if let Some(checkin) = self.checkin.take() {
            checkin.pool.checkin(checkin.endpoint, checkin.sender);
        }
    }
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.release(),
            // A body cut off leaves the connection unusable: dropping the
            // sender closes it.
            Some(Err(_)) => self.checkin = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
