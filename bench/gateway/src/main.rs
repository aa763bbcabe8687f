//! Measures requests per second and latency through `ferry-proxy --mode
//! gateway` (routing by host and path, a 2-way weighted split, a header
//! added) against the physical limit: the same client talking to the same
//! backend directly. Rounds are interleaved; medians are reported.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// Gateway benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// The ferry-proxy binary (build it with `cargo build --release -p ferry-proxy`).
    #[arg(long, default_value = "target/release/ferry-proxy")]
    proxy: PathBuf,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests per round and target.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

struct Round {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = backend().await?;
    let (port, admin) = (free_port()?, free_port()?);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("bench.yaml"), config(port, backend))?;
    let mut proxy = start(&args, dir.path().into(), admin).await?;
    let proxied = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        direct.push(load(backend, &args).await?);
        through.push(load(proxied, &args).await?);
        eprintln!("round {} done", round + 1);
    }
    proxy.kill().await.ok();

    let (d, p) = (median(&mut direct), median(&mut through));
    println!(
        "connections={} requests/round={} rounds={}",
        args.connections, args.requests, args.rounds
    );
    println!("{:<8} {:>10} {:>10} {:>10}", "path", "req/s", "p50", "p99");
    for (name, r) in [("direct", &d), ("ferry", &p)] {
        println!(
            "{name:<8} {:>10.0} {:>10.2?} {:>10.2?}",
            r.rps, r.p50, r.p99
        );
    }
    println!("ferry/direct throughput ratio: {:.2}", p.rps / d.rps);
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A backend answering 13 bytes to everything.
async fn backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"hello, world\n",
                        ))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn config(port: u16, backend: SocketAddr) -> String {
    let service = |name: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: bench}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: bench, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: ['{}']}}]\n",
            backend.port(),
            backend.ip()
        )
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: ferry}}\nspec: {{controllerName: ferry.dev/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: bench}}\nspec:\n  gatewayClassName: ferry\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [bench.example.com]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n    filters:\n    - {{type: RequestHeaderModifier, requestHeaderModifier: {{add: [{{name: x-bench, value: '1'}}]}}}}\n    backendRefs: [{{name: a, port: 80, weight: 90}}, {{name: b, port: 80, weight: 10}}]\n{}{}",
        service("a"),
        service("b")
    )
}

async fn start(args: &Args, dir: PathBuf, admin: u16) -> anyhow::Result<Child> {
    let child = Command::new(&args.proxy)
        .args(["--mode", "gateway", "--bind", "127.0.0.1", "--admin"])
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--config")
        .arg(&dir)
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("failed to start {}", args.proxy.display()))?;
    for _ in 0..100 {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", admin)).await {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let req = Request::get("/ready")
                .header("host", "admin")
                .body(Empty::<Bytes>::new())?;
            if send.send_request(req).await?.status().is_success() {
                return Ok(child);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("ferry-proxy did not become ready")
}

/// Sends `args.requests` GETs over `args.connections` keep-alive
/// connections to `target`.
async fn load(target: SocketAddr, args: &Args) -> anyhow::Result<Round> {
    let per_connection = args.requests / args.connections;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(target).await?;
            tcp.set_nodelay(true)?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(per_connection);
            for _ in 0..per_connection {
                let req = Request::get("/bench")
                    .header("host", "bench.example.com")
                    .body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                let rsp = send.send_request(req).await?;
                if !rsp.status().is_success() {
                    bail!("status {}", rsp.status());
                }
                rsp.into_body().collect().await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(args.requests);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Round {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    })
}

fn median(rounds: &mut [Round]) -> Round {
    rounds.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = &rounds[rounds.len() / 2];
    Round {
        rps: mid.rps,
        p50: mid.p50,
        p99: mid.p99,
    }
}
