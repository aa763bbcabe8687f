//! A small HTTP echo server: it answers every request with its own name
//! (in a pod: the pod's name and namespace) and the request it saw, so a
//! person (or a test) can tell which backend a request reached and what the
//! proxies did to it on the way.
//!
//! The answer is plain text (`Hostname: <name>`, the peer, the request
//! line, every header, the body), or [`Echoed`] as JSON when the request
//! accepts `application/json`. Either way the `x-echo-name` header names the
//! server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod answer;

pub use answer::{CLIENT_IDENTITY_HEADER, Echoed};

/// The response header that carries the echo server's name.
pub const NAME_HEADER: &str = "x-echo-name";
/// The response header that carries the echo server's namespace, when it
/// knows one.
pub const NAMESPACE_HEADER: &str = "x-echo-namespace";
/// The name used when neither a flag nor the environment gives one.
pub const DEFAULT_NAME: &str = "ferry-echo";

/// Who an echo server says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoIdentity {
    /// Its name: the pod's, in a cluster.
    pub name: String,
    /// Its namespace, when it runs in one.
    pub namespace: Option<String>,
}

/// A running echo server; stops accepting when dropped, and its open
/// connections close once their current request is answered.
#[derive(Debug)]
pub struct EchoServer {
    identity: Arc<EchoIdentity>,
    addr: SocketAddr,
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

// === impl EchoIdentity ===

impl EchoIdentity {
    /// Just a name, no namespace.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
        }
    }

    /// The identity from explicit values (flags, `FERRY_ECHO_NAME`,
    /// `FERRY_ECHO_NAMESPACE`) or else the environment `env` describes:
    /// the name from `POD_NAME`, else `HOSTNAME`, else [`DEFAULT_NAME`];
    /// the namespace from `POD_NAMESPACE`. Empty values count as unset.
    pub fn resolve(
        name: Option<String>,
        namespace: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let name = set(name)
            .or_else(|| set(env("POD_NAME")))
            .or_else(|| set(env("HOSTNAME")))
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let namespace = set(namespace).or_else(|| set(env("POD_NAMESPACE")));
        Self { name, namespace }
    }
}

// === impl EchoServer ===

impl EchoServer {
    /// Binds `addr` and serves HTTP/1.1 and HTTP/2 (prior knowledge) there,
    /// answering as `name`.
    pub async fn start(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_as(EchoIdentity::named(name), addr).await
    }

    /// Like [`EchoServer::start`], with a full identity.
    pub async fn start_as(identity: EchoIdentity, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let identity = Arc::new(identity);
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, identity.clone(), stop));
        Ok(Self {
            identity,
            addr,
            task,
            shutdown,
        })
    }

    /// The name the server answers with.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The namespace the server answers with, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.identity.namespace.as_deref()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, asks the open ones to close once their
    /// current request is answered (HTTP/2: GOAWAY), and waits for them for
    /// at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        // Every connection task holds a receiver; `closed` resolves once
        // the accept loop and all of them have ended.
        let _ = tokio::time::timeout(grace, self.shutdown.closed()).await;
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    identity: Arc<EchoIdentity>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                eprintln!("echo {}: accept failed: {error}", identity.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            identity.clone(),
            stop.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    identity: Arc<EchoIdentity>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| echo(identity.clone(), peer, req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // Also when the server is gone without a shutdown (dropped).
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

async fn echo(
    identity: Arc<EchoIdentity>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (content_type, text) = if answer::wants_json(&parts.headers) {
        let echoed = Echoed::new(&identity, peer, &parts, &body);
        let json = serde_json::to_string(&echoed)
            .expect("an answer of strings and maps always serializes");
        ("application/json", json + "\n")
    } else {
        let text = answer::text(&identity, peer, &parts, &body);
        ("text/plain; charset=utf-8", text)
    };
    let mut response = Response::builder()
        .header(NAME_HEADER, header_value(&identity.name))
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some(namespace) = &identity.namespace {
        response = response.header(NAMESPACE_HEADER, header_value(namespace));
    }
    let response = response
        .body(Full::new(Bytes::from(text)))
        .expect("static header names and checked values always build a response");
    Ok(response)
}

/// A name as a header value; characters a header cannot carry become `?`.
fn header_value(value: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(value).unwrap_or_else(|_| {
        let cleaned: String = value
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        http::HeaderValue::from_str(&cleaned).expect("visible ASCII is a valid header value")
    })
}
