//! The proxy's side of the identity protocol: one `Certify` call.
//!
//! Renewal, backoff and key handling belong to the caller (ferry-proxy's
//! `identity` module); this is the thin, typed call, and the certificate
//! checks both ends share ([`pki`]).

use std::time::Duration;

pub mod pki;
pub mod tls;

use crate::client::{ClientError, endpoint};
use crate::identity_pb::identity_client::IdentityClient;
use crate::identity_pb::{CertifyRequest, CertifyResponse};

/// Time limit of one `Certify` call, connection included.
const CERTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a `Certify` call returned no certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// The address is invalid or the CA could not be reached.
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// An `https://` address without trust anchors to check the server.
    #[error("no trust anchors to check the CA at {addr}")]
    NoAnchors {
        /// The address.
        addr: String,
    },
    /// The TLS client could not be set up.
    #[error("failed to set up TLS to the CA at {addr}")]
    Tls {
        /// The address.
        addr: String,
        /// Cause.
        #[source]
        source: tls::TlsSetupError,
    },
    /// The CA answered with an error status (a refusal names its reason).
    #[error("the CA at {addr} refused to certify: {status}")]
    Refused {
        /// The address.
        addr: String,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
}

// === impl CertifyError ===

impl CertifyError {
    /// The gRPC status code of a refusal; `None` when the CA was not reached.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Connect(_) | Self::NoAnchors { .. } | Self::Tls { .. } => None,
            Self::Refused { status, .. } => Some(status.code()),
        }
    }
}

/// Asks the CA at `addr` to sign `csr_pem`, proving the identity with the
/// ServiceAccount `token`. `host:port` and `http://` are plaintext;
/// `https://` is TLS, the server's certificate checked against
/// `anchors_pem` for the address's host name.
pub async fn certify(
    addr: &str,
    anchors_pem: Option<&str>,
    token: String,
    csr_pem: String,
) -> Result<CertifyResponse, CertifyError> {
    let endpoint = endpoint(addr)?.timeout(CERTIFY_TIMEOUT);
    let connected = if addr.starts_with("https://") {
        let anchors = anchors_pem.ok_or_else(|| CertifyError::NoAnchors {
            addr: addr.to_string(),
        })?;
        tls::connect(&endpoint, anchors)
            .await
            .map_err(|source| CertifyError::Tls {
                addr: addr.to_string(),
                source,
            })?
    } else {
        endpoint.connect().await
    };
    let channel = connected.map_err(|source| ClientError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    let request = CertifyRequest { token, csr_pem };
    IdentityClient::new(channel)
        .certify(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| CertifyError::Refused {
            addr: addr.to_string(),
            status: Box::new(status),
        })
}
