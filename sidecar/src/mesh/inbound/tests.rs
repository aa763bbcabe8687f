//! The inbound side on loopback: real rustls clients (the outbound side's
//! client config), real HTTP/1.1, h2c and TCP apps; only the original
//! destination is given instead of read from nat rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::*;
use crate::body;
use crate::identity::Credentials;
use crate::mesh::dial::{DialMetrics, Dialer};
use crate::mesh::test_pki::{TestCa, identity};
use crate::mesh::tls::{SpiffeServerVerifier, client_config, provider, root_store};
use crate::mesh::{CLIENT_IDENTITY_HEADER, ORIG_PROTO_HEADER, OpaqueHeader};

const FORGED: &str = "spiffe://cluster.local/ns/evil/sa/mallory";

/// An inbound side in front of one app, and what it counts.
struct Pod {
    ca: TestCa,
    credentials: watch::Sender<Option<Arc<Credentials>>>,
    registry: Registry,
    /// The inbound listener (connections are handled as if redirected to
    /// the app's port).
    addr: SocketAddr,
    app: App,
}

/// A local app and how many connections it accepted.
struct App {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn server_identity() -> Identity {
    identity("shop", "reviews")
}

fn client_identity() -> Identity {
    identity("web", "frontend")
}

async fn pod(policy: InboundPolicy, identity_header: bool, app: App) -> Pod {
    let limits = ServerParams {
        detect_timeout: Duration::from_millis(200),
        ..ServerParams::sidecar()
    };
    pod_with(policy, identity_header, app, limits).await
}

/// [`pod`], with `limits` on its clients.
async fn pod_with(
    policy: InboundPolicy,
    identity_header: bool,
    app: App,
    limits: ServerParams,
) -> Pod {
    let ca = TestCa::new();
    let (credentials, rx) = watch::channel(Some(Arc::new(ca.credentials(&server_identity()))));
    let mut registry = Registry::default();
    let metrics = InboundMetrics::register(&mut registry);
    let tcp = TcpMetrics::register(&mut registry);
    let server = HttpServer::new(limits, ServerMetrics::default());
    let params = InboundParams::new(policy, identity_header, Duration::from_secs(1))
        .with_server(Arc::new(server));
    let inbound = Inbound::new(params, rx, metrics, tcp);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let to = app.addr;
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let inbound = inbound.clone();
            tokio::spawn(async move { inbound.handle(tcp, peer, to, to).await });
        }
    });
    Pod {
        ca,
        credentials,
        registry,
        addr,
        app,
    }
}

/// An HTTP app (HTTP/1.1 and h2c) answering with what it was sent.
async fn http_app() -> App {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let service = service_fn(|req: Request<Incoming>| async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
                };
                let authority = match req.headers().get(::http::header::HOST) {
                    Some(host) => host.to_str().unwrap().to_owned(),
                    None => req.uri().authority().unwrap().to_string(),
                };
                let text = format!(
                    "{:?} {} {} identity={} orig-proto={}",
                    req.version(),
                    authority,
                    req.uri().path(),
                    header(CLIENT_IDENTITY_HEADER),
                    header(ORIG_PROTO_HEADER),
                );
                Ok::<_, std::convert::Infallible>(Response::new(body::full(text)))
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .into_owned(),
            );
        }
    });
    App { addr, accepted }
}

/// A TCP app echoing what it reads.
async fn echo_app() -> App {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    App { addr, accepted }
}

/// A mesh client connection with `config`, expecting the pod's identity.
async fn connect(pod: &Pod, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(pod.addr).await?;
    let name = ServerName::try_from(server_identity().server_name()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// A client proxy's connection: credentials of `client_identity()` from
/// `ca`.
async fn mesh_connect(
    pod: &Pod,
    ca: &TestCa,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut credentials = ca.credentials(&client_identity());
    // The client trusts the pod's CA, whatever CA signed its own
    // certificate.
    credentials.roots = vec![pod.ca.root()];
    connect(pod, client_config(&credentials, alpn).unwrap()).await
}

type Sender = hyper::client::conn::http2::SendRequest<body::Body>;

async fn h2(tls: TlsStream<TcpStream>) -> Result<Sender, hyper::Error> {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(
    sender: &mut Sender,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String), hyper::Error> {
    let mut req = Request::get("http://reviews.shop:9080/books?id=1");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let rsp = sender
        .send_request(req.body(body::empty()).unwrap())
        .await?;
    let status = rsp.status();
    let bytes = rsp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The value of a counter, 0 when absent; `labels` must all appear on its
/// line.
fn counter(registry: &Registry, name: &str, labels: &[&str]) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Reads until the peer closes, failing if that takes long.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut out))
        .await
        .expect("the connection is closed");
    out
}

#[test]
fn policies_parse() {
    assert_eq!("permissive".parse(), Ok(InboundPolicy::Permissive));
    assert_eq!(" strict".parse(), Ok(InboundPolicy::Strict));
    assert_eq!(
        "Strict".parse::<InboundPolicy>(),
        Err(BadPolicy("Strict".into()))
    );
    assert_eq!(InboundPolicy::default().to_string(), "permissive");
}

mod http;
mod tcp;
