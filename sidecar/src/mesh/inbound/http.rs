//! HTTP from another proxy: an HTTP/2 server on the mTLS connection whose
//! requests go to the app on loopback in the app's own protocol
//! ([`ORIG_PROTO_HEADER`]): pooled HTTP/1.1 keep-alive connections, or one
//! multiplexed h2c connection per app port.
//!
//! The server offers HTTP/2's extended CONNECT: such a stream is an
//! HTTP/1.1 upgrade (WebSocket) of the calling app, sent to the app as
//! that upgrade and spliced to it once the app answers `101`
//! ([`crate::mesh::upgrade`]). A CONNECT without `:protocol` is refused
//! (501): client proxies never send one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_core::model::Endpoint;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::body::{self, Body, BoxError};
use crate::mesh::{CLIENT_IDENTITY_HEADER, ORIG_PROTO_HEADER, upgrade};
use crate::proxy::client::{Client, ClientParams, SendError};
use crate::proxy::route::FERRY_ERROR;
use crate::server::HttpServer;

/// The app's HTTP version, from [`ORIG_PROTO_HEADER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppProtocol {
    Http1,
    H2c,
}

/// Why a request did not reach the app, or its response did not come
/// back.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("unknown {ORIG_PROTO_HEADER} {0:?}")]
    OrigProto(HeaderValue),
    #[error("failed to build the request to the app at {app}")]
    Uri {
        app: SocketAddr,
        #[source]
        source: http::Error,
    },
    #[error("failed to connect to the app at {app}")]
    Connect {
        app: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("request to the app at {app} failed")]
    Request {
        app: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("a CONNECT without :protocol is not carried between proxies")]
    PlainConnect,
    #[error("an upgrade to {protocol:?} is carried to HTTP/1.1 apps only")]
    UpgradeToH2c { protocol: String },
    #[error("the app at {app} answered an upgrade to {protocol:?} with {status} instead of 101")]
    UpgradeIgnored {
        app: SocketAddr,
        protocol: String,
        status: StatusCode,
    },
}

/// Connections to the app, shared by every inbound connection: HTTP/1.1
/// through the proxy's own keep-alive pool, h2c over one connection per
/// app port that keeps the client's authority.
#[derive(Debug)]
pub struct AppClient {
    http1: Client,
    h2c: Mutex<HashMap<SocketAddr, SendRequest<Body>>>,
    connect_timeout: Duration,
}

/// What one mesh HTTP connection forwards to.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The app's address on loopback.
    pub app: SocketAddr,
    /// The value of [`CLIENT_IDENTITY_HEADER`], when the pod asks for it.
    pub identity_header: Option<HeaderValue>,
}

// === impl AppClient ===

impl AppClient {
    /// Pools whose connects give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        let params = ClientParams {
            connect_timeout,
            ..ClientParams::default()
        };
        Self {
            http1: Client::new(params),
            h2c: Mutex::new(HashMap::new()),
            connect_timeout,
        }
    }

    async fn send(
        &self,
        req: Request<Body>,
        proto: AppProtocol,
        app: SocketAddr,
    ) -> Result<Response<Body>, AppError> {
        match proto {
            AppProtocol::Http1 => {
                let sent = self.http1.send_http1(Endpoint::Addr(app), req).await;
                sent.map_err(|error| match error {
                    SendError::Connect(source) => AppError::Connect { app, source },
                    SendError::Upstream(source) => AppError::Request { app, source },
                })
            }
            AppProtocol::H2c => {
                let mut sender = self.h2c_sender(app).await?;
                let rsp = sender.send_request(req).await.map_err(|error| {
                    let source = error.into();
                    AppError::Request { app, source }
                })?;
                Ok(rsp.map(body::boxed))
            }
        }
    }

    /// The open h2c connection to `app`, or a new one.
    async fn h2c_sender(&self, app: SocketAddr) -> Result<SendRequest<Body>, AppError> {
        let open = self
            .h2c
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&app)
            .filter(|sender| !sender.is_closed())
            .cloned();
        if let Some(mut sender) = open
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        let connect = |source: BoxError| AppError::Connect { app, source };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(app))
            .await
            .map_err(|elapsed| connect(elapsed.into()))?
            .map_err(|error| connect(error.into()))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|error| connect(error.into()))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%app, %error, "h2c connection to the app ended");
            }
        });
        self.h2c
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(app, sender.clone());
        Ok(sender)
    }
}

