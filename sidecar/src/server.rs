//! Serving HTTP to clients, the same way on every listener that does: the
//! gateway's listeners (HTTP and HTTPS), the sidecar's outbound HTTP and
//! the mesh's inbound HTTP/2. [`ServerParams`] holds the limits, one set
//! of named settings; an [`HttpServer`] applies them to each connection:
//!
//! * the first bytes, which tell HTTP/1 from the HTTP/2 preface, must
//!   arrive within `header_read_timeout`, then an HTTP/1 head within
//!   `header_read_timeout` again (hyper's timer, which also closes a
//!   keep-alive connection left idle that long);
//! * an HTTP/1 head with a bare LF is refused ([`head`]);
//! * an HTTP/2 connection is pinged (`http2_keep_alive_*`), closed if it
//!   has not made a request within `header_read_timeout`, and sent a
//!   GOAWAY once no request has been in flight for `http2_idle_timeout`;
//! * request bodies must keep arriving until the response starts
//!   ([`body`]), and their failures are the client's, not the backend's.
//!
//! Connections cut off by a limit are counted ([`ServerMetrics`]).

pub mod body;
mod head;
mod params;
#[cfg(test)]
mod tests;

pub use params::{ADMIN_HEADER_READ_TIMEOUT, BodyLimits, ServerParams};

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use self::body::{BodyFailure, BodyWatch, RequestBody};
use self::head::{Framing, HeadGuard};
use crate::body::{self as proxy_body, Body, BoxError};
use crate::proxy::{ConnInfo, ProxyFuture, ProxyService};
use crate::sidecar::detect::Prefixed;

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/1 and HTTP/2 servers configured by one [`ServerParams`].
#[derive(Clone, Debug)]
pub struct HttpServer {
    params: ServerParams,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// The mesh's HTTP/2: `http2` with extended CONNECT (RFC 8441), which
    /// carries WebSockets between proxies.
    mesh_http2: http2::Builder<TokioExecutor>,
    metrics: ServerMetrics,
}

/// Client connections and requests cut off by a limit.
#[derive(Clone, Debug, Default)]
pub struct ServerMetrics {
    cut_off: Family<LimitLabel, Counter>,
}

/// The label of a limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: Limit,
}

/// The limits whose hits are counted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Limit {
    /// `tls_handshake_timeout`.
    TlsHandshake,
    /// `header_read_timeout`, before the first request started.
    FirstRequest,
    /// `header_read_timeout` of an HTTP/1 head (hyper's).
    Header,
    /// `http2_idle_timeout`.
    Http2Idle,
    /// `http2_keep_alive_timeout`: a PING not acknowledged.
    Http2KeepAlive,
    /// The request body limits (answered 408).
    RequestBody,
}

/// What a connection turned out to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Http1,
    Http2,
}

/// One client connection's service: the proxy's service, called in place
/// rather than cloned for every request, with the connection's
/// [`ConnInfo`] (and, for a request with a body, its [`BodyWatch`]) added
/// to each request.
struct Connection {
    service: RefCell<ProxyService>,
    info: ConnInfo,
    limits: BodyLimits,
    metrics: ServerMetrics,
    /// HTTP/1: the framing of each request, for the connection's
    /// [`HeadGuard`].
    framing: Option<Arc<Framing>>,
    /// HTTP/2: the requests in flight.
    activity: Option<Arc<Activity>>,
}

/// The response of one request of a [`Connection`].
struct Tracked {
    inner: ProxyFuture,
    watch: Option<(BodyWatch, ServerMetrics)>,
    _in_flight: Option<InFlight>,
}

/// Requests in flight on an HTTP/2 connection, and since when none is.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `epoch` to the end of the last request in flight;
    /// [`Activity::NEVER`] before the first request.
    idle_since_ms: AtomicU64,
}

/// One request in flight on an HTTP/2 connection.
pub(crate) struct InFlight(Arc<Activity>);

/// What an HTTP/2 connection is doing, as its idle timer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Doing {
    /// No request yet.
    Nothing,
    /// Requests in flight.
    Busy,
    /// Nothing in flight since this long after the connection started.
    IdleSince(std::time::Duration),
}

