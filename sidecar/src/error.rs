//! Errors of the request path. Layers return these with their cause
//! attached; only [`crate::proxy::classify`] turns them into responses.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::model::{BackendId, Endpoint};

use crate::body::BoxError;
use crate::server::body::BodyFailure;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The matched rule has no backends and no redirect.
    #[error("rule {rule} has no backends")]
    NoBackends {
        /// The rule, as `HTTPRoute ns/name rule N`.
        rule: String,
    },
    /// The picked backendRef did not resolve (missing, not permitted,
    /// wrong kind), or every backend has weight 0.
    #[error("rule {rule} has no valid backend to send to")]
    InvalidBackend {
        /// The rule, as `HTTPRoute ns/name rule N`.
        rule: String,
    },
    /// The backend is resolved but has no ready endpoint.
    #[error("backend {backend} has no ready endpoints")]
    NoEndpoints {
        /// The backend.
        backend: BackendId,
    },
    /// Connecting to an endpoint failed (refused, unreachable, DNS).
    #[error("failed to connect to {endpoint:?} of backend {backend}")]
    Connect {
        /// The backend.
        backend: BackendId,
        /// The endpoint that was tried.
        endpoint: Endpoint,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The request was sent but no valid response came back.
    #[error("request to {endpoint:?} of backend {backend} failed")]
    Upstream {
        /// The backend.
        backend: BackendId,
        /// The endpoint that was tried.
        endpoint: Endpoint,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// One attempt exceeded `timeouts.backendRequest`.
    #[error("attempt timed out after {after:?}")]
    BackendTimeout {
        /// The backend, when known.
        backend: Option<BackendId>,
        /// The limit.
        after: Duration,
    },
    /// The whole request exceeded `timeouts.request`.
    #[error("request timed out after {after:?}")]
    RequestTimeout {
        /// The limit.
        after: Duration,
    },
    /// The client's request body failed: it did not arrive in time, broke
    /// HTTP's framing, or ended early. Whatever the attempt returned is a
    /// consequence.
    #[error("the client's request body failed: {failure:?}")]
    RequestBody {
        /// How.
        failure: BodyFailure,
        /// The backend the body was being sent to, when one was picked.
        backend: Option<BackendId>,
    },
    /// The client's request is not one the proxy can forward.
    #[error("bad request from {peer}: {reason}")]
    BadRequest {
        /// The client.
        peer: SocketAddr,
        /// What is wrong with it.
        reason: &'static str,
    },
}

// === impl ProxyError ===

impl ProxyError {
    /// The backend the error concerns, if one was picked.
    pub fn backend(&self) -> Option<&BackendId> {
        match self {
            Self::NoEndpoints { backend }
            | Self::Connect { backend, .. }
            | Self::Upstream { backend, .. } => Some(backend),
            Self::BackendTimeout { backend, .. } | Self::RequestBody { backend, .. } => {
                backend.as_ref()
            }
            _ => None,
        }
    }

    /// Whether the request may be sent again: it never reached an
    /// application, or the attempt timed out.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Upstream { .. } | Self::BackendTimeout { .. }
        )
    }
}
