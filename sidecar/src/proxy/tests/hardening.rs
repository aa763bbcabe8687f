//! What a hostile client can do to a gateway listener, on real sockets:
//! connections that never speak, host confusion, malformed bodies and
//! heads. `docs/hardening.md` lists each attack with the test that shows
//! Ferry's answer.

use std::time::Duration;

use bytes::Bytes;
use ferry_core::model::PortProtocol;
use http::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::*;
use super::transport::{cert, connect, exchange, proxy_to, tls_connect};
use crate::body;
use crate::server::{BodyLimits, ServerParams};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Short limits, so that tests on real time stay short.
fn short_limits() -> ServerParams {
    ServerParams {
        header_read_timeout: Duration::from_millis(300),
        tls_handshake_timeout: Duration::from_millis(300),
        ..ServerParams::default()
    }
}

/// Waits for the proxy to close `tcp` (end of stream or reset), failing
/// after `within`.
async fn assert_closed<S>(mut io: S, within: Duration, what: &str)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut sink = Vec::new();
    let read = tokio::time::timeout(within, io.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "{what}: still open after {within:?}");
}

#[tokio::test]
async fn connections_that_never_speak_are_closed() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen_with(short_limits());
    let silent = connect(port).await;
    let mut partial = connect(port).await;
    partial.write_all(&H2_PREFACE[..22]).await.unwrap();
    let mut one_byte = connect(port).await;
    one_byte.write_all(b"G").await.unwrap();
    let mut kept_alive = connect(port).await;
    kept_alive
        .write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_response(&mut kept_alive)
            .await
            .starts_with("HTTP/1.1 200")
    );
    for (what, tcp) in [
        ("a connection that sent nothing", silent),
        ("a connection that sent 22 bytes of the h2 preface", partial),
        ("a connection that sent one byte", one_byte),
        ("a keep-alive connection after its request", kept_alive),
    ] {
        assert_closed(tcp, Duration::from_secs(3), what).await;
    }
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn https_connections_that_never_speak_are_closed() {
    let a = EchoBackend::start("a").await;
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
    cfg.ports[0].certificates = vec![cert("a.example.com", None).server];
    let proxy = Proxy::new(cfg);
    proxy.listen_with(short_limits());
    // No ClientHello at all, then half of one: the handshake's limit.
    let silent = connect(port).await;
    let mut half_hello = connect(port).await;
    half_hello
        .write_all(&[0x16, 0x03, 0x01, 0x02])
        .await
        .unwrap();
    // A completed handshake, then nothing: the first request's limit.
    let quiet = tls_connect(port, "a.example.com", &[b"h2", b"http/1.1"]).await;
    assert_closed(silent, Duration::from_secs(3), "silent TCP").await;
    assert_closed(half_hello, Duration::from_secs(3), "half a ClientHello").await;
    assert_closed(quiet, Duration::from_secs(3), "silent after the handshake").await;
    assert_eq!(a.hits(), 0);
}

/// RFC 9112 §3.2.2: a proxy replaces `Host` with the authority of an
/// absolute-form target, the one it routed by.
#[tokio::test]
async fn absolute_form_authority_wins_over_host() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(Some("legit.test"), a.backend());
    proxy.listen();
    let answer = exchange(
        port,
        b"GET http://legit.test/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\nhost: legit.test\n"), "{answer}");
    assert!(
        answer.contains("\nx-forwarded-host: legit.test\n"),
        "{answer}"
    );
    assert!(!answer.contains("evil.example"), "{answer}");
    // Userinfo in the target never reaches Host.
    let answer = exchange(
        port,
        b"GET http://user:pw@legit.test:8080/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.contains("\nhost: legit.test:8080\n"), "{answer}");
    assert!(!answer.contains("user"), "{answer}");
}