// === impl HttpServer ===

impl HttpServer {
    /// Servers applying `params`, counting their cut-offs in `metrics`.
    pub fn new(params: ServerParams, metrics: ServerMetrics) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(params.header_read_timeout)
            .max_buf_size(params.max_header_bytes.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(params.http2_keep_alive_interval)
            .keep_alive_timeout(params.http2_keep_alive_timeout)
            .max_header_list_size(u32::try_from(params.max_header_bytes).unwrap_or(u32::MAX));
        let mut mesh_http2 = http2.clone();
        mesh_http2.enable_connect_protocol();
        Self {
            params,
            http1,
            http2,
            mesh_http2,
            metrics,
        }
    }

    /// The limits applied.
    pub fn params(&self) -> &ServerParams {
        &self.params
    }

    /// Counts a connection cut off by `limit`.
    pub fn cut_off(&self, limit: Limit) {
        self.metrics.hit(limit);
    }

    /// Serves `io`, a client's connection (HTTP/1 or HTTP/2, told by its
    /// first bytes), with `service`, until it closes or a limit closes it.
    pub async fn serve<I>(&self, io: I, info: ConnInfo, service: ProxyService)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let start = Instant::now();
        let detected = tokio::time::timeout(self.params.header_read_timeout, read_version(io));
        let (version, io) = match detected.await {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%error, peer = %info.peer, "Connection failed before its first request");
                return;
            }
            Err(_) => {
                self.metrics.hit(Limit::FirstRequest);
                tracing::debug!(peer = %info.peer, "Connection closed: no request within the header read timeout");
                return;
            }
        };
        let mut connection = Connection {
            service: RefCell::new(service),
            info,
            limits: self.params.body,
            metrics: self.metrics.clone(),
            framing: None,
            activity: None,
        };
        let result = match version {
            Version::Http1 => {
                let framing = Arc::new(Framing::new());
                connection.framing = Some(framing.clone());
                let io = TokioIo::new(HeadGuard::new(io, framing));
                self.http1
                    .serve_connection(io, connection)
                    .with_upgrades()
                    .await
            }
            Version::Http2 => {
                let activity = Arc::new(Activity::new(start));
                connection.activity = Some(activity.clone());
                self.drive_http2(&self.http2, TokioIo::new(io), connection, &activity)
                    .await
            }
        };
        if let Err(error) = result {
            self.closed_with(&error, version);
            tracing::debug!(%error, peer = %info.peer, "Connection closed with error");
        }
    }

    /// Serves the mesh's HTTP/2 on `io` (the inbound side, after its TLS
    /// handshake) with `handler`, under the same limits as
    /// [`HttpServer::serve`], with extended CONNECT.
    pub async fn serve_http2<I, F, Fut>(&self, io: I, handler: F) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let activity = Arc::new(Activity::new(Instant::now()));
        let tracked = activity.clone();
        let handler = Arc::new(handler);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = InFlight::new(&tracked);
            let response = handler(req);
            async move {
                let rsp = response.await;
                drop(in_flight);
                Ok::<_, Infallible>(rsp)
            }
        });
        let result = self
            .drive_http2(&self.mesh_http2, TokioIo::new(io), service, &activity)
            .await;
        if let Err(error) = &result {
            self.closed_with(error, Version::Http2);
        }
        result
    }

    /// Drives an HTTP/2 connection, closing it when it has made no request
    /// within `header_read_timeout` of `activity`'s start, and shutting it
    /// down gracefully once nothing has been in flight for
    /// `http2_idle_timeout`.
    async fn drive_http2<I, S, B>(
        &self,
        http2: &http2::Builder<TokioExecutor>,
        io: I,
        service: S,
        activity: &Activity,
    ) -> Result<(), hyper::Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<BoxError>,
        B: http_body::Body + 'static,
        B::Error: Into<BoxError>,
        TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
    {
        let mut conn = pin!(http2.serve_connection(io, service));
        let idle = self.params.http2_idle_timeout;
        let mut check = self.params.header_read_timeout;
        loop {
            tokio::select! {
                result = conn.as_mut() => return result,
                () = tokio::time::sleep_until(activity.epoch + check) => {}
            }
            let now = activity.epoch.elapsed();
            match activity.doing() {
                // Nothing to finish: close at once (a graceful shutdown
                // would wait on a handshake the client never completes).
                Doing::Nothing => {
                    self.metrics.hit(Limit::FirstRequest);
                    return Ok(());
                }
                Doing::Busy => check = now + idle,
                Doing::IdleSince(since) if now >= since + idle => break,
                Doing::IdleSince(since) => check = since + idle,
            }
        }
        self.metrics.hit(Limit::Http2Idle);
        conn.as_mut().graceful_shutdown();
        conn.await
    }

    fn closed_with(&self, error: &hyper::Error, version: Version) {
        if error.is_timeout() {
            self.metrics.hit(match version {
                Version::Http1 => Limit::Header,
                Version::Http2 => Limit::Http2KeepAlive,
            });
        }
    }
}

