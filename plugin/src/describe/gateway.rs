//! `describe gateway/NAME`: class, listeners, and every route that names
//! the Gateway with whether it attaches.

use serde::Serialize;

use super::{EventOut, events};
use crate::analysis::{self, ParentVerdict};
use crate::model::{Condition, Gateway, Inventory, find_condition};
use crate::status::{self, ParentId, RouteId};

/// A Gateway in depth.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayDescription {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.gatewayClassName`.
    pub class_name: String,
    /// The class's `spec.controllerName`, when the class exists.
    pub class_controller: Option<String>,
    /// The class's `Accepted` status, when the class exists.
    pub class_accepted: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// Listeners.
    pub listeners: Vec<ListenerDescription>,
    /// Routes that name this Gateway.
    pub routes: Vec<AttachedRoute>,
    /// Findings in plain words.
    pub analysis: Vec<String>,
    /// Events about the Gateway.
    pub events: Vec<EventOut>,
}

/// A listener.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerDescription {
    /// Name.
    pub name: String,
    /// Port.
    pub port: i32,
    /// Protocol.
    pub protocol: String,
    /// Hostname (`null` = any).
    pub hostname: Option<String>,
    /// Allowed namespaces, in short words (`Same`, `All`, `Selector(k=v)`).
    pub allowed_namespaces: String,
    /// Allowed kinds as written (empty = by protocol).
    pub allowed_kinds: Vec<String>,
    /// `attachedRoutes` as the controller reports it.
    pub attached_routes_status: Option<i64>,
    /// Routes attached by Ferry's rules.
    pub attached_routes: usize,
    /// The listener's status conditions.
    pub conditions: Vec<Condition>,
}

/// A route that names the Gateway in a parentRef.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedRoute {
    /// The route.
    pub route: RouteId,
    /// The parentRef.
    pub parent: ParentId,
    /// `Accepted` as the controller wrote it (`NoStatus` when it did not).
    pub accepted: String,
    /// Whether it attaches by Ferry's rules.
    pub attaches: Option<bool>,
    /// The listeners it attaches to.
    pub listeners: Vec<String>,
    /// Why not, when it does not.
    pub message: Option<String>,
}

/// Describes a Gateway.
pub fn describe_gateway(inv: &Inventory, gateway: &Gateway) -> GatewayDescription {
    let (ns, name) = (&gateway.meta.namespace, &gateway.meta.name);
    let class = inv.gateway_class(&gateway.class_name);
    let mut analysis = Vec::new();
    if class.is_none() {
        analysis.push(format!(
            "GatewayClass {} does not exist: no controller will program this Gateway. \
             Fix: create the class or set spec.gatewayClassName to an installed one (e.g. ferry).",
            gateway.class_name
        ));
    }
    let mut routes = Vec::new();
    for route in &inv.routes {
        for parent in &route.parent_refs {
            let targets_us = parent.is_gateway()
                && parent.namespace(&route.meta.namespace) == ns
                && &parent.name == name;
            if !targets_us {
                continue;
            }
            let row = status::row(inv, route, parent);
            let verdict = analysis::parent(inv, route, parent);
            let (attaches, listeners, message) = match verdict {
                ParentVerdict::Attached(l) => (Some(true), l, None),
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
                    (Some(false), Vec::new(), Some(r.message))
                }
                ParentVerdict::Unknown => (None, Vec::new(), None),
            };
            routes.push(AttachedRoute {
                route: row.route,
                parent: row.parent,
                accepted: row.accepted,
                attaches,
                listeners,
                message,
            });
        }
    }
    let listeners = gateway
        .listeners
        .iter()
        .map(|l| {
            let status = gateway.listener_status.iter().find(|s| s.name == l.name);
            let allowed = l.allowed_routes.clone().unwrap_or_default();
            let namespaces = allowed.namespaces.unwrap_or_default();
            let from = namespaces.from.unwrap_or_else(|| "Same".to_owned());
            let allowed_namespaces = match namespaces.selector {
                Some(sel) if from == "Selector" => format!("Selector({})", sel),
                _ => from,
            };
            ListenerDescription {
                name: l.name.clone(),
                port: l.port,
                protocol: l.protocol.clone(),
                hostname: l.hostname.clone(),
                allowed_namespaces,
                allowed_kinds: allowed.kinds.iter().map(|k| k.kind.clone()).collect(),
                attached_routes_status: status.map(|s| s.attached_routes),
                attached_routes: routes
                    .iter()
                    .filter(|r| r.listeners.contains(&l.name))
                    .count(),
                conditions: status.map(|s| s.conditions.clone()).unwrap_or_default(),
            }
        })
        .collect();
    GatewayDescription {
        namespace: ns.clone(),
        name: name.clone(),
        class_name: gateway.class_name.clone(),
        class_controller: class.map(|c| c.controller_name.clone()),
        class_accepted: class.map(|c| {
            find_condition(&c.conditions, "Accepted")
                .map_or("Unknown".to_owned(), |c| c.status.clone())
        }),
        conditions: gateway.conditions.clone(),
        listeners,
        routes,
        analysis,
        events: events(&inv.events),
    }
}
