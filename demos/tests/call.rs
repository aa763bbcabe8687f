//! `ferry-echo call`'s tally, against in-process servers: echo servers, a
//! port nobody listens on, and a tiny server that answers 503 and closes
//! every connection.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use ferry_demo::call::{self, CallSpec, Limit, Rate, Target, parse_duration, parse_header};
use ferry_demo::echo::EchoServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn spec(url: &str, limit: Limit) -> CallSpec {
    CallSpec {
        target: url.parse().expect("a valid URL"),
        limit,
        rate: None,
        headers: Vec::new(),
        concurrency: NonZeroUsize::MIN,
        timeout: Duration::from_secs(5),
    }
}

/// Answers every request with `status_line` and closes the connection
/// (saying so), so every request needs a new one.
async fn closing_server(status_line: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds loopback");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 {status_line}\r\nferry-error: no-endpoints\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn call_tallies_answers_by_name_and_status() {
    let server = EchoServer::start("reviews-v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut spec = spec(
        &format!("http://{}/reviews", server.addr()),
        Limit::Count(20),
    );
    spec.concurrency = NonZeroUsize::new(3).unwrap();
    spec.headers.push(parse_header("x-canary: yes").unwrap());
    let tally = call::run(spec).await;
    assert_eq!(
        (tally.total, tally.ok, tally.failed),
        (20, 20, 0),
        "{tally:?}"
    );
    assert_eq!(tally.by_name.get("reviews-v1"), Some(&20));
    assert_eq!(tally.by_status.get(&200), Some(&20));
    assert!(tally.errors.is_empty());
    // What the server received, for checks of headers added on the way.
    let first = tally.first_body.as_deref().unwrap_or_default();
    assert!(first.contains("x-canary: yes"), "{first}");

    let line = serde_json::to_value(&tally).unwrap();
    assert_eq!(line["by_status"]["200"], 20, "{line}");
    assert_eq!(line["by_name"]["reviews-v1"], 20, "{line}");
}

#[tokio::test]
async fn refused_connections_and_error_statuses_are_failures() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let tally = call::run(spec(&format!("http://{closed}/"), Limit::Count(3))).await;
    assert_eq!(
        (tally.total, tally.ok, tally.failed),
        (3, 0, 3),
        "{tally:?}"
    );
    assert!(tally.by_status.is_empty());
    assert_eq!(
        tally.errors.len(),
        1,
        "one distinct message: {:?}",
        tally.errors
    );
    assert!(
        tally.errors[0].contains("failed to connect"),
        "{:?}",
        tally.errors
    );

    let unavailable = closing_server("503 Service Unavailable").await;
    let tally = call::run(spec(&format!("http://{unavailable}/"), Limit::Count(4))).await;
    assert_eq!(
        (tally.total, tally.ok, tally.failed),
        (4, 0, 4),
        "{tally:?}"
    );
    assert_eq!(tally.by_status.get(&503), Some(&4));
    assert_eq!(
        tally.errors,
        ["HTTP 503 Service Unavailable (ferry-error: no-endpoints)"]
    );
}

#[tokio::test]
async fn closed_connections_are_replaced_without_failures() {
    let addr = closing_server("200 OK").await;
    let tally = call::run(spec(&format!("http://{addr}/"), Limit::Count(5))).await;
    assert_eq!(
        (tally.total, tally.ok, tally.failed),
        (5, 5, 0),
        "{tally:?}"
    );
    assert!(tally.by_name.is_empty(), "no echo server answered");
}

#[tokio::test]
async fn a_paced_run_sends_what_its_rate_allows_in_its_duration() {
    let server = EchoServer::start("paced", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut spec = spec(
        &format!("http://{}/", server.addr()),
        Limit::Duration(Duration::from_millis(275)),
    );
    spec.rate = Some("20/s".parse().unwrap());
    spec.concurrency = NonZeroUsize::new(2).unwrap();
    let tally = call::run(spec).await;
    // Slots every 50 ms before 275 ms: six requests, however fast the
    // server answers.
    assert_eq!((tally.total, tally.ok), (6, 6), "{tally:?}");
    assert!(tally.elapsed_secs >= 0.25, "{tally:?}");
}

#[tokio::test]
async fn a_stopped_run_reports_what_it_sent() {
    let server = EchoServer::start("stopped", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut spec = spec(
        &format!("http://{}/", server.addr()),
        Limit::Duration(Duration::from_secs(600)),
    );
    spec.rate = Some("100/s".parse().unwrap());
    let tally = call::run_until(spec, tokio::time::sleep(Duration::from_millis(200))).await;
    assert!(tally.total >= 1 && tally.failed == 0, "{tally:?}");
    assert!(tally.elapsed_secs < 10.0, "{tally:?}");
}

#[test]
fn arguments_parse() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
    assert!(parse_duration("10 parsecs").is_err());
    assert_eq!("600/m".parse::<Rate>(), Rate::per_second(10.0));
    assert_eq!("50/s".parse::<Rate>(), "50".parse::<Rate>());
    assert!("0/s".parse::<Rate>().is_err());
    assert!("5/h".parse::<Rate>().is_err());
    let (name, value) = parse_header("Host:reviews.shop:9080").unwrap();
    assert_eq!(
        (name.as_str(), value.to_str().unwrap()),
        ("host", "reviews.shop:9080")
    );
    assert!(parse_header("no-colon").is_err());
    assert!("https://a/".parse::<Target>().is_err());
    assert_eq!(
        "http://[::1]:8080".parse::<Target>().unwrap().to_string(),
        "http://[::1]:8080/"
    );
}
