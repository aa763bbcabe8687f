//! `ferry-bench-control`: how ferry-control scales.
//!
//! 1. Builds the index from generated objects (10k Services, 10k HTTPRoutes,
//!    50k endpoints by default) and computes the first full snapshot: every
//!    status and the compiled, wire-encoded view of the Gateway. Reports
//!    time and memory (RSS and peak RSS from `/proc/self/status`).
//! 2. Serves discovery on loopback, opens 1,000 streams on that Gateway,
//!    changes one route and reports when each stream received the change.
//!
//! Run in release: `cargo run --release -p ferry-bench-control`.

mod fanout;
mod objects;

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use ferry_control::index::ClusterIndex;
use ferry_control::pipeline::gateway_view;
use ferry_core::objects::NsName;

use objects::Size;

/// Control-plane benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Services (one HTTPRoute and one EndpointSlice each).
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    /// Namespaces the Services are spread over.
    #[arg(long, default_value_t = 100)]
    namespaces: usize,
    /// Discovery streams watching the Gateway.
    #[arg(long, default_value_t = 1_000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 50)]
    per_connection: usize,
    /// Route changes to time (median and max are reported).
    #[arg(long, default_value_t = 5)]
    changes: usize,
}

/// `VmRSS` and `VmHWM` in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(step: &str, started: Instant) {
    let (rss, peak) = memory();
    println!(
        "{step:<44} {:>9.1} ms   rss {rss:>7.1} MiB   peak {peak:>7.1} MiB",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let size = Size {
        services: args.services,
        endpoints_per_service: args.endpoints,
        namespaces: args.namespaces,
    };
    println!(
        "{} Services, {} HTTPRoutes, {} endpoints in {} namespaces",
        size.services,
        size.services,
        size.services * size.endpoints_per_service,
        size.namespaces
    );
    report("start", Instant::now());
    let started = Instant::now();
    let changes = objects::generate(size)?;
    report("generate objects", started);

    let first = Instant::now();
    let mut index = ClusterIndex::new();
    for change in changes {
        index.apply(change);
    }
    report("index: apply every object", first);
    let started = Instant::now();
    let gateway = NsName::new(objects::GATEWAY_NS, objects::GATEWAY);
    let (view, status) = gateway_view(&index, &gateway, "cluster.local");
    report("compile: gateway view + every status", started);
    let encoded = view
        .config
        .as_deref()
        .map_or(0, prost::Message::encoded_len);
    report("first full snapshot (total)", first);
    let routes = view.config.as_ref().map_or(0, |c| {
        c.ports.iter().map(|p| p.virtual_hosts.len()).sum::<usize>()
    });
    println!(
        "gateway view: {routes} virtual hosts, {} backends, {:.1} MiB encoded; {} route statuses",
        view.config.as_ref().map_or(0, |c| c.backends.len()),
        encoded as f64 / 1024.0 / 1024.0,
        status.routes.len()
    );
    drop((status, view));

    fanout::run(&args, size, index).await?;
    Ok(())
}
