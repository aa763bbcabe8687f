//! `ferry-control`: the control-plane binary.

use ferry_core::flags::parse_duration;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use ferry_control::ca::CaSettings;
use ferry_control::ca::tls::TlsSettings;
use ferry_control::deployer::render::{DeploySettings, GatewayIdentity};
use ferry_control::leader::{LeaseConfig, release};
use ferry_control::run::{Settings, Source, start};
use ferry_core::identity::Identity;
use prometheus_client::registry::Registry;

/// Ferry's control plane: index, status writer and discovery server.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address of the discovery gRPC server.
    #[arg(long, env = "FERRY_DISCOVERY_ADDR", default_value = "0.0.0.0:8090")]
    discovery_addr: SocketAddr,
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "FERRY_ADMIN_ADDR", default_value = "0.0.0.0:9990")]
    admin_addr: SocketAddr,
    /// Standalone mode: read objects from this directory of YAML files
    /// instead of watching a cluster.
    #[arg(long, env = "FERRY_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// How often standalone mode looks for changed files.
    #[arg(long, env = "FERRY_CONFIG_POLL", default_value = "1s", value_parser = parse_duration)]
    config_poll: Duration,
    /// Write status without leader election (a single replica).
    #[arg(long, env = "FERRY_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "FERRY_LEASE_NAMESPACE", default_value = "ferry-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "FERRY_LEASE_NAME", default_value = "ferry-control")]
    lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "FERRY_POD_NAME")]
    identity: Option<String>,
    /// How long the Lease is valid without renewal.
    #[arg(long, env = "FERRY_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How often the leader renews and the others check.
    #[arg(long, env = "FERRY_LEASE_RENEW", default_value = "2s", value_parser = parse_duration)]
    lease_renew: Duration,
    /// Do not deploy proxies for Ferry Gateways.
    #[arg(long, env = "FERRY_NO_DEPLOY")]
    no_deploy: bool,
    /// Also serve the sidecar-injection admission webhook (`--webhook-*`
    /// flags), as the `ferry-webhook` binary does on its own.
    #[arg(long, env = "FERRY_WEBHOOK")]
    webhook: bool,
    /// The webhook's settings. `--proxy-image`, `--proxy-discovery` and
    /// `--trust-domain` also apply to the gateway proxies this deploys and
    /// to the identities it serves.
    #[command(flatten)]
    webhook_args: ferry_webhook::WebhookArgs,
    /// Do not run the identity CA (no proxy gets a certificate).
    #[arg(long, env = "FERRY_NO_IDENTITY")]
    no_identity: bool,
    /// Namespace of the CA's Secret: the control plane's own.
    #[arg(long, env = "FERRY_IDENTITY_NAMESPACE", default_value = "ferry-system")]
    identity_namespace: String,
    /// The CA's Secret (`ca.crt` anchors, `tls.crt`/`tls.key` issuer);
    /// created with a new root when absent, never overwritten.
    #[arg(long, env = "FERRY_IDENTITY_SECRET", default_value = "ferry-identity")]
    identity_secret: String,
    /// Lifetime of the certificates the CA signs (24 hours).
    #[arg(long, env = "FERRY_IDENTITY_LIFETIME", default_value = "1440m", value_parser = parse_duration)]
    identity_lifetime: Duration,
    /// How often the CA reads its Secret again (to follow a rotation).
    #[arg(long, env = "FERRY_IDENTITY_REFRESH", default_value = "60s", value_parser = parse_duration)]
    identity_refresh: Duration,
    /// Also serve discovery and the CA with TLS on this address (a server
    /// certificate from the CA; client certificates optional), so tokens
    /// never cross the network in clear.
    #[arg(long, env = "FERRY_TLS_ADDR")]
    tls_addr: Option<SocketAddr>,
    /// On the TLS port, refuse discovery watches without a client
    /// certificate (the CA's Certify never needs one).
    #[arg(long, env = "FERRY_REQUIRE_CLIENT_IDENTITY", requires = "tls_addr")]
    require_client_identity: bool,
    /// DNS names of the TLS server certificate (how proxies dial it).
    #[arg(
        long,
        env = "FERRY_TLS_DNS_NAMES",
        value_delimiter = ',',
        default_value = "ferry-control.ferry-system.svc"
    )]
    tls_dns_names: Vec<String>,
    /// The control plane's ServiceAccount: its identity in the TLS server
    /// certificate is `spiffe://<trust-domain>/ns/<identity-namespace>/sa/<this>`.
    #[arg(long, env = "FERRY_SERVICE_ACCOUNT", default_value = "ferry-control")]
    service_account: String,
    /// Time limit of one status write.
    #[arg(long, env = "FERRY_STATUS_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    status_timeout: Duration,
    /// How long to keep serving discovery, the CA and the webhook after
    /// SIGTERM, while the Services stop sending to this pod (`0s` stops at
    /// once). The Lease is handed over after it.
    #[arg(long, env = "FERRY_DRAIN", default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => drop(term.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let source = match &cli.config_dir {
        Some(dir) => Source::Files {
            dir: dir.clone(),
            interval: cli.config_poll,
        },
        None => Source::Cluster(
            kube::Client::try_default()
                .await
                .context("failed to build a Kubernetes client")?,
        ),
    };
    let identity = match cli.identity.clone() {
        Some(identity) => identity,
        None => std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("ferry-control-{}", std::process::id())),
    };
    let lease = (!cli.no_leader_election).then(|| LeaseConfig {
        namespace: cli.lease_namespace.clone(),
        name: cli.lease_name.clone(),
        identity,
        lease_duration: cli.lease_duration,
        renew_every: cli.lease_renew,
    });
    let tls = match cli.tls_addr {
        Some(addr) => Some(TlsSettings {
            addr,
            identity: Identity::new(
                cli.webhook_args.trust_domain.clone(),
                cli.identity_namespace.clone(),
                cli.service_account.clone(),
            )
            .context("failed to form the control plane's identity")?,
            dns_names: cli.tls_dns_names.clone(),
            lifetime: cli.identity_lifetime,
            require_client_identity: cli.require_client_identity,
        }),
        None => None,
    };
    let settings =
        Settings {
            discovery_addr: cli.discovery_addr,
            admin_addr: cli.admin_addr,
            lease,
            status_timeout: cli.status_timeout,
            trust_domain: cli.webhook_args.trust_domain.clone(),
            identity: (!cli.no_identity).then(|| CaSettings {
                namespace: cli.identity_namespace.clone(),
                secret: cli.identity_secret.clone(),
                lifetime: cli.identity_lifetime,
                refresh: cli.identity_refresh,
                tls: tls.clone(),
            }),
            deploy: (!cli.no_deploy).then(|| DeploySettings {
                proxy_image: cli.webhook_args.proxy_image.clone().unwrap_or_else(|| {
                    format!("localhost/ferry/proxy:{}", env!("CARGO_PKG_VERSION"))
                }),
                discovery: cli.webhook_args.proxy_discovery.clone(),
                identity: (!cli.no_identity).then(|| GatewayIdentity {
                    trust_domain: cli.webhook_args.trust_domain.clone(),
                    control_tls: cli.webhook_args.proxy_control_tls.clone(),
                }),
            }),
        };
    let client = match &source {
        Source::Cluster(client) => Some(client.clone()),
        Source::Files { .. } => None,
    };
    let lease = settings.lease.clone();
    let mut registry = Registry::default();
    let webhook = match (&client, cli.webhook) {
        (Some(client), true) => Some(
            ferry_webhook::Webhook::prepare(
                cli.webhook_args.clone(),
                client.clone(),
                &mut registry,
            )
            .await
            .context("failed to start the admission webhook")?,
        ),
        (None, true) => anyhow::bail!("--webhook needs a cluster, not --config-dir"),
        (_, false) => None,
    };
    let mut running = start(source, settings, registry).await?;
    if let Some(webhook) = webhook {
        running.tasks.spawn(async move {
            if let Err(error) = webhook.run(std::future::pending()).await {
                tracing::error!(%error, "Admission webhook stopped");
            }
        });
    }
    tracing::info!(
        discovery = %running.discovery_addr,
        admin = %running.admin_addr,
        "Started"
    );
    tokio::select! {
        _ = shutdown_signal() => tracing::info!(drain = ?cli.drain, "Draining before shutdown"),
        ended = running.tasks.join_next() => {
            anyhow::bail!("a task ended unexpectedly: {ended:?}");
        }
    }
    // Callers (the apiserver calling the webhook, proxies dialling
    // discovery) still reach this pod until its endpoints are removed.
    tokio::select! {
        () = tokio::time::sleep(cli.drain) => tracing::info!("Shutting down"),
        _ = shutdown_signal() => tracing::info!("Shutting down at once on a second signal"),
        ended = running.tasks.join_next() => {
            anyhow::bail!("a task ended unexpectedly: {ended:?}");
        }
    }
    // Stop writing, then hand the Lease over at once.
    running.tasks.shutdown().await;
    if let (Some(client), Some(lease)) = (client, lease)
        && let Err(error) = release(client, &lease).await
    {
        tracing::warn!(%error, "Failed to release the Lease");
    }
    Ok(())
}