/// Reads a connection's first bytes until they tell the HTTP/2 preface
/// from anything else (HTTP/1); `None` when the client closes first. The
/// bytes read are replayed.
async fn read_version<I>(mut io: I) -> io::Result<Option<(Version, Prefixed<I>)>>
where
    I: AsyncRead + Unpin,
{
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        let version = if buf[..filled] != H2_PREFACE[..filled] {
            Version::Http1
        } else if filled == H2_PREFACE.len() {
            Version::Http2
        } else {
            continue;
        };
        let prefix = Bytes::copy_from_slice(&buf[..filled]);
        return Ok(Some((version, Prefixed::new(prefix, io))));
    }
}

// === impl ServerMetrics ===

impl ServerMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "ferry_server_limit_hits",
            "Client connections closed, or requests answered 408, by the limit they hit",
            metrics.cut_off.clone(),
        );
        metrics
    }

    fn hit(&self, limit: Limit) {
        self.cut_off.get_or_create(&LimitLabel { limit }).inc();
    }

    /// Hits of `limit` so far.
    pub fn hits(&self, limit: Limit) -> u64 {
        self.cut_off.get_or_create(&LimitLabel { limit }).get()
    }
}

// === impl Connection ===

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Tracked;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(framing) = &self.framing {
            framing.dispatched(&req);
        }
        let mut watch = None;
        let mut req = req.map(|incoming| {
            if http_body::Body::is_end_stream(&incoming) {
                return proxy_body::boxed(incoming);
            }
            let body_watch = BodyWatch::default();
            watch = Some(body_watch.clone());
            proxy_body::boxed(RequestBody::new(incoming, self.limits, body_watch))
        });
        req.extensions_mut().insert(self.info);
        if let Some(watch) = &watch {
            req.extensions_mut().insert(watch.clone());
        }
        let mut service = self.service.borrow_mut();
        // The gateway's stack is always ready; any other goes through a
        // clone that is polled ready as a future.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let inner = match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => service.call(req),
            _ => Box::pin(service.clone().oneshot(req)),
        };
        Tracked {
            inner,
            watch: watch.map(|w| (w, self.metrics.clone())),
            _in_flight: self.activity.as_ref().map(InFlight::new),
        }
    }
}

// === impl Tracked ===

impl Future for Tracked {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let rsp = std::task::ready!(self.inner.as_mut().poll(cx));
        if let Some((watch, metrics)) = &self.watch {
            watch.responded();
            if watch.failure() == Some(BodyFailure::TimedOut) {
                metrics.hit(Limit::RequestBody);
            }
        }
        Poll::Ready(rsp)
    }
}

// === impl Activity ===

impl Activity {
    const NEVER: u64 = u64::MAX;

    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(Self::NEVER),
        }
    }

    fn doing(&self) -> Doing {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Doing::Busy;
        }
        match self.idle_since_ms.load(Ordering::Acquire) {
            Self::NEVER => Doing::Nothing,
            ms => Doing::IdleSince(std::time::Duration::from_millis(ms)),
        }
    }
}

// === impl InFlight ===

impl InFlight {
    pub(crate) fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ms = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.0.idle_since_ms.store(ms, Ordering::Release);
        }
    }
}
