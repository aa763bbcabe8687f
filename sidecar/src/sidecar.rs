//! Sidecar mode (`ferry-proxy --mode sidecar`): the proxy beside each meshed
//! app, behind the nat rules of [`crate::init`].
//!
//! # What it does today
//!
//! * **Outbound** (`127.0.0.1:4140`, and `[::1]:4140` for IPv6): every TCP
//!   connection the app opens is redirected here; the proxy reads the
//!   address the app dialled ([`crate::orig_dst`]), the target. With
//!   `FERRY_DISCOVERY_ADDR` set, the first connection to a target
//!   subscribes to ferry-control for it ([`targets`]; one subscription per
//!   target, updates applied live, kept when the control plane goes away,
//!   least recently used and idle targets dropped) and waits a short while
//!   for its first view. A mesh Service's connection is detected
//!   ([`detect`]: HTTP/1, HTTP/2 prior knowledge, else opaque; skipped for
//!   `FERRY_OPAQUE_PORTS` and `appProtocol` h2c/ws); HTTP is routed by the
//!   Service's routes through [`stack::sidecar_stack`] (filters, timeouts,
//!   retries, weights, balancing) to the endpoint, over mTLS HTTP/2 with
//!   the endpoint's expected SPIFFE identity checked ([`crate::mesh::client`],
//!   [`crate::mesh::tls`]) when it is meshed, plainly otherwise (a
//!   WebSocket to a meshed endpoint is an extended CONNECT stream,
//!   [`crate::mesh::upgrade`]); opaque TCP
//!   goes to an endpoint of the Service over mTLS with the port header
//!   ([`crate::mesh::dial`]) or plainly. Targets that are not mesh
//!   Services, and every target when discovery is off or unreachable
//!   before a first view, are forwarded to the original destination
//!   unchanged, from the proxy's own UID, which the rules let through.
//! * **Inbound** (`0.0.0.0:4143`, and `[::]:4143` for IPv6): every TCP
//!   connection to the pod (except the excluded ports, the admin port among
//!   them) arrives here ([`crate::mesh::inbound`]). Mesh mTLS from another
//!   proxy is terminated and sent to the app at `127.0.0.1:<original port>`
//!   in its own protocol; anything else is forwarded unchanged there
//!   (`FERRY_INBOUND_POLICY=permissive`, the default) or refused (`strict`).
//! * **Admin** (`FERRY_ADMIN_ADDR`, `0.0.0.0:4191` when injected): `/live`,
//!   `/ready` (once both listeners are bound), `/metrics` (connections and
//!   bytes by direction and original destination), `/config`, and the app's
//!   own HTTP probes under `/app-probe/<container>/<kind>`
//!   (`FERRY_APP_PROBES`, see the ferry-injector crate doc).
//! * IPv6 listeners are bound when the pod has IPv6 (they serve the
//!   ip6tables rules `ferry-proxy init` installs when the pod has a global
//!   IPv6 address); without it the proxy runs on IPv4 alone.
//! * `ferry-proxy await` ([`crate::await_ready`]) holds a classic sidecar's
//!   app until `/ready` answers.
//!
//! # Not built yet
//!
//! Tracing. The proxy's certificate comes from the identity machinery
//! through a [`crate::identity::CredentialsRx`]; until one is published,
//! calls to meshed endpoints fail (502, `outbound_mtls_failures` with
//! reason `no_credentials`) rather than go out in plaintext. The app sees
//! inbound connections coming from 127.0.0.1: the client's address is not
//! preserved on the socket (for HTTP, the client's sidecar sets it in
//! `X-Forwarded-For`).

mod admin;
pub mod detect;
mod forward;
pub mod outbound;
mod probes;
mod settings;
pub mod stack;
pub mod targets;

