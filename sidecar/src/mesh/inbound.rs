//! The inbound side of the mesh: what the sidecar does with each connection
//! redirected to its inbound listener.
//!
//! The first bytes are peeked (`detect`): a TLS ClientHello offering one
//! of the mesh's ALPN values ([`crate::mesh::ALPN_HTTP`],
//! [`crate::mesh::ALPN_OPAQUE`]) is another proxy's; anything else is not.

pub mod client_hello;
pub mod detect;
