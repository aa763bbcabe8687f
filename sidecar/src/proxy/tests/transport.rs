//! Tests over real listeners: TLS with SNI and ALPN, h2c both ways,
//! WebSocket upgrades, and header limits.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::model::{Backend, BackendProtocol, HostPattern, PortProtocol, ServerCertificate};
use http::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::*;
use crate::body;

/// Accepts any server certificate: the tests check which one was served.
#[derive(Debug)]
struct AcceptAny;

pub(super) struct Cert {
    pub(super) der: Vec<u8>,
    pub(super) server: ServerCertificate,
}

pub(super) fn cert(san: &str, hostname: Option<&str>) -> Cert {
    let key = rcgen::generate_simple_self_signed(vec![san.to_string()]).unwrap();
    Cert {
        der: key.cert.der().to_vec(),
        server: ServerCertificate {
            hostname: hostname.map(|h| HostPattern::parse(Some(h))),
            chain_pem: key.cert.pem(),
            key_pem: key.signing_key.serialize_pem(),
        },
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub(super) async fn connect(port: u16) -> TcpStream {
    for _ in 0..100 {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
            return tcp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("proxy did not listen on {port}");
}

pub(super) async fn tls_connect(
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(sni.to_string()).unwrap();
    connector.connect(name, connect(port).await).await.unwrap()
}

#[tokio::test]
async fn tls_sni_picks_certificate_and_alpn_negotiates_h2() {
    let a = EchoBackend::start("a").await;
    let exact = cert("a.example.com", Some("a.example.com"));
    let wildcard = cert("*.wild.example.com", Some("*.wild.example.com"));
    let fallback = cert("default.example.com", None);
    let port = free_port();
    let mut cfg = config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        vec![(id("a"), a.backend())],
    );
    cfg.ports[0].port = port;
    cfg.ports[0].protocol = PortProtocol::Https;
    cfg.ports[0].certificates = vec![
        fallback.server.clone(),
        wildcard.server.clone(),
        exact.server.clone(),
    ];
    let proxy = Proxy::new(cfg);
    proxy.listen();

    for (sni, expected) in [
        ("a.example.com", &exact.der),
        ("x.wild.example.com", &wildcard.der),
        ("other.example.com", &fallback.der),
    ] {
        let tls = tls_connect(port, sni, &[b"http/1.1"]).await;
        let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert_eq!(&served, expected, "certificate for {sni}");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let rsp = send.send_request(request(sni, "/")).await.unwrap();
        let answer = Answer::read(rsp).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.echoed("x-forwarded-proto"), Some("https"));
    }

    let tls = tls_connect(port, "a.example.com", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("https://a.example.com/h2")
        .version(Version::HTTP_2)
        .body(body::empty())
        .unwrap();
    let answer = Answer::read(send.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.echoed("host"), Some("a.example.com"));
}

#[tokio::test]
async fn h2c_from_client_and_to_backend() {
    let a = EchoBackend::start("a").await;
    let mut backend = a.backend();
    backend.protocol = BackendProtocol::H2c;
    let (proxy, port) = proxy_to(None, backend);
    proxy.listen();
    let tcp = connect(port).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("http://example.com/prior")
        .version(Version::HTTP_2)
        .body(body::empty())
        .unwrap();
    let answer = Answer::read(send.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.echoed_line(),
        format!("GET http://{}/prior HTTP/2.0", a.addr)
    );
    assert_eq!(answer.echoed("host"), Some("example.com"));
}

#[tokio::test]
async fn websocket_upgrade_is_passed_through() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    let mut tcp = connect(port).await;
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp.write_all(b"ping over the tunnel").await.unwrap();
    let mut echoed = [0u8; 20];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping over the tunnel");
}

#[tokio::test]
async fn connect_is_refused_with_a_reason_and_never_reaches_a_backend() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    let mut tcp = connect(port).await;
    tcp.write_all(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n")
        .await
        .unwrap();
    let mut rsp = vec![0; 1024];
    let n = tcp.read(&mut rsp).await.unwrap();
    let rsp = String::from_utf8_lossy(&rsp[..n]).to_ascii_lowercase();
    assert!(rsp.starts_with("http/1.1 501"), "{rsp}");
    assert!(rsp.contains("ferry-error: connect\r\n"), "{rsp}");
    assert!(rsp.contains("opaque"), "the answer says what to do: {rsp}");
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    let mut tcp = connect(port).await;
    let big = "x".repeat(200 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: {big}\r\n\r\n");
    let _ = tcp.write_all(req.as_bytes()).await;
    let mut rsp = Vec::new();
    let _ = tcp.read_to_end(&mut rsp).await;
    let rsp = String::from_utf8_lossy(&rsp);
    assert!(rsp.starts_with("HTTP/1.1 431"), "{rsp}");
    assert_eq!(a.hits(), 0);
}

fn listening_proxy(a: &EchoBackend) -> (Proxy, u16) {
    proxy_to(Some("example.com"), a.backend())
}

/// A proxy on a free port (not yet listening) whose one route sends every
/// request for `hostname` (any with `None`) to `backend`.
pub(super) fn proxy_to(hostname: Option<&str>, backend: Backend) -> (Proxy, u16) {
    let port = free_port();
    let mut cfg = config(
        hostname,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        vec![(id("a"), backend)],
    );
    cfg.ports[0].port = port;
    (Proxy::new(cfg), port)
}

/// Writes `bytes` and reads until the proxy closes, or briefly. The write
/// side stays open: hyper closes on a client's half close.
pub(super) async fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut tcp = connect(port).await;
    let _ = tcp.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(700), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn bad_input_never_takes_the_listener_down() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = listening_proxy(&a);
    proxy.listen();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let inputs: Vec<&[u8]> = vec![
        &garbage,
        b"\r\n\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET http://example.com/abs HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\nshort",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00garbage-frames",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: example.com\r\n\r\n",
    ];
    for input in inputs {
        exchange(port, input).await;
    }
    let ok = exchange(
        port,
        b"GET /still HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = listening_proxy(&a);
    proxy.listen_with(crate::server::ServerParams {
        header_read_timeout: Duration::from_millis(200),
        ..crate::server::ServerParams::default()
    });
    let mut tcp = connect(port).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: exa").await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    assert!(
        closed.is_ok(),
        "connection still open after the header read timeout"
    );
    assert_eq!(a.hits(), 0);
}

/// An endpoint named by DNS (an ExternalName Service) is resolved by the
/// proxy's own resolver, over HTTP/1.1 and over h2c.
#[tokio::test]
async fn endpoints_named_by_dns_are_resolved() {
    let a = EchoBackend::start("a").await;
    for protocol in [BackendProtocol::Http1, BackendProtocol::H2c] {
        let mut backend = a.backend();
        backend.protocol = protocol;
        backend.endpoints = vec![ferry_core::model::Endpoint::Dns {
            host: "localhost".into(),
            port: a.addr.port(),
        }];
        let (proxy, port) = proxy_to(None, backend);
        proxy.listen();
        let tcp = connect(port).await;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .uri("/by-name")
            .header("host", "example.com")
            .body(body::empty())
            .unwrap();
        let answer = Answer::read(send.send_request(req).await.unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{protocol:?}");
        assert_eq!(answer.echoed("host"), Some("example.com"), "{protocol:?}");
    }
}
