//! Test certificates: a CA and leaves with SPIFFE URI SANs, as the
//! identity machinery would issue them.

use std::time::{Duration, SystemTime};

use ferry_core::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::identity::Credentials;

/// A self-signed trust anchor that signs leaves.
pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

// === impl TestCa ===

impl TestCa {
    pub(crate) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub(crate) fn root(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf with the given URI SANs (none, one or several).
    pub(crate) fn leaf(&self, uris: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .collect();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    /// Credentials of `identity`, trusting this CA.
    pub(crate) fn credentials(&self, identity: &Identity) -> Credentials {
        let (cert, key) = self.leaf(&[&identity.to_string()]);
        Credentials {
            identity: identity.clone(),
            chain: vec![cert],
            key,
            roots: vec![self.root()],
            not_after: SystemTime::now() + Duration::from_secs(24 * 3600),
        }
    }
}

pub(crate) fn identity(ns: &str, sa: &str) -> Identity {
    Identity::new("cluster.local", ns, sa).unwrap()
}
