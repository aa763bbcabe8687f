//! The limits of [`HttpServer`] and [`RequestBody`] on tokio's paused
//! clock, over in-memory connections: the first request's limit, HTTP/2's
//! idle timeout and PINGs, and the request body's pace.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::body::BodyError;

/// Answers 200 at once, or after `/slow/SECONDS`.
fn service() -> ProxyService {
    tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Body>| async move {
        if let Some(secs) = req.uri().path().strip_prefix("/slow/") {
            let secs = secs.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        Ok::<_, Infallible>(Response::new(proxy_body::full("ok")))
    }))
}

/// A server with the default limits on one end of an in-memory
/// connection; the other end, the serving task and the metrics.
fn connection() -> (DuplexStream, JoinHandle<()>, ServerMetrics) {
    let metrics = ServerMetrics::default();
    let server = HttpServer::new(ServerParams::default(), metrics.clone());
    let (client, io) = tokio::io::duplex(64 * 1024);
    let info = ConnInfo {
        peer: SocketAddr::from(([192, 0, 2, 1], 40000)),
        port: 80,
        tls: false,
    };
    let task = tokio::spawn(async move { server.serve(io, info, service()).await });
    (client, task, metrics)
}

/// Whether the server closes `client` within `within` (reading and
/// dropping whatever it sends until then).
async fn closes_within(client: &mut DuplexStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(within, client.read_to_end(&mut sink))
        .await
        .is_ok()
}

#[tokio::test(start_paused = true)]
async fn a_connection_must_start_a_request_within_the_header_read_timeout() {
    let preface = &H2_PREFACE[..];
    for (what, sent) in [
        ("nothing", &b""[..]),
        ("22 bytes of the h2 preface", &preface[..22]),
        ("the h2 preface alone", preface),
        (
            "the h2 preface and SETTINGS",
            &[preface, &SETTINGS].concat(),
        ),
    ] {
        let (mut client, _task, metrics) = connection();
        client.write_all(sent).await.unwrap();
        assert!(
            !closes_within(&mut client, Duration::from_millis(9_900)).await,
            "{what}: closed before the limit"
        );
        assert!(
            closes_within(&mut client, Duration::from_millis(200)).await,
            "{what}: still open after the limit"
        );
        assert_eq!(metrics.hits(Limit::FirstRequest), 1, "{what}");
    }
}

/// An empty SETTINGS frame.
const SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];

