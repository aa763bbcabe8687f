//! `kubectl gateway describe`: one object in depth, with an analysis in
//! plain words of why its traffic goes where it goes.
//!
//! Each `describe_*` function builds a serializable description from the
//! snapshot (for `-o json|yaml`), and [`render`] prints it as text.

mod gateway;
mod render;
mod service;

use serde::Serialize;

use crate::analysis::{self, ParentVerdict, format_percent};
use crate::model::{Condition, Event, Inventory, Route, RouteKind};
use crate::rules;
use crate::status::{self, Attention, BackendShare, ParentId, RouteId};

pub use gateway::{GatewayDescription, describe_gateway};
pub use render::render;
pub use service::{Conflict, ServiceDescription, conflicts, conflicts_among, describe_service};

/// Any description.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Description {
    /// A route.
    Route(RouteDescription),
    /// A Gateway.
    Gateway(GatewayDescription),
    /// A Service.
    Service(ServiceDescription),
}

/// A route in depth.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDescription {
    /// The route.
    pub route: RouteId,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`.
    pub creation_timestamp: Option<String>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// One entry per parentRef.
    pub parents: Vec<ParentDescription>,
    /// One entry per rule.
    pub rules: Vec<RuleDescription>,
    /// Findings in plain words.
    pub analysis: Vec<String>,
    /// Events about the route.
    pub events: Vec<EventOut>,
}

/// A parentRef: what the controller wrote and what Ferry's rules say.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentDescription {
    /// The parentRef.
    pub parent: ParentId,
    /// The controller that wrote the entry, if any.
    pub controller: Option<String>,
    /// The entry's conditions (empty with no status).
    pub conditions: Vec<Condition>,
    /// Why it needs attention.
    pub attention: Option<Attention>,
    /// Whether it attaches by Ferry's rules (`null` when the parent's kind
    /// could not be read).
    pub attaches: Option<bool>,
    /// Listeners or ports it attaches to.
    pub attached_to: Vec<String>,
    /// The spec reason when it does not attach.
    pub reason: Option<String>,
    /// Why it does not attach.
    pub message: Option<String>,
}

/// A rule: matches, filters, backends.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDescription {
    /// Index in `spec.rules`.
    pub index: usize,
    /// `name`, when set.
    pub name: Option<String>,
    /// Matches in short words.
    pub matches: String,
    /// Filters in short words.
    pub filters: String,
    /// Backends with shares.
    pub backends: Vec<BackendShare>,
}

/// An event.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventOut {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Times seen.
    pub count: i32,
    /// Last seen.
    pub last_seen: Option<String>,
}

/// Describes a route found in the snapshot.
pub fn describe_route(inv: &Inventory, route: &Route) -> RouteDescription {
    let ns = &route.meta.namespace;
    let mut analysis = Vec::new();
    let parents = route
        .parent_refs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let row = status::row(inv, route, p);
            let entry = route.status_for(p).next();
            let verdict = analysis::parent(inv, route, p);
            let what = format!("parentRef[{i}] {}", p.display(ns));
            analysis.push(match &verdict {
                ParentVerdict::Attached(to) => {
                    let on = if p.is_service() { "port" } else { "listener" };
                    format!("{what} attaches ({on} {}).", to.join(", "))
                }
                ParentVerdict::Refused(r) => format!(
                    "{what} does not attach ({}): {}. Fix: {}.",
                    r.reason, r.message, r.cause.fix()
                ),
                ParentVerdict::Unknown => {
                    format!("{what}: its kind could not be read, so attachment is not analysed.")
                }
            });
            match row.attention {
                Some(Attention::NoStatus) => analysis.push(format!(
                    "{what}: no controller wrote status for it: is the Ferry control plane running, \
                     and does the parent belong to it?"
                )),
                Some(Attention::Stale) => analysis.push(format!(
                    "{what}: the status is for generation {}, the route is at generation {}: \
                     the controller has not caught up.",
                    show(row.observed_generation),
                    show(row.generation)
                )),
                _ => {}
            }
            let accepted = row.accepted.as_str();
            let attaches = match &verdict {
                ParentVerdict::Attached(_) => Some(true),
                ParentVerdict::Refused(_) => Some(false),
                ParentVerdict::Unknown => None,
            };
            if let (Some(a), "True" | "False") = (attaches, accepted)
                && a != (accepted == "True")
            {
                analysis.push(format!(
                    "{what}: the controller reports Accepted={accepted}, but by Ferry's rules \
                     it {} attach (the status may be stale or from another controller).",
                    if a { "does" } else { "does not" }
                ));
            }
            let (attached_to, reason, message) = match verdict {
                ParentVerdict::Attached(to) => (to, None, None),
                ParentVerdict::Refused(r) => {
                    (Vec::new(), Some(r.reason.as_str().to_owned()), Some(r.message))
                }
                ParentVerdict::Unknown => (Vec::new(), None, None),
            };
            ParentDescription {
                parent: row.parent,
                controller: entry.map(|e| e.controller_name.clone()),
                conditions: entry.map(|e| e.conditions.clone()).unwrap_or_default(),
                attention: row.attention,
                attaches,
                attached_to,
                reason,
                message,
            }
        })
        .collect();
    let shares = status::backend_shares(inv, route);
    let rules = route
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let backends: Vec<BackendShare> =
                shares.iter().filter(|b| b.rule == i).cloned().collect();
            rule_findings(route.kind, i, &backends, &mut analysis);
            RuleDescription {
                index: i,
                name: rule.name.clone(),
                matches: rules::matches(route.kind, rule),
                filters: rules::filters(rule),
                backends,
            }
        })
        .collect();
    RouteDescription {
        route: RouteId {
            kind: route.kind.as_str().to_owned(),
            namespace: ns.clone(),
            name: route.meta.name.clone(),
        },
        generation: route.meta.generation,
        creation_timestamp: route.meta.creation_timestamp.clone(),
        hostnames: route.hostnames.clone(),
        parents,
        rules,
        analysis,
        events: events(&inv.events),
    }
}

fn rule_findings(kind: RouteKind, i: usize, backends: &[BackendShare], out: &mut Vec<String>) {
    let failure = match kind {
        RouteKind::Http | RouteKind::Grpc => "get HTTP 500",
        _ => "are refused",
    };
    if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
        out.push(format!(
            "rule {i}: every backend has weight 0: requests matching it {failure}."
        ));
    }
    for b in backends {
        let name = match b.port {
            Some(port) => format!("{}/{}:{port}", b.namespace, b.name),
            None => format!("{}/{}", b.namespace, b.name),
        };
        if let (Some(problem), Some(message)) = (&b.problem, &b.message) {
            out.push(format!(
                "rule {i} backend {name} ({problem}): {message}; its share ({}) of requests {failure}.",
                format_percent(b.percent)
            ));
        } else if b.weight == 0 && backends.iter().any(|o| o.weight > 0) {
            out.push(format!(
                "rule {i} backend {name} has weight 0: it gets no traffic."
            ));
        } else if b.ready_endpoints == Some(0) && b.weight > 0 {
            out.push(format!(
                "rule {i} backend {name} has no ready endpoints: its share ({}) of requests fails (503).",
                format_percent(b.percent)
            ));
        }
    }
}

/// Events as described.
pub fn events(events: &[Event]) -> Vec<EventOut> {
    events
        .iter()
        .map(|e| EventOut {
            type_: e.type_.clone(),
            reason: e.reason.clone(),
            message: e.message.clone(),
            count: e.count,
            last_seen: e.last_seen.clone(),
        })
        .collect()
}

fn show(generation: Option<i64>) -> String {
    generation.map_or("?".to_owned(), |g| g.to_string())
}
