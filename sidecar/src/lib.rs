//! ferry-proxy is Ferry's data plane. In gateway mode it serves the
//! listeners of Gateways, routing with the compiled [`ferry_core::model`]
//! tables it receives from a [`config`] source, and exposes an [`admin`]
//! server with liveness, readiness, the applied config and metrics. Given
//! a workload identity ([`identity`]), a gateway reaches meshed backends
//! over the mesh's mTLS ([`mesh`]) as a sidecar does.
//!
//! In sidecar mode ([`sidecar`]) it serves the TCP that `ferry-proxy
//! init` ([`init`]) redirects to it, recovering each connection's original
//! destination with [`orig_dst`]: outbound calls to mesh Services are
//! discovered on demand, routed by the Services' routes and sent to the
//! endpoints over the mesh's mTLS ([`mesh`]), the rest forwarded
//! untouched; `ferry-proxy await` ([`await_ready`]) holds a classic
//! sidecar's app until the proxy is ready.
//!
//! The request path is a stack of tower layers, listed in one place per
//! mode: [`proxy::gateway_stack`] and [`sidecar::stack::sidecar_stack`].
//! Every listener that serves HTTP does so through [`server`], which
//! applies the limits on clients (one set of settings, `FERRY_*`
//! variables read the same way in both modes).
#![warn(missing_docs)]

pub mod admin;
pub mod await_ready;
pub mod body;
pub mod config;
pub mod error;
pub mod gateway;
pub mod identity;
pub mod init;
pub mod listeners;
pub mod mesh;
pub mod metrics;
pub mod orig_dst;
pub mod proxy;
pub mod server;
pub mod shutdown;
pub mod sidecar;
pub mod tls;
