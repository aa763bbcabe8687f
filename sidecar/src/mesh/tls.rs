//! The client side of the mesh's mutual TLS: the rustls config a proxy
//! dials other proxies with, and the verifier that accepts a server only
//! when its certificate chains to the trust anchors and names, as its one
//! URI SAN, exactly the identity the connection was dialled for.
//!
//! The expected identity travels as the TLS server name
//! ([`Identity::server_name`]), so one config (per ALPN, per credentials)
//! serves every endpoint. [`peer_identity`] and [`verify_chain`] are the
//! pieces the inbound side may reuse for client certificates.

use std::str::FromStr;
use std::sync::Arc;

use ferry_core::identity::{Identity, IdentityError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::Credentials;

/// Why a peer's certificate does not prove the identity expected of it.
#[derive(Debug, thiserror::Error)]
pub enum PeerIdentityError {
    /// The certificate cannot be parsed.
    #[error("failed to parse the peer certificate: {0}")]
    Parse(String),
    /// It has no URI SAN (or several).
    #[error("the peer certificate has {found} URI SANs; a Ferry identity has exactly one")]
    UriSans {
        /// How many there are.
        found: usize,
    },
    /// Its URI SAN is not a Ferry SPIFFE identity.
    #[error("the peer certificate's URI SAN is not a Ferry identity")]
    NotAnIdentity(#[source] IdentityError),
    /// It proves another identity than the one expected.
    #[error("the peer presented identity {found}, expected {expected}")]
    Mismatch {
        /// What discovery said the endpoint is.
        expected: Box<Identity>,
        /// What its certificate says.
        found: Box<Identity>,
    },
    /// The server name the connection was dialled with is not an
    /// identity's ([`Identity::server_name`]).
    #[error("the server name does not stand for an identity")]
    ServerName(#[source] IdentityError),
}

/// Why a client config cannot be built from credentials.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A trust anchor is not a usable CA certificate.
    #[error("failed to add trust anchor {index} to the root store")]
    Root {
        /// Its position in [`Credentials::roots`].
        index: usize,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
    /// There is no trust anchor at all.
    #[error("the credentials carry no trust anchor")]
    NoRoots,
    /// The certificate chain and key do not form a usable client identity.
    #[error("failed to use the certificate of {identity} as a client certificate")]
    ClientCert {
        /// The proxy's identity.
        identity: Box<Identity>,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
}

/// Accepts a server certificate only when it chains to the trust anchors
/// and its one URI SAN is the identity the server name stands for.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The crypto provider of the mesh (ring, as everywhere in Ferry).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The trust anchors of `credentials` as a root store.
pub fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsConfigError> {
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for (index, root) in roots.iter().enumerate() {
        store
            .add(root.clone())
            .map_err(|source| TlsConfigError::Root { index, source })?;
    }
    Ok(store)
}

/// The client config for dialling other proxies with `alpn`
/// ([`super::ALPN_HTTP`] or [`super::ALPN_OPAQUE`]): TLS 1.3, the
/// credentials' certificate as client certificate, servers checked by
/// [`SpiffeServerVerifier`].
pub fn client_config(
    credentials: &Credentials,
    alpn: &[u8],
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let verifier = Arc::new(SpiffeServerVerifier {
        roots: Arc::new(root_store(&credentials.roots)?),
        algorithms: provider.signature_verification_algorithms,
    });
    let client_cert = |source| TlsConfigError::ClientCert {
        identity: Box::new(credentials.identity.clone()),
        source,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(client_cert)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(credentials.chain.clone(), credentials.key.clone_key())
        .map_err(client_cert)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The one Ferry identity a certificate names as URI SAN.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<Identity, Box<PeerIdentityError>> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| Box::new(PeerIdentityError::Parse(e.to_string())))?;
    let sans = parsed
        .subject_alternative_name()
        .map_err(|e| Box::new(PeerIdentityError::Parse(e.to_string())))?;
    let uris: Vec<&str> = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let [uri] = uris.as_slice() else {
        return Err(Box::new(PeerIdentityError::UriSans { found: uris.len() }));
    };
    Identity::from_str(uri).map_err(|e| Box::new(PeerIdentityError::NotAnIdentity(e)))
}

/// Checks that `end_entity` (with `intermediates`) chains to `roots` at
/// `now` and names exactly `expected`.
pub fn verify_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    algorithms: &WebPkiSupportedAlgorithms,
    now: UnixTime,
    expected: &Identity,
) -> Result<(), rustls::Error> {
    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        now,
        algorithms.all,
    )?;
    let found = peer_identity(end_entity).map_err(|e| invalid(*e))?;
    if &found != expected {
        return Err(invalid(PeerIdentityError::Mismatch {
            expected: Box::new(expected.clone()),
            found: Box::new(found),
        }));
    }
    Ok(())
}

fn invalid(error: PeerIdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

// === impl SpiffeServerVerifier ===

impl SpiffeServerVerifier {
    /// A verifier trusting `roots`.
    pub fn new(roots: Arc<RootCertStore>) -> Self {
        Self {
            roots,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let expected = match server_name {
            ServerName::DnsName(name) => {
                Identity::from_server_name(name.as_ref()).map_err(PeerIdentityError::ServerName)
            }
            _ => Err(PeerIdentityError::ServerName(IdentityError {
                value: format!("{server_name:?}"),
                reason: "an IP address is not an identity's server name",
            })),
        }
        .map_err(invalid)?;
        verify_chain(
            end_entity,
            intermediates,
            &self.roots,
            &self.algorithms,
            now,
            &expected,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
