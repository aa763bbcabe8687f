//! ferry-core owns Ferry's domain as plain values: the Gateway API objects a
//! user writes, what they attach to, the status they earn, and the compiled
//! route tables a proxy applies. It is pure: no sockets, no async runtime, no
//! Kubernetes client. The control plane feeds it objects (from watches or
//! files); the proxy only ever sees the compiled [`model`].
#![warn(missing_docs)]

pub mod model;
pub mod objects;
