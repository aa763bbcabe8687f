//! ferry-api owns Ferry's discovery protocol: the `.proto`
//! (`proto/ferry/discovery/v1/discovery.proto`), the tonic client and
//! server stubs generated from it (compiled with protox, no system
//! `protoc`), the conversions between its messages and ferry-core's
//! compiled [`ferry_core::model`], and the proxy's client
//! ([`client::watch_gateway`]). It also owns the identity protocol
//! (`proto/ferry/identity/v1/identity.proto`, [`identity_pb`]) with which
//! a proxy gets its certificate from the CA ([`identity::certify`]). The
//! proxy depends on this crate, never on `kube`; ferry-control implements
//! the servers.
#![warn(missing_docs)]

pub mod client;
pub mod convert;
pub mod delta;
pub mod identity;

/// The generated messages and stubs of `ferry.discovery.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("ferry.discovery.v1");
}

/// The generated messages and stubs of `ferry.identity.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod identity_pb {
    tonic::include_proto!("ferry.identity.v1");
}

pub use client::{
    ClientError, ConnectOptions, GatewayConfig, OutboundConfig, watch_gateway, watch_gateway_with,
    watch_outbound, watch_outbound_with,
};
pub use convert::ConvertError;
