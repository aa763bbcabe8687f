//! Gateway mode: serves the listeners of the selected Gateways, compiled
//! from a directory of Gateway API YAML files or streamed by ferry-control
//! over discovery, with the admin server beside.
//!
//! With a workload identity ([`GatewaySettings::credentials`], from the
//! same variables as a sidecar's), the gateway is a mesh client like a
//! sidecar: discovery at an `https://` address presents its certificate,
//! and every request carries the identities the Gateway's view expects of
//! its endpoints, so the bottom of the stack
//! ([`crate::mesh::client::MeshClient`]) reaches meshed endpoints over mTLS,
//! checking who answers, and the others plainly. Without one, every
//! endpoint is called plainly.

mod compile;

pub use compile::CoreCompiler;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use http::Request;
use tokio::sync::watch;
use tower::ServiceExt as _;
use tower::util::BoxCloneService;

use crate::admin::Admin;
use crate::body::Body;
use crate::config::{Compile, FileSource, Publisher, discovery};
use crate::identity::CredentialsRx;
use crate::listeners::Listeners;
use crate::mesh::client::{EndpointIdentities, MeshClient};
use crate::mesh::dial::{DialMetrics, Dialer};
use crate::metrics::Metrics;
use crate::proxy::balance::Balancer;
use crate::proxy::client::{Client, ClientParams};
use crate::proxy::retry::{BudgetParams, Budgets};
use crate::proxy::{StackParams, gateway_stack};
use crate::server::{HttpServer, ServerMetrics, ServerParams};
use crate::shutdown;

/// Where gateway mode gets its configuration.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A directory of YAML files, compiled here and watched for changes.
    Files(PathBuf),
    /// The view of one Gateway, compiled by ferry-control.
    Discovery {
        /// ferry-control's discovery address (`host:port` or a URI).
        addr: String,
        /// The Gateway's namespace.
        namespace: String,
        /// The Gateway's name.
        name: String,
    },
}

/// Everything gateway mode needs, typed.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Where the configuration comes from.
    pub source: ConfigSource,
    /// The address listeners bind to.
    pub bind: IpAddr,
    /// The admin server's address.
    pub admin: SocketAddr,
    /// How often the directory is checked for changes.
    pub poll_interval: Duration,
    /// How long an endpoint that refused a connection is avoided.
    pub failure_penalty: Duration,
    /// Client connection limits ([`ServerParams::default`], or the
    /// `FERRY_*` variables of [`ServerParams::from_env`]).
    pub server: ServerParams,
    /// Backend connection settings.
    pub client: ClientParams,
    /// Retry budget sizing.
    pub retry_budget: BudgetParams,
    /// The proxy's workload identity; `None` calls every endpoint plainly.
    pub credentials: Option<CredentialsRx>,
    /// How long the proxy serves on after SIGTERM ([`crate::shutdown`]).
    pub drain: Duration,
}

// === impl GatewaySettings ===

impl GatewaySettings {
    /// Settings with defaults for everything but the source and addresses.
    pub fn new(source: ConfigSource, bind: IpAddr, admin: SocketAddr) -> Self {
        Self {
            source,
            bind,
            admin,
            poll_interval: Duration::from_millis(500),
            failure_penalty: Duration::from_secs(5),
            server: ServerParams::default(),
            client: ClientParams::default(),
            retry_budget: BudgetParams::default(),
            credentials: None,
            drain: crate::shutdown::DEFAULT_DRAIN,
        }
    }
}

/// Runs gateway mode until the process is asked to stop.
pub async fn run(settings: GatewaySettings, compiler: impl Compile) -> anyhow::Result<()> {
    let admin_listener = TcpListener::bind(settings.admin)
        .await
        .with_context(|| format!("failed to bind admin server on {}", settings.admin))?;
    tracing::info!(addr = %settings.admin, "Admin server listening");

    let (publisher, config_rx, errors_rx) = Publisher::channel();
    let (identities_tx, identities) = watch::channel(EndpointIdentities::default());
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let plain = Client::new(settings.client);
    let client = match &settings.credentials {
        Some(credentials) => {
            let dialer = Dialer::new(
                credentials.clone(),
                settings.client.connect_timeout,
                DialMetrics::register(&mut registry),
            );
            MeshClient::new(dialer, plain, settings.client.idle_timeout)
        }
        None => MeshClient::plain(plain, settings.client.idle_timeout),
    };
    let stack = gateway_stack(StackParams {
        config: config_rx.clone(),
        metrics,
        budgets: Budgets::new(settings.retry_budget),
        balancer: Balancer::new(settings.failure_penalty),
        client,
    });
    // Every request carries the identities of the view as it is when the
    // request arrives.
    let service = match &settings.credentials {
        Some(_) => BoxCloneService::new(stack.map_request(move |mut req: Request<Body>| {
            req.extensions_mut().insert(identities.borrow().clone());
            req
        })),
        None => stack,
    };

    let options = settings
        .credentials
        .clone()
        .map(crate::identity::discovery_options)
        .unwrap_or_default();
    let source = async move {
        match settings.source {
            ConfigSource::Files(dir) => {
                FileSource::new(dir, settings.poll_interval, compiler)
                    .run(publisher)
                    .await;
            }
            ConfigSource::Discovery {
                addr,
                namespace,
                name,
            } => {
                discovery::run(addr, namespace, name, options, identities_tx, publisher).await;
            }
        }
    };
    let server = HttpServer::new(settings.server, ServerMetrics::register(&mut registry));
    let listeners = Listeners::new(settings.bind, service, server, config_rx.clone());
    let mut admin = Admin::new(
        config_rx,
        errors_rx,
        Arc::new(registry),
        listeners.applied(),
    );
    if let Some(credentials) = settings.credentials {
        admin = admin.with_credentials(credentials);
    }

    let serving = async {
        tokio::select! {
            () = source => anyhow::bail!("config source stopped"),
            () = listeners.run() => anyhow::bail!("listeners stopped"),
            () = admin.serve(admin_listener) => anyhow::bail!("admin server stopped"),
        }
    };
    shutdown::serve_until_drained(serving, settings.drain, shutdown::signal).await
}
