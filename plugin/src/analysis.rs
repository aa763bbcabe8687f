//! Why a parentRef attaches or not, and whether a backendRef resolves.
//!
//! This follows the Gateway API rules Ferry's control plane applies
//! (`sectionName` and `port`, `allowedRoutes` kinds and namespaces,
//! listener hostnames, ReferenceGrants) and uses the spec's reasons, so
//! `describe` and `check` explain what the status writer decides. Each
//! verdict comes from one function ([`parent`], [`backend`]) taking the
//! snapshot and one reference.

mod cause;
mod core;
mod listeners;

pub use cause::Cause;
pub use ferry_core::status::Reason;

use crate::model::{BackendRef, GATEWAY_GROUP, Inventory, ParentRef, Route, RouteKind, Rule};

pub use listeners::hostnames_intersect;

/// Why a reference is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The spec reason.
    pub reason: Reason,
    /// What exactly, in plain words.
    pub message: String,
    /// Which check failed, for `check`'s issue codes.
    pub cause: Cause,
    /// Extra detail for people (the listeners there are, the labels the
    /// namespace has).
    pub hint: Option<String>,
}

/// The verdict for one parentRef.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentVerdict {
    /// It attaches; to these listeners (Gateway) or ports (Service).
    Attached(Vec<String>),
    /// It does not attach.
    Refused(Refusal),
    /// The parent's kind was not read (missing CRD or permissions).
    Unknown,
}

/// The verdict for one backendRef.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendVerdict {
    /// Why it does not resolve, if it does not.
    pub refusal: Option<Refusal>,
    /// Whether the Service exists (`None` when Services were not read).
    pub exists: Option<bool>,
    /// Whether a ReferenceGrant (or the same namespace) allows it.
    pub permitted: bool,
    /// Ready endpoints, when known.
    pub ready: Option<usize>,
}

/// A backend's share of its rule's traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    /// The backendRef.
    pub backend: BackendRef,
    /// Its weight (1 when unset).
    pub weight: u64,
    /// Percent of the rule's requests, 0 to 100.
    pub percent: f64,
}

// === impl Refusal ===

impl Refusal {
    pub(crate) fn new(reason: Reason, cause: Cause, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            cause,
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: String) -> Self {
        self.hint = Some(hint);
        self
    }
}

/// Whether and where a route's parentRef attaches: ferry-core's verdict
/// where core decides (HTTPRoutes on Ferry's Gateways and on Services),
/// the spec's rules otherwise.
pub fn parent(inv: &Inventory, route: &Route, parent: &ParentRef) -> ParentVerdict {
    let own = spec_parent(inv, route, parent);
    // Core reads a missing object as absent; when a kind (or the namespaces
    // a listener selects on) could not be read, only "unknown" is honest.
    if own == ParentVerdict::Unknown || (parent.is_gateway() && inv.namespaces.is_none()) {
        return own;
    }
    match core::explain(inv, route, parent) {
        None => own,
        Some(Ok(listeners)) => match own {
            ParentVerdict::Attached(ports) if parent.is_service() => ParentVerdict::Attached(ports),
            _ => ParentVerdict::Attached(listeners),
        },
        Some(Err(refusal)) => {
            let (cause, hint) = match &own {
                ParentVerdict::Refused(r) => (r.cause, r.hint.clone()),
                _ => (cause_of(refusal.reason, parent), None),
            };
            let mut message = refusal.message;
            if let Some(hint) = hint {
                message = format!("{message}; {hint}");
            }
            ParentVerdict::Refused(Refusal {
                reason: refusal.reason,
                message,
                cause,
                hint: None,
            })
        }
    }
}

/// The check behind a refusal of core's that the spec reading did not make.
fn cause_of(reason: Reason, parent: &ParentRef) -> Cause {
    match reason {
        Reason::NoMatchingParent if parent.section_name.is_some() => Cause::SectionNameNotFound,
        Reason::NoMatchingParent if parent.port.is_some() => Cause::ParentPortNotFound,
        Reason::NoMatchingParent => Cause::ParentNotFound,
        Reason::NotAllowedByListeners => Cause::KindNotAllowed,
        Reason::NoMatchingListenerHostname => Cause::HostnameMismatch,
        _ => Cause::ParentKindUnsupported,
    }
}

