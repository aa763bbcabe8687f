//! Attachment: which parents a route's parentRefs bind it to, and why not.
//!
//! [`attach`] answers for one (route, parentRef) and is independent of
//! compilation, so the kubectl plugin can explain a parentRef with it
//! ([`explain`]). For a Gateway parent it walks the listeners in the spec's
//! order: `sectionName` and `port` select candidates (none: NoMatchingParent),
//! then each candidate must admit the route's kind and namespace
//! (else NotAllowedByListeners) and share a hostname with it (else
//! NoMatchingListenerHostname).

mod gateway;
mod hostnames;
mod namespaces;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub use gateway::{GatewayView, ListenerView, referenced_secrets};
pub use hostnames::{covers, intersect, specificity};
pub use namespaces::{AllowedNamespaces, LabelExpression, LabelSelector};

use crate::model::HostPattern;
use crate::objects::api::{GrpcRoute, HttpRoute};
use crate::objects::{GATEWAY_GROUP, Kind, NsName, Objects};
use crate::status::Reason;

/// The `controllerName` of GatewayClasses Ferry implements.
pub const FERRY_CONTROLLER: &str = "ferry.dev/gateway-controller";

/// A parentRef with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ParentRef {
    /// API group (`gateway.networking.k8s.io` by default, `""` for Service).
    pub group: String,
    /// Kind (`Gateway` by default).
    pub kind: String,
    /// Namespace (the route's by default).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Listener name, for Gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Port (listener port for Gateways, Service port for Services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// What attachment needs to know about a route.
#[derive(Clone, Debug)]
pub struct RouteMeta {
    /// The route kind.
    pub kind: Kind,
    /// The route.
    pub id: NsName,
    /// `spec.hostnames` (empty: any).
    pub hostnames: Vec<HostPattern>,
    /// `spec.parentRefs`, defaults filled in.
    pub parent_refs: Vec<ParentRef>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
}

/// Why something is refused, in the spec's terms and in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The condition reason.
    pub reason: Reason,
    /// What is wrong.
    pub message: String,
}

/// The result of attaching a route to one parentRef.
#[derive(Clone, Debug)]
pub struct ParentAttachment {
    /// The parentRef.
    pub parent_ref: ParentRef,
    /// What happened.
    pub outcome: Outcome,
    /// For Gateway parents, the verdict of every listener that `sectionName`
    /// and `port` selected, for explanations.
    pub listeners: Vec<ListenerVerdict>,
}

/// How a parentRef turned out.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The parent belongs to another controller: Ferry writes no status.
    NotOurs(String),
    /// Attached. For Gateways, the listeners and hostnames; for Service
    /// parents (mesh), empty.
    Accepted(Vec<AttachedListener>),
    /// Ferry's parent (or no parent at all), but not attached.
    Refused(Refusal),
}

/// A listener a route attached to, with the hostnames it serves there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedListener {
    /// The Gateway.
    pub gateway: NsName,
    /// The listener name.
    pub listener: String,
    /// The intersection of the listener's hostname and the route's.
    pub hostnames: Vec<HostPattern>,
}

/// One listener's verdict on a route.
#[derive(Clone, Debug)]
pub struct ListenerVerdict {
    /// The listener name.
    pub listener: String,
    /// `None` when it accepts the route.
    pub refusal: Option<Refusal>,
}

// === impl ParentRef ===

impl ParentRef {
    fn new(
        route_namespace: &str,
        group: Option<&str>,
        kind: Option<&str>,
        namespace: Option<&str>,
        name: &str,
        section_name: Option<&str>,
        port: Option<i32>,
    ) -> Self {
        Self {
            group: group.unwrap_or(GATEWAY_GROUP).to_string(),
            kind: kind.unwrap_or("Gateway").to_string(),
            namespace: namespace.unwrap_or(route_namespace).to_string(),
            name: name.to_string(),
            section_name: section_name.map(str::to_string),
            port,
        }
    }

    /// Whether this refers to a Gateway.
    pub fn is_gateway(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == "Gateway"
    }

    /// Whether this refers to a Service (GAMMA).
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }
}

impl fmt::Display for ParentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if let Some(section) = &self.section_name {
            write!(f, " section {section}")?;
        }
        if let Some(port) = self.port {
            write!(f, " port {port}")?;
        }
        Ok(())
    }
}

// === impl RouteMeta ===

