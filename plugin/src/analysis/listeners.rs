//! Attaching a route to a Gateway's listeners.

use super::{Cause, ParentVerdict, Reason, Refusal};
use crate::model::{GATEWAY_GROUP, Gateway, Inventory, Listener, ParentRef, Route, RouteKind};

/// The listeners of `gateway` that `parent` selects, and the verdict.
pub(super) fn attach(
    inv: &Inventory,
    route: &Route,
    parent: &ParentRef,
    gateway: &Gateway,
) -> ParentVerdict {
    let gw = format!("{}/{}", gateway.meta.namespace, gateway.meta.name);
    let names: Vec<&str> = gateway.listeners.iter().map(|l| l.name.as_str()).collect();
    let mut candidates: Vec<&Listener> = gateway.listeners.iter().collect();
    if let Some(section) = &parent.section_name {
        candidates.retain(|l| &l.name == section);
        if candidates.is_empty() {
            let hint = format!("its listeners are: {}", names.join(", "));
            return ParentVerdict::Refused(
                Refusal::new(
                    Reason::NoMatchingParent,
                    Cause::SectionNameNotFound,
                    format!("Gateway {gw} has no listener named {section} (sectionName); {hint}"),
                )
                .with_hint(hint),
            );
        }
    }
    if let Some(port) = parent.port {
        candidates.retain(|l| l.port == port);
        if candidates.is_empty() {
            return refused(
                Reason::NoMatchingParent,
                Cause::ParentPortNotFound,
                format!("Gateway {gw} has no listener on port {port}"),
            );
        }
    }
    let mut admitting = Vec::new();
    let mut refusals = Vec::new();
    for listener in candidates {
        match admits(inv, route, gateway, listener) {
            Ok(()) => admitting.push(listener),
            Err(refusal) => refusals.push(refusal),
        }
    }
    if admitting.is_empty() {
        let mut refusal = refusals.remove(0);
        for other in refusals {
            refusal.message.push_str("; ");
            refusal.message.push_str(&other.message);
        }
        return ParentVerdict::Refused(refusal);
    }
    let matching: Vec<String> = admitting
        .iter()
        .filter(|l| hostnames_intersect(l.hostname.as_deref(), &route.hostnames))
        .map(|l| l.name.clone())
        .collect();
    if matching.is_empty() {
        let hosts: Vec<String> = admitting
            .iter()
            .map(|l| format!("{} ({})", l.name, l.hostname.as_deref().unwrap_or("*")))
            .collect();
        return refused(
            Reason::NoMatchingListenerHostname,
            Cause::HostnameMismatch,
            format!(
                "route hostnames {} match no hostname of the admitting listeners of Gateway {gw}: {}",
                route.hostnames.join(", "),
                hosts.join(", ")
            ),
        );
    }
    ParentVerdict::Attached(matching)
}

fn refused(reason: Reason, cause: Cause, message: String) -> ParentVerdict {
    ParentVerdict::Refused(Refusal::new(reason, cause, message))
}

/// Whether a listener admits the route's kind and namespace.
fn admits(
    inv: &Inventory,
    route: &Route,
    gateway: &Gateway,
    listener: &Listener,
) -> Result<(), Refusal> {
    let allowed = listener.allowed_routes.clone().unwrap_or_default();
    let kinds: Vec<String> = if allowed.kinds.is_empty() {
        default_kinds(&listener.protocol)
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    } else {
        allowed
            .kinds
            .iter()
            .filter(|k| k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP)
            .map(|k| k.kind.clone())
            .collect()
    };
    if !kinds.iter().any(|k| k == route.kind.as_str()) {
        return Err(Refusal::new(
            Reason::NotAllowedByListeners,
            Cause::KindNotAllowed,
            format!(
                "listener {} ({} {}) admits kinds {}, not {}",
                listener.name,
                listener.protocol,
                listener.port,
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(", ")
                },
                route.kind
            ),
        ));
    }
    let route_ns = &route.meta.namespace;
    let gw_ns = &gateway.meta.namespace;
    let namespaces = allowed.namespaces.unwrap_or_default();
    match namespaces.from.as_deref().unwrap_or("Same") {
        "All" => Ok(()),
        "Same" if route_ns == gw_ns => Ok(()),
        "Same" => Err(Refusal::new(
            Reason::NotAllowedByListeners,
            Cause::NamespaceNotAllowed,
            format!(
                "listener {} admits routes only from the Gateway's namespace {gw_ns} \
                 (allowedRoutes.namespaces.from: Same), not from {route_ns}",
                listener.name
            ),
        )),
        "Selector" => {
            let selector = namespaces.selector.unwrap_or_default();
            match inv.namespace_labels(route_ns) {
                None => Ok(()),
                Some(labels) if selector.matches(&labels) => Ok(()),
                Some(labels) => {
                    let shown: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let has = if shown.is_empty() {
                        "no labels".to_owned()
                    } else {
                        format!("labels {}", shown.join(","))
                    };
                    let hint = format!(
                        "the listener selects namespaces labelled {}, and namespace {route_ns} has {has}",
                        selector
                    );
                    Err(Refusal::new(
                        Reason::NotAllowedByListeners,
                        Cause::NamespaceNotAllowed,
                        format!("listener {}: {hint}", listener.name),
                    )
                    .with_hint(hint))
                }
            }
        }
        other => Err(Refusal::new(
            Reason::NotAllowedByListeners,
            Cause::NamespaceNotAllowed,
            format!(
                "listener {} has allowedRoutes.namespaces.from {other:?}, which admits nothing",
                listener.name
            ),
        )),
    }
}

/// Route kinds a listener admits when `allowedRoutes.kinds` is empty.
fn default_kinds(protocol: &str) -> &'static [RouteKind] {
    match protocol {
        "HTTP" | "HTTPS" => &[RouteKind::Http, RouteKind::Grpc],
        "TLS" => &[RouteKind::Tls, RouteKind::Tcp],
        "TCP" => &[RouteKind::Tcp],
        "UDP" => &[RouteKind::Udp],
        _ => &[],
    }
}

/// Whether a listener hostname (none = any) and a route's hostnames (none =
/// any) share at least one host, with `*.` wildcards on either side.
pub fn hostnames_intersect(listener: Option<&str>, route: &[String]) -> bool {
    let Some(listener) = listener else {
        return true;
    };
    route.is_empty() || route.iter().any(|h| host_match(listener, h))
}

fn host_match(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(suffix), None) => b.ends_with(suffix) && b.len() > suffix.len(),
        (None, Some(suffix)) => a.ends_with(suffix) && a.len() > suffix.len(),
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
    }
}
