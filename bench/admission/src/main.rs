//! Admission latency of ferry-webhook as the apiserver sees it: one
//! AdmissionReview per request over a kept-alive HTTPS connection on
//! loopback, from the first byte sent to the last byte of the answer.
//! Interleaves, in every round, the transport floor (`GET /healthz` on the
//! same kind of connection), an injected pod and a skipped pod, and reports
//! the median over rounds of each percentile. See README.md.

mod client;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use ferry_injector::InjectConfig;
use ferry_webhook::{AdmissionService, FailurePolicy, Metrics, ServerTimeouts, ServingCert};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionReview;
use tokio::net::TcpListener;

use crate::client::Client;

/// Measures admission latency over HTTPS on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// Rounds; each percentile is reported as the median over rounds.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Requests of each kind per round (and per connection).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent connections, like an apiserver under a burst of pod creates.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Worker threads of the webhook's runtime.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Unmeasured requests before the first round.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Floor,
    Inject,
    Skip,
}

/// The server gets its own runtime (`--server-threads` workers, like the
/// webhook's own CPU in its pod); the client, standing for the apiserver,
/// runs on one thread.
fn main() -> Result<()> {
    let args = Args::parse();
    let cert = ServingCert::generate(&["localhost".to_owned()], &["127.0.0.1".parse()?])?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .enable_all()
        .build()?;
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let service = AdmissionService::new(
        InjectConfig::new("0.1.0").with_sidecar_mode(ferry_injector::SidecarMode::Native),
        FailurePolicy::Ignore,
        Metrics::unregistered(),
        Duration::from_secs(4),
    );
    let timeouts = ServerTimeouts {
        handshake: Duration::from_secs(4),
        header_read: Duration::from_secs(4),
    };
    server.spawn(ferry_webhook::serve(
        listener,
        cert.server_config()?,
        service,
        timeouts,
        std::future::pending(),
    ));
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    client.block_on(measure(&args, addr, &cert.ca_pem))
}

async fn measure(args: &Args, addr: SocketAddr, ca_pem: &str) -> Result<()> {
    let inject = Bytes::from(client::review(false).to_string());
    let skip = Bytes::from(client::review(true).to_string());
    println!(
        "ferry-webhook admission latency, HTTPS on loopback, {} connection(s), {} requests x {} rounds (review body {} B)",
        args.concurrency,
        args.requests,
        args.rounds,
        inject.len()
    );
    run_round(addr, ca_pem, args, args.warmup, &inject, &skip).await?;
    let mut rounds: Vec<[Vec<Duration>; 3]> = Vec::new();
    for _ in 0..args.rounds {
        rounds.push(run_round(addr, ca_pem, args, args.requests, &inject, &skip).await?);
    }
    let [decode_us, inject_us, review_us] = in_process(&inject, 20_000)?;
    println!(
        "\n{:<28} {:>9} {:>9} {:>9} {:>9}",
        "request", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for (index, name) in [
        "floor: GET /healthz",
        "inject: pod patched",
        "skip: pod opted out",
    ]
    .iter()
    .enumerate()
    {
        let pct = |q: f64| median(rounds.iter().map(|r| percentile(&r[index], q)).collect());
        println!(
            "{name:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0)
        );
    }
    let floor = median(rounds.iter().map(|r| percentile(&r[0], 0.5)).collect());
    let injected = median(rounds.iter().map(|r| percentile(&r[1], 0.5)).collect());
    println!("\ninject p50 / floor p50 = {:.2}", injected / floor);
    println!(
        "in process, per call: decode {decode_us:.1} µs, inject {inject_us:.1} µs, \
         review() (decode + inject + encode) {review_us:.1} µs"
    );
    Ok(())
}

/// One round: every connection sends `n` requests of each kind, interleaved.
async fn run_round(
    addr: SocketAddr,
    ca_pem: &str,
    args: &Args,
    n: usize,
    inject: &Bytes,
    skip: &Bytes,
) -> Result<[Vec<Duration>; 3]> {
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let mut client = Client::connect(addr, ca_pem).await?;
        let (inject, skip) = (inject.clone(), skip.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = [
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            ];
            for _ in 0..n {
                for (slot, kind) in [Kind::Floor, Kind::Inject, Kind::Skip]
                    .into_iter()
                    .enumerate()
                {
                    let start = Instant::now();
                    let (status, body) = match kind {
                        Kind::Floor => client.get("/healthz").await?,
                        Kind::Inject => client.post("/inject", inject.clone()).await?,
                        Kind::Skip => client.post("/inject", skip.clone()).await?,
                    };
                    samples[slot].push(start.elapsed());
                    if status != 200
                        || (matches!(kind, Kind::Inject)
                            && !body.windows(9).any(|w| w == b"JSONPatch"))
                    {
                        bail!("unexpected answer {status} for {kind:?}");
                    }
                }
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all: [Vec<Duration>; 3] = Default::default();
    for task in tasks {
        let samples = task.await.context("benchmark task panicked")??;
        for (into, from) in all.iter_mut().zip(samples) {
            into.extend(from);
        }
    }
    Ok(all)
}

/// Mean time per call, in process, of the parts of `review()`: decoding
/// the AdmissionReview, injecting, and the whole call (decode, inject,
/// encode the answer).
fn in_process(body: &Bytes, n: u32) -> Result<[f64; 3]> {
    let config = InjectConfig::new("0.1.0");
    let mean = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let decode = mean(&mut || {
        std::hint::black_box(serde_json::from_slice::<AdmissionReview<Pod>>(body).ok());
    });
    let review: AdmissionReview<Pod> = serde_json::from_slice(body)?;
    let pod = review
        .request
        .and_then(|r| r.object)
        .context("review without a pod")?;
    let inject = mean(&mut || {
        std::hint::black_box(ferry_injector::inject(&pod, &config).ok());
    });
    let whole = mean(&mut || {
        std::hint::black_box(ferry_webhook::review(body, &config, FailurePolicy::Ignore));
    });
    Ok([decode, inject, whole])
}

/// The `q` quantile in microseconds (nearest rank).
fn percentile(samples: &[Duration], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
