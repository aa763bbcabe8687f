//! The inbound side's TLS: a rustls server config built from the latest
//! [`Credentials`], rebuilt when they change. A connection keeps the
//! config it was accepted with, so a renewal never touches open ones.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::identity::{Credentials, CredentialsRx};
use crate::mesh::tls::{TlsConfigError, provider, root_store};
use crate::mesh::{ALPN_HTTP, ALPN_OPAQUE};

/// Why a server config cannot be built from credentials.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    /// The trust anchors are unusable.
    #[error("failed to use the trust anchors")]
    Roots(#[source] Box<TlsConfigError>),
    /// The client certificate verifier refused the anchors.
    #[error("failed to build the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// The chain and key are not a usable server certificate.
    #[error("failed to use the certificate as a server certificate")]
    Certificate(#[source] rustls::Error),
}

/// A config and the credentials it was built from (`None`: the build
/// failed and was logged).
#[derive(Debug)]
struct Built {
    from: Arc<Credentials>,
    config: Option<Arc<ServerConfig>>,
}

/// The server config of the current credentials.
#[derive(Debug)]
pub struct ServerConfigs {
    credentials: CredentialsRx,
    built: Mutex<Option<Built>>,
}

// === impl ServerConfigs ===

impl ServerConfigs {
    /// Configs following `credentials`.
    pub fn new(credentials: CredentialsRx) -> Self {
        Self {
            credentials,
            built: Mutex::new(None),
        }
    }

    /// The config for a new connection: `None` until there are usable
    /// credentials.
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        let credentials = self.credentials.borrow().clone()?;
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(built) = built.as_ref()
            && Arc::ptr_eq(&built.from, &credentials)
        {
            return built.config.clone();
        }
        let config = match server_config(&credentials) {
            Ok(config) => Some(config),
            Err(error) => {
                let identity = &credentials.identity;
                tracing::error!(%identity, %error, "Cannot accept mesh connections with these credentials");
                None
            }
        };
        *built = Some(Built {
            from: credentials,
            config: config.clone(),
        });
        config
    }
}

/// TLS 1.3 with the credentials' certificate, the mesh's ALPN values, and
/// a client certificate required that chains to the credentials' roots.
pub fn server_config(credentials: &Credentials) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let roots =
        root_store(&credentials.roots).map_err(|e| ServerConfigError::Roots(Box::new(e)))?;
    let verifier: Arc<dyn ClientCertVerifier> =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(ServerConfigError::Verifier)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ServerConfigError::Certificate)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain.clone(), credentials.key.clone_key())
        .map_err(ServerConfigError::Certificate)?;
    config.alpn_protocols = vec![ALPN_HTTP.to_vec(), ALPN_OPAQUE.to_vec()];
    Ok(Arc::new(config))
}
