//! The echo server's answers: the text format the demo and cluster tests
//! read (`Hostname:`, `x-echo-name`), the JSON answer, and where its name
//! comes from in a pod.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferry_demo::client::DemoClient;
use ferry_demo::echo::{DEFAULT_NAME, EchoIdentity, EchoServer, Echoed};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Sends one raw HTTP/1.1 request (closing the connection) and returns the
/// client's own address, the response head and the body.
async fn raw_get(addr: SocketAddr, path: &str, headers: &[&str]) -> (SocketAddr, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let local = stream.local_addr().expect("connected");
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: echo.test\r\nconnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("reads the answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (local, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn text_answer_keeps_the_format_the_demos_read() {
    let server = EchoServer::start("v1-0", loopback()).await.unwrap();
    let mut client = DemoClient::connect(server.addr(), None).await.unwrap();
    let answer = client
        .get("whoami", "/foo?x=1", &[("env", "canary")])
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.backend.as_deref(), Some("v1-0"));
    let lines: Vec<&str> = answer.body.lines().collect();
    assert_eq!(lines[0], "Hostname: v1-0");
    assert!(
        lines[1].starts_with("RemoteAddr: 127.0.0.1:"),
        "{}",
        answer.body
    );
    assert_eq!(lines[2], "GET /foo?x=1 HTTP/1.1");
    assert!(lines.contains(&"env: canary"), "{}", answer.body);
    assert!(answer.body.contains("host: whoami"), "{}", answer.body);
    assert!(!answer.headers.contains_key("x-echo-namespace"));
}

#[tokio::test]
async fn json_answer_names_the_pod_the_request_and_the_peer() {
    let identity = EchoIdentity {
        name: "reviews-v2-7d9f".into(),
        namespace: Some("shop".into()),
    };
    let server = EchoServer::start_as(identity, loopback()).await.unwrap();
    let (local, head, body) = raw_get(
        server.addr(),
        "/reviews/1?full=yes",
        &[
            "accept: text/html, application/json;q=0.9",
            "ferry-client-identity: spiffe://cluster.local/ns/shop/sa/productpage",
            "x-tag: a",
            "x-tag: b",
        ],
    )
    .await;
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-echo-name: reviews-v2-7d9f"), "{head}");
    assert!(head.contains("x-echo-namespace: shop"), "{head}");

    let echoed: Echoed = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed.name, "reviews-v2-7d9f");
    assert_eq!(echoed.namespace.as_deref(), Some("shop"));
    assert_eq!(echoed.method, "GET");
    assert_eq!(echoed.path, "/reviews/1");
    assert_eq!(echoed.query.as_deref(), Some("full=yes"));
    assert_eq!(echoed.version, "HTTP/1.1");
    assert_eq!(echoed.host.as_deref(), Some("echo.test"));
    assert_eq!(echoed.peer, local.to_string());
    assert_eq!(
        echoed.identity.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/productpage")
    );
    assert_eq!(echoed.headers["x-tag"], "a, b");
    assert_eq!(Echoed::name_in(&body).as_deref(), Some("reviews-v2-7d9f"));

    // The fields tests read are plain JSON keys.
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in ["name", "namespace", "method", "path", "headers", "peer"] {
        assert!(value.get(key).is_some(), "no {key} in {body}");
    }
}

#[tokio::test]
async fn text_is_the_answer_unless_json_is_accepted() {
    let identity = EchoIdentity {
        name: "echo-0".into(),
        namespace: Some("default".into()),
    };
    let server = EchoServer::start_as(identity, loopback()).await.unwrap();
    for accept in [
        "accept: */*",
        "accept: application/json;q=0",
        "accept: text/plain",
    ] {
        let (_, head, body) = raw_get(server.addr(), "/", &[accept]).await;
        assert!(
            head.contains("content-type: text/plain"),
            "{accept}: {head}"
        );
        assert!(
            body.starts_with("Hostname: echo-0\nNamespace: default\nRemoteAddr: "),
            "{body}"
        );
        assert_eq!(Echoed::name_in(&body).as_deref(), Some("echo-0"));
    }
}

#[test]
fn the_name_comes_from_flags_then_the_pod() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        move |key: &str| vars.get(key).map(|v| (*v).to_owned())
    };
    let pod = env(&[
        ("POD_NAME", "echo-5b7c"),
        ("POD_NAMESPACE", "shop"),
        ("HOSTNAME", "host"),
    ]);
    assert_eq!(
        EchoIdentity::resolve(None, None, &pod),
        EchoIdentity {
            name: "echo-5b7c".into(),
            namespace: Some("shop".into())
        }
    );
    let flags = EchoIdentity::resolve(Some("v1".into()), Some("other".into()), &pod);
    assert_eq!(
        (flags.name.as_str(), flags.namespace.as_deref()),
        ("v1", Some("other"))
    );

    let container =
        EchoIdentity::resolve(None, None, env(&[("HOSTNAME", "c0ffee"), ("POD_NAME", "")]));
    assert_eq!(container, EchoIdentity::named("c0ffee"));
    assert_eq!(
        EchoIdentity::resolve(None, None, env(&[])),
        EchoIdentity::named(DEFAULT_NAME)
    );
}

#[tokio::test]
async fn shutdown_lets_open_connections_finish_and_refuses_new_ones() {
    let server = EchoServer::start("draining", loopback()).await.unwrap();
    let addr = server.addr();
    let mut client = DemoClient::connect(addr, None).await.unwrap();
    assert_eq!(client.get("h", "/", &[]).await.unwrap().status, 200);
    // The idle keep-alive connection is closed, so shutdown does not wait
    // for the whole grace period.
    tokio::time::timeout(
        Duration::from_secs(5),
        server.shutdown(Duration::from_secs(30)),
    )
    .await
    .expect("shutdown waits only for open requests");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
