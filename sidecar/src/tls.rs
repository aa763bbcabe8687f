//! TLS termination: a rustls server config per HTTPS port, with the
//! certificate chosen by SNI (exact name, then the longest wildcard, then
//! the port's default) and ALPN offering h2 and http/1.1.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use ferry_core::model::{HostPattern, ServerCertificate};
use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The chain or key PEM did not parse.
    #[error("failed to parse the certificate for {host}: {reason}")]
    Pem {
        /// The listener hostname the certificate serves.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// The key is of a type rustls cannot sign with.
    #[error("failed to load the private key for {host}")]
    Key {
        /// The listener hostname the certificate serves.
        host: String,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The port has no usable certificate.
    #[error("no usable certificate")]
    NoCertificate,
    /// rustls refused the configuration.
    #[error("failed to build the TLS server config")]
    Config(#[source] rustls::Error),
}

/// Picks a certificate by SNI.
#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Wildcard suffixes, longest first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

/// Builds the server config of a port. Certificates that fail to load are
/// reported in the second value and left out.
pub fn server_config(
    certificates: &[ServerCertificate],
) -> (Result<Arc<ServerConfig>, TlsError>, Vec<TlsError>) {
    let mut resolver = SniResolver::default();
    let mut errors = Vec::new();
    for cert in certificates {
        match certified_key(cert) {
            Ok(key) => resolver.insert(cert.hostname.as_ref(), key),
            Err(error) => errors.push(error),
        }
    }
    if resolver.default.is_none() {
        resolver.default = resolver
            .exact
            .values()
            .chain(resolver.wildcards.iter().map(|(_, k)| k))
            .next()
            .cloned();
    }
    if resolver.default.is_none() {
        return (Err(TlsError::NoCertificate), errors);
    }
    resolver
        .wildcards
        .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)
        .map(|builder| {
            let mut config = builder
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver));
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        });
    (config, errors)
}

fn certified_key(cert: &ServerCertificate) -> Result<Arc<CertifiedKey>, TlsError> {
    let host = cert
        .hostname
        .as_ref()
        .map_or_else(|| "*".to_string(), ToString::to_string);
    let pem_error = |reason: String| TlsError::Pem {
        host: host.clone(),
        reason,
    };
    let chain = rustls_pemfile::certs(&mut BufReader::new(cert.chain_pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error("no certificate in chain".into()));
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(cert.key_pem.as_bytes()))
        .map_err(|e| pem_error(e.to_string()))?
        .ok_or_else(|| pem_error("no private key".into()))?;
    let key = ring::sign::any_supported_type(&key).map_err(|source| TlsError::Key {
        host: host.clone(),
        source,
    })?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

// === impl SniResolver ===

impl SniResolver {
    fn insert(&mut self, hostname: Option<&HostPattern>, key: Arc<CertifiedKey>) {
        match hostname {
            None | Some(HostPattern::Any) => {
                self.default.get_or_insert(key);
            }
            Some(HostPattern::Exact(name)) => {
                self.exact.entry(name.clone()).or_insert(key);
            }
            Some(HostPattern::Wildcard(suffix)) => self.wildcards.push((suffix.clone(), key)),
        }
    }

    fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(key) = self.exact.get(&name) {
            return Some(key.clone());
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| HostPattern::Wildcard(suffix.clone()).matches(&name))
            .map(|(_, key)| key.clone())
            .or_else(|| self.default.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}
