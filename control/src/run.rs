//! Wiring: the tasks of one ferry-control replica.
//!
//! Sources (Kubernetes watches, or a directory of YAML files in standalone
//! mode) feed one channel; the [`Pipeline`] owns the index and publishes
//! status and views; the status writer writes while the Lease is held; the
//! discovery and admin servers answer on their ports. Everything above the
//! source is the same in both modes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::ca::{CaService, CaSettings};
use crate::deployer::Deployer;
use crate::deployer::render::DeploySettings;
use crate::discovery::DiscoveryService;
use crate::files;
use crate::index::ClusterIndex;
use crate::leader::{Elector, LeaseConfig};
use crate::metrics::Metrics;
use crate::pipeline::{Outputs, Pipeline};
use crate::views::Views;
use crate::watch::{WatchError, spawn_all};
use crate::writer::StatusWriter;

/// Where the objects come from.
#[derive(Clone)]
pub enum Source {
    /// Watches of this cluster; status is written to it.
    Cluster(Client),
    /// YAML files of a directory, polled every `interval` (standalone).
    Files {
        /// The directory.
        dir: PathBuf,
        /// How often to look for changes.
        interval: Duration,
    },
}

/// Settings of one replica.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Discovery (gRPC) address; port 0 picks one.
    pub discovery_addr: SocketAddr,
    /// Admin (HTTP) address; port 0 picks one.
    pub admin_addr: SocketAddr,
    /// Leader election; `None` writes status unconditionally.
    pub lease: Option<LeaseConfig>,
    /// Time limit of one status write.
    pub status_timeout: Duration,
    /// Deploy Ferry Gateways with these settings; `None` deploys nothing.
    pub deploy: Option<DeploySettings>,
    /// The SPIFFE trust domain of workload identities.
    pub trust_domain: String,
    /// The identity CA, served beside discovery; `None` (and always in
    /// standalone mode) signs no certificates.
    pub identity: Option<CaSettings>,
}

/// A running replica. Dropping it stops every task.
#[derive(Debug)]
pub struct Running {
    /// The bound discovery address.
    pub discovery_addr: SocketAddr,
    /// The bound admin address.
    pub admin_addr: SocketAddr,
    /// The bound TLS address of the gRPC services, when served.
    pub tls_addr: Option<SocketAddr>,
    /// Whether this replica leads (always `true` without election).
    pub leader: watch::Receiver<bool>,
    /// Whether the index has listed everything once.
    pub synced: watch::Receiver<bool>,
    /// The tasks; they run until dropped.
    pub tasks: JoinSet<()>,
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A port could not be bound.
    #[error("failed to bind {what} address {addr}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The watches could not start.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// Starts every task of a replica.
pub async fn start(
    source: Source,
    settings: Settings,
    registry: Registry,
) -> Result<Running, StartError> {
    let mut registry = registry;
    let metrics = Metrics::register(&mut registry);
    let mut tasks = JoinSet::new();
    let bind = |what, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let discovery = bind("discovery", settings.discovery_addr).await?;
    let admin = bind("admin", settings.admin_addr).await?;
    let discovery_addr = discovery.local_addr().unwrap_or(settings.discovery_addr);
    let admin_addr = admin.local_addr().unwrap_or(settings.admin_addr);

    let (tx, rx) = mpsc::channel(1024);
    let mut index = ClusterIndex::new();
    let (watched_tx, watched_rx) = watch::channel(Arc::default());
    let expected = match &source {
        Source::Cluster(client) => spawn_all(client, &tx, &metrics, watched_rx, &mut tasks).await?,
        Source::Files { dir, interval } => {
            tasks.spawn(files::poll(dir.clone(), *interval, tx.clone()));
            files::resources()
        }
    };
    for resource in crate::index::Resource::all().filter(|r| !expected.contains(r)) {
        index.mark_synced(resource);
    }
    drop(tx);

    let views = Views::new();
    let (status_tx, status_rx) = watch::channel(None);
    let (synced_tx, synced) = watch::channel(false);
    let (deploy_tx, deploy_rx) = watch::channel(None);
    let (gateway_namespaces_tx, gateway_namespaces) = watch::channel(Default::default());
    let outputs = Outputs {
        status: status_tx,
        synced: synced_tx,
        views: views.clone(),
        deploy: deploy_tx,
        watched: watched_tx,
        gateway_namespaces: gateway_namespaces_tx,
    };
    let deploy = match &source {
        Source::Cluster(_) => settings.deploy.clone(),
        Source::Files { .. } => None,
    };
    let pipeline = Pipeline {
        index,
        expected,
        metrics: metrics.clone(),
        deploy,
        trust_domain: settings.trust_domain.clone(),
    };
    tasks.spawn(pipeline.run(rx, outputs));

    let (leader, blocked) = match (&source, settings.lease) {
        (Source::Cluster(client), Some(lease)) => {
            let (elector, leader) = Elector::new(client.clone(), lease);
            let blocked = elector.blocked();
            tasks.spawn(elector.run());
            (leader, Some(blocked))
        }
        (_, _) => {
            let (tx, rx) = watch::channel(true);
            tasks.spawn(async move { tx.closed().await });
            (rx, None)
        }
    };
    if let Source::Cluster(client) = &source {
        let writer = StatusWriter::new(client.clone(), metrics.clone(), settings.status_timeout);
        tasks.spawn(writer.run(status_rx, leader.clone()));
        let deployer = Deployer::new(client.clone(), metrics.clone());
        tasks.spawn(deployer.run(deploy_rx, leader.clone()));
    }

    let require_identity = settings
        .identity
        .as_ref()
        .and_then(|ca| ca.tls.as_ref())
        .is_some_and(|tls| tls.require_client_identity);
    let (ca, tls) = match (&source, settings.identity) {
        (Source::Cluster(client), Some(mut settings_ca)) => {
            let tls = settings_ca.tls.take();
            let ca = CaService::start(
                client.clone(),
                settings.trust_domain.clone(),
                settings_ca,
                gateway_namespaces,
                &mut registry,
                &mut tasks,
            );
            let tls = match tls {
                Some(tls) => {
                    let listener = bind("TLS", tls.addr).await?;
                    Some((listener, ca.server_config(tls, &mut tasks)))
                }
                None => None,
            };
            (Some(ca), tls)
        }
        (Source::Files { .. }, Some(_)) => {
            tracing::warn!("Standalone mode has no identity CA: proxies get no certificates");
            (None, None)
        }
        (_, None) => (None, None),
    };
    let service = DiscoveryService::new(views, metrics);
    let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    if let Some((listener, configs)) = tls {
        let service = service.clone().require_client_identity(require_identity);
        let ca = ca.clone();
        tasks.spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service.into_server())
                .add_optional_service(ca.map(CaService::into_server))
                .serve_with_incoming(crate::ca::tls::incoming(listener, configs))
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "TLS gRPC server failed");
            }
        });
    }
    tasks.spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(discovery);
        let served = tonic::transport::Server::builder()
            .add_service(service.into_server())
            .add_optional_service(ca.map(CaService::into_server))
            .serve_with_incoming(incoming)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "Discovery server failed");
        }
    });
    let mut admin_server = Admin::new(Arc::new(registry), synced.clone());
    if let Some(blocked) = blocked {
        admin_server = admin_server.with_blocked(blocked);
    }
    tasks.spawn(admin_server.serve(admin));
    Ok(Running {
        discovery_addr,
        admin_addr,
        tls_addr,
        leader,
        synced,
        tasks,
    })
}
