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
    let ca = TestCa::new();
    let (credentials, rx) = watch::channel(Some(Arc::new(ca.credentials(&server_identity()))));
    let mut registry = Registry::default();
    let metrics = InboundMetrics::register(&mut registry);
    let tcp = TcpMetrics::register(&mut registry);
    let params = InboundParams {
        detect_timeout: Duration::from_millis(200),
        ..InboundParams::new(policy, identity_header, Duration::from_secs(1))
    };
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

#[tokio::test]
async fn mesh_http_reaches_an_http1_app_with_the_identity_only_when_asked() {
    let client = client_identity().to_string();
    for identity_header in [true, false] {
        let pod = pod(InboundPolicy::Strict, identity_header, http_app().await).await;
        let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
            .await
            .unwrap();
        let forged = [
            (CLIENT_IDENTITY_HEADER, FORGED),
            (ORIG_PROTO_HEADER, "HTTP/1.1"),
        ];
        let expected_identity = if identity_header {
            client.as_str()
        } else {
            "-"
        };
        for headers in [&forged[..], &forged[..1]] {
            let (status, text) = get(&mut sender, headers).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                text,
                format!(
                    "HTTP/1.1 reviews.shop:9080 /books identity={expected_identity} orig-proto=-"
                )
            );
        }
        // Both requests over one pooled app connection.
        assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 1);
        let labels = [
            "kind=\"MeshHttp\"",
            &format!("client_identity=\"{client}\""),
        ];
        assert_eq!(
            counter(&pod.registry, "inbound_connections_total", &labels),
            1
        );
    }
}

#[tokio::test]
async fn mesh_http_reaches_an_h2c_app_in_http2() {
    let pod = pod(InboundPolicy::Permissive, true, http_app().await).await;
    let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, text) = get(&mut sender, &[(ORIG_PROTO_HEADER, "HTTP/2")])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            format!(
                "HTTP/2.0 reviews.shop:9080 /books identity={} orig-proto=-",
                client_identity()
            )
        );
    }
    assert_eq!(
        pod.app.accepted.load(Ordering::SeqCst),
        1,
        "one multiplexed h2c connection"
    );
    let (status, _) = get(&mut sender, &[(ORIG_PROTO_HEADER, "SPDY/3")])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_app_that_is_down_is_a_502() {
    let app = http_app().await;
    let pod = pod(
        InboundPolicy::Permissive,
        false,
        App {
            addr: "127.0.0.1:1".parse().unwrap(),
            ..app
        },
    )
    .await;
    let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    for proto in ["HTTP/1.1", "HTTP/2"] {
        let (status, _) = get(&mut sender, &[(ORIG_PROTO_HEADER, proto)])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto}");
    }
}

/// What a refused mesh client sees: TLS 1.3 lets the client finish its
/// side, so the refusal shows on the first exchange.
async fn assert_refused(pod: &Pod, config: Arc<ClientConfig>) {
    if let Ok(tls) = connect(pod, config).await {
        let exchange = async { get(&mut h2(tls).await?, &[]).await };
        assert!(exchange.await.is_err(), "a request went through");
    }
    assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter(&pod.registry, "inbound_tls_handshake_failures_total", &[]),
        1
    );
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"Handshake\""]
        ),
        1
    );
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    let other = TestCa::new();
    let mut credentials = other.credentials(&client_identity());
    credentials.roots = vec![pod.ca.root()];
    assert_refused(&pod, client_config(&credentials, ALPN_HTTP).unwrap()).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    let roots = Arc::new(root_store(&[pod.ca.root()]).unwrap());
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(roots)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP.to_vec()];
    assert_refused(&pod, Arc::new(config)).await;
}

