//! Opaque TCP from another proxy: an [`OpaqueHeader`] naming the port the
//! client app dialled, then the bytes, spliced to the app.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::mesh::{BadOpaqueHeader, OpaqueHeader};

/// Why an opaque connection is not spliced.
#[derive(Debug, thiserror::Error)]
pub enum OpaqueError {
    /// The header did not arrive in time, or the client closed first.
    #[error("failed to read the opaque header")]
    Read(#[source] std::io::Error),
    /// The header did not arrive in time.
    #[error("no opaque header within {0:?}")]
    Timeout(Duration),
    /// The first bytes are not a header.
    #[error(transparent)]
    Header(#[from] BadOpaqueHeader),
    /// The header names another port than the connection was sent to: a
    /// client may not use one port of the pod to reach another.
    #[error("the opaque header names port {named}, the connection was sent to port {dialled}")]
    OtherPort {
        /// The port in the header.
        named: u16,
        /// The original destination port.
        dialled: u16,
    },
}

/// Reads the header from `io` and checks it names `orig`'s port.
pub async fn read_header<I>(
    io: &mut I,
    orig: SocketAddr,
    timeout: Duration,
) -> Result<OpaqueHeader, OpaqueError>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = [0; OpaqueHeader::LEN];
    tokio::time::timeout(timeout, io.read_exact(&mut bytes))
        .await
        .map_err(|_| OpaqueError::Timeout(timeout))?
        .map_err(OpaqueError::Read)?;
    let header = OpaqueHeader::decode(bytes)?;
    if header.port != orig.port() {
        return Err(OpaqueError::OtherPort {
            named: header.port,
            dialled: orig.port(),
        });
    }
    Ok(header)
}
