//! What the inbound side counts: connections by kind and client identity,
//! refusals by reason, and failed TLS handshakes.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use ferry_core::identity::Identity;

/// What an inbound connection turned out to be.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ConnectionKind {
    /// HTTP from another proxy (ALPN `ferry.h2`).
    MeshHttp,
    /// Opaque TCP from another proxy (ALPN `ferry.opaque`).
    MeshOpaque,
    /// Not mesh traffic, forwarded unchanged (permissive mode).
    Passthrough,
    /// Closed without reaching the app.
    Refused,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RefuseReason {
    /// Not mesh traffic, in strict mode.
    NotMesh,
    /// Mesh traffic before the proxy has a certificate.
    NoCredentials,
    /// The TLS handshake failed (no client certificate, an untrusted one,
    /// no common ALPN, …).
    Handshake,
    /// The client certificate names no Ferry identity.
    NoIdentity,
    /// The opaque header was missing or malformed.
    OpaqueHeader,
    /// The opaque header named another port than the one dialled.
    OpaquePort,
}

/// Labels of an inbound connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// What it was.
    pub kind: ConnectionKind,
    /// The verified client identity; empty when there is none.
    pub client_identity: String,
}

/// Labels of a refused connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Why.
    pub reason: RefuseReason,
}

/// The inbound side's metrics.
#[derive(Clone, Debug, Default)]
pub struct InboundMetrics {
    connections: Family<ConnectionLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    handshake_failures: Counter,
}

// === impl InboundMetrics ===

impl InboundMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "inbound_connections",
            "Inbound connections by kind and verified client identity",
            metrics.connections.clone(),
        );
        registry.register(
            "inbound_refused",
            "Inbound connections closed without reaching the app, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "inbound_tls_handshake_failures",
            "Inbound mesh connections whose TLS handshake failed",
            metrics.handshake_failures.clone(),
        );
        metrics
    }

    /// Counts a connection of `kind` from `identity`.
    pub(crate) fn connection(&self, kind: ConnectionKind, identity: Option<&Identity>) {
        let client_identity = identity.map(Identity::to_string).unwrap_or_default();
        self.connections
            .get_or_create(&ConnectionLabels {
                kind,
                client_identity,
            })
            .inc();
    }

    /// Counts a connection refused for `reason` (from `identity`, once
    /// known).
    pub(crate) fn refused(&self, reason: RefuseReason, identity: Option<&Identity>) {
        if reason == RefuseReason::Handshake {
            self.handshake_failures.inc();
        }
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
        self.connection(ConnectionKind::Refused, identity);
    }
}
