//! ferry-core owns Ferry's domain as plain values: the Gateway API objects a
//! user writes, what they attach to, the status they earn, and the compiled
//! route tables a proxy applies. It is pure: no sockets, no async runtime, no
//! Kubernetes client.
//!
//! - [`objects`]: the objects Ferry reads, their index, and YAML loading.
//! - [`attach`]: which parents a route attaches to, and why not.
//! - [`mod@compile`]: objects into a [`model::ProxyConfig`] and a
//!   [`status::Status`].
//! - [`model`]: the compiled configuration a proxy applies.
//! - [`status`]: conditions and reasons as values.
//! - [`params`]: deployment parameters of Gateways (parametersRef).
//! - [`identity`]: workload SPIFFE identities and their TLS server names.
//! - [`flags`]: command-line values every Ferry binary spells the same way.
//! - [`errors`]: errors shown as one line with their causes.
#![warn(missing_docs)]

pub mod attach;
pub mod compile;
pub mod errors;
pub mod flags;
pub mod identity;
pub mod model;
pub mod objects;
pub mod params;
pub mod refs;
pub mod status;

pub use compile::{GatewaySelector, compile, compile_with_status};
pub use objects::{Objects, load_yaml};
