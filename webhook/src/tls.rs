//! The serving certificate: made with rcgen at start (a private CA and a
//! leaf signed by it), or shared by replicas through a Secret, and turned
//! into a rustls server config.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::WebhookError;

/// A serving certificate with the CA that signed it (the `caBundle`).
#[derive(Clone)]
pub struct ServingCert {
    /// PEM of the leaf certificate.
    pub cert_pem: String,
    /// PEM of the leaf's PKCS#8 private key.
    pub key_pem: String,
    /// PEM of the CA certificate, for the webhook registration's `caBundle`.
    pub ca_pem: String,
}

// ServingCert

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl ServingCert {
    /// Makes a CA (10 years) and a leaf for `dns_names` and `ips` (5 years,
    /// so a certificate kept in a Secret outlives any sane upgrade cycle;
    /// delete the Secret to rotate), both valid from the start of today (UTC).
    pub fn generate(dns_names: &[String], ips: &[IpAddr]) -> Result<Self, WebhookError> {
        let cert_err = |source| WebhookError::GenerateCert { source };
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ferry-webhook-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (year, month, day) = today();
        let not_before = rcgen::date_time_ymd(year, month, day);
        ca_params.not_before = not_before;
        ca_params.not_after = rcgen::date_time_ymd(year + 10, month, day.min(28));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(cert_err)?)
            .map_err(cert_err)?;

        let mut leaf = CertificateParams::new(dns_names.to_vec()).map_err(cert_err)?;
        leaf.subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        leaf.distinguished_name = DistinguishedName::new();
        let cn = dns_names.first().map_or("ferry-webhook", String::as_str);
        leaf.distinguished_name.push(DnType::CommonName, cn);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = not_before;
        leaf.not_after = rcgen::date_time_ymd(year + 5, month, day.min(28));
        let leaf_key = KeyPair::generate().map_err(cert_err)?;
        let cert = leaf.signed_by(&leaf_key, &ca).map_err(cert_err)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            ca_pem: ca.pem(),
        })
    }

    /// Reads the certificate from Secret `namespace/name` (`tls.crt`,
    /// `tls.key`, `ca.crt`); if it does not exist, generates one and creates
    /// the Secret. When another replica created it first, uses theirs.
    pub async fn from_secret_or_generate(
        client: kube::Client,
        namespace: &str,
        name: &str,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<Self, WebhookError> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let secret_err = |source| WebhookError::CertSecret {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        };
        if let Some(secret) = api.get_opt(name).await.map_err(secret_err)? {
            return Self::from_secret(&secret, namespace, name);
        }
        let cert = Self::generate(dns_names, ips)?;
        let data = BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(cert.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(cert.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_owned(),
                ByteString(cert.ca_pem.clone().into_bytes()),
            ),
        ]);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(data),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(cert),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let secret = api.get(name).await.map_err(secret_err)?;
                Self::from_secret(&secret, namespace, name)
            }
            Err(error) => Err(secret_err(error)),
        }
    }

    fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Self, WebhookError> {
        let field = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .ok_or_else(|| WebhookError::CertSecretField {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: key.to_owned(),
                })
        };
        Ok(Self {
            cert_pem: field("tls.crt")?,
            key_pem: field("tls.key")?,
            ca_pem: field("ca.crt")?,
        })
    }

    /// A rustls server config serving this certificate over HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
        let pem_err = |what: &'static str| move |source| WebhookError::ReadPem { what, source };
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(pem_err("certificate"))?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(pem_err("private key"))?
            .ok_or(WebhookError::MissingKey)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| WebhookError::TlsConfig { source })?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|source| WebhookError::TlsConfig { source })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Today's UTC date, from the system clock (days-to-civil, H. Hinnant).
fn today() -> (i32, u8, u8) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).unwrap_or(1970),
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}
