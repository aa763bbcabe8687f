//! Opaque TCP forwarding of redirected connections: outbound to the
//! original destination, inbound to the app on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::orig_dst::original_dst;

/// Which side of the pod a listener serves.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// Connections the app opens, to their original destination.
    Outbound,
    /// Connections to the app, to the app's port on loopback.
    Inbound,
}

/// Labels of a forwarded connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    /// Outbound or inbound.
    pub direction: Direction,
    /// The original destination (`IP:PORT`).
    pub target_addr: String,
}

/// Connection metrics of sidecar mode.
#[derive(Clone, Debug, Default)]
pub struct TcpMetrics {
    open: Family<TcpLabels, Counter>,
    connect_errors: Family<TcpLabels, Counter>,
    read_bytes: Family<TcpLabels, Counter>,
    write_bytes: Family<TcpLabels, Counter>,
    refused: Family<DirectionLabel, Counter>,
}

/// The label of a connection that had no original destination.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// Outbound or inbound.
    pub direction: Direction,
}

/// A listener of redirected connections and what to do with them.
#[derive(Debug)]
pub struct Forwarder {
    /// The bound listener.
    pub listener: TcpListener,
    /// Its side.
    pub direction: Direction,
    /// Limit of one connect.
    pub connect_timeout: Duration,
    /// Where to count.
    pub metrics: TcpMetrics,
}

// === impl TcpMetrics ===

impl TcpMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "tcp_open",
            "Forwarded TCP connections, by original destination",
            metrics.open.clone(),
        );
        registry.register(
            "tcp_connect_errors",
            "Connections whose target could not be reached",
            metrics.connect_errors.clone(),
        );
        registry.register(
            "tcp_read_bytes",
            "Bytes read from the connecting side",
            metrics.read_bytes.clone(),
        );
        registry.register(
            "tcp_write_bytes",
            "Bytes written back to the connecting side",
            metrics.write_bytes.clone(),
        );
        registry.register(
            "tcp_refused",
            "Connections closed because they were not redirected",
            metrics.refused.clone(),
        );
        metrics
    }
}

// === impl Forwarder ===

impl Forwarder {
    /// Accepts and forwards connections until the task is dropped.
    pub async fn serve(self) {
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(direction = ?self.direction, %error, "Failed to accept connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (direction, timeout, metrics) =
                (self.direction, self.connect_timeout, self.metrics.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                forward(tcp, peer, direction, timeout, metrics).await;
            });
        }
    }
}

/// Where a redirected connection goes, or `None` when it was not redirected
/// (its original destination is the listener itself: forwarding it would
/// loop).
pub fn target(direction: Direction, local: SocketAddr, orig: SocketAddr) -> Option<SocketAddr> {
    if orig == local || (orig.port() == local.port() && orig.ip().is_loopback()) {
        return None;
    }
    match direction {
        Direction::Outbound => Some(orig),
        Direction::Inbound if orig.port() == local.port() => None,
        Direction::Inbound => {
            let loopback = match orig.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            Some(SocketAddr::new(loopback, orig.port()))
        }
    }
}

async fn forward(
    tcp: TcpStream,
    peer: SocketAddr,
    direction: Direction,
    timeout: Duration,
    metrics: TcpMetrics,
) {
    if let Some((orig, to)) = redirected_target(&tcp, peer, direction, &metrics) {
        let labels = TcpLabels {
            direction,
            target_addr: orig.to_string(),
        };
        splice(tcp, &labels, to, timeout, &metrics).await;
    }
}

/// The original destination of `tcp` and where to forward it, or `None`
/// (logged and counted) when it has none or was not redirected.
pub(crate) fn redirected_target(
    tcp: &TcpStream,
    peer: SocketAddr,
    direction: Direction,
    metrics: &TcpMetrics,
) -> Option<(SocketAddr, SocketAddr)> {
    let orig = tcp
        .local_addr()
        .and_then(|local| Ok((local, original_dst(tcp, local)?)));
    let refused = || {
        metrics
            .refused
            .get_or_create(&DirectionLabel { direction })
            .inc();
    };
    match orig {
        Ok((local, orig)) => match target(direction, local, orig) {
            Some(to) => Some((orig, to)),
            None => {
                tracing::debug!(?direction, %peer, %orig, "Connection was not redirected");
                refused();
                None
            }
        },
        Err(error) => {
            tracing::debug!(?direction, %peer, %error, "No original destination");
            refused();
            None
        }
    }
}

/// Connects to `to` and copies bytes both ways between it and `client`
/// until both sides are done, counted under `labels`.
pub(crate) async fn splice<S>(
    mut client: S,
    labels: &TcpLabels,
    to: SocketAddr,
    timeout: Duration,
    metrics: &TcpMetrics,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let direction = labels.direction;
    let orig = &labels.target_addr;
    metrics.open.get_or_create(labels).inc();
    tracing::debug!(?direction, %orig, %to, "Forwarding connection");
    let mut upstream = match tokio::time::timeout(timeout, TcpStream::connect(to)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            tracing::debug!(?direction, %orig, %to, %error, "Failed to connect");
            metrics.connect_errors.get_or_create(labels).inc();
            return;
        }
        Err(_) => {
            tracing::debug!(?direction, %orig, %to, ?timeout, "Connect timed out");
            metrics.connect_errors.get_or_create(labels).inc();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((read, written)) => {
            metrics.read_bytes.get_or_create(labels).inc_by(read);
            metrics.write_bytes.get_or_create(labels).inc_by(written);
        }
        Err(error) => tracing::debug!(?direction, %orig, %error, "Connection ended with an error"),
    }
}