impl RouteMeta {
    /// Reads an HTTPRoute.
    pub fn of_http_route(id: &NsName, route: &HttpRoute) -> Self {
        let spec = &route.spec;
        Self {
            kind: Kind::HttpRoute,
            id: id.clone(),
            hostnames: hostnames(spec.hostnames.as_deref()),
            parent_refs: spec
                .parent_refs
                .iter()
                .flatten()
                .map(|p| {
                    ParentRef::new(
                        &id.namespace,
                        p.group.as_deref(),
                        p.kind.as_deref(),
                        p.namespace.as_deref(),
                        &p.name,
                        p.section_name.as_deref(),
                        p.port,
                    )
                })
                .collect(),
            generation: route.metadata.generation,
        }
    }
}

impl RouteMeta {
    /// Reads a GRPCRoute.
    pub fn of_grpc_route(id: &NsName, route: &GrpcRoute) -> Self {
        let spec = &route.spec;
        Self {
            kind: Kind::GrpcRoute,
            id: id.clone(),
            hostnames: hostnames(spec.hostnames.as_deref()),
            parent_refs: spec
                .parent_refs
                .iter()
                .flatten()
                .map(|p| {
                    ParentRef::new(
                        &id.namespace,
                        p.group.as_deref(),
                        p.kind.as_deref(),
                        p.namespace.as_deref(),
                        &p.name,
                        p.section_name.as_deref(),
                        p.port,
                    )
                })
                .collect(),
            generation: route.metadata.generation,
        }
    }
}

fn hostnames(names: Option<&[String]>) -> Vec<HostPattern> {
    names
        .unwrap_or_default()
        .iter()
        .map(|h| HostPattern::parse(Some(h)))
        .filter(|h| *h != HostPattern::Any)
        .collect()
}

// === impl Refusal ===

impl Refusal {
    /// A refusal for `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// Folds several problems into one: the first reason, every message.
    pub fn combine(problems: Vec<Refusal>) -> Option<Refusal> {
        let reason = problems.first()?.reason;
        let message = problems
            .into_iter()
            .map(|p| p.message)
            .collect::<Vec<_>>()
            .join("; ");
        Some(Self { reason, message })
    }
}

// === impl ParentAttachment ===

impl ParentAttachment {
    /// The listeners the route attached to (empty unless accepted).
    pub fn attached(&self) -> &[AttachedListener] {
        match &self.outcome {
            Outcome::Accepted(listeners) => listeners,
            _ => &[],
        }
    }
}

/// Whether a GatewayClass is Ferry's.
pub fn is_ferry_class(objects: &Objects, class: &str) -> bool {
    objects
        .gateway_class(class)
        .is_some_and(|c| c.spec.controller_name == FERRY_CONTROLLER)
}

/// Validated views of every Ferry Gateway.
pub fn ferry_gateways(objects: &Objects) -> BTreeMap<NsName, GatewayView> {
    objects
        .gateways()
        .filter(|(_, gw)| is_ferry_class(objects, &gw.spec.gateway_class_name))
        .map(|(id, gw)| (id.clone(), GatewayView::new(objects, id.clone(), gw)))
        .collect()
}

/// Explains one parentRef of a route on its own (for the kubectl plugin).
pub fn explain(objects: &Objects, route: &RouteMeta, parent_ref: &ParentRef) -> ParentAttachment {
    let mut gateways = BTreeMap::new();
    let id = NsName::new(&parent_ref.namespace, &parent_ref.name);
    if let Some(gw) = objects
        .gateway(&id)
        .filter(|gw| is_ferry_class(objects, &gw.spec.gateway_class_name))
    {
        gateways.insert(id.clone(), GatewayView::new(objects, id, gw));
    }
    attach(objects, &gateways, route, parent_ref)
}

