//! A Gateway as Ferry sees it: each listener validated, with its conflicts,
//! the route kinds and namespaces it admits, and its certificates.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;

use super::Refusal;
use super::namespaces::AllowedNamespaces;
use crate::model::{HostPattern, PortProtocol, ServerCertificate};
use crate::objects::api::{Gateway, Secret};
use crate::objects::{GATEWAY_GROUP, Kind, NsName, Objects};
use crate::refs;
use crate::status::Reason;

/// A Ferry Gateway after validation.
#[derive(Clone, Debug)]
pub struct GatewayView {
    /// The Gateway.
    pub id: NsName,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Its listeners, in spec order.
    pub listeners: Vec<ListenerView>,
}

/// One listener after validation.
#[derive(Clone, Debug)]
pub struct ListenerView {
    /// The listener name (`sectionName` of parentRefs).
    pub name: String,
    /// The port, when valid.
    pub port: u16,
    /// `HTTP` or `HTTPS`, or `None` for a protocol Ferry does not serve.
    pub protocol: Option<PortProtocol>,
    /// The protocol as written.
    pub protocol_name: String,
    /// Hosts it serves.
    pub hostname: HostPattern,
    /// Route kinds that may attach.
    pub supported_kinds: Vec<Kind>,
    /// Namespaces routes may attach from.
    pub namespaces: AllowedNamespaces,
    /// Valid certificates (HTTPS).
    pub certificates: Vec<ServerCertificate>,
    /// Why it is not accepted (unsupported protocol, bad port).
    pub not_accepted: Option<Refusal>,
    /// Why some reference does not resolve (certificates, route kinds).
    pub unresolved: Option<Refusal>,
    /// Why it conflicts with another listener.
    pub conflict: Option<Refusal>,
}

// === impl GatewayView ===

impl GatewayView {
    /// Validates the listeners of `gateway` (which must be Ferry's).
    pub fn new(objects: &Objects, id: NsName, gateway: &Gateway) -> Self {
        let mut listeners: Vec<ListenerView> = gateway
            .spec
            .listeners
            .iter()
            .map(|l| ListenerView::new(objects, &id, l))
            .collect();
        mark_conflicts(&mut listeners);
        Self {
            id,
            generation: gateway.metadata.generation,
            listeners,
        }
    }

    /// A listener by name.
    pub fn listener(&self, name: &str) -> Option<&ListenerView> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

// === impl ListenerView ===

impl ListenerView {
    fn new(
        objects: &Objects,
        gateway: &NsName,
        l: &gateway_api::experimental::gateways::GatewayListeners,
    ) -> Self {
        let mut not_accepted = None;
        let port = match u16::try_from(l.port) {
            Ok(port) if port > 0 => port,
            _ => {
                not_accepted = Some(Refusal::new(
                    Reason::PortUnavailable,
                    format!("port {} is not a valid TCP port", l.port),
                ));
                0
            }
        };
        let protocol = match l.protocol.as_str() {
            "HTTP" => Some(PortProtocol::Http),
            "HTTPS" => Some(PortProtocol::Https),
            other => {
                not_accepted = not_accepted.or(Some(Refusal::new(
                    Reason::UnsupportedProtocol,
                    format!(
                        "protocol {other} is not supported; Ferry serves HTTP and HTTPS listeners"
                    ),
                )));
                None
            }
        };
        let mut problems = Vec::new();
        let supported_kinds = match l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
            Some(kinds) if !kinds.is_empty() => {
                let mut supported = Vec::new();
                for k in kinds {
                    let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
                    match Kind::from_group_kind(group, &k.kind) {
                        Some(kind @ (Kind::HttpRoute | Kind::GrpcRoute)) if protocol.is_some() => {
                            supported.push(kind)
                        }
                        _ => problems.push(Refusal::new(
                            Reason::InvalidRouteKinds,
                            format!(
                                "route kind {group}/{} is not supported on this listener",
                                k.kind
                            ),
                        )),
                    }
                }
                supported
            }
            _ if protocol.is_some() => vec![Kind::HttpRoute, Kind::GrpcRoute],
            _ => Vec::new(),
        };
        let namespaces = AllowedNamespaces::new(
            l.allowed_routes
                .as_ref()
                .and_then(|a| a.namespaces.as_ref()),
        );
        let mut certificates = Vec::new();
        if protocol == Some(PortProtocol::Https) {
            let hostname = l.hostname.as_deref().map(|h| HostPattern::parse(Some(h)));
            let refs = l
                .tls
                .as_ref()
                .and_then(|t| t.certificate_refs.as_deref())
                .unwrap_or_default();
            if refs.is_empty() {
                problems.push(Refusal::new(
                    Reason::InvalidCertificateRef,
                    "HTTPS listener has no tls.certificateRefs",
                ));
            }
            for r in refs {
                match certificate(objects, gateway, r) {
                    Ok((chain_pem, key_pem)) => certificates.push(ServerCertificate {
                        hostname: hostname.clone(),
                        chain_pem,
                        key_pem,
                    }),
                    Err(problem) => problems.push(problem),
                }
            }
        }
        Self {
            name: l.name.clone(),
            port,
            protocol,
            protocol_name: l.protocol.clone(),
            hostname: HostPattern::parse(l.hostname.as_deref()),
            supported_kinds,
            namespaces,
            certificates,
            not_accepted,
            unresolved: Refusal::combine(problems),
            conflict: None,
        }
    }