pub use admin::{APP_PROBE_PREFIX, SidecarAdmin};
pub use forward::{Direction, DirectionLabel, Forwarder, TcpLabels, TcpMetrics, target};
pub(crate) use forward::{redirected_target, splice};
pub use probes::{AppProbe, AppProbes, ProbeHeader, Scheme};
pub use settings::{
    DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT, DiscoverySettings, SettingsError, SidecarSettings,
};

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use outbound::Outbound;
use prometheus_client::registry::Registry;
use targets::Targets;

use crate::identity::CredentialsRx;
use crate::mesh::inbound::metrics::InboundMetrics;
use crate::mesh::inbound::{Inbound, InboundParams};
use crate::shutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Runs sidecar mode until the process is asked to stop; meshed endpoints
/// are dialled with the latest of `credentials`.
pub async fn run(settings: SidecarSettings, credentials: CredentialsRx) -> anyhow::Result<()> {
    let admin_listener = bind(settings.admin, "admin server").await?;
    let outbound = bind(settings.outbound, "outbound listener").await?;
    let inbound = bind(settings.inbound, "inbound listener").await?;
    let outbound_v6 = bind_v6(settings.outbound_v6, "IPv6 outbound listener");
    let inbound_v6 = bind_v6(settings.inbound_v6, "IPv6 inbound listener");
    let mut registry = Registry::default();
    let metrics = TcpMetrics::register(&mut registry);
    let mesh_outbound = Outbound::new(
        &settings,
        credentials.clone(),
        metrics.clone(),
        &mut registry,
    );
    let targets = mesh_outbound.targets.clone();
    let server = mesh_outbound.server.clone();
    let outbound_v6 = outbound_v6.map(|l| mesh_outbound.clone().serve(l));
    let outbound = mesh_outbound.serve(outbound);
    let mesh_inbound = Inbound::new(
        InboundParams::new(
            settings.inbound_policy,
            settings.inbound_identity_header,
            settings.connect_timeout,
        )
        .with_server(server),
        credentials.clone(),
        InboundMetrics::register(&mut registry),
        metrics.clone(),
    );
    let inbound_v6 = inbound_v6.map(|l| mesh_inbound.clone().serve(l));
    let inbound = mesh_inbound.serve(inbound);
    tracing::info!(
        admin = %settings.admin,
        outbound = %settings.outbound,
        inbound = %settings.inbound,
        ipv6 = outbound_v6.is_some() && inbound_v6.is_some(),
        app_probes = settings.app_probes.0.len(),
        discovery = settings.discovery.as_ref().map(|d| d.addr.as_str()),
        inbound_policy = %settings.inbound_policy,
        "Sidecar listening"
    );

    let admin = SidecarAdmin::new(Arc::new(settings.clone()), Arc::new(registry))
        .with_outbound(targets.clone(), credentials);
    admin.set_ready();

    let serving = async {
        tokio::select! {
            () = outbound => anyhow::bail!("outbound listener stopped"),
            () = inbound => anyhow::bail!("inbound listener stopped"),
            () = run_if_some(outbound_v6) => anyhow::bail!("IPv6 outbound listener stopped"),
            () = run_if_some(targets.map(Targets::sweep)) => anyhow::bail!("target sweeper stopped"),
            () = run_if_some(inbound_v6) => anyhow::bail!("IPv6 inbound listener stopped"),
            () = admin.serve(admin_listener) => anyhow::bail!("admin server stopped"),
        }
    };
    shutdown::serve_until_drained(serving, settings.drain, shutdown::signal).await
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind {what} on {addr}"))
}

/// An IPv6-only listener on `addr`, or `None` (logged) when the pod has no
/// IPv6. IPv6-only, so `[::]:4143` does not collide with `0.0.0.0:4143`.
fn bind_v6(addr: SocketAddr, what: &str) -> Option<TcpListener> {
    let bound = (|| {
        let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    })();
    match bound {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::info!(listener = what, %addr, %error, "Not listening on IPv6");
            None
        }
    }
}

async fn run_if_some(task: Option<impl Future<Output = ()>>) {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
