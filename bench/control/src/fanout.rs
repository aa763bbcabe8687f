//! One route change, fanned out to many discovery streams.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_api::pb;
use ferry_api::pb::discovery_client::DiscoveryClient;
use ferry_control::discovery::DiscoveryService;
use ferry_control::index::ClusterIndex;
use ferry_control::metrics::Metrics;
use ferry_control::pipeline::{Outputs, Pipeline};
use ferry_control::views::Views;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::Args;
use crate::objects::{self, GATEWAY, GATEWAY_NS, Size};

/// (stream, version, when, bytes) for every message a stream receives.
type Seen = (usize, u64, Instant, usize);

pub(crate) async fn run(args: &Args, size: Size, index: ClusterIndex) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let views = Views::new();
    let (changes, rx) = mpsc::channel(16);
    let outputs = Outputs {
        status: watch::channel(None).0,
        synced: watch::channel(false).0,
        views: views.clone(),
        deploy: watch::channel(None).0,
        watched: watch::channel(Default::default()).0,
        gateway_namespaces: watch::channel(Default::default()).0,
    };
    let pipeline = Pipeline {
        index,
        expected: Vec::new(),
        metrics: metrics.clone(),
        deploy: None,
        trust_domain: "cluster.local".to_string(),
    };
    tokio::spawn(pipeline.run(rx, outputs));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = DiscoveryService::new(views, metrics);
    tokio::spawn(service.serve(listener, std::future::pending()));

    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    let started = Instant::now();
    let mut opened = 0;
    let mut versions = vec![0u64; args.streams];
    let mut bytes = 0;
    // One connection's worth of streams at a time: each gets the full view
    // before the next wave opens, which bounds the memory of the first sync.
    while opened < args.streams {
        let channel = ferry_api::client::endpoint(&addr.to_string())?
            .connect()
            .await
            .context("failed to connect to discovery")?;
        for _ in 0..args.per_connection.min(args.streams - opened) {
            let client = DiscoveryClient::new(channel.clone()).max_decoding_message_size(1 << 30);
            let seen = seen_tx.clone();
            tokio::spawn(async move {
                if let Err(error) = watch(client, opened, seen).await {
                    eprintln!("stream {opened}: {error:#}");
                }
            });
            opened += 1;
        }
        wait_all(&mut seen, &mut versions[..opened], 0, &mut bytes).await?;
    }
    let (rss, peak) = super::memory();
    println!(
        "{} streams connected, full view received by all: {:.1} ms ({:.1} MiB sent), rss {rss:.1} MiB, peak {peak:.1} MiB",
        args.streams,
        started.elapsed().as_secs_f64() * 1000.0,
        bytes as f64 / 1024.0 / 1024.0
    );

    let mut latencies = Vec::new();
    for k in 0..args.changes {
        let baseline = versions.iter().copied().max().unwrap_or(0);
        let mut bytes = 0;
        let sent = Instant::now();
        let route = (k * 7919) % size.services;
        changes
            .send((
                tokio::time::Instant::now(),
                objects::route(size, route, &format!("b{k}"))?,
            ))
            .await?;
        let last = wait_all(&mut seen, &mut versions, baseline, &mut bytes).await?;
        let latency = last.duration_since(sent);
        println!(
            "route change {k}: reached all {} streams in {:.1} ms ({:.1} KiB sent in total)",
            args.streams,
            latency.as_secs_f64() * 1000.0,
            bytes as f64 / 1024.0
        );
        latencies.push(latency);
    }
    latencies.sort();
    if let (Some(median), Some(max)) = (latencies.get(latencies.len() / 2), latencies.last()) {
        println!(
            "one route change to {} streams: median {:.1} ms, max {:.1} ms",
            args.streams,
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

async fn watch(
    mut client: DiscoveryClient<tonic::transport::Channel>,
    id: usize,
    seen: mpsc::UnboundedSender<Seen>,
) -> Result<()> {
    let request = pb::GatewayWatch {
        namespace: GATEWAY_NS.to_string(),
        name: GATEWAY.to_string(),
    };
    let mut stream = client.watch_gateway(request).await?.into_inner();
    // A large full view comes in parts; it is received with its last part.
    let mut size = 0;
    while let Some(update) = stream.message().await? {
        size += prost::Message::encoded_len(&update);
        if update.partial {
            continue;
        }
        if seen
            .send((id, update.version, Instant::now(), size))
            .is_err()
        {
            break;
        }
        size = 0;
    }
    Ok(())
}

/// Waits until every stream has a version above `baseline`; returns when
/// the last one got it.
async fn wait_all(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    versions: &mut [u64],
    baseline: u64,
    bytes: &mut usize,
) -> Result<Instant> {
    let mut last = Instant::now();
    while versions.iter().any(|v| *v <= baseline) {
        let Ok(Some((id, version, at, size))) =
            tokio::time::timeout(Duration::from_secs(120), seen.recv()).await
        else {
            bail!("streams stopped receiving");
        };
        *bytes += size;
        if versions[id] <= baseline && version > baseline {
            last = at;
        }
        versions[id] = versions[id].max(version);
    }
    Ok(last)
}
