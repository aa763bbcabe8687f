//! The HTTP/1.1 connection pool of [`Client`]: reuse, replacement of
//! closed and expired connections, connect errors, and the request as the
//! backend sees it.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_core::model::{BackendProtocol, Endpoint, ProxyConfig};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::support::*;
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::proxy::Target;
use crate::proxy::balance::Selected;
use crate::proxy::client::{Client, ClientParams};

/// A backend that counts the connections it accepts and answers with the
/// request line and `Host` it saw. With `close`, it closes each
/// connection after one response.
struct Counting {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl Counting {
    async fn start(close: bool) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = accepts.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap().to_owned());
                        let text = format!(
                            "{} {} host={}",
                            req.method(),
                            req.uri(),
                            host.unwrap_or_default()
                        );
                        Ok::<_, Infallible>(Response::new(body::full(text)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, accepts }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

fn to(addr: SocketAddr, mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut().insert(Target {
        config: Arc::new(ProxyConfig::default()),
        id: id("a"),
    });
    req.extensions_mut().insert(Selected {
        endpoint: Endpoint::Addr(addr),
        protocol: BackendProtocol::Http1,
    });
    req
}

fn get(path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", "app.example")
        .body(body::empty())
        .unwrap()
}

async fn send(client: &Client, req: Request<Body>) -> (StatusCode, String) {
    let rsp = client.clone().oneshot(req).await.unwrap();
    let status = rsp.status();
    let bytes = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn connections_are_kept_and_reused() {
    let backend = Counting::start(false).await;
    let client = Client::new(ClientParams::default());
    for _ in 0..5 {
        let (status, text) = send(&client, to(backend.addr, get("/x"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "GET /x host=app.example");
    }
    assert_eq!(backend.accepts(), 1);
}

#[tokio::test]
async fn closed_connections_are_replaced() {
    let backend = Counting::start(true).await;
    let client = Client::new(ClientParams::default());
    for _ in 0..3 {
        let (status, _) = send(&client, to(backend.addr, get("/x"))).await;
        assert_eq!(status, StatusCode::OK);
        // Let the backend's close reach the pooled connection.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backend.accepts(), 3);
}

#[tokio::test]
async fn idle_connections_expire() {
    let backend = Counting::start(false).await;
    let client = Client::new(ClientParams {
        idle_timeout: Duration::from_millis(100),
        ..ClientParams::default()
    });
    send(&client, to(backend.addr, get("/x"))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&client, to(backend.addr, get("/x"))).await;
    assert_eq!(backend.accepts(), 2);
}

#[tokio::test]
async fn request_goes_in_origin_form_with_a_host() {
    let backend = Counting::start(false).await;
    let client = Client::new(ClientParams::default());
    let req = Request::builder()
        .uri("http://app.example/x?y=1")
        .body(body::empty())
        .unwrap();
    let (_, text) = send(&client, to(backend.addr, req)).await;
    assert_eq!(text, format!("GET /x?y=1 host={}", backend.addr));
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let client = Client::new(ClientParams::default());
    let error = client.oneshot(to(addr, get("/x"))).await.unwrap_err();
    assert!(matches!(error, ProxyError::Connect { .. }), "{error:?}");
}
