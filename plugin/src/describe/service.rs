//! `describe service/NAME`: the mesh view of a Service. Per port, the
//! producer routes (in the Service's namespace, for every caller) and the
//! consumer routes (in other namespaces, for their own callers), the
//! routes that send traffic to it, and conflicting rules.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EventOut, events};
use crate::analysis::{self, ParentVerdict, format_percent};
use crate::model::{Inventory, Route, Service};
use crate::rules;
use crate::status::{self, RouteId};

/// A Service in depth.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDescription {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.clusterIP`.
    pub cluster_ip: Option<String>,
    /// Ready endpoints, when known.
    pub ready_endpoints: Option<usize>,
    /// Per port: routes attached.
    pub ports: Vec<PortDescription>,
    /// Routes naming the Service as parent that do not attach.
    pub refused: Vec<ServiceRoute>,
    /// Routes that send traffic to the Service (it is their backend).
    pub backend_of: Vec<BackendUse>,
    /// Rules that match the same requests on the same port.
    pub conflicts: Vec<Conflict>,
    /// Findings in plain words.
    pub analysis: Vec<String>,
    /// Events about the Service.
    pub events: Vec<EventOut>,
}

/// One port and its routes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDescription {
    /// Port number.
    pub port: i32,
    /// Port name.
    pub name: Option<String>,
    /// Routes in the Service's namespace.
    pub producer_routes: Vec<ServiceRoute>,
    /// Routes in other namespaces.
    pub consumer_routes: Vec<ServiceRoute>,
}

/// A route attached (or not) to the Service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    /// The route.
    pub route: RouteId,
    /// `Accepted` as written by the controller (`NoStatus` if not).
    pub accepted: String,
    /// Backends of all rules, as in `status`.
    pub backends: String,
    /// Why it does not attach, for refused routes.
    pub message: Option<String>,
}

/// A route rule that sends traffic to the Service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendUse {
    /// The route.
    pub route: RouteId,
    /// Rule index.
    pub rule: usize,
    /// Port of the backendRef.
    pub port: Option<i32>,
    /// Share of the rule's requests.
    pub percent: f64,
}

/// Two rules of routes on the same port and namespace that match the same
/// requests: the winner serves them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The port.
    pub port: i32,
    /// The match both rules have.
    pub matches: String,
    /// The route that wins (oldest, then by namespace/name).
    pub winner: RouteId,
    /// The route whose rule is shadowed.
    pub shadowed: RouteId,
}

/// Describes a Service.
pub fn describe_service(inv: &Inventory, service: &Service) -> ServiceDescription {
    let (ns, name) = (&service.meta.namespace, &service.meta.name);
    let mut ports: Vec<PortDescription> = service
        .ports
        .iter()
        .map(|p| PortDescription {
            port: p.port,
            name: p.name.clone(),
            producer_routes: Vec::new(),
            consumer_routes: Vec::new(),
        })
        .collect();
    let mut refused = Vec::new();
    let mut analysis = Vec::new();
    for (route, verdict) in parent_verdicts(inv, service) {
        let row_for = |message: Option<String>| ServiceRoute {
            route: route_id(route),
            accepted: route
                .parent_refs
                .iter()
                .find(|p| {
                    p.is_service() && p.namespace(&route.meta.namespace) == ns && &p.name == name
                })
                .map_or("NoStatus".to_owned(), |p| {
                    status::row(inv, route, p).accepted
                }),
            backends: status::backends_cell(
                &route.meta.namespace,
                &status::backend_shares(inv, route),
            ),
            message,
        };
        match verdict {
            ParentVerdict::Attached(on) => {
                for port in &mut ports {
                    if on.contains(&port.port.to_string()) {
                        let list = if &route.meta.namespace == ns {
                            &mut port.producer_routes
                        } else {
                            &mut port.consumer_routes
                        };
                        list.push(row_for(None));
                    }
                }
            }
            ParentVerdict::Refused(r) => {
                analysis.push(format!(
                    "{} {}/{} does not attach ({}): {}. Fix: {}.",
                    route.kind,
                    route.meta.namespace,
                    route.meta.name,
                    r.reason,
                    r.message,
                    r.cause.fix()
                ));
                refused.push(row_for(Some(r.message)));
            }
            ParentVerdict::Unknown => {}
        }
    }
    let conflicts = conflicts(inv, service);
    for c in &conflicts {
        analysis.push(format!(
            "port {}: {} {}/{} and {}/{} both match {}; {}/{} wins (older), the other rule is shadowed.",
            c.port, c.winner.kind, c.winner.namespace, c.winner.name, c.shadowed.namespace,
            c.shadowed.name, c.matches, c.winner.namespace, c.winner.name
        ));
    }
    let mut backend_of = Vec::new();
    for route in &inv.routes {
        for share in status::backend_shares(inv, route) {
            if share.kind == "Service"
                && share.group.is_empty()
                && &share.namespace == ns
                && &share.name == name
            {
                backend_of.push(BackendUse {
                    route: route_id(route),
                    rule: share.rule,
                    port: share.port,
                    percent: share.percent,
                });
            }
        }
    }
    let ready = inv.ready(ns, name);
    if ready == Some(0) && !backend_of.is_empty() {
        let uses: Vec<String> = backend_of
            .iter()
            .map(|b| {
                format!(
                    "{}/{} ({})",
                    b.route.namespace,
                    b.route.name,
                    format_percent(b.percent)
                )
            })
            .collect();
        analysis.push(format!(
            "the Service has no ready endpoints, yet routes send it traffic: {}.",
            uses.join(", ")
        ));
    }
    ServiceDescription {
        namespace: ns.clone(),
        name: name.clone(),
        cluster_ip: service.cluster_ip.clone(),
        ready_endpoints: ready,
        ports,
        refused,
        backend_of,
        conflicts,
        analysis,
        events: events(&inv.events),
    }
}

