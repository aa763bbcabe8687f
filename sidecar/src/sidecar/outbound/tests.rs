//! The outbound path in-process: a client → [`Outbound`] → fake inbound
//! proxies (rustls servers speaking the mesh's ALPN), on loopback.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_api::client::{ClientError, OutboundConfig};
use ferry_core::identity::Identity;
use ferry_core::model::{
    Backend, HostPattern, PathMatch, RequestMatcher, RouteAction, RouteEntry, RouteTable, RuleRef,
    VirtualHost, WeightedBackend,
};
use futures_util::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::identity::Credentials;
use crate::mesh::test_pki::{TestCa, identity};
use crate::mesh::tls::{peer_identity, provider, root_store};
use crate::mesh::{ALPN_HTTP, ALPN_OPAQUE, ORIG_PROTO_HEADER, OpaqueHeader};

/// What a fake inbound proxy saw of one request or connection.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    alpn: Vec<u8>,
    client: Identity,
    version: http::Version,
    orig_proto: Option<String>,
    host: Option<String>,
}

/// A meshed pod's inbound proxy: mTLS with `id`'s certificate, clients
/// checked against the CA; HTTP/2 answered with `name`, opaque echoed after
/// the header.
async fn fake_inbound(
    ca: &TestCa,
    id: &Identity,
    name: &'static str,
) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let credentials = ca.credentials(id);
    let roots = Arc::new(root_store(&credentials.roots).unwrap());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .unwrap();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain.clone(), credentials.key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![ALPN_HTTP.to_vec(), ALPN_OPAQUE.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let (_, conn) = tls.get_ref();
            let alpn = conn.alpn_protocol().unwrap_or_default().to_vec();
            let client = peer_identity(&conn.peer_certificates().unwrap()[0]).unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                if alpn == ALPN_OPAQUE {
                    let mut header = [0; OpaqueHeader::LEN];
                    tls.read_exact(&mut header).await.unwrap();
                    let port = OpaqueHeader::decode(header).unwrap().port;
                    log.lock().unwrap().push(Seen {
                        alpn,
                        client,
                        version: http::Version::HTTP_09,
                        orig_proto: Some(format!("opaque {port}")),
                        host: None,
                    });
                    let mut line = [0; 5];
                    tls.read_exact(&mut line).await.unwrap();
                    tls.write_all(format!("{name}:").as_bytes()).await.unwrap();
                    tls.write_all(&line).await.unwrap();
                    tls.shutdown().await.unwrap();
                    return;
                }
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                    };
                    log.lock().unwrap().push(Seen {
                        alpn: alpn.clone(),
                        client: client.clone(),
                        version: req.version(),
                        orig_proto: header(ORIG_PROTO_HEADER),
                        host: req.uri().authority().map(|a| a.to_string()),
                    });
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            name,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn split(backends: &[(&str, u32)]) -> RouteTable {
    let action = RouteAction {
        rule: RuleRef {
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: "reviews".into(),
            index: 0,
            section: None,
        },
        filters: Vec::new(),
        backends: backends
            .iter()
            .map(|(name, weight)| WeightedBackend {
                weight: *weight,
                target: Some(backend_id(name)),
                filters: Vec::new(),
            })
            .collect(),
        timeouts: Default::default(),
        retry: None,
    };
    RouteTable {
        virtual_hosts: vec![VirtualHost {
            hostname: HostPattern::Any,
            entries: vec![RouteEntry {
                matcher: RequestMatcher {
                    path: PathMatch::Prefix("/".into()),
                    method: None,
                    headers: Vec::new(),
                    query: Vec::new(),
                },
                action: Arc::new(action),
            }],
        }],
    }
}

fn backend_id(name: &str) -> ferry_core::model::BackendId {
    ferry_core::model::BackendId {
        namespace: "shop".into(),
        name: name.into(),
        port: 9080,
    }
}

/// One endpoint per backend: (name, address, expected identity).
fn service(
    routes: RouteTable,
    endpoints: &[(&str, SocketAddr, Option<&Identity>)],
) -> OutboundConfig {
    OutboundConfig::Service {
        version: 1,
        service: backend_id("reviews"),
        protocol_hint: BackendProtocol::Http1,
        opaque: false,
        routes,
        backends: endpoints
            .iter()
            .map(|(name, addr, id)| {
                (
                    backend_id(name),
                    Backend {
                        endpoints: vec![Endpoint::Addr(*addr)],
                        protocol: BackendProtocol::Http1,
                    },
                    vec![id.map(|id| id.to_string())],
                )
            })
            .collect(),
    }
}

