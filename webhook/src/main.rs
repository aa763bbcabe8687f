//! `ferry-webhook`: the admission webhook on its own, with a plain-HTTP
//! `/metrics` endpoint. ferry-control hosts the same code through the
//! library.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use ferry_webhook::{Webhook, WebhookArgs};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, error, info};

/// Ferry's admission webhook (sidecar injector).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    webhook: WebhookArgs,
    /// Address of the plain-HTTP metrics endpoint (`/metrics`).
    #[arg(long, env = "FERRY_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "FERRY_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("parsing --log")?)
        .init();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the apiserver")?;
    let mut registry = Registry::default();
    let webhook = Webhook::prepare(cli.webhook, client, &mut registry).await?;
    let metrics = TcpListener::bind(cli.metrics_addr)
        .await
        .with_context(|| format!("listening on {}", cli.metrics_addr))?;
    tokio::spawn(serve_metrics(metrics, Arc::new(registry)));
    // Kubernetes stops pods with SIGTERM; Ctrl-C for a terminal.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            result = tokio::signal::ctrl_c() => {
                if let Err(error) = result {
                    error!(%error, "Failed to wait for Ctrl-C; waiting for SIGTERM only");
                    terminate.recv().await;
                }
            }
        }
        info!("Shutting down");
    };
    webhook.run(shutdown).await?;
    Ok(())
}

async fn serve_metrics(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, std::convert::Infallible>(metrics_response(&request, &registry)) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await
            {
                debug!(%error, "Metrics connection ended with an error");
            }
        });
    }
}

fn metrics_response<B>(request: &Request<B>, registry: &Registry) -> Response<Full<Bytes>> {
    let mut body = String::new();
    let status = match request.uri().path() {
        "/metrics" => match prometheus_client::encoding::text::encode(&mut body, registry) {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::NOT_FOUND,
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