/// Attaches `route` to one of its parentRefs. `gateways` are the Ferry
/// Gateways ([`ferry_gateways`]).
pub fn attach(
    objects: &Objects,
    gateways: &BTreeMap<NsName, GatewayView>,
    route: &RouteMeta,
    parent_ref: &ParentRef,
) -> ParentAttachment {
    let refused = |reason, message: String| ParentAttachment {
        parent_ref: parent_ref.clone(),
        outcome: Outcome::Refused(Refusal::new(reason, message)),
        listeners: Vec::new(),
    };
    let id = NsName::new(&parent_ref.namespace, &parent_ref.name);
    if parent_ref.is_service() {
        let Some(service) = objects.service(&id) else {
            return refused(
                Reason::NoMatchingParent,
                format!("Service {id} does not exist"),
            );
        };
        if let Some(port) = parent_ref.port {
            let ports = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_deref())
                .unwrap_or_default();
            if !ports.iter().any(|p| p.port == port) {
                return refused(
                    Reason::NoMatchingParent,
                    format!("Service {id} has no port {port}"),
                );
            }
        }
        return ParentAttachment {
            parent_ref: parent_ref.clone(),
            outcome: Outcome::Accepted(Vec::new()),
            listeners: Vec::new(),
        };
    }
    if !parent_ref.is_gateway() {
        let group = if parent_ref.group.is_empty() {
            "core"
        } else {
            &parent_ref.group
        };
        return refused(
            Reason::NoMatchingParent,
            format!(
                "parentRef kind {}/{} is not supported; Ferry attaches routes to Gateways and Services",
                group, parent_ref.kind
            ),
        );
    }
    let Some(view) = gateways.get(&id) else {
        return match objects.gateway(&id) {
            Some(gw) => ParentAttachment {
                parent_ref: parent_ref.clone(),
                outcome: Outcome::NotOurs(format!(
                    "Gateway {id} has GatewayClass {}, which is not Ferry's",
                    gw.spec.gateway_class_name
                )),
                listeners: Vec::new(),
            },
            None => refused(
                Reason::NoMatchingParent,
                format!("Gateway {id} does not exist"),
            ),
        };
    };
    attach_to_gateway(objects, view, route, parent_ref)
}

fn attach_to_gateway(
    objects: &Objects,
    view: &GatewayView,
    route: &RouteMeta,
    parent_ref: &ParentRef,
) -> ParentAttachment {
    let candidates: Vec<&ListenerView> = view
        .listeners
        .iter()
        .filter(|l| {
            parent_ref
                .section_name
                .as_ref()
                .is_none_or(|s| *s == l.name)
        })
        .filter(|l| parent_ref.port.is_none_or(|p| p == i32::from(l.port)))
        .collect();
    if candidates.is_empty() {
        let what = match (&parent_ref.section_name, parent_ref.port) {
            (Some(s), Some(p)) => format!("no listener named {s} on port {p}"),
            (Some(s), None) => format!("no listener named {s}"),
            (None, Some(p)) => format!("no listener on port {p}"),
            (None, None) => "no listeners".to_string(),
        };
        return ParentAttachment {
            parent_ref: parent_ref.clone(),
            outcome: Outcome::Refused(Refusal::new(
                Reason::NoMatchingParent,
                format!("Gateway {} has {what}", view.id),
            )),
            listeners: Vec::new(),
        };
    }
    let mut attached = Vec::new();
    let mut verdicts = Vec::new();
    for l in candidates {
        let refusal = if !l.supported_kinds.contains(&route.kind) {
            Some(Refusal::new(
                Reason::NotAllowedByListeners,
                format!(
                    "listener {} ({}) does not allow {} routes",
                    l.name, l.protocol_name, route.kind
                ),
            ))
        } else if !l
            .namespaces
            .allows(objects, &view.id.namespace, &route.id.namespace)
        {
            Some(Refusal::new(
                Reason::NotAllowedByListeners,
                format!(
                    "listener {} allows {}, and the route is in namespace {}",
                    l.name,
                    l.namespaces.describe(),
                    route.id.namespace
                ),
            ))
        } else {
            let hostnames = intersect(&l.hostname, &route.hostnames);
            if hostnames.is_empty() {
                let names: Vec<String> = route.hostnames.iter().map(ToString::to_string).collect();
                Some(Refusal::new(
                    Reason::NoMatchingListenerHostname,
                    format!(
                        "listener {} has hostname {}, which none of the route's hostnames ({}) match",
                        l.name,
                        l.hostname,
                        names.join(", ")
                    ),
                ))
            } else {
                attached.push(AttachedListener {
                    gateway: view.id.clone(),
                    listener: l.name.clone(),
                    hostnames,
                });
                None
            }
        };
        verdicts.push(ListenerVerdict {
            listener: l.name.clone(),
            refusal,
        });
    }
    let outcome = if attached.is_empty() {
        let refusals: Vec<Refusal> = verdicts.iter().filter_map(|v| v.refusal.clone()).collect();
        let reason = if refusals
            .iter()
            .any(|r| r.reason == Reason::NoMatchingListenerHostname)
        {
            Reason::NoMatchingListenerHostname
        } else {
            Reason::NotAllowedByListeners
        };
        let message = refusals
            .into_iter()
            .map(|r| r.message)
            .collect::<Vec<_>>()
            .join("; ");
        Outcome::Refused(Refusal::new(reason, message))
    } else {
        Outcome::Accepted(attached)
    };
    ParentAttachment {
        parent_ref: parent_ref.clone(),
        outcome,
        listeners: verdicts,
    }
}

#[cfg(test)]
mod tests;