/// A Service whose one route sends everything to `reviews`, one endpoint
/// at `addr`, meshed as `id` when given.
fn one_endpoint(
    addr: SocketAddr,
    id: Option<Identity>,
) -> impl Fn() -> Result<OutboundConfig, ClientError> + Send + Sync + 'static {
    move || {
        Ok(service(
            split(&[("reviews", 1)]),
            &[("reviews", addr, id.as_ref())],
        ))
    }
}

/// An outbound side whose targets all get `view` (then nothing more),
/// dialling with `credentials`; its metrics land in the returned registry.
fn outbound(
    view: impl Fn() -> Result<OutboundConfig, ClientError> + Send + Sync + 'static,
    credentials: Option<Credentials>,
) -> (Outbound, Arc<Mutex<Registry>>) {
    let subscribe: super::super::targets::Subscribe = Arc::new(move |_| {
        futures_util::stream::iter([view()])
            .chain(futures_util::stream::pending())
            .boxed()
    });
    let mut settings =
        SidecarSettings::from_env(Vec::new(), "127.0.0.1:0".parse().unwrap()).unwrap();
    settings.connect_timeout = Duration::from_secs(2);
    let (_tx, rx) = tokio::sync::watch::channel(credentials.map(Arc::new));
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let mut outbound = Outbound::new(&settings, rx, tcp, &mut registry);
    outbound.targets = Some(Targets::new(subscribe, 16, Duration::from_secs(600)));
    outbound.first_view_wait = Duration::from_secs(2);
    (outbound, Arc::new(Mutex::new(registry)))
}

/// A listener handing each connection to `outbound` as if the app had
/// dialled `orig`.
async fn listen(outbound: Outbound, orig: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let outbound = outbound.clone();
            tokio::spawn(async move { outbound.handle(tcp, peer, orig, orig).await });
        }
    });
    addr
}

async fn http1_client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> (StatusCode, String, Option<String>) {
    let req = Request::get("/reviews/1")
        .header("host", "reviews.shop.svc:9080")
        .body(Empty::new())
        .unwrap();
    sender.ready().await.unwrap();
    let rsp = sender.send_request(req).await.unwrap();
    let status = rsp.status();
    let error = rsp
        .headers()
        .get("ferry-error")
        .map(|v| v.to_str().unwrap().to_string());
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), error)
}

fn metric(registry: &Mutex<Registry>, needle: &str) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry.lock().unwrap()).unwrap();
    out.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn http1_calls_are_split_by_weight_over_mtls_http2() {
    let ca = TestCa::new();
    let (v1, v2) = (
        identity("shop", "reviews-v1"),
        identity("shop", "reviews-v2"),
    );
    let (v1_addr, v1_seen) = fake_inbound(&ca, &v1, "v1").await;
    let (v2_addr, v2_seen) = fake_inbound(&ca, &v2, "v2").await;
    let (v1c, v2c) = (v1.clone(), v2.clone());
    let (outbound, _) = outbound(
        move || {
            Ok(service(
                split(&[("reviews-v1", 90), ("reviews-v2", 10)]),
                &[
                    ("reviews-v1", v1_addr, Some(&v1c)),
                    ("reviews-v2", v2_addr, Some(&v2c)),
                ],
            ))
        },
        Some(ca.credentials(&identity("web", "frontend"))),
    );
    let proxy = listen(outbound, "10.96.0.12:9080".parse().unwrap()).await;

    let mut client = http1_client(proxy).await;
    let mut counts = BTreeMap::new();
    for _ in 0..200 {
        let (status, body, error) = get(&mut client).await;
        assert_eq!(status, StatusCode::OK, "{body} {error:?}");
        *counts.entry(body).or_insert(0) += 1;
    }
    let v1_share = counts.get("v1").copied().unwrap_or(0);
    assert!((176..=184).contains(&v1_share), "{counts:?}");
    assert_eq!(v1_share + counts.get("v2").copied().unwrap_or(0), 200);

    let seen = v1_seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen,
        Seen {
            alpn: ALPN_HTTP.to_vec(),
            client: identity("web", "frontend"),
            version: http::Version::HTTP_2,
            orig_proto: Some("HTTP/1.1".into()),
            host: Some("reviews.shop.svc:9080".into()),
        }
    );
    assert_eq!(
        v2_seen.lock().unwrap()[0].client,
        identity("web", "frontend")
    );

    // An app speaking HTTP/2 with prior knowledge is detected too, and
    // its version travels in the header.
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://reviews.shop.svc:9080/reviews/2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let rsp = h2.send_request(req).await.unwrap();
    assert_eq!(
        (rsp.status(), rsp.version()),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    let last = |seen: &Mutex<Vec<Seen>>| seen.lock().unwrap().last().cloned().unwrap();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    let seen = if &body[..] == b"v1" {
        last(&v1_seen)
    } else {
        last(&v2_seen)
    };
    assert_eq!(seen.orig_proto.as_deref(), Some("HTTP/2"));
    assert_eq!(seen.host.as_deref(), Some("reviews.shop.svc:9080"));
}

