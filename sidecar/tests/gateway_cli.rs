//! Runs the real `ferry-proxy --mode gateway` binary on a directory of
//! Gateway API YAML: split, header match, hostname mismatch, redirect,
//! prefix rewrite, header add, then a broken file dropped in while serving.

// Test helpers outside `#[test]` functions: clippy's test exemption does
// not reach them.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

struct Proxy {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP/1.1 backend answering `x-backend: NAME` and echoing the request
/// line and headers in the body.
async fn echo_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (k, v) in req.headers() {
                            text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("x-backend", name)
                                .body(Full::new(Bytes::from(text)))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ferry}}
spec: {{controllerName: ferry.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: public, namespace: shop}}
spec:
  gatewayClassName: ferry
  listeners:
  - {{name: http, port: {port}, protocol: HTTP}}
"
    )
}

fn route_yaml(v1_weight: u32, v2_weight: u32) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: shop}}
spec:
  parentRefs: [{{name: public}}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}, headers: [{{name: x-canary, value: 'yes'}}]}}]
    backendRefs: [{{name: v2, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{scheme: https, statusCode: 301}}
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v1}}}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {{add: [{{name: x-added, value: by-ferry}}]}}
    backendRefs: [{{name: v1, port: 80}}]
  - backendRefs:
    - {{name: v1, port: 80, weight: {v1_weight}}}
    - {{name: v2, port: 80, weight: {v2_weight}}}
"
    )
}