/// The spec's attachment rules, read by the plugin itself.
fn spec_parent(inv: &Inventory, route: &Route, parent: &ParentRef) -> ParentVerdict {
    let ns = parent.namespace(&route.meta.namespace);
    if parent.is_gateway() {
        if !inv.gateways_known {
            return ParentVerdict::Unknown;
        }
        let Some(gateway) = inv.gateway(ns, &parent.name) else {
            return ParentVerdict::Refused(Refusal::new(
                Reason::NoMatchingParent,
                Cause::ParentNotFound,
                format!("Gateway {ns}/{} does not exist", parent.name),
            ));
        };
        return listeners::attach(inv, route, parent, gateway);
    }
    if parent.is_service() {
        if !inv.services_known {
            return ParentVerdict::Unknown;
        }
        let Some(service) = inv.service(ns, &parent.name) else {
            return ParentVerdict::Refused(Refusal::new(
                Reason::NoMatchingParent,
                Cause::ParentNotFound,
                format!("Service {ns}/{} does not exist", parent.name),
            ));
        };
        let ports: Vec<String> = service.ports.iter().map(|p| p.port.to_string()).collect();
        let chosen: Vec<String> = service
            .ports
            .iter()
            .filter(|p| parent.port.is_none_or(|want| p.port == want))
            .filter(|p| {
                parent
                    .section_name
                    .as_ref()
                    .is_none_or(|s| p.name.as_ref() == Some(s))
            })
            .map(|p| p.port.to_string())
            .collect();
        if chosen.is_empty() {
            let wanted = match (&parent.port, &parent.section_name) {
                (Some(port), _) => format!("port {port}"),
                (None, Some(name)) => format!("a port named {name}"),
                (None, None) => "ports".to_owned(),
            };
            return ParentVerdict::Refused(Refusal::new(
                Reason::NoMatchingParent,
                Cause::ParentPortNotFound,
                format!(
                    "Service {ns}/{} has no {wanted} (ports: {})",
                    parent.name,
                    list_or_none(&ports)
                ),
            ));
        }
        return ParentVerdict::Attached(chosen);
    }
    ParentVerdict::Refused(Refusal::new(
        Reason::NoMatchingParent,
        Cause::ParentKindUnsupported,
        format!(
            "parent kind {}/{} is not supported; use a Gateway or a core Service",
            parent.group(),
            parent.kind()
        ),
    ))
}

/// Whether a route's backendRef resolves.
pub fn backend(inv: &Inventory, route: &Route, backend: &BackendRef) -> BackendVerdict {
    let route_ns = &route.meta.namespace;
    let ns = backend.namespace(route_ns);
    let exists = inv
        .services_known
        .then(|| inv.service(ns, &backend.name).is_some());
    let core_kind = match route.kind {
        RouteKind::Http => Some(ferry_core::objects::Kind::HttpRoute),
        RouteKind::Grpc => Some(ferry_core::objects::Kind::GrpcRoute),
        _ => None,
    };
    let permitted = match core_kind {
        // Same namespace needs no grant (and no core index built for it).
        _ if ns == route_ns => true,
        Some(kind) if backend.is_service() => ferry_core::refs::permitted(
            core::objects(inv),
            ferry_core::refs::From {
                kind,
                namespace: route_ns,
            },
            ferry_core::refs::To {
                kind: ferry_core::objects::Kind::Service,
                namespace: ns,
                name: &backend.name,
            },
        ),
        _ => {
            ns == route_ns
                || inv.reference_grants.iter().any(|g| {
                    g.meta.namespace == ns
                        && g.permits(
                            (GATEWAY_GROUP, route.kind.as_str(), route_ns),
                            (backend.group(), backend.kind(), &backend.name),
                        )
                })
        }
    };
    let mut verdict = BackendVerdict {
        refusal: None,
        exists,
        permitted,
        ready: None,
    };
    let display = format!("{ns}/{}", backend.name);
    verdict.refusal = if !backend.is_service() {
        Some(Refusal::new(
            Reason::InvalidKind,
            Cause::BackendKindInvalid,
            format!(
                "backend {}/{} {display} is not supported; use a core Service",
                backend.group(),
                backend.kind()
            ),
        ))
    } else if !permitted {
        Some(Refusal::new(
            Reason::RefNotPermitted,
            Cause::MissingReferenceGrant,
            format!(
                "no ReferenceGrant in namespace {ns} allows {}s in {route_ns} to refer to Service {display}",
                route.kind
            ),
        ))
    } else {
        match inv.services_known.then(|| inv.service(ns, &backend.name)) {
            Some(None) => Some(Refusal::new(
                Reason::BackendNotFound,
                Cause::BackendNotFound,
                format!("Service {display} does not exist"),
            )),
            Some(Some(service)) => backend.port.and_then(|port| {
                service.port(port).is_none().then(|| {
                    let ports: Vec<String> =
                        service.ports.iter().map(|p| p.port.to_string()).collect();
                    Refusal::new(
                        Reason::BackendNotFound,
                        Cause::BackendPortNotFound,
                        format!(
                            "Service {display} has no port {port} (ports: {})",
                            list_or_none(&ports)
                        ),
                    )
                })
            }),
            None => None,
        }
    };
    if verdict.refusal.is_none() && backend.is_service() {
        verdict.ready = inv.ready(ns, &backend.name);
    }
    verdict
}

/// Each backend's share of the rule: weight over the sum of weights; with
/// every weight 0 (or no backends) nothing is served and every share is 0.
pub fn shares(rule: &Rule) -> Vec<Share> {
    let total: u64 = rule.backend_refs.iter().map(BackendRef::weight).sum();
    rule.backend_refs
        .iter()
        .map(|b| {
            let weight = b.weight();
            let percent = if total == 0 {
                0.0
            } else {
                weight as f64 * 100.0 / total as f64
            };
            Share {
                backend: b.clone(),
                weight,
                percent,
            }
        })
        .collect()
}

/// A percentage as the views print it: `90%`, `33.3%`, `0%`.
pub fn format_percent(percent: f64) -> String {
    let tenths = (percent * 10.0).round();
    if tenths % 10.0 == 0.0 {
        format!("{}%", tenths / 10.0)
    } else {
        format!("{:.1}%", tenths / 10.0)
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests;