#[tokio::test]
async fn wrong_identities_and_missing_credentials_are_refused() {
    let ca = TestCa::new();
    let reviews = identity("shop", "reviews");
    let client = Some(ca.credentials(&identity("web", "frontend")));
    // (server's identity, the proxy's credentials, failure reason)
    let cases = [
        (identity("shop", "impostor"), client, "handshake"),
        (reviews.clone(), None, "no_credentials"),
    ];
    for (presented, credentials, reason) in cases {
        let (addr, seen) = fake_inbound(&ca, &presented, "x").await;
        let (outbound, registry) = outbound(one_endpoint(addr, Some(reviews.clone())), credentials);
        let proxy = listen(outbound, "10.96.0.12:9080".parse().unwrap()).await;
        let (status, _, error) = get(&mut http1_client(proxy).await).await;
        assert_eq!(
            (status, error.is_some()),
            (StatusCode::BAD_GATEWAY, true),
            "{reason}"
        );
        assert!(
            seen.lock().unwrap().is_empty(),
            "{reason}: nothing reached the app"
        );
        let failures = metric(&registry, "outbound_mtls_failures_total");
        let expected = format!(r#"reason="{reason}",identity="{reviews}""#);
        assert!(failures.contains(&expected), "{failures}");
    }
}

/// A plain TCP server answering `name:` and the first 5 bytes it reads.
async fn plain_echo(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut line = [0; 5];
                if tcp.read_exact(&mut line).await.is_ok() {
                    let _ = tcp.write_all(format!("{name}:").as_bytes()).await;
                    let _ = tcp.write_all(&line).await;
                }
            });
        }
    });
    addr
}

async fn exchange(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn opaque_bytes_go_over_mtls_with_the_port_header() {
    let ca = TestCa::new();
    let reviews = identity("shop", "reviews");
    let (addr, seen) = fake_inbound(&ca, &reviews, "mesh").await;
    let (outbound, _) = outbound(
        one_endpoint(addr, Some(reviews.clone())),
        Some(ca.credentials(&identity("web", "frontend"))),
    );
    // Not HTTP: detection says opaque at once (binary first byte).
    let proxy = listen(outbound, "10.96.0.12:9080".parse().unwrap()).await;
    assert_eq!(exchange(proxy, b"\x00ping").await, "mesh:\x00ping");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.alpn, ALPN_OPAQUE.to_vec());
    assert_eq!(seen.orig_proto.as_deref(), Some("opaque 9080"));
    assert_eq!(seen.client, identity("web", "frontend"));
}

