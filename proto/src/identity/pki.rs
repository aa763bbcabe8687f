//! The certificate handling both ends of the identity protocol share: PEM
//! bundles into DER, and whether a chain leads to a trust anchor.

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

/// A PEM bundle or a certificate in it does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse {what}: {reason}")]
pub struct PkiError {
    /// What was parsed (`ca.crt`, `certificate chain`, ...).
    pub what: &'static str,
    /// Why.
    pub reason: String,
}

/// The DER of every `CERTIFICATE` block of `pem`, in order.
pub fn certificates(what: &'static str, pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| PkiError {
            what,
            reason: e.to_string(),
        })?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// Parses every DER certificate of `ders`.
pub fn parse_all<'a>(
    what: &'static str,
    ders: &'a [Vec<u8>],
) -> Result<Vec<X509Certificate<'a>>, PkiError> {
    ders.iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, cert)| cert)
                .map_err(|e| PkiError {
                    what,
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Whether each certificate of `chain` is signed by the next, and the last
/// is one of `anchors` or signed by one. Signatures only: validity periods
/// and names are the caller's to check.
pub fn leads_to(chain: &[X509Certificate<'_>], anchors: &[X509Certificate<'_>]) -> bool {
    let linked = chain
        .windows(2)
        .all(|pair| pair[0].verify_signature(Some(pair[1].public_key())).is_ok());
    let Some(top) = chain.last() else {
        return false;
    };
    linked
        && anchors.iter().any(|anchor| {
            anchor.as_raw() == top.as_raw()
                || top.verify_signature(Some(anchor.public_key())).is_ok()
        })
}
