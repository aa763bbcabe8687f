//! ferry-control owns Ferry's control plane: it watches the cluster once,
//! keeps the [`index`] of every object Ferry reads, writes Gateway API
//! status while it holds the Lease ([`writer`], [`leader`]), deploys the
//! proxies of Ferry Gateways ([`deployer`]), and streams
//! to each proxy exactly the configuration it needs ([`discovery`]).
//! Beside discovery it runs the identity CA ([`ca`]), which signs each
//! proxy's SPIFFE certificate after a TokenReview of its ServiceAccount
//! token and publishes the trust anchors to meshed namespaces and those
//! holding a Ferry Gateway.
//! Proxies never read the Kubernetes API.
//!
//! The index is a synchronous structure fed by [`index::Change`]s from
//! Kubernetes watches ([`watch`]) or from YAML files in standalone mode
//! ([`files`]); everything above it is the same code. [`run::start`] wires
//! one replica.
#![warn(missing_docs)]

pub mod admin;
pub mod ca;
pub mod deployer;
pub mod discovery;
pub mod files;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod pipeline;
pub mod run;
pub mod views;
pub mod watch;
pub mod writer;