#[tokio::test]
async fn opaque_ports_skip_detection_and_unmeshed_endpoints_get_plain_tcp() {
    let echo = plain_echo("plain").await;
    let (mut by_port, _) = outbound(one_endpoint(echo, None), None);
    by_port.opaque_ports = Arc::new([9080].into());
    // An HTTP request line on an opaque port is forwarded as bytes.
    let proxy = listen(by_port, "10.96.0.12:9080".parse().unwrap()).await;
    let request = b"GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n";
    assert_eq!(exchange(proxy, request).await, "plain:GET /");

    // So it is when discovery says the port is opaque (`appProtocol: tcp`).
    let marked = move || {
        let mut view = one_endpoint(echo, None)()?;
        if let OutboundConfig::Service { opaque, .. } = &mut view {
            *opaque = true;
        }
        Ok(view)
    };
    let (marked, _) = outbound(marked, None);
    let proxy = listen(marked, "10.96.0.12:9080".parse().unwrap()).await;
    assert_eq!(exchange(proxy, request).await, "plain:GET /");

    // Without either, the same bytes are HTTP, routed to the endpoint,
    // which does not answer HTTP.
    let (detected, _) = outbound(one_endpoint(echo, None), None);
    let proxy = listen(detected, "10.96.0.12:9080".parse().unwrap()).await;
    let answer = exchange(proxy, request).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}

/// A connection to a Service whose `appProtocol` says HTTP skips
/// detection; one that never sends a request is closed at the header read
/// timeout, as a gateway's is. One to a Service whose protocol is detected
/// is opaque after the detection timeout, and forwarded.
#[tokio::test]
async fn silent_connections_are_closed_or_forwarded() {
    use crate::server::{HttpServer, ServerMetrics, ServerParams};

    let echo = plain_echo("plain").await;
    let h2c = move || {
        let mut view = one_endpoint(echo, None)()?;
        if let OutboundConfig::Service { protocol_hint, .. } = &mut view {
            *protocol_hint = BackendProtocol::H2c;
        }
        Ok(view)
    };
    let limits = ServerParams {
        header_read_timeout: Duration::from_millis(300),
        detect_timeout: Duration::from_millis(300),
        ..ServerParams::sidecar()
    };
    let (mut http, _) = outbound(h2c, None);
    http.server = Arc::new(HttpServer::new(limits, ServerMetrics::default()));
    let proxy = listen(http, "10.96.0.12:9080".parse().unwrap()).await;
    let mut silent = TcpStream::connect(proxy).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "a silent HTTP connection is still open");

    let (mut detected, _) = outbound(one_endpoint(echo, None), None);
    detected.server = Arc::new(HttpServer::new(limits, ServerMetrics::default()));
    let proxy = listen(detected, "10.96.0.12:9080".parse().unwrap()).await;
    let mut quiet = TcpStream::connect(proxy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    quiet.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), quiet.read_to_end(&mut out)).await;
    assert_eq!(out, b"plain:hello", "forwarded as opaque TCP");
}

