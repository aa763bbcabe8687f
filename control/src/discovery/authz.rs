//! Who may watch what: the rules of authenticated discovery, as a pure
//! function of the caller and the watch.
//!
//! The caller is what the TLS layer verified: the one URI SAN of a client
//! certificate that leads to the trust anchors. Its namespace scopes what
//! it may see:
//!
//! * `WatchOutbound`: the routes as seen from `source_namespace`, which
//!   must be the caller's namespace (consumer routes of one namespace are
//!   not another's business).
//! * `WatchInbound`: the policy of `pod_ip`, which must be a Pod running
//!   as the caller (same namespace and ServiceAccount).
//! * `WatchGateway`: a Gateway of the caller's namespace. Ferry deploys a
//!   Gateway's pods in the Gateway's namespace, so its proxies' identities
//!   are in that namespace.
//!
//! Requests on the plaintext port carry no identity and are trusted
//! ([`Transport::Plaintext`]): that port is for standalone and
//! development installs only.

use std::net::IpAddr;

use ferry_core::identity::Identity;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// How a request reached the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The plaintext port: trusted, no identity.
    Plaintext,
    /// The TLS port, with the client's identity when it presented a
    /// certificate (`Err` when the certificate names no Ferry identity).
    Tls(Option<Result<Identity, String>>),
}

/// What a watch asks for, as far as authorization is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Watch<'a> {
    /// A Gateway's view.
    Gateway {
        /// The Gateway's namespace.
        namespace: &'a str,
    },
    /// An outbound target as seen from a namespace.
    Outbound {
        /// The namespace the caller claims.
        source_namespace: &'a str,
    },
    /// A pod port's inbound policy.
    Inbound {
        /// The pod's IP.
        pod_ip: IpAddr,
        /// The Pod with that IP (namespace, ServiceAccount), if indexed.
        pod: Option<(&'a str, &'a str)>,
    },
}

/// Why a watch is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The TLS port requires a client certificate and none was presented.
    #[error("a client certificate is required on this port")]
    NoCertificate,
    /// The client certificate names no Ferry identity.
    #[error("the client certificate names no Ferry identity: {0}")]
    BadCertificate(String),
    /// `source_namespace` is not the caller's namespace.
    #[error("{caller} may not watch outbound targets as namespace {requested}")]
    OtherNamespace {
        /// The caller's identity.
        caller: String,
        /// The namespace asked for.
        requested: String,
    },
    /// No Pod is known with the IP whose policy is asked for.
    #[error("{caller} may not watch inbound policy of {pod_ip}: no Pod has this IP")]
    UnknownPod {
        /// The caller's identity.
        caller: String,
        /// The IP asked for.
        pod_ip: IpAddr,
    },
    /// The Pod runs as another identity.
    #[error(
        "{caller} may not watch inbound policy of {pod_ip}: the Pod runs as ServiceAccount {namespace}/{service_account}"
    )]
    OtherPod {
        /// The caller's identity.
        caller: String,
        /// The IP asked for.
        pod_ip: IpAddr,
        /// The Pod's namespace.
        namespace: String,
        /// The Pod's ServiceAccount.
        service_account: String,
    },
    /// The Gateway is in another namespace.
    #[error("{caller} may not watch a Gateway of namespace {namespace}")]
    OtherGateway {
        /// The caller's identity.
        caller: String,
        /// The Gateway's namespace.
        namespace: String,
    },
}

// === impl Denied ===

impl Denied {
    /// The metric label of the reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::BadCertificate(_) => "bad_certificate",
            Self::OtherNamespace { .. } => "other_namespace",
            Self::UnknownPod { .. } => "unknown_pod",
            Self::OtherPod { .. } => "other_pod",
            Self::OtherGateway { .. } => "other_gateway",
        }
    }
}

/// Whether a caller reaching the server over `transport` may open `watch`.
/// With `require_identity`, the TLS port refuses callers without a
/// certificate; without it they are trusted like plaintext callers (while
/// proxies are being given certificates).
pub fn authorize(
    transport: &Transport,
    require_identity: bool,
    watch: Watch<'_>,
) -> Result<(), Denied> {
    let caller = match transport {
        Transport::Plaintext => return Ok(()),
        Transport::Tls(None) if require_identity => return Err(Denied::NoCertificate),
        Transport::Tls(None) => return Ok(()),
        Transport::Tls(Some(Err(reason))) => return Err(Denied::BadCertificate(reason.clone())),
        Transport::Tls(Some(Ok(identity))) => identity,
    };
    match watch {
        Watch::Outbound { source_namespace } if source_namespace != caller.namespace => {
            Err(Denied::OtherNamespace {
                caller: caller.to_string(),
                requested: source_namespace.to_owned(),
            })
        }
        Watch::Gateway { namespace } if namespace != caller.namespace => {
            Err(Denied::OtherGateway {
                caller: caller.to_string(),
                namespace: namespace.to_owned(),
            })
        }
        Watch::Inbound { pod_ip, pod: None } => Err(Denied::UnknownPod {
            caller: caller.to_string(),
            pod_ip,
        }),
        Watch::Inbound {
            pod_ip,
            pod: Some((namespace, service_account)),
        } if namespace != caller.namespace || service_account != caller.service_account => {
            Err(Denied::OtherPod {
                caller: caller.to_string(),
                pod_ip,
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
            })
        }
        Watch::Outbound { .. } | Watch::Gateway { .. } | Watch::Inbound { .. } => Ok(()),
    }
}

/// The identity of a verified client chain: the leaf's one URI SAN.
pub fn peer_identity(chain: &[CertificateDer<'static>]) -> Result<Identity, String> {
    let leaf = chain.first().ok_or("an empty certificate chain")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .map_err(|e| format!("the SAN extension does not parse: {e}"))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match uris[..] {
        [uri] => uri
            .parse()
            .map_err(|e: ferry_core::identity::IdentityError| e.to_string()),
        _ => Err(format!("{} URI SANs, expected one", uris.len())),
    }
}

#[cfg(test)]
#[path = "authz/tests.rs"]
mod tests;
