//! `kubectl gateway tree`: GatewayClass → Gateway (or Service) → route →
//! rule → backend with its share, as text, Graphviz dot or Mermaid.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::{self, ParentVerdict, format_percent};
use crate::model::{Inventory, ParentRef, Route};
use crate::rules;
use crate::status;

/// A node of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What the node shows.
    pub label: String,
    /// Its children.
    pub children: Vec<Node>,
}

/// What to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// `gatewayclass`, `gateway`, `service` or a route kind; all when unset.
    pub kind: Option<String>,
    /// Name of the object.
    pub name: Option<String>,
    /// Namespace of roots (Gateways, Services); all when unset.
    pub namespace: Option<String>,
}

// === impl Node ===

impl Node {
    fn leaf(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            children: Vec::new(),
        }
    }
}

/// The forest for a target.
pub fn build(inv: &Inventory, target: &Target) -> Vec<Node> {
    let kind = target.kind.as_deref().map(str::to_ascii_lowercase);
    let name_ok = |n: &str| target.name.as_deref().is_none_or(|want| want == n);
    let ns_ok = |n: &str| target.namespace.as_deref().is_none_or(|want| want == n);
    let mut roots = Vec::new();
    if matches!(kind.as_deref(), None | Some("gatewayclass" | "gateway")) {
        let mut classes: Vec<String> = inv
            .gateway_classes
            .iter()
            .map(|c| c.meta.name.clone())
            .collect();
        for g in &inv.gateways {
            if !classes.contains(&g.class_name) {
                classes.push(g.class_name.clone());
            }
        }
        for class in classes {
            if kind.as_deref() == Some("gatewayclass") && !name_ok(&class) {
                continue;
            }
            let label = match inv.gateway_class(&class) {
                Some(c) => format!("GatewayClass {class} ({})", c.controller_name),
                None => format!("GatewayClass {class} (missing)"),
            };
            let gateways: Vec<Node> = inv
                .gateways
                .iter()
                .filter(|g| g.class_name == class)
                .filter(|g| kind.as_deref() != Some("gateway") || name_ok(&g.meta.name))
                .filter_map(|g| {
                    let children: Vec<Node> = attached_routes(inv, |p, r| {
                        p.is_gateway()
                            && p.namespace(&r.meta.namespace) == g.meta.namespace
                            && p.name == g.meta.name
                    })
                    .map(|(r, p)| route_node(inv, r, Some(p)))
                    .collect();
                    // Routes are already scoped: a Gateway elsewhere shows
                    // when routes of the namespace attach to it.
                    (ns_ok(&g.meta.namespace) || !children.is_empty()).then(|| Node {
                        label: format!("Gateway {}/{}", g.meta.namespace, g.meta.name),
                        children,
                    })
                })
                .collect();
            if !gateways.is_empty() || kind.as_deref() == Some("gatewayclass") {
                roots.push(Node {
                    label,
                    children: gateways,
                });
            }
        }
    }
    if matches!(kind.as_deref(), None | Some("service" | "svc")) {
        for s in &inv.services {
            if !name_ok(&s.meta.name) || !ns_ok(&s.meta.namespace) {
                continue;
            }
            let children: Vec<Node> = attached_routes(inv, |p, r| {
                p.is_service()
                    && p.namespace(&r.meta.namespace) == s.meta.namespace
                    && p.name == s.meta.name
            })
            .map(|(r, p)| route_node(inv, r, Some(p)))
            .collect();
            if !children.is_empty() || kind.is_some() {
                roots.push(Node {
                    label: format!("Service {}/{}", s.meta.namespace, s.meta.name),
                    children,
                });
            }
        }
    }
    if let Some(k) = kind
        .as_deref()
        .and_then(|k| k.parse::<crate::model::RouteKind>().ok())
    {
        for r in inv
            .routes
            .iter()
            .filter(|r| r.kind == k && name_ok(&r.meta.name))
        {
            roots.push(route_node(inv, r, None));
        }
    }
    roots
}