#[tokio::test]
async fn passthrough_and_unreachable_discovery_forward_to_the_original_destination() {
    let echo = plain_echo("orig").await;
    let (passthrough, _) = outbound(|| Ok(OutboundConfig::Passthrough { version: 1 }), None);
    let proxy = listen(passthrough, echo).await;
    assert_eq!(exchange(proxy, b"GET /").await, "orig:GET /");

    // Nothing listens on port 1: a failed attempt is no answer, so the
    // connection waits the first-view wait for a retry to bring one (a
    // passing hiccup of the control plane must not send it around the
    // mesh), then goes to the original destination.
    let (mut unreachable, _) = outbound(|| Ok(OutboundConfig::Passthrough { version: 1 }), None);
    unreachable.targets = Some(Targets::new(
        Targets::discovery("127.0.0.1:1", "web".into()).unwrap(),
        16,
        Duration::from_secs(600),
    ));
    unreachable.first_view_wait = Duration::from_millis(500);
    let proxy = listen(unreachable, echo).await;
    let started = std::time::Instant::now();
    assert_eq!(exchange(proxy, b"hello").await, "orig:hello");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn admin_config_shows_targets_routes_endpoints_and_the_certificate() {
    let ca = TestCa::new();
    let reviews = identity("shop", "reviews");
    let endpoint: SocketAddr = "10.1.0.7:8080".parse().unwrap();
    let (outbound, _) = outbound(one_endpoint(endpoint, Some(reviews.clone())), None);
    let targets = outbound.targets.clone().unwrap();
    let target = targets.get("10.96.0.12:9080".parse().unwrap());
    assert!(matches!(
        target.first_state(Duration::from_secs(5)).await,
        TargetState::Service(_)
    ));
    let me = ca.credentials(&identity("web", "frontend"));
    let (_tx, credentials) = tokio::sync::watch::channel(Some(Arc::new(me)));
    let settings = SidecarSettings::from_env(Vec::new(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let admin = super::super::SidecarAdmin::new(Arc::new(settings), Arc::new(Registry::default()))
        .with_outbound(Some(targets), credentials);
    let rsp = admin
        .handle(&Request::get("/config").body(()).unwrap())
        .await;
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();

    let target = &config["outbound"]["targets"][0];
    assert_eq!(target["target"], "10.96.0.12:9080");
    assert_eq!(target["state"], "service");
    assert_eq!(target["service"], "shop/reviews:9080");
    assert_eq!(
        target["routes"]["virtual_hosts"][0]["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        target["backends"][0]["endpoints"][0],
        serde_json::json!({"endpoint": {"Addr": "10.1.0.7:8080"}, "identity": reviews.to_string()})
    );
    assert_eq!(
        config["identity"]["identity"],
        "spiffe://cluster.local/ns/web/sa/frontend"
    );
    let expires = config["identity"]["expiresInSecs"].as_u64().unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&expires), "{expires}");
}

/// A meshed pod as the mesh sees it: the real inbound side, with `id`'s
/// certificate from `ca`, in front of a WebSocket-style app on loopback.
/// The app answers `GET /chat` upgrades with `101`, an accept header
/// derived from the key, and then echoes each read prefixed with `ws:`;
/// `/refuse` with `426`; `/ignore` with a plain `200`.
async fn meshed_websocket_pod(ca: &TestCa, id: &Identity) -> SocketAddr {
    use crate::mesh::inbound::metrics::InboundMetrics;
    use crate::mesh::inbound::{Inbound, InboundParams, InboundPolicy};
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = app.accept().await {
            let service = service_fn(|mut req: Request<hyper::body::Incoming>| async move {
                let key = req.headers().get("sec-websocket-key").cloned();
                let upgrade = req.headers().get(http::header::UPGRADE).cloned();
                let rsp = Response::builder();
                let rsp = match (req.uri().path(), key, upgrade) {
                    ("/chat", Some(key), Some(upgrade)) => {
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let mut io = TokioIo::new(on_upgrade.await.unwrap());
                            let mut buf = [0; 256];
                            while let Ok(n @ 1..) = io.read(&mut buf).await {
                                let mut echo = b"ws:".to_vec();
                                echo.extend_from_slice(&buf[..n]);
                                if io.write_all(&echo).await.is_err() {
                                    break;
                                }
                            }
                        });
                        let accept = format!("accept-{}", key.to_str().unwrap());
                        rsp.status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", upgrade)
                            .header("sec-websocket-accept", accept)
                    }
                    ("/refuse", ..) => rsp.status(StatusCode::UPGRADE_REQUIRED),
                    _ => rsp.status(StatusCode::OK),
                };
                Ok::<_, std::convert::Infallible>(rsp.body(Empty::<Bytes>::new()).unwrap())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades(),
            );
        }
    });
    let (_credentials, rx) = tokio::sync::watch::channel(Some(Arc::new(ca.credentials(id))));
    let mut registry = Registry::default();
    let params = InboundParams::new(InboundPolicy::Strict, false, Duration::from_secs(1));
    let inbound = Inbound::new(
        params,
        rx,
        InboundMetrics::register(&mut registry),
        TcpMetrics::register(&mut registry),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Keeps the credentials published while the pod serves.
        let _credentials = _credentials;
        while let Ok((tcp, peer)) = listener.accept().await {
            let inbound = inbound.clone();
            tokio::spawn(async move { inbound.handle(tcp, peer, app_addr, app_addr).await });
        }
    });
    addr
}

