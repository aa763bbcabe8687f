//! Component tests of the gateway stack against echo backends on real
//! sockets.

mod hardening;
mod layers;
mod pool;
mod resilience;
mod routing;
mod support;
mod transport;
