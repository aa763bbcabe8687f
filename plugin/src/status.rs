//! `kubectl gateway status`: one row per (route, parentRef).
//!
//! A row shows what the controller wrote for that parentRef (Accepted,
//! ResolvedRefs, the first condition that is not `True`), and the backends
//! of every rule with their effective share. Rows that need attention come
//! first: `NoStatus` (no controller wrote an entry for this parentRef),
//! `Stale` (the entry was computed for an older generation), then refused.

mod backends;
mod render;

use serde::Serialize;

use crate::model::{Inventory, ParentRef, Route, RouteKind, find_condition};

pub use backends::{backend_shares, backends_cell};
pub use render::{table, wide_table};

/// Why a row needs attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Attention {
    /// No controller wrote status for this parentRef.
    NoStatus,
    /// The status is for an older generation than the spec's.
    Stale,
    /// Accepted or ResolvedRefs is not `True`.
    NotReady,
}

/// A reference to a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteId {
    /// `HTTPRoute`, `GRPCRoute`, ...
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A parentRef, with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentId {
    /// Group (`""` for Services).
    pub group: String,
    /// `Gateway` or `Service`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `sectionName`, when set.
    pub section_name: Option<String>,
    /// `port`, when set.
    pub port: Option<i32>,
    /// `gw/ns/name#listener` or `svc/ns/name:port`.
    pub display: String,
}

/// A backend of a rule, with its share.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendShare {
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    /// Group (`""` for Services).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Port.
    pub port: Option<i32>,
    /// Weight as configured (1 when unset).
    pub weight: u64,
    /// Percent of the rule's requests.
    pub percent: f64,
    /// Whether the Service exists (`null` when not known).
    pub exists: Option<bool>,
    /// Ready endpoints (`null` when not known).
    pub ready_endpoints: Option<usize>,
    /// Whether the reference is allowed (same namespace or a ReferenceGrant).
    pub permitted: bool,
    /// Spec reason when the ref does not resolve (`BackendNotFound`, ...).
    pub problem: Option<String>,
    /// Why it does not resolve, in plain words.
    pub message: Option<String>,
}

/// One row: a route and one of its parentRefs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    /// The route.
    pub route: RouteId,
    /// The parentRef.
    pub parent: ParentId,
    /// `True`, `False`, `Unknown` or `NoStatus`.
    pub accepted: String,
    /// `True`, `False`, `Unknown` or `NoStatus`.
    pub resolved_refs: String,
    /// First non-`True` condition's reason; `NoStatus` or `Stale`; empty
    /// when all is well.
    pub reason: String,
    /// Why the row needs attention, if it does.
    pub attention: Option<Attention>,
    /// Backends of every rule.
    pub backends: Vec<BackendShare>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// The controller that wrote the entry.
    pub controller: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The oldest `observedGeneration` of the entry's conditions.
    pub observed_generation: Option<i64>,
    /// The parent Gateway's `Programmed` status (`null` for Services).
    pub parent_programmed: Option<String>,
    /// `metadata.creationTimestamp`.
    pub creation_timestamp: Option<String>,
}

/// Which rows to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Route kinds whose routes are all kept.
    pub kinds: Vec<RouteKind>,
    /// Single routes to keep (with `kinds`, every route when both are empty).
    pub names: Vec<(RouteKind, String)>,
    /// `--parent KIND/NS/NAME`.
    pub parent: Option<ParentFilter>,
}

/// `--parent gw/ns/name` or `svc/ns/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentFilter {
    /// `Gateway` or `Service`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A `--parent` value that is not `KIND/NS/NAME`.
#[derive(Debug, thiserror::Error)]
#[error("invalid --parent {0:?}: expected gateway/NAMESPACE/NAME or service/NAMESPACE/NAME")]
pub struct BadParent(String);

// === impl ParentFilter ===

impl std::str::FromStr for ParentFilter {
    type Err = BadParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let [kind, namespace, name] = parts.as_slice() else {
            return Err(BadParent(s.to_owned()));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "gw" | "gateway" | "gateways" => "Gateway",
            "svc" | "service" | "services" => "Service",
            _ => return Err(BadParent(s.to_owned())),
        };
        Ok(Self {
            kind: kind.to_owned(),
            namespace: (*namespace).to_owned(),
            name: (*name).to_owned(),
        })
    }
}