/// RFC 9113 §8.3.1: over HTTP/2, `:authority` wins over a `host` header.
#[tokio::test]
async fn h2_authority_wins_over_host() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(Some("legit.test"), a.backend());
    proxy.listen();
    let tcp = connect(port).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("http://legit.test/h2")
        .version(Version::HTTP_2)
        .header("host", "evil.example")
        .body(body::empty())
        .unwrap();
    let answer = Answer::read(send.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.echoed("host"), Some("legit.test"), "{}", answer.body);
    assert_eq!(answer.echoed("x-forwarded-host"), Some("legit.test"));
    assert!(!answer.body.contains("evil.example"), "{}", answer.body);
}

/// RFC 9112 §3.2: more than one `Host` line is a 400, whatever the values.
#[tokio::test]
async fn more_than_one_host_is_refused() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    for head in [
        "GET / HTTP/1.1\r\nHost: legit.test\r\nHost: evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: legit.test\r\nHost: legit.test\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: legit.test, evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ] {
        let answer = exchange(port, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?}: {answer}");
        assert!(
            answer.contains("ferry-error: bad-request"),
            "{head:?}: {answer}"
        );
    }
    assert_eq!(a.hits(), 0);
}

/// A chunked body that does not parse is the client's fault: 400 with a
/// cause of its own, not the backend's 502.
#[tokio::test]
async fn malformed_chunked_body_is_a_bad_request() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    let answer = exchange(
        port,
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("ferry-error: request-body-malformed\r\n"),
        "{answer}"
    );
}

/// Heads whose lines end in a bare LF are refused, on the first request of
/// a connection and on a later one; bodies may hold bare LFs.
#[tokio::test]
async fn bare_lf_heads_are_refused() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen();
    for head in [
        &b"GET / HTTP/1.1\nHost: example.com\n\n"[..],
        b"GET / HTTP/1.1\r\nHost: example.com\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\n",
    ] {
        let answer = exchange(port, head).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?}: {answer}");
    }
    assert_eq!(a.hits(), 0);

    // A body with bare LFs, then a second request on the connection: both
    // served; then a third whose head has a bare LF: refused.
    let mut tcp = connect(port).await;
    tcp.write_all(
        b"POST /1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\na\nb\n\n\
          GET /2 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    .await
    .unwrap();
    let first = read_response(&mut tcp).await;
    let second = read_response(&mut tcp).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    tcp.write_all(b"GET /3 HTTP/1.1\nHost: example.com\n\n")
        .await
        .unwrap();
    let third = read_response(&mut tcp).await;
    assert!(third.starts_with("HTTP/1.1 400"), "{third}");
    assert_eq!(a.hits(), 2);
}

/// A request body dripped in, a byte every 100 ms, is cut off once it is
/// slower than the body limits allow: 408, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn a_body_dripped_in_is_answered_408() {
    let a = EchoBackend::start("a").await;
    let (proxy, port) = proxy_to(None, a.backend());
    proxy.listen_with(ServerParams {
        body: BodyLimits {
            timeout: Some(Duration::from_millis(500)),
            min_rate: 1024,
        },
        ..short_limits()
    });
    let mut tcp = connect(port).await;
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(5) && !head.ends_with(b"\r\n\r\n") {
        let _ = tcp.write_all(b"x").await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("ferry-error: request-body-timeout"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let tcp = connect(port).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let drip = futures_util::stream::unfold(0, |n| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (n < 100).then(|| {
            (
                Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"x"))),
                n + 1,
            )
        })
    });
    let req = Request::builder()
        .method("POST")
        .uri("http://example.com/h2")
        .version(Version::HTTP_2)
        .body(http_body_util::StreamBody::new(Box::pin(drip)))
        .unwrap();
    let answer = Answer::read(send.send_request(req).await.unwrap()).await;
    assert_eq!(
        answer.status,
        StatusCode::REQUEST_TIMEOUT,
        "{}",
        answer.body
    );
    assert_eq!(answer.header("ferry-error"), Some("request-body-timeout"));
}

/// Reads one response with a `content-length` body from `tcp`.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut byte)).await;
        match read {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return String::from_utf8_lossy(&head).into_owned(),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|n| n.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    tcp.read_exact(&mut body).await.unwrap();
    text + &String::from_utf8_lossy(&body)
}