fn attached_routes<'a>(
    inv: &'a Inventory,
    pick: impl Fn(&ParentRef, &Route) -> bool + 'a,
) -> impl Iterator<Item = (&'a Route, &'a ParentRef)> + 'a {
    inv.routes
        .iter()
        .flat_map(|r| r.parent_refs.iter().map(move |p| (r, p)))
        .filter(move |(r, p)| pick(p, r))
}

fn route_node(inv: &Inventory, route: &Route, parent: Option<&ParentRef>) -> Node {
    let mut label = format!(
        "{} {}/{}",
        route.kind, route.meta.namespace, route.meta.name
    );
    if let Some(p) = parent {
        let row = status::row(inv, route, p);
        let verdict = match analysis::parent(inv, route, p) {
            ParentVerdict::Attached(on) => {
                let what = if p.is_service() { "port" } else { "listener" };
                format!("{what} {}", on.join(","))
            }
            ParentVerdict::Refused(r) => format!("not attached: {}", r.reason),
            ParentVerdict::Unknown => "attachment unknown".to_owned(),
        };
        label.push_str(&format!(" ({verdict}; Accepted={})", row.accepted));
    }
    let shares = status::backend_shares(inv, route);
    let children = route
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| Node {
            label: format!("rule {i}: {}", rules::matches(route.kind, rule)),
            children: shares
                .iter()
                .filter(|b| b.rule == i)
                .map(|b| {
                    let cell =
                        status::backends_cell(&route.meta.namespace, std::slice::from_ref(b));
                    let (name, _) = cell.rsplit_once('=').unwrap_or((cell.as_str(), ""));
                    let mut text = format!("{name} {}", format_percent(b.percent));
                    if let Some(problem) = &b.problem {
                        text.push_str(&format!(" ({problem})"));
                    }
                    Node::leaf(text)
                })
                .collect(),
        })
        .collect();
    Node { label, children }
}

/// The forest as an indented text tree.
pub fn text(roots: &[Node]) -> String {
    fn walk(out: &mut String, node: &Node, prefix: &str) {
        let count = node.children.len();
        for (i, child) in node.children.iter().enumerate() {
            let last = i + 1 == count;
            let _ = writeln!(
                out,
                "{prefix}{}{}",
                if last { "└── " } else { "├── " },
                child.label
            );
            walk(
                out,
                child,
                &format!("{prefix}{}", if last { "    " } else { "│   " }),
            );
        }
    }
    let mut out = String::new();
    for root in roots {
        let _ = writeln!(out, "{}", root.label);
        walk(&mut out, root, "");
    }
    out
}

/// The forest as a Graphviz digraph.
pub fn dot(roots: &[Node]) -> String {
    let mut out = String::from("digraph gateway {\n  rankdir=LR;\n  node [shape=box];\n");
    let mut next = 0;
    for root in roots {
        edges(root, None, &mut next, &mut |id, parent, label| {
            let _ = writeln!(
                out,
                "  n{id} [label=\"{}\"];",
                label.replace('\\', "\\\\").replace('"', "\\\"")
            );
            if let Some(p) = parent {
                let _ = writeln!(out, "  n{p} -> n{id};");
            }
        });
    }
    out.push_str("}\n");
    out
}

/// The forest as a Mermaid flowchart.
pub fn mermaid(roots: &[Node]) -> String {
    let mut out = String::from("graph LR\n");
    let mut next = 0;
    for root in roots {
        edges(root, None, &mut next, &mut |id, parent, label| {
            let label = label.replace('"', "#quot;");
            match parent {
                Some(p) => {
                    let _ = writeln!(out, "  n{p} --> n{id}[\"{label}\"]");
                }
                None => {
                    let _ = writeln!(out, "  n{id}[\"{label}\"]");
                }
            }
        });
    }
    out
}

fn edges(
    node: &Node,
    parent: Option<usize>,
    next: &mut usize,
    emit: &mut dyn FnMut(usize, Option<usize>, &str),
) {
    let id = *next;
    *next += 1;
    emit(id, parent, &node.label);
    for child in &node.children {
        edges(child, Some(id), next, emit);
    }
}