/// The rows of every route in the snapshot that passes the filter, those
/// needing attention first.
pub fn rows(inv: &Inventory, filter: &Filter) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = inv
        .routes
        .iter()
        .filter(|r| {
            (filter.kinds.is_empty() && filter.names.is_empty())
                || filter.kinds.contains(&r.kind)
                || filter
                    .names
                    .iter()
                    .any(|(k, n)| *k == r.kind && *n == r.meta.name)
        })
        .flat_map(|r| {
            r.parent_refs
                .iter()
                .filter(|p| parent_matches(filter.parent.as_ref(), r, p))
                .map(|p| row(inv, r, p))
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort_by(|a, b| {
        let rank = |r: &StatusRow| r.attention.map_or(3, |a| a as u8);
        (rank(a), &a.route.namespace, &a.route.name, &a.route.kind).cmp(&(
            rank(b),
            &b.route.namespace,
            &b.route.name,
            &b.route.kind,
        ))
    });
    rows
}

fn parent_matches(filter: Option<&ParentFilter>, route: &Route, parent: &ParentRef) -> bool {
    filter.is_none_or(|f| {
        parent.kind() == f.kind
            && parent.namespace(&route.meta.namespace) == f.namespace
            && parent.name == f.name
    })
}

/// The row of one (route, parentRef).
pub fn row(inv: &Inventory, route: &Route, parent: &ParentRef) -> StatusRow {
    let ns = &route.meta.namespace;
    let entry = route.status_for(parent).next();
    let (accepted, resolved_refs, reason, attention, observed) = match entry {
        None => {
            let none = "NoStatus".to_owned();
            (
                none.clone(),
                none.clone(),
                none,
                Some(Attention::NoStatus),
                None,
            )
        }
        Some(entry) => {
            let status = |t: &str| {
                find_condition(&entry.conditions, t)
                    .map_or("Unknown".to_owned(), |c| c.status.clone())
            };
            let observed = entry
                .conditions
                .iter()
                .filter_map(|c| c.observed_generation)
                .min();
            let stale = matches!((observed, route.meta.generation), (Some(o), Some(g)) if o < g);
            let first_bad = entry.conditions.iter().find(|c| !c.is_true());
            let (accepted, resolved) = (status("Accepted"), status("ResolvedRefs"));
            let not_ready = accepted != "True" || resolved != "True";
            let reason = match (stale, first_bad) {
                (true, _) => "Stale".to_owned(),
                (false, Some(c)) => c.reason.clone(),
                (false, None) if not_ready => "Unknown".to_owned(),
                (false, None) => String::new(),
            };
            let attention = if stale {
                Some(Attention::Stale)
            } else if not_ready || first_bad.is_some() {
                Some(Attention::NotReady)
            } else {
                None
            };
            (accepted, resolved, reason, attention, observed)
        }
    };
    let parent_programmed = parent.is_gateway().then(|| {
        inv.gateway(parent.namespace(ns), &parent.name)
            .and_then(|g| find_condition(&g.conditions, "Programmed"))
            .map_or("Unknown".to_owned(), |c| c.status.clone())
    });
    StatusRow {
        route: RouteId {
            kind: route.kind.as_str().to_owned(),
            namespace: ns.clone(),
            name: route.meta.name.clone(),
        },
        parent: parent_id(route, parent),
        accepted,
        resolved_refs,
        reason,
        attention,
        backends: backend_shares(inv, route),
        hostnames: route.hostnames.clone(),
        controller: entry.map(|e| e.controller_name.clone()),
        generation: route.meta.generation,
        observed_generation: observed,
        parent_programmed,
        creation_timestamp: route.meta.creation_timestamp.clone(),
    }
}

/// A parentRef with defaults applied.
pub fn parent_id(route: &Route, parent: &ParentRef) -> ParentId {
    ParentId {
        group: parent.group().to_owned(),
        kind: parent.kind().to_owned(),
        namespace: parent.namespace(&route.meta.namespace).to_owned(),
        name: parent.name.clone(),
        section_name: parent.section_name.clone(),
        port: parent.port,
        display: parent.display(&route.meta.namespace),
    }
}

#[cfg(test)]
mod tests;