fn route_id(route: &Route) -> RouteId {
    RouteId {
        kind: route.kind.as_str().to_owned(),
        namespace: route.meta.namespace.clone(),
        name: route.meta.name.clone(),
    }
}

/// Every route with a parentRef naming the Service, with its verdict.
fn parent_verdicts<'a>(
    inv: &'a Inventory,
    service: &'a Service,
) -> Vec<(&'a Route, ParentVerdict)> {
    let (ns, name) = (&service.meta.namespace, &service.meta.name);
    let mut out = Vec::new();
    for route in &inv.routes {
        for parent in &route.parent_refs {
            if parent.is_service()
                && parent.namespace(&route.meta.namespace) == ns
                && &parent.name == name
            {
                out.push((route, analysis::parent(inv, route, parent)));
            }
        }
    }
    out
}

/// Rules of different routes of the same kind and namespace attached to the
/// same port of the Service that match the same requests.
pub fn conflicts(inv: &Inventory, service: &Service) -> Vec<Conflict> {
    conflicts_among(parent_verdicts(inv, service))
}

/// [`conflicts`] from the verdicts of the parentRefs naming one Service.
pub fn conflicts_among<'a>(
    verdicts: impl IntoIterator<Item = (&'a Route, ParentVerdict)>,
) -> Vec<Conflict> {
    // (port, route namespace, kind, match) -> routes, oldest first.
    let mut seen: BTreeMap<(i32, String, String, String), Vec<&Route>> = BTreeMap::new();
    for (route, verdict) in verdicts {
        let ParentVerdict::Attached(on) = verdict else {
            continue;
        };
        for port in on.iter().filter_map(|p| p.parse::<i32>().ok()) {
            for rule in &route.rules {
                for m in rules::match_list(route.kind, rule) {
                    let m = if m == "*" {
                        "PathPrefix /".to_owned()
                    } else {
                        m
                    };
                    let key = (
                        port,
                        route.meta.namespace.clone(),
                        route.kind.as_str().to_owned(),
                        m,
                    );
                    let routes = seen.entry(key).or_default();
                    if !routes.iter().any(|r| std::ptr::eq(*r, route)) {
                        routes.push(route);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((port, _, _, matches), mut routes) in seen {
        routes.sort_by(|a, b| {
            (&a.meta.creation_timestamp, &a.meta.namespace, &a.meta.name).cmp(&(
                &b.meta.creation_timestamp,
                &b.meta.namespace,
                &b.meta.name,
            ))
        });
        for shadowed in routes.iter().skip(1) {
            out.push(Conflict {
                port,
                matches: matches.clone(),
                winner: route_id(routes[0]),
                shadowed: route_id(shadowed),
            });
        }
    }
    out
}
