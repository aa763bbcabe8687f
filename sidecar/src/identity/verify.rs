//! Checks what the CA returned before the proxy uses it: the leaf names
//! exactly this proxy's identity, is valid now, and its chain leads to a
//! trust anchor. Pure: no I/O.

use std::time::{Duration, SystemTime};

use ferry_api::identity::pki::{PkiError, certificates, leads_to, parse_all};
use ferry_core::identity::Identity;
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Why a signed chain is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A PEM entry does not parse.
    #[error(transparent)]
    Parse(#[from] PkiError),
    /// The leaf is for someone else.
    #[error("the certificate names {found}, not {expected}")]
    Identity {
        /// This proxy's identity.
        expected: String,
        /// The leaf's subject alternative names.
        found: String,
    },
    /// The leaf is not valid now.
    #[error("the certificate is not valid now")]
    Expired,
    /// The chain does not lead to any trust anchor.
    #[error("the certificate chain does not lead to a trust anchor")]
    Untrusted,
}

/// A chain that passed [`verify`].
#[derive(Debug)]
pub struct Verified {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The trust anchors to publish.
    pub roots: Vec<CertificateDer<'static>>,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
}

/// Checks `chain_pem` (leaf first) for `identity` at `now`. The chain must
/// lead to one of `required` when given (the mounted anchors), else to one
/// of the response's `anchors_pem`. The published roots are both sets.
pub fn verify(
    identity: &Identity,
    chain_pem: &str,
    anchors_pem: &str,
    required: Option<&str>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let chain = certificates("certificate chain", chain_pem)?;
    let anchors = certificates("trust anchors", anchors_pem)?;
    let mounted = match required {
        Some(pem) => Some(certificates("mounted trust anchors", pem)?),
        None => None,
    };
    let parsed = parse_all("certificate chain", &chain)?;
    let leaf = parsed.first().ok_or_else(|| PkiError {
        what: "certificate chain",
        reason: "no certificate".into(),
    })?;
    check_identity(leaf, identity)?;
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let validity = leaf.validity();
    if unix < validity.not_before.timestamp() || unix > validity.not_after.timestamp() {
        return Err(VerifyError::Expired);
    }
    let trusted = mounted
        .as_ref()
        .filter(|m| !m.is_empty())
        .unwrap_or(&anchors);
    let trusted = parse_all("trust anchors", trusted)?;
    if !leads_to(&parsed, &trusted) {
        return Err(VerifyError::Untrusted);
    }
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(validity.not_after.timestamp()).unwrap_or(0));
    let mut roots: Vec<Vec<u8>> = anchors;
    for der in mounted.into_iter().flatten() {
        if !roots.contains(&der) {
            roots.push(der);
        }
    }
    Ok(Verified {
        chain: chain.into_iter().map(CertificateDer::from).collect(),
        roots: roots.into_iter().map(CertificateDer::from).collect(),
        not_after,
    })
}

fn check_identity(leaf: &X509Certificate<'_>, identity: &Identity) -> Result<(), VerifyError> {
    let expected = identity.to_string();
    let names = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    match names.as_slice() {
        [GeneralName::URI(uri)] if *uri == expected => Ok(()),
        _ => Err(VerifyError::Identity {
            expected,
            found: format!("{names:?}"),
        }),
    }
}

#[cfg(test)]
mod tests;
