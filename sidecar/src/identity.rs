//! The proxy's own workload identity: the certificate it presents to other
//! proxies and the trust anchors it checks theirs against.
//!
//! [`Credentials`] is the value the identity machinery publishes (a new one
//! at every renewal) and the mesh's TLS configs are built from; readers hold
//! a [`CredentialsRx`] and pick up the latest on each new connection, so a
//! renewal never touches connections already open.

use std::sync::Arc;
use std::time::SystemTime;

use ferry_core::identity::Identity;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A signed identity and what to trust.
#[derive(Debug)]
pub struct Credentials {
    /// Who this proxy is.
    pub identity: Identity,
    /// The leaf certificate first, then any intermediates (the issuer).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, made in this process; it never leaves it.
    pub key: PrivateKeyDer<'static>,
    /// The trust anchors peers' chains must lead to. During a rotation both
    /// the old and the new anchor are here.
    pub roots: Vec<CertificateDer<'static>>,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
}

/// The latest credentials; `None` until the first certificate is signed.
pub type CredentialsRx = tokio::sync::watch::Receiver<Option<Arc<Credentials>>>;