/// A HEADERS frame for `GET http://a/` on stream 1, ending the stream.
const GET: [u8; 15] = [
    0, 0, 6, 0x1, 0x5, 0, 0, 0, 1, // length 6, HEADERS, END_STREAM | END_HEADERS, stream 1
    0x82, 0x86, 0x84, 0x41, 1, b'a', // :method GET, :scheme http, :path /, :authority a
];

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_is_sent_a_goaway() {
    let (client, _task, metrics) = connection();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let get = |path: &str| {
        Request::builder()
            .uri(format!("http://a.example{path}"))
            .body(proxy_body::empty())
            .unwrap()
    };
    // A request in flight for longer than the idle timeout keeps the
    // connection; the timeout counts from its end.
    let rsp = send.send_request(get("/slow/120")).await.unwrap();
    assert!(rsp.status().is_success());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(send.send_request(get("/")).await.is_ok());
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert!(!conn.is_finished(), "closed before the idle timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(conn.is_finished(), "open after the idle timeout");
    assert!(conn.await.unwrap().is_ok(), "closed gracefully");
    assert_eq!(metrics.hits(Limit::Http2Idle), 1);
}

#[tokio::test(start_paused = true)]
async fn an_http2_peer_that_stops_answering_pings_is_closed() {
    let (mut client, task, metrics) = connection();
    // A request, then never a byte more: PINGs go unanswered.
    client
        .write_all(&[&H2_PREFACE[..], &SETTINGS, &GET].concat())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(39)).await;
    assert!(!task.is_finished(), "closed before the PING's timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(task.is_finished(), "open after an unanswered PING");
    assert_eq!(metrics.hits(Limit::Http2KeepAlive), 1);
    drop(client);
}

/// A request body fed from a channel.
struct Fed(mpsc::Receiver<Result<Bytes, io::Error>>);

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

/// A body under the default limits, its sender and its watch.
fn fed() -> (mpsc::Sender<Result<Bytes, io::Error>>, Body, BodyWatch) {
    let (tx, rx) = mpsc::channel(1024);
    let watch = BodyWatch::default();
    let limits = ServerParams::default().body;
    let body = proxy_body::boxed(RequestBody::new(Fed(rx), limits, watch.clone()));
    (tx, body, watch)
}

/// Reads `body` to its end, or its error; how long that took.
async fn read_all(body: Body) -> (Result<usize, BodyError>, Duration) {
    let start = Instant::now();
    let read = body.collect().await.map(|c| c.to_bytes().len());
    (read, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_body_dripped_in_is_cut_off() {
    let (tx, body, watch) = fed();
    tokio::spawn(async move {
        while tx.send(Ok(Bytes::from_static(b"x"))).await.is_ok() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let (read, took) = read_all(body).await;
    assert!(read.is_err());
    assert_eq!(watch.failure(), Some(BodyFailure::TimedOut));
    // 10 s of waiting in all, and a few ms earned by the bytes received.
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_millis(10_100),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_longer_than_the_timeout_is_cut_off() {
    let (tx, body, watch) = fed();
    tokio::spawn(async move {
        tx.send(Ok(Bytes::from(vec![0; 1 << 20]))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        let _ = tx.send(Ok(Bytes::from_static(b"late"))).await;
    });
    let (read, took) = read_all(body).await;
    assert!(read.is_err());
    assert_eq!(watch.failure(), Some(BodyFailure::TimedOut));
    assert_eq!(took, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn slow_but_steady_bodies_backpressure_and_streams_pass() {
    // 8 KiB every 5 s: well above 1 KiB/s, for 100 s.
    let (tx, body, watch) = fed();
    tokio::spawn(async move {
        for _ in 0..20 {
            tx.send(Ok(Bytes::from(vec![0; 8192]))).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let (read, took) = read_all(body).await;
    assert_eq!(read.unwrap(), 20 * 8192);
    assert_eq!(watch.failure(), None);
    assert!(took >= Duration::from_secs(95));

    // A backend that stops reading for a minute: the client is not to
    // blame.
    let (tx, mut body, watch) = fed();
    tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Ok(Bytes::from_static(b"rest"))).await.unwrap();
    });
    assert!(body.frame().await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(body.frame().await.unwrap().is_ok());
    assert!(body.frame().await.is_none());
    assert_eq!(watch.failure(), None);

    // Once the response has started, the body may pause for as long as
    // it likes (a client stream).
    let (tx, body, watch) = fed();
    watch.responded();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(300)).await;
        tx.send(Ok(Bytes::from_static(b"later"))).await.unwrap();
    });
    assert_eq!(read_all(body).await.0.unwrap(), 5);
    assert_eq!(watch.failure(), None);
}

#[tokio::test]
async fn read_errors_say_whose_they_are() {
    for (kind, failure) in [
        (io::ErrorKind::InvalidInput, BodyFailure::Malformed),
        (io::ErrorKind::InvalidData, BodyFailure::Malformed),
        (io::ErrorKind::UnexpectedEof, BodyFailure::Incomplete),
        (io::ErrorKind::ConnectionReset, BodyFailure::Incomplete),
    ] {
        let (tx, body, watch) = fed();
        tx.send(Err(io::Error::new(kind, "broken"))).await.unwrap();
        assert!(read_all(body).await.0.is_err());
        assert_eq!(watch.failure(), Some(failure), "{kind:?}");
    }
    let (_, body, _) = fed();
    assert!(!body.is_end_stream());
}
