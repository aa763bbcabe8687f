//! Demo certificates, made fresh on every run so no private key is ever
//! committed: a throwaway CA and a server certificate it signs.

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA and one server certificate signed by it, as PEM.
#[derive(Debug)]
pub struct DemoCertificate {
    /// The CA certificate clients should trust.
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

// === impl DemoCertificate ===

impl DemoCertificate {
    /// Makes a CA and a certificate for `dns_names` (wildcards allowed).
    pub fn generate(dns_names: &[String]) -> anyhow::Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Ferry demo CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
            .context("failed to make the demo CA")?;

        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(dns_names.to_vec())
            .context("failed to use the demo certificate's names")?
            .signed_by(&key, &ca)
            .context("failed to sign the demo certificate")?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate as a `kubernetes.io/tls` Secret, the way a Gateway's
    /// `certificateRefs` expect it.
    pub fn secret_yaml(&self, namespace: &str, name: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n\
             type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            b64.encode(&self.cert_pem),
            b64.encode(&self.key_pem),
        )
    }
}
