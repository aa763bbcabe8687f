//! ferry-demo runs Ferry's standalone demos (`demos/<scenario>/`): it
//! starts an echo backend for every loopback endpoint of the scenario's
//! EndpointSlices, makes a throwaway certificate when the scenario has an
//! HTTPS listener, starts the real `ferry-proxy --mode gateway` on the
//! scenario's YAML files, and prints curl lines to try. The demo tests
//! drive the same code and check each scenario behaves as its seed says.
//! It also ships `ferry-echo`, the echo backend used by end-to-end tests.
#![warn(missing_docs)]

pub mod call;
pub mod client;
pub mod cluster;
pub mod echo;
mod run;
mod spec;
pub mod tls;

pub use run::{RunningDemo, proxy_binary};
pub use spec::{Demo, DemoSpec, TlsSpec};