/// Serves HTTP/2 on `io` (a terminated mesh connection) through `server`,
/// under its limits, until the client closes it or a limit does.
pub async fn serve<I>(
    server: &HttpServer,
    io: I,
    client: Arc<AppClient>,
    forward: Forward,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    server
        .serve_http2(io, move |req: Request<Incoming>| {
            let (client, forward) = (client.clone(), forward.clone());
            async move { to_app(&client, &forward, req).await }
        })
        .await
}

/// Forwards one request; the one place where its errors become responses.
async fn to_app(
    client: &AppClient,
    forward: &Forward,
    mut req: Request<Incoming>,
) -> Response<Body> {
    // The request keeps the stream's side of the upgrade: the HTTP/1.1
    // pool splices it to the app's once the app answers 101.
    let upgrade = upgrade::from_connect(&mut req);
    let result = async {
        if req.method() == http::Method::CONNECT {
            return Err(AppError::PlainConnect);
        }
        let (proto, req) = app_request(req.map(body::boxed), forward)?;
        let Some(protocol) = upgrade else {
            return client.send(req, proto, forward.app).await;
        };
        if proto != AppProtocol::Http1 {
            let protocol = protocol.as_str().to_owned();
            return Err(AppError::UpgradeToH2c { protocol });
        }
        let mut rsp = client.send(req, proto, forward.app).await?;
        match rsp.status() {
            StatusCode::SWITCHING_PROTOCOLS => {
                upgrade::into_connect_response(&mut rsp);
                Ok(rsp)
            }
            // A 2xx would open the tunnel on the client's side.
            status if status.is_success() => Err(AppError::UpgradeIgnored {
                app: forward.app,
                protocol: protocol.as_str().to_owned(),
                status,
            }),
            _ => Ok(rsp),
        }
    }
    .await;
    result.unwrap_or_else(|error| error_response(&error))
}

/// The request as the app gets it: the mesh headers removed (and the
/// verified identity added when asked), in the app's HTTP version, sent to
/// the app's loopback address with the client's authority kept.
fn app_request(
    mut req: Request<Body>,
    forward: &Forward,
) -> Result<(AppProtocol, Request<Body>), AppError> {
    let headers = req.headers_mut();
    let proto = match headers.remove(ORIG_PROTO_HEADER) {
        None => AppProtocol::Http1,
        Some(value) if value == "HTTP/1.1" => AppProtocol::Http1,
        Some(value) if value == "HTTP/2" => AppProtocol::H2c,
        Some(other) => return Err(AppError::OrigProto(other)),
    };
    let identity = HeaderName::from_static(CLIENT_IDENTITY_HEADER);
    headers.remove(&identity);
    if let Some(value) = &forward.identity_header {
        headers.insert(identity, value.clone());
    }
    let app = forward.app;
    let uri_error = |source| AppError::Uri { app, source };
    let app_authority = Authority::try_from(app.to_string()).map_err(|e| uri_error(e.into()))?;
    let original = req.uri().clone();
    let authority = match proto {
        AppProtocol::Http1 => {
            // HTTP/1.1 carries the client's authority in Host; the URI
            // only picks the pooled connection.
            if let Some(authority) = original.authority()
                && !req.headers().contains_key(header::HOST)
            {
                let host =
                    HeaderValue::from_str(authority.as_str()).map_err(|e| uri_error(e.into()))?;
                req.headers_mut().insert(header::HOST, host);
            }
            *req.version_mut() = Version::HTTP_11;
            app_authority
        }
        AppProtocol::H2c => {
            *req.version_mut() = Version::HTTP_2;
            original.authority().cloned().unwrap_or(app_authority)
        }
    };
    let mut parts = original.into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| uri_error(e.into()))?;
    Ok((proto, req))
}

fn error_response(error: &AppError) -> Response<Body> {
    let (status, cause) = match error {
        AppError::OrigProto(_) | AppError::Uri { .. } | AppError::UpgradeToH2c { .. } => {
            (StatusCode::BAD_REQUEST, "bad-request")
        }
        AppError::UpgradeIgnored { .. } => (StatusCode::BAD_GATEWAY, "app-upgrade"),
        AppError::PlainConnect => (StatusCode::NOT_IMPLEMENTED, "connect"),
        AppError::Connect { .. } => (StatusCode::BAD_GATEWAY, "app-connect"),
        AppError::Request { .. } => (StatusCode::BAD_GATEWAY, "app-request"),
    };
    tracing::debug!(%error, source = ?std::error::Error::source(error), status = status.as_u16(), "Inbound request failed");
    let mut rsp = Response::new(body::full(format!("{error}\n")));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(FERRY_ERROR, HeaderValue::from_static(cause));
    rsp
}