/// Sends an upgrade request for `path` on `tcp`; the response head.
async fn upgrade_head(tcp: &mut TcpStream, path: &str, key: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: chat.shop.svc:9080\r\nconnection: Upgrade\r\n\
         upgrade: websocket\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn websocket_upgrades_reach_meshed_apps_over_mtls_http2() {
    let ca = TestCa::new();
    let chat = identity("shop", "chat");
    let pod = meshed_websocket_pod(&ca, &chat).await;
    let (outbound, _) = outbound(
        one_endpoint(pod, Some(chat)),
        Some(ca.credentials(&identity("web", "frontend"))),
    );
    let proxy = listen(outbound, "10.96.0.12:9080".parse().unwrap()).await;

    // Two tunnels at once, over the one pooled HTTP/2 connection to the
    // pod: the handshake is the app's own, and bytes flow both ways.
    let mut first = TcpStream::connect(proxy).await.unwrap();
    let mut second = TcpStream::connect(proxy).await.unwrap();
    for (tcp, key) in [(&mut first, "a2V5LW9uZQ=="), (&mut second, "a2V5LXR3bw==")] {
        let head = upgrade_head(tcp, "/chat", key).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket\r\n"), "{head}");
        assert!(head.contains("connection: upgrade\r\n"), "{head}");
        assert!(
            head.contains(&format!(
                "sec-websocket-accept: accept-{}\r\n",
                key.to_ascii_lowercase()
            )),
            "{head}"
        );
    }
    for round in 0..3 {
        for (tcp, name) in [(&mut first, "first"), (&mut second, "second")] {
            let line = format!("{name} {round}\n");
            tcp.write_all(line.as_bytes()).await.unwrap();
            let mut echoed = vec![0; line.len() + 3];
            tcp.read_exact(&mut echoed).await.unwrap();
            assert_eq!(String::from_utf8(echoed).unwrap(), format!("ws:{line}"));
        }
    }

    // The app's refusal comes back as it is, and the connection stays
    // HTTP; an app answering an upgrade with a plain 200 is an error that
    // says so, rather than a tunnel to nowhere.
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    let head = upgrade_head(&mut tcp, "/refuse", "a2V5").await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    let head = upgrade_head(&mut tcp, "/ignore", "a2V5").await;
    assert!(head.starts_with("http/1.1 502"), "{head}");
    assert!(head.contains("ferry-error: app-upgrade\r\n"), "{head}");
}

#[tokio::test]
async fn a_pooled_mesh_connection_is_reused_only_for_the_identity_it_proved() {
    use std::collections::HashMap;

    use ferry_core::model::{BackendId, ProxyConfig};
    use tower::{Service as _, ServiceExt as _};

    use crate::mesh::client::{EndpointIdentities, MeshClient};
    use crate::mesh::dial::Dialer;
    use crate::proxy::Target;
    use crate::proxy::balance::Selected;
    use crate::proxy::client::{Client, ClientParams};

    let ca = TestCa::new();
    let reviews = identity("shop", "reviews");
    let (addr, seen) = fake_inbound(&ca, &reviews, "reviews").await;
    let (_credentials, rx) =
        tokio::sync::watch::channel(Some(Arc::new(ca.credentials(&identity("web", "frontend")))));
    let dialer = Dialer::new(rx, Duration::from_secs(2), Default::default());
    let plain = Client::new(ClientParams::default());
    let mut client = MeshClient::new(dialer, plain, Duration::from_secs(60));
    let request = |expected: &Identity| {
        let mut req = Request::get("http://reviews.shop:9080/")
            .body(crate::body::empty())
            .unwrap();
        let extensions = req.extensions_mut();
        extensions.insert(Target {
            config: Arc::new(ProxyConfig::default()),
            id: BackendId {
                namespace: "shop".into(),
                name: "reviews".into(),
                port: 9080,
            },
        });
        extensions.insert(Selected {
            endpoint: Endpoint::Addr(addr),
            protocol: BackendProtocol::Http1,
        });
        let identities = HashMap::from([(addr, expected.clone())]);
        extensions.insert(EndpointIdentities(Arc::new(identities)));
        req
    };
    for _ in 0..3 {
        let rsp = client.ready().await.unwrap().call(request(&reviews)).await;
        assert_eq!(rsp.unwrap().status(), StatusCode::OK);
    }
    // Now the address is expected to be another workload: the connection
    // that proved `reviews` is not reused, and the new one is refused.
    let ratings = identity("shop", "ratings");
    let rsp = client.ready().await.unwrap().call(request(&ratings)).await;
    assert!(rsp.is_err(), "{rsp:?}");
    assert_eq!(seen.lock().unwrap().len(), 3);
    // And back: a connection for `reviews` again.
    let rsp = client.ready().await.unwrap().call(request(&reviews)).await;
    assert_eq!(rsp.unwrap().status(), StatusCode::OK);
}