    /// Whether the proxy serves this listener: accepted, without conflict,
    /// and with a certificate if it is HTTPS.
    pub fn is_served(&self) -> bool {
        self.not_accepted.is_none()
            && self.conflict.is_none()
            && match self.protocol {
                Some(PortProtocol::Http) => true,
                Some(PortProtocol::Https) => !self.certificates.is_empty(),
                None => false,
            }
    }
}

/// The Secrets that the HTTPS listeners of Ferry Gateways reference and
/// may read (core Secrets, in the Gateway's namespace or permitted by a
/// ReferenceGrant): the only Secrets the control plane needs to hold.
pub fn referenced_secrets(objects: &Objects) -> BTreeSet<NsName> {
    let mut out = BTreeSet::new();
    for (id, gateway) in objects.gateways() {
        if !super::is_ferry_class(objects, &gateway.spec.gateway_class_name) {
            continue;
        }
        let refs = gateway
            .spec
            .listeners
            .iter()
            .filter(|l| l.protocol == "HTTPS")
            .filter_map(|l| l.tls.as_ref()?.certificate_refs.as_ref())
            .flatten();
        out.extend(refs.filter_map(|r| certificate_secret(objects, id, r).ok()));
    }
    out
}

/// The Secret a certificateRef names, if Ferry may read it.
fn certificate_secret(
    objects: &Objects,
    gateway: &NsName,
    r: &gateway_api::experimental::gateways::GatewayListenersTlsCertificateRefs,
) -> Result<NsName, Refusal> {
    let namespace = r.namespace.as_deref().unwrap_or(&gateway.namespace);
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Secret");
    let display = format!("{namespace}/{}", r.name);
    if !group.is_empty() || kind != "Secret" {
        return Err(Refusal::new(
            Reason::InvalidCertificateRef,
            format!(
                "certificateRef {display} has kind {group}/{kind}; only core Secrets are supported"
            ),
        ));
    }
    let from = refs::From {
        kind: Kind::Gateway,
        namespace: &gateway.namespace,
    };
    let to = refs::To {
        kind: Kind::Secret,
        namespace,
        name: &r.name,
    };
    if !refs::permitted(objects, from, to) {
        return Err(Refusal::new(
            Reason::RefNotPermitted,
            format!(
                "no ReferenceGrant in namespace {namespace} allows Gateways in {} to use Secret {display}",
                gateway.namespace
            ),
        ));
    }
    Ok(NsName::new(namespace, &r.name))
}

/// The PEM chain and key of a certificateRef's Secret.
fn certificate(
    objects: &Objects,
    gateway: &NsName,
    r: &gateway_api::experimental::gateways::GatewayListenersTlsCertificateRefs,
) -> Result<(String, String), Refusal> {
    let id = certificate_secret(objects, gateway, r)?;
    let display = format!("{}/{}", id.namespace, id.name);
    let invalid = |what: &str| {
        Refusal::new(
            Reason::InvalidCertificateRef,
            format!("Secret {display} {what}"),
        )
    };
    let secret = objects
        .secret(&id)
        .ok_or_else(|| invalid("does not exist"))?;
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(invalid("is not of type kubernetes.io/tls"));
    }
    let chain = pem(secret, "tls.crt", "CERTIFICATE")
        .ok_or_else(|| invalid("has no PEM certificate in tls.crt"))?;
    let key = pem(secret, "tls.key", "PRIVATE KEY")
        .ok_or_else(|| invalid("has no PEM private key in tls.key"))?;
    Ok((chain, key))
}

/// A PEM entry of a Secret (`data`, or `stringData` as written in files)
/// that contains a block whose label ends with `label`.
fn pem(secret: &Secret, key: &str, label: &str) -> Option<String> {
    let text = match secret.data.as_ref().and_then(|d| d.get(key)) {
        Some(ByteString(bytes)) => String::from_utf8(bytes.clone()).ok()?,
        None => secret.string_data.as_ref()?.get(key)?.clone(),
    };
    let begins = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    begins.then_some(text)
}

/// Marks listeners that share a port with another protocol, or a port and
/// hostname with another listener.
fn mark_conflicts(listeners: &mut [ListenerView]) {
    let mut protocols: BTreeMap<u16, BTreeSet<&str>> = BTreeMap::new();
    let mut hostnames: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.protocol.is_some()) {
        protocols
            .entry(l.port)
            .or_default()
            .insert(&l.protocol_name);
        *hostnames
            .entry((l.port, l.hostname.to_string()))
            .or_default() += 1;
    }
    let conflicts: Vec<Option<Refusal>> = listeners
        .iter()
        .map(|l| {
            l.protocol?;
            if protocols.get(&l.port).is_some_and(|p| p.len() > 1) {
                Some(Refusal::new(
                    Reason::ProtocolConflict,
                    format!(
                        "another listener uses port {} with a different protocol",
                        l.port
                    ),
                ))
            } else if hostnames
                .get(&(l.port, l.hostname.to_string()))
                .is_some_and(|n| *n > 1)
            {
                Some(Refusal::new(
                    Reason::HostnameConflict,
                    format!(
                        "another listener on port {} has hostname {}",
                        l.port, l.hostname
                    ),
                ))
            } else {
                None
            }
        })
        .collect();
    for (l, conflict) in listeners.iter_mut().zip(conflicts) {
        l.conflict = conflict;
    }
}
