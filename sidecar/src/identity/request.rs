//! One certificate request: a new key made here, a CSR naming this proxy's
//! identity, the token read afresh, the CA's answer checked.

use std::sync::Arc;
use std::time::SystemTime;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Credentials;
use super::settings::IdentitySettings;
use super::verify::{VerifyError, verify};

/// Why a request produced no credentials.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The key or CSR could not be made.
    #[error("failed to make the key and CSR: {0}")]
    Csr(#[source] rcgen::Error),
    /// The token file could not be read.
    #[error("failed to read the ServiceAccount token {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA was unreachable or refused.
    #[error(transparent)]
    Certify(#[from] ferry_api::identity::CertifyError),
    /// The CA's answer did not pass the checks.
    #[error("the CA's certificate for {identity} is not acceptable: {source}")]
    Verify {
        /// This proxy's identity.
        identity: String,
        /// Cause.
        #[source]
        source: VerifyError,
    },
}

/// A new key and the PEM CSR for `settings.identity`.
pub fn key_and_csr(settings: &IdentitySettings) -> Result<(KeyPair, String), RequestError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(RequestError::Csr)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let uri = settings
        .identity
        .to_string()
        .try_into()
        .map_err(RequestError::Csr)?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(RequestError::Csr)?;
    Ok((key, csr))
}

/// Asks the CA for a certificate and checks it.
pub async fn request(settings: &IdentitySettings) -> Result<Arc<Credentials>, RequestError> {
    let (key, csr) = key_and_csr(settings)?;
    let token = tokio::fs::read_to_string(&settings.token_path)
        .await
        .map_err(|source| RequestError::Token {
            path: settings.token_path.display().to_string(),
            source,
        })?;
    // The mounted anchors, when readable, are what this pod trusts
    // independently of the answer (and of the CA's TLS certificate).
    let mounted = match &settings.anchors_path {
        Some(path) => tokio::fs::read_to_string(path).await.ok(),
        None => None,
    };
    let response = ferry_api::identity::certify(
        &settings.ca_addr,
        mounted.as_deref(),
        token.trim().to_owned(),
        csr,
    )
    .await?;
    let verified = verify(
        &settings.identity,
        &response.certificate_chain_pem,
        &response.trust_anchors_pem,
        mounted.as_deref(),
        SystemTime::now(),
    )
    .map_err(|source| RequestError::Verify {
        identity: settings.identity.to_string(),
        source,
    })?;
    Ok(Arc::new(Credentials {
        identity: settings.identity.clone(),
        chain: verified.chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        roots: verified.roots,
        not_after: verified.not_after,
    }))
}