#[tokio::test]
async fn opaque_to_the_dialled_port_is_spliced_and_to_another_refused() {
    let pod = pod(InboundPolicy::Strict, false, echo_app().await).await;
    let port = pod.app.addr.port();

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(&OpaqueHeader { port }.encode())
        .await
        .unwrap();
    tls.write_all(b"ping\n").await.unwrap();
    let mut echoed = [0; 5];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping\n");
    drop(tls);
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_connections_total",
            &["kind=\"MeshOpaque\"", "ns/web/sa/frontend"]
        ),
        1
    );

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(&OpaqueHeader { port: port + 1 }.encode())
        .await
        .unwrap();
    let _ = tls.write_all(b"ping\n").await;
    assert!(read_to_close(&mut tls).await.is_empty());
    assert_eq!(
        pod.app.accepted.load(Ordering::SeqCst),
        1,
        "only the first reached the app"
    );
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"OpaquePort\""]
        ),
        1
    );

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(read_to_close(&mut tls).await.is_empty());
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"OpaqueHeader\""]
        ),
        1
    );
}

#[tokio::test]
async fn the_outbound_sides_dialer_reaches_the_app_through_the_inbound_side() {
    let pod = pod(InboundPolicy::Strict, false, echo_app().await).await;
    let mut credentials = pod.ca.credentials(&client_identity());
    credentials.roots = vec![pod.ca.root()];
    let (_tx, rx) = watch::channel(Some(Arc::new(credentials)));
    let metrics = DialMetrics::register(&mut Registry::default());
    let dialer = Dialer::new(rx, Duration::from_secs(1), metrics);
    let port = pod.app.addr.port();
    let mut tls = dialer
        .opaque(pod.addr, &server_identity(), port)
        .await
        .unwrap();
    tls.write_all(b"line\n").await.unwrap();
    let mut echoed = [0; 5];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"line\n");
}

#[tokio::test]
async fn plaintext_passes_in_permissive_mode_and_is_refused_in_strict_mode() {
    let pod = pod(InboundPolicy::Permissive, false, echo_app().await).await;
    let mut tcp = TcpStream::connect(pod.addr).await.unwrap();
    tcp.write_all(b"hello\n").await.unwrap();
    let mut echoed = [0; 6];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"hello\n");
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_connections_total",
            &["kind=\"Passthrough\""]
        ),
        1
    );
    assert_eq!(
        counter(&pod.registry, "tcp_open_total", &["direction=\"Inbound\""]),
        1
    );

    let pod = super::tests::pod(InboundPolicy::Strict, false, echo_app().await).await;
    let mut tcp = TcpStream::connect(pod.addr).await.unwrap();
    tcp.write_all(b"hello\n").await.unwrap();
    assert!(read_to_close(&mut tcp).await.is_empty());
    // A server-first client that sends nothing is refused too, after the
    // detection timeout.
    let mut silent = TcpStream::connect(pod.addr).await.unwrap();
    assert!(read_to_close(&mut silent).await.is_empty());
    assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"NotMesh\""]
        ),
        2
    );
}

#[tokio::test]
async fn renewal_keeps_open_connections_and_serves_new_ones_with_the_new_certificate() {
    let pod = pod(InboundPolicy::Strict, false, http_app().await).await;
    let mut open = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    assert_eq!(get(&mut open, &[]).await.unwrap().0, StatusCode::OK);

    // Renewed by a new CA, trusting both during the overlap.
    let next = TestCa::new();
    let mut renewed = next.credentials(&server_identity());
    renewed.roots.push(pod.ca.root());
    pod.credentials.send_replace(Some(Arc::new(renewed)));

    assert_eq!(get(&mut open, &[]).await.unwrap().0, StatusCode::OK);
    // A client that trusts only the old CA no longer accepts the server…
    assert!(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.is_err());
    // …one that trusts the new CA does, with a certificate of either.
    let mut credentials = pod.ca.credentials(&client_identity());
    credentials.roots = vec![next.root()];
    let tls = connect(&pod, client_config(&credentials, ALPN_HTTP).unwrap())
        .await
        .unwrap();
    assert_eq!(
        get(&mut h2(tls).await.unwrap(), &[]).await.unwrap().0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn mesh_traffic_before_the_first_certificate_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    pod.credentials.send_replace(None);
    let result = mesh_connect(&pod, &pod.ca, ALPN_HTTP).await;
    assert!(result.is_err());
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"NoCredentials\""]
        ),
        1
    );
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