fn service_yaml(name: &str, backend: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  ports: [{{name: http, port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: shop
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints:
- addresses: ['{ip}']
",
        port = backend.port(),
        ip = backend.ip(),
    )
}

fn start(dir: &Path, admin: SocketAddr) -> Proxy {
    start_with(dir, admin, &[], &[])
}

/// The gateway on `dir` with `extra` arguments and `vars` in its environment.
fn start_with(dir: &Path, admin: SocketAddr, extra: &[&str], vars: &[(&str, &str)]) -> Proxy {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-proxy"))
        .args(["--mode", "gateway", "--config"])
        .arg(dir)
        .args(["--bind", "127.0.0.1", "--admin", &admin.to_string()])
        .args(extra)
        .env("FERRY_LOG", "info")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    Proxy { child, stderr }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn get(
    client: &HttpClient,
    port: u16,
    host: &str,
    path: &str,
    header: Option<(&str, &str)>,
) -> Answer {
    let mut req = Request::builder()
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let rsp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = rsp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

impl Answer {
    fn backend(&self) -> Option<&str> {
        self.headers.get("x-backend").map(|v| v.to_str().unwrap())
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn admin_get(
    client: &HttpClient,
    admin: SocketAddr,
    path: &str,
) -> Option<(StatusCode, String)> {
    let uri = format!("http://{admin}{path}");
    let rsp = client
        .get(uri.parse().unwrap())
        .await
        .map_err(|e| eprintln!("{path}: {e:?}"))
        .ok()?;
    let status = rsp.status();
    let body = rsp
        .into_body()
        .collect()
        .await
        .map_err(|e| eprintln!("{path}: {e:?}"))
        .ok()?
        .to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_from_files() {
    let v1 = echo_backend("v1").await;
    let v2 = echo_backend("v2").await;
    let port = free_port();
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml(port)).unwrap();
    std::fs::write(dir.path().join("route.yaml"), route_yaml(70, 30)).unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        format!("{}---\n{}", service_yaml("v1", v1), service_yaml("v2", v2)),
    )
    .unwrap();
    let proxy = start(dir.path(), admin);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    wait_until("/ready", || async {
        admin_get(&client, admin, "/ready")
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    })
    .await;
    wait_until("the listener", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    // Split: 70/30 within 3 points over 2,000 requests.
    let mut to_v1 = 0;
    for _ in 0..2000 {
        let answer = get(&client, port, "shop.example.com", "/", None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        if answer.backend() == Some("v1") {
            to_v1 += 1;
        }
    }
    let share = f64::from(to_v1) / 2000.0;
    assert!((share - 0.7).abs() <= 0.03, "v1 got {share}");

    // Header match.
    for _ in 0..20 {
        let answer = get(
            &client,
            port,
            "shop.example.com",
            "/",
            Some(("x-canary", "yes")),
        )
        .await;
        assert_eq!(answer.backend(), Some("v2"));
    }

    // Hostname mismatch.
    let answer = get(&client, port, "other.example.com", "/", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // Redirect.
    let answer = get(&client, port, "shop.example.com", "/old/page", None).await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.headers.get("location").unwrap(),
        "https://shop.example.com/old/page"
    );

    // Prefix rewrite and header add.
    let answer = get(&client, port, "shop.example.com", "/api/items?id=3", None).await;
    assert_eq!(answer.backend(), Some("v1"));
    assert!(
        answer.body.starts_with("GET /v1/items?id=3\n"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("x-added: by-ferry\n"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("host: shop.example.com\n"),
        "{}",
        answer.body
    );

    // A broken file while serving: reported with file and line, the last
    // good config stays in force.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad\n  namespace: [\n",
    )
    .unwrap();
    let logged = || proxy.stderr.lock().unwrap().clone();
    wait_until("the error to be logged", || async {
        logged().contains("broken.yaml:")
    })
    .await;
    let (_, config) = admin_get(&client, admin, "/config").await.unwrap();
    assert!(config.contains("broken.yaml"), "{config}");
    let version = |config: &str| {
        serde_json::from_str::<serde_json::Value>(config).unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    let good_version = version(&config);
    for _ in 0..50 {
        let answer = get(&client, port, "shop.example.com", "/", None).await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    // A good change applies; the broken file removed clears the error.
    let current = || async {
        let (_, config) = admin_get(&client, admin, "/config").await.unwrap();
        version(&config)
    };
    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    wait_until("the broken file's removal", || async {
        current().await > good_version
    })
    .await;
    let fixed_version = current().await;
    std::fs::write(dir.path().join("route.yaml"), route_yaml(0, 1)).unwrap();
    wait_until("the new weights", || async {
        current().await > fixed_version
    })
    .await;
    for _ in 0..50 {
        let answer = get(&client, port, "shop.example.com", "/", None).await;
        assert_eq!(answer.backend(), Some("v2"));
    }
    let (status, metrics) = admin_get(&client, admin, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("ferry_requests_total{"), "{metrics}");
    let (_, config) = admin_get(&client, admin, "/config").await.unwrap();
    assert!(config.contains("\"errors\": []"), "{config}");
}

fn indented(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_from_a_tls_secret() {
    let v1 = echo_backend("v1").await;
    let port = free_port();
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let cert = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ferry}}
spec: {{controllerName: ferry.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: public, namespace: shop}}
spec:
  gatewayClassName: ferry
  listeners:
  - name: https
    port: {port}
    protocol: HTTPS
    hostname: shop.example.com
    tls: {{mode: Terminate, certificateRefs: [{{name: shop-tls}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: shop-tls, namespace: shop}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{chain}  tls.key: |
{key}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: shop}}
spec:
  parentRefs: [{{name: public}}]
  rules:
  - backendRefs: [{{name: v1, port: 80}}]
---
{service}",
        chain = indented(&cert.cert.pem()),
        key = indented(&cert.signing_key.serialize_pem()),
        service = service_yaml("v1", v1),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), yaml).unwrap();
    let proxy = start(dir.path(), admin);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    wait_until("/ready", || async {
        admin_get(&client, admin, "/ready")
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("shop.example.com").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/secure")
        .header("host", "shop.example.com")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let rsp = send.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers().get("x-backend").unwrap(), "v1");
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    drop(proxy);
}

/// A thread count that is not a positive number is refused up front,
/// naming the flag, before anything starts.
#[test]
fn bad_thread_counts_are_refused() {
    for (flag, env) in [(Some("0"), None), (None, Some("two"))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry-proxy"));
        command.args(["--mode", "gateway", "--config", "/nonexistent"]);
        if let Some(cores) = flag {
            command.args(["--cores", cores]);
        }
        if let Some(cores) = env {
            command.env("FERRY_PROXY_CORES", cores);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag:?} {env:?} was accepted");
        assert!(stderr.contains("--cores"), "{stderr}");
    }
}

/// SIGTERM (a pod being deleted) does not stop the proxy at once: it serves
/// through its drain period while callers let go, then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_before_exit() {
    let v1 = echo_backend("v1").await;
    let port = free_port();
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml(port)).unwrap();
    std::fs::write(dir.path().join("route.yaml"), route_yaml(100, 0)).unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        format!("{}---\n{}", service_yaml("v1", v1), service_yaml("v2", v1)),
    )
    .unwrap();
    let mut proxy = start_with(dir.path(), admin, &["--drain", "2s"], &[]);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    wait_until("/ready", || async {
        admin_get(&client, admin, "/ready")
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    })
    .await;

    let term = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let signalled = std::time::Instant::now();
    // New connections and requests are still served during the drain.
    while signalled.elapsed() < Duration::from_millis(1500) {
        let fresh: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let answer = get(&fresh, port, "shop.example.com", "/", None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM:\n{}",
            proxy.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() >= Duration::from_secs(2));
    assert!(proxy.stderr.lock().unwrap().contains("Draining"));
}

/// [`start`], with `vars` in the proxy's environment.
/// A backend that reads the whole request body before answering 200 with
/// `x-backend: NAME` and the request's `host` and body length.
async fn reading_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let host = req
                            .headers()
                            .get_all("host")
                            .iter()
                            .map(|h| h.to_str().unwrap_or("?").to_owned())
                            .collect::<Vec<_>>()
                            .join(",");
                        let xfh = req
                            .headers()
                            .get("x-forwarded-host")
                            .map(|h| h.to_str().unwrap_or("?").to_owned())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await;
                        let text = match body {
                            Ok(body) => {
                                format!("host={host} xfh={xfh} body={}\n", body.to_bytes().len())
                            }
                            Err(error) => format!("body error: {error}\n"),
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("x-backend", name)
                                .body(Full::new(Bytes::from(text)))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// Writes `bytes` on a new connection and reads what comes back until the
/// proxy closes it or `within` passes; `None` when still open then.
async fn raw_exchange(port: u16, bytes: &[u8], within: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, tcp.read_to_end(&mut out)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// The attacks of a hostile client against the real gateway binary, with
/// its limits set from the environment: connections that never speak are
/// closed, `Host` cannot disagree with the routed authority, malformed
/// heads and bodies are the client's 400, a body dripped in is cut off
/// with 408, and a dead Service's share of a split falls over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_meet_the_gateway_limits() {
    let legit = reading_backend("legit").await;
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let port = free_port();
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml(port)).unwrap();
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: legit, namespace: shop}
spec:
  parentRefs: [{name: public}]
  hostnames: [legit.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: v1, port: 80, weight: 50}, {name: v2, port: 80, weight: 50}]
  - backendRefs: [{name: v1, port: 80}]
",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        format!(
            "{}---\n{}",
            service_yaml("v1", legit),
            service_yaml("v2", dead)
        ),
    )
    .unwrap();
    let proxy = start_with(
        dir.path(),
        admin,
        &[],
        &[
            ("FERRY_HEADER_READ_TIMEOUT", "1s"),
            ("FERRY_BODY_TIMEOUT", "1s"),
        ],
    );
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    wait_until("/ready", || async {
        admin_get(&client, admin, "/ready")
            .await
            .is_some_and(|(s, _)| s == StatusCode::OK)
    })
    .await;
    wait_until("the listener", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    // Connections that never speak, or stop inside the h2 preface.
    let within = Duration::from_secs(4);
    let silent = raw_exchange(port, b"", within);
    let preface = raw_exchange(port, &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..22], within);
    let (silent, preface) = tokio::join!(silent, preface);
    assert!(silent.is_some(), "a silent connection is still open");
    assert!(preface.is_some(), "22 bytes of the preface: still open");

    // Host confusion.
    let within = Duration::from_secs(3);
    let answer = raw_exchange(
        port,
        b"GET http://legit.test/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        within,
    )
    .await
    .unwrap();
    assert!(
        answer.contains("host=legit.test xfh=legit.test body=0"),
        "{answer}"
    );
    let answer = raw_exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: legit.test\r\nHost: evil.example\r\n\r\n",
        within,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Malformed heads and bodies.
    let answer = raw_exchange(port, b"GET / HTTP/1.1\nHost: legit.test\n\n", within)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "bare LF: {answer}");
    let answer = raw_exchange(
        port,
        b"POST / HTTP/1.1\r\nHost: legit.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        within,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "bad chunk: {answer}");
    assert!(answer.contains("request-body-malformed"), "{answer}");

    // A body dripped one byte every 300 ms.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.write_all(b"POST / HTTP/1.1\r\nHost: legit.test\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(8) {
            let _ = tcp.write_all(b"x").await;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await
            {
                out.extend_from_slice(&buf[..n]);
                if n == 0 || out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
        let answer = String::from_utf8_lossy(&out);
        assert!(answer.starts_with("HTTP/1.1 408"), "slow body: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(6));
    }

    // A dead Service's share of a split.
    let mut failures = 0;
    for _ in 0..50 {
        let answer = get(&client, port, "legit.test", "/split", None).await;
        if answer.status != StatusCode::OK {
            failures += 1;
        }
    }
    assert!(failures <= 1, "{failures} of 50 failed");
    drop(proxy);
}
