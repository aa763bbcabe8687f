//! Sidecar mode (`ferry-proxy --mode sidecar`): the proxy beside each meshed
//! app, behind the nat rules of [`crate::init`].
//!
//! # What it does today
//!
//! * **Outbound** (`127.0.0.1:4140`, and `[::1]:4140` for IPv6): every TCP connection the app opens is
//!   redirected here; the proxy reads the address the app dialled
//!   ([`crate::orig_dst`]) and forwards the bytes to it unchanged, from its
//!   own UID, which the rules let through. This is what the full sidecar
//!   does for destinations that are not mesh Services.
//! * **Inbound** (`0.0.0.0:4143`, and `[::]:4143` for IPv6): every TCP connection to the pod (except
//!   the excluded ports, the admin port among them) arrives here and is
//!   forwarded unchanged to `127.0.0.1:<original port>`, the app. This is
//!   what the inbound side does for plaintext in permissive mode.
//! * **Admin** (`FERRY_ADMIN_ADDR`, `0.0.0.0:4191` when injected): `/live`,
//!   `/ready` (once both listeners are bound), `/metrics` (connections and
//!   bytes by direction and original destination), `/config`, and the app's
//!   own HTTP probes under `/app-probe/<container>/<kind>`
//!   (`FERRY_APP_PROBES`, see the ferry-injector crate doc).
//! * IPv6 listeners are bound when the pod has IPv6 (they serve the rules of
//!   `ferry-proxy init --ipv6`); without it the proxy runs on IPv4 alone.
//! * `ferry-proxy await` ([`crate::await_ready`]) holds a classic sidecar's
//!   app until `/ready` answers.
//!
//! # Not built yet
//!
//! Discovery (subscribing to the original destination at ferry-control),
//! routing by a Service's HTTPRoutes, protocol detection, mTLS between
//! proxies with SPIFFE identities (and strict mode), and tracing. The
//! identity and discovery variables of the injector's contract
//! (`FERRY_DISCOVERY_ADDR`, `FERRY_IDENTITY_TOKEN`, `FERRY_TRUST_ANCHORS`,
//! …) are accepted and not used. Until then every connection is opaque
//! passthrough, which is correct, if unmeshed, behaviour. The app sees
//! inbound connections coming from 127.0.0.1 (the client's address is not
//! preserved), and `FERRY_OPAQUE_PORTS` has no effect since nothing is
//! detected yet.

mod admin;
pub mod detect;
mod forward;
mod probes;
mod settings;

pub use admin::{APP_PROBE_PREFIX, SidecarAdmin};
pub use forward::{Direction, DirectionLabel, Forwarder, TcpLabels, TcpMetrics, target};
pub(crate) use forward::{redirected_target, splice};
pub use probes::{AppProbe, AppProbes, ProbeHeader, Scheme};
pub use settings::{DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT, SettingsError, SidecarSettings};

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Runs sidecar mode until the process is asked to stop.
pub async fn run(settings: SidecarSettings) -> anyhow::Result<()> {
    let admin_listener = bind(settings.admin, "admin server").await?;
    let outbound = bind(settings.outbound, "outbound listener").await?;
    let inbound = bind(settings.inbound, "inbound listener").await?;
    let outbound_v6 = bind_v6(settings.outbound_v6, "IPv6 outbound listener");
    let inbound_v6 = bind_v6(settings.inbound_v6, "IPv6 inbound listener");
    let mut registry = Registry::default();
    let metrics = TcpMetrics::register(&mut registry);
    let forwarder = |listener, direction| Forwarder {
        listener,
        direction,
        connect_timeout: settings.connect_timeout,
        metrics: metrics.clone(),
    };
    let outbound = forwarder(outbound, Direction::Outbound);
    let inbound = forwarder(inbound, Direction::Inbound);
    let outbound_v6 = outbound_v6.map(|l| forwarder(l, Direction::Outbound));
    let inbound_v6 = inbound_v6.map(|l| forwarder(l, Direction::Inbound));
    tracing::info!(
        admin = %settings.admin,
        outbound = %settings.outbound,
        inbound = %settings.inbound,
        ipv6 = outbound_v6.is_some() && inbound_v6.is_some(),
        app_probes = settings.app_probes.0.len(),
        "Sidecar listening (opaque passthrough; discovery, routing and mTLS are not built yet)"
    );

    let admin = SidecarAdmin::new(Arc::new(settings.clone()), Arc::new(registry));
    admin.set_ready();

    tokio::select! {
        () = outbound.serve() => anyhow::bail!("outbound listener stopped"),
        () = inbound.serve() => anyhow::bail!("inbound listener stopped"),
        () = serve_if_bound(outbound_v6) => anyhow::bail!("IPv6 outbound listener stopped"),
        () = serve_if_bound(inbound_v6) => anyhow::bail!("IPv6 inbound listener stopped"),
        () = admin.serve(admin_listener) => anyhow::bail!("admin server stopped"),
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("Shutting down");
            Ok(())
        }
    }
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

async fn serve_if_bound(forwarder: Option<Forwarder>) {
    match forwarder {
        Some(forwarder) => forwarder.serve().await,
        None => std::future::pending().await,
    }
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to listen for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests;
