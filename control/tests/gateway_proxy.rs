//! The real binaries together: `ferry-proxy --mode gateway --discovery`
//! fed by `ferry-control` (standalone, from YAML files). A new route is
//! served soon after its file appears; with ferry-control killed the proxy
//! keeps serving its last config without failing a request; a restarted
//! ferry-control resyncs it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `ferry-proxy`, built beside this test's binary.
fn proxy_binary() -> PathBuf {
    ferry_harness::workspace_binary("ferry-proxy").expect("ferry-proxy binary")
}

fn objects(listener_port: u16, backend_port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ferry}}
spec: {{controllerName: ferry.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: shop}}
spec:
  gatewayClassName: ferry
  listeners: [{{name: http, protocol: HTTP, port: {listener_port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: shop}}
spec: {{ports: [{{port: 9080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: reviews-1, namespace: shop, labels: {{kubernetes.io/service-name: reviews}}}}
addressType: IPv4
ports: [{{port: {backend_port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"#
    )
}

fn route(name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  parentRefs: [{{name: web}}]\n  hostnames: [{name}.example.com]\n  rules: [{{backendRefs: [{{name: reviews, port: 9080}}]}}]\n"
    )
}

/// A backend answering `200 ok` to every request, keep-alive.
async fn backend() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    // Read one request head (no bodies in this test).
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// The status of `GET /` for `host` through the proxy, on a new connection.
async fn status(port: u16, host: &str) -> Result<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response
        .get(9..12)
        .context("short response")?
        .parse()
        .context("status code")?;
    Ok(code)
}

/// Polls until `host` gets a 200, returning how long that took.
async fn until_served(port: u16, host: &str) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(200) = status(port, host).await {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{host} was not served within 15 s")
}

fn control(dir: &Path, discovery: SocketAddr) -> Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ferry-control"))
        .arg("--config-dir")
        .arg(dir)
        .args([
            "--config-poll",
            "50ms",
            "--no-leader-election",
            "--no-deploy",
        ])
        .arg("--discovery-addr")
        .arg(discovery.to_string())
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_control_survives_its_death_and_resyncs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let listener_port = free_port();
    let backend_port = backend().await?;
    std::fs::write(
        dir.path().join("base.yaml"),
        objects(listener_port, backend_port),
    )?;
    std::fs::write(dir.path().join("a.yaml"), route("a"))?;

    let discovery = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut control_process = control(dir.path(), discovery)?;
    let _proxy = Command::new(proxy_binary())
        .args([
            "--mode",
            "gateway",
            "--bind",
            "127.0.0.1",
            "--gateway",
            "shop/web",
        ])
        .arg("--discovery")
        .arg(discovery.to_string())
        .arg("--admin")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;

    until_served(listener_port, "a.example.com").await?;
    assert_eq!(status(listener_port, "b.example.com").await?, 404);

    // A new route reaches the proxy through ferry-control.
    std::fs::write(dir.path().join("b.yaml"), route("b"))?;
    let took = until_served(listener_port, "b.example.com").await?;
    println!("a new route was served {took:?} after its file was written");

    // ferry-control dies under load: no request fails.
    let load = tokio::spawn(async move {
        let mut codes = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            codes.push(status(listener_port, "a.example.com").await.unwrap_or(0));
        }
        codes
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    control_process.kill().await?;
    let codes = load.await?;
    assert!(codes.len() > 10, "only {} requests were sent", codes.len());
    assert!(
        codes.iter().all(|code| *code == 200),
        "requests failed while ferry-control was down: {codes:?}"
    );

    // A route added while it is away arrives when it comes back.
    std::fs::write(dir.path().join("c.yaml"), route("c"))?;
    assert_eq!(status(listener_port, "c.example.com").await?, 404);
    let _control_again = control(dir.path(), discovery)?;
    until_served(listener_port, "c.example.com").await?;
    assert_eq!(status(listener_port, "a.example.com").await?, 200);
    Ok(())
}
