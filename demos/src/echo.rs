//! A small HTTP echo server: it answers every request with its own name
//! and the request it saw, so a person (or a test) can tell which backend
//! a request reached and what the gateway did to it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The response header that carries the echo server's name.
pub const NAME_HEADER: &str = "x-echo-name";

/// A running echo server; stops when dropped.
#[derive(Debug)]
pub struct EchoServer {
    name: Arc<str>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

// === impl EchoServer ===

impl EchoServer {
    /// Binds `addr` and serves HTTP/1.1 and HTTP/2 (prior knowledge) there.
    pub async fn start(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let name: Arc<str> = Arc::from(name);
        let task = tokio::spawn(accept_loop(listener, name.clone()));
        Ok(Self { name, addr, task })
    }

    /// The name the server answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, name: Arc<str>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                eprintln!("echo {name}: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| echo(name.clone(), peer, req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(
    name: Arc<str>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut text = String::new();
    let _ = writeln!(text, "Hostname: {name}");
    let _ = writeln!(text, "RemoteAddr: {peer}");
    let _ = writeln!(text, "{} {} {:?}", parts.method, parts.uri, parts.version);
    for (header, value) in &parts.headers {
        let _ = writeln!(
            text,
            "{header}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    if !body.is_empty() {
        let _ = writeln!(text, "\n{}", String::from_utf8_lossy(&body));
    }
    let response = Response::builder()
        .header(NAME_HEADER, &*name)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text)))
        .expect("static header names and a plain body always build a response");
    Ok(response)
}
