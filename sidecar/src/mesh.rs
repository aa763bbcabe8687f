//! What passes between two Ferry proxies: the wire contract of the mesh.
//!
//! A client proxy dials the endpoint's own address (`pod IP:app port`); the
//! server pod's nat rules redirect it to that pod's inbound listener, which
//! recovers the port from the original destination. The connection is TLS
//! 1.3 with both sides presenting a [`crate::identity::Credentials`]
//! certificate:
//!
//! * the client sends the server's expected identity as the server name
//!   ([`ferry_core::identity::Identity::server_name`]) and refuses a
//!   certificate whose URI SAN is another identity;
//! * the server requires a client certificate leading to its trust anchors
//!   and reads the client's identity from it;
//! * ALPN says what follows: [`ALPN_HTTP`] is HTTP/2, whatever HTTP version
//!   the apps speak, with the app's version in [`ORIG_PROTO_HEADER`] and
//!   an HTTP/1.1 upgrade (WebSocket) as an extended CONNECT stream
//!   ([`upgrade`]); [`ALPN_OPAQUE`] is one [`OpaqueHeader`] and then the raw bytes of an
//!   opaque TCP connection.
//!
//! A TLS connection without one of these ALPN values is not Ferry's: the
//! inbound side treats it as the app's own traffic (passthrough in
//! permissive mode, refused in strict mode).

pub mod inbound;

pub mod client;
pub mod dial;
#[cfg(test)]
pub(crate) mod test_pki;
pub mod tls;
pub mod upgrade;

/// ALPN of HTTP between proxies: HTTP/2 inside mTLS.
pub const ALPN_HTTP: &[u8] = b"ferry.h2";
/// ALPN of opaque TCP between proxies: an [`OpaqueHeader`], then the bytes.
pub const ALPN_OPAQUE: &[u8] = b"ferry.opaque";

/// Request header naming the HTTP version the calling app used
/// (`HTTP/1.1` or `HTTP/2`), so the server proxy speaks the same to its
/// app. The server proxy removes it.
pub const ORIG_PROTO_HEADER: &str = "ferry-orig-proto";

/// Request header with the verified client identity, added by the inbound
/// side only when the pod asks for it; a value the client sent is always
/// removed first.
pub const CLIENT_IDENTITY_HEADER: &str = "ferry-client-identity";

/// The first bytes of an opaque connection: magic, version, target port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpaqueHeader {
    /// The port the client app dialled.
    pub port: u16,
}

/// Bytes that are not an [`OpaqueHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Ferry opaque header: {0:02x?}")]
pub struct BadOpaqueHeader(pub [u8; OpaqueHeader::LEN]);

// === impl OpaqueHeader ===

impl OpaqueHeader {
    /// Length on the wire.
    pub const LEN: usize = 4;
    const MAGIC: u8 = 0xf3;
    const VERSION: u8 = 1;

    /// The header as sent.
    pub fn encode(self) -> [u8; Self::LEN] {
        let [hi, lo] = self.port.to_be_bytes();
        [Self::MAGIC, Self::VERSION, hi, lo]
    }

    /// The header read from the first [`Self::LEN`] bytes.
    pub fn decode(bytes: [u8; Self::LEN]) -> Result<Self, BadOpaqueHeader> {
        match bytes {
            [Self::MAGIC, Self::VERSION, hi, lo] if [hi, lo] != [0, 0] => Ok(Self {
                port: u16::from_be_bytes([hi, lo]),
            }),
            _ => Err(BadOpaqueHeader(bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_header_round_trips_and_refuses_other_bytes() {
        let header = OpaqueHeader { port: 9080 };
        assert_eq!(OpaqueHeader::decode(header.encode()), Ok(header));
        for bad in [*b"GET ", [0xf3, 2, 0, 80], [0xf3, 1, 0, 0]] {
            assert_eq!(OpaqueHeader::decode(bad), Err(BadOpaqueHeader(bad)));
        }
    }
}
