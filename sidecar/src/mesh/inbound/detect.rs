//! Tells another proxy's connection from anything else by peeking at its
//! first bytes, without consuming them: whatever handles the connection
//! next (TLS termination or passthrough) reads them again.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client_hello::{self, MAX_HELLO, Parsed};
use crate::mesh::{ALPN_HTTP, ALPN_OPAQUE};

/// What a connection's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// A TLS ClientHello offering a mesh ALPN value: another proxy.
    Mesh,
    /// Not another proxy's connection.
    NotMesh(NotMesh),
}

/// Why a connection is not mesh traffic (for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotMesh {
    /// A ClientHello without a mesh ALPN value: the app's own TLS.
    OtherTls,
    /// Bytes that are not a ClientHello: plaintext.
    Plaintext,
    /// Nothing (or only part of a ClientHello) arrived in time, or a
    /// ClientHello longer than a mesh client sends.
    NoHello,
    /// The client closed before sending anything.
    Closed,
}

/// How many bytes are peeked at most: a large ClientHello and the headers
/// of the records it may be split into.
const PEEK_LIMIT: usize = MAX_HELLO + 1024;
/// The longest pause between two peeks while a ClientHello is incomplete.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// Peeks at `tcp` for at most `timeout`.
///
/// A peek returns at once while any byte is buffered, so waiting for the
/// rest of a split ClientHello polls with a short backoff rather than
/// spinning; a proxy's hello normally arrives whole in the first peek.
pub async fn detect(tcp: &TcpStream, timeout: Duration) -> io::Result<Detected> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0; PEEK_LIMIT];
    let mut backoff = Duration::from_millis(1);
    loop {
        let Ok(peeked) = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await else {
            return Ok(Detected::NotMesh(NotMesh::NoHello));
        };
        let n = peeked?;
        if n == 0 {
            return Ok(Detected::NotMesh(NotMesh::Closed));
        }
        match client_hello::parse(&buf[..n]) {
            Parsed::ClientHello { alpn } => {
                let mesh = alpn.iter().any(|p| p == ALPN_HTTP || p == ALPN_OPAQUE);
                return Ok(if mesh {
                    Detected::Mesh
                } else {
                    Detected::NotMesh(NotMesh::OtherTls)
                });
            }
            Parsed::NotClientHello => return Ok(Detected::NotMesh(NotMesh::Plaintext)),
            Parsed::Incomplete if n == buf.len() => {
                return Ok(Detected::NotMesh(NotMesh::NoHello));
            }
            Parsed::Incomplete => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Detected::NotMesh(NotMesh::NoHello));
                }
                tokio::time::sleep_until((now + backoff).min(deadline)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests;
