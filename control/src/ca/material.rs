//! The CA's signing material, and what it signs: trust anchors, the issuer
//! (certificate and key), and leaves for checked CSRs. Pure: no I/O.

use std::time::{Duration, SystemTime};

use ferry_api::identity::pki::{self, PkiError, leads_to, parse_all};
use ferry_core::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};

/// How far a leaf's `notBefore` is set in the past, for peers whose clocks
/// are slightly behind.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Lifetime of a generated root.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Trust anchors and the issuer that signs leaves.
pub struct Material {
    anchors_pem: String,
    /// The issuer's certificate and any intermediates, without anchors,
    /// issuer first (PEM).
    chain_pem: String,
    issuer: Issuer<'static, KeyPair>,
    issuer_der: Vec<u8>,
    issuer_not_after: SystemTime,
}

/// The PEM files of a generated root, as stored in the Secret.
#[derive(Debug)]
pub struct GeneratedRoot {
    /// The self-signed root certificate (anchor and issuer).
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A signed leaf.
#[derive(Debug)]
pub struct Issued {
    /// The leaf, then the issuer chain (PEM).
    pub chain_pem: String,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
}

/// Why the Secret's material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// A PEM entry does not parse.
    #[error(transparent)]
    Parse(#[from] PkiError),
    /// The issuer does not fit its key or the anchors.
    #[error("the issuer cannot be used: {0}")]
    Issuer(&'static str),
    /// rcgen failed to make or sign a certificate.
    #[error("failed to {what}")]
    Rcgen {
        /// The operation.
        what: &'static str,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
}

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRefusal {
    /// The CSR does not parse, has unsupported extensions, or its
    /// signature does not verify (`invalid_argument`).
    #[error("the CSR is invalid: {0}")]
    Invalid(String),
    /// The CSR names something else than the token's identity
    /// (`permission_denied`).
    #[error("the CSR must name exactly {expected} and nothing else; it names {found}")]
    WrongIdentity {
        /// The token's identity.
        expected: String,
        /// The CSR's subject alternative names.
        found: String,
    },
}

// === impl Material ===

impl Material {
    /// Material from the Secret's entries: `ca.crt` (one or more anchors),
    /// `tls.crt` (the issuer first, then intermediates), `tls.key`.
    pub fn from_pem(ca_crt: &str, tls_crt: &str, tls_key: &str) -> Result<Self, MaterialError> {
        let anchors = certificates("ca.crt", ca_crt)?;
        let chain = certificates("tls.crt", tls_crt)?;
        let key = KeyPair::from_pem(tls_key).map_err(|e| PkiError {
            what: "tls.key",
            reason: e.to_string(),
        })?;
        let parsed_anchors = parse_all("ca.crt", &anchors)?;
        let parsed_chain = parse_all("tls.crt", &chain)?;
        let issuer_cert = parsed_chain
            .first()
            .ok_or(MaterialError::Issuer("tls.crt holds no certificate"))?;
        if issuer_cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(MaterialError::Issuer("tls.key is not the key of tls.crt"));
        }
        if !issuer_cert.is_ca() {
            return Err(MaterialError::Issuer("tls.crt is not a CA certificate"));
        }
        if !leads_to(&parsed_chain, &parsed_anchors) {
            return Err(MaterialError::Issuer(
                "tls.crt does not lead to any certificate of ca.crt",
            ));
        }
        let issuer_not_after = to_system_time(issuer_cert.validity().not_after.timestamp());
        let issuer =
            Issuer::from_ca_cert_der(&chain[0].as_slice().into(), key).map_err(|source| {
                MaterialError::Rcgen {
                    what: "read the issuer certificate",
                    source,
                }
            })?;
        let chain_pem = chain
            .iter()
            .filter(|der| !anchors.contains(der))
            .map(|der| to_pem(der))
            .collect();
        let anchors_pem = anchors.iter().map(|der| to_pem(der)).collect();
        Ok(Self {
            anchors_pem,
            chain_pem,
            issuer,
            issuer_der: chain[0].clone(),
            issuer_not_after,
        })
    }

    /// The trust anchors (PEM, one or more certificates).
    pub fn anchors_pem(&self) -> &str {
        &self.anchors_pem
    }

    /// Whether `other` has the same anchors and issuer.
    pub fn same_as(&self, other: &Self) -> bool {
        self.anchors_pem == other.anchors_pem
            && self.issuer_der == other.issuer_der
            && self.chain_pem == other.chain_pem
    }

    /// Signs a leaf for `identity` with the key of `csr`, valid from
    /// `now - BACKDATE` for `lifetime` after `now` (never past the issuer),
    /// for both client and server authentication.
    pub fn sign(
        &self,
        csr: &CertificateSigningRequestParams,
        identity: &Identity,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<Issued, MaterialError> {
        self.sign_names(&csr.public_key, vec![uri_san(identity)?], lifetime, now)
    }

    /// Signs a leaf for the control plane's own server: `identity`, then
    /// the DNS names clients dial it by.
    pub fn sign_server(
        &self,
        key: &KeyPair,
        identity: &Identity,
        dns_names: &[String],
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<Issued, MaterialError> {
        let mut names = vec![uri_san(identity)?];
        for name in dns_names {
            let name = name
                .clone()
                .try_into()
                .map_err(|source| MaterialError::Rcgen {
                    what: "encode a DNS SAN",
                    source,
                })?;
            names.push(SanType::DnsName(name));
        }
        self.sign_names(key, names, lifetime, now)
    }

    fn sign_names(
        &self,
        public_key: &impl PublicKeyData,
        names: Vec<SanType>,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<Issued, MaterialError> {
        let not_after = (now + lifetime).min(self.issuer_not_after);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = names;
        params.not_before = (now - BACKDATE).into();
        params.not_after = not_after.into();
        params.serial_number = Some(SerialNumber::from_slice(&serial()));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(public_key, &self.issuer)
            .map_err(|source| MaterialError::Rcgen {
                what: "sign the leaf",
                source,
            })?;
        // `notAfter` has a resolution of one second.
        let not_after = to_system_time(
            not_after
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        );
        Ok(Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.chain_pem),
            not_after,
        })
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("anchors_pem", &self.anchors_pem)
            .field("chain_pem", &self.chain_pem)
            .field("issuer_not_after", &self.issuer_not_after)
            .finish_non_exhaustive()
    }
}

// === impl GeneratedRoot ===

impl GeneratedRoot {
    /// A new ECDSA P-256 self-signed root for `trust_domain`, valid ten
    /// years from `now`.
    pub fn generate(trust_domain: &str, now: SystemTime) -> Result<Self, MaterialError> {
        let rcgen = |what| move |source| MaterialError::Rcgen { what, source };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen("generate the root key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Ferry");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Ferry root {trust_domain}"));
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + ROOT_LIFETIME).into();
        params.serial_number = Some(SerialNumber::from_slice(&serial()));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(rcgen("self-sign the root"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Parses `pem` and checks that it asks for exactly `identity`: one URI
/// subject alternative name, no other names. The signature is verified
/// (rcgen parses with x509-parser and checks it), so the requester holds
/// the key.
pub fn check_csr(
    pem: &str,
    identity: &Identity,
) -> Result<CertificateSigningRequestParams, CsrRefusal> {
    let csr = CertificateSigningRequestParams::from_pem(pem)
        .map_err(|error| CsrRefusal::Invalid(error.to_string()))?;
    let expected = identity.to_string();
    let names = &csr.params.subject_alt_names;
    match names.as_slice() {
        [SanType::URI(uri)] if uri.as_str() == expected => Ok(csr),
        _ => Err(CsrRefusal::WrongIdentity {
            expected,
            found: describe_sans(names),
        }),
    }
}

fn describe_sans(names: &[SanType]) -> String {
    if names.is_empty() {
        return "no subject alternative name".to_string();
    }
    names
        .iter()
        .map(|name| match name {
            SanType::URI(uri) => format!("URI {}", uri.as_str()),
            SanType::DnsName(dns) => format!("DNS {}", dns.as_str()),
            SanType::Rfc822Name(mail) => format!("email {}", mail.as_str()),
            SanType::IpAddress(ip) => format!("IP {ip}"),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn uri_san(identity: &Identity) -> Result<SanType, MaterialError> {
    let uri = identity
        .to_string()
        .try_into()
        .map_err(|source| MaterialError::Rcgen {
            what: "encode the URI SAN",
            source,
        })?;
    Ok(SanType::URI(uri))
}

/// A random positive 16-byte serial number.
fn serial() -> [u8; 16] {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes
}

fn to_system_time(unix: i64) -> SystemTime {
    let secs = u64::try_from(unix).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The certificates of `pem`; at least one.
pub fn certificates(what: &'static str, pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let ders = pki::certificates(what, pem)?;
    if ders.is_empty() {
        return Err(PkiError {
            what,
            reason: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(ders)
}

fn to_pem(der: &[u8]) -> String {
    pem_block("CERTIFICATE", der)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("invariant: base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests;
