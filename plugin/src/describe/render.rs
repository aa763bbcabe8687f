//! Descriptions as text, in kubectl describe's shape.

use std::fmt::Write as _;

use super::service::ServiceRoute;
use super::{Description, EventOut, GatewayDescription, RouteDescription, ServiceDescription};
use crate::analysis::format_percent;
use crate::model::Condition;
use crate::status::BackendShare;
use crate::table::{Cell, Table};
use crate::time::{age, parse_rfc3339};

/// A description as text.
pub fn render(description: &Description, now: i64, color: bool) -> String {
    let mut out = String::new();
    match description {
        Description::Route(d) => route(&mut out, d, now, color),
        Description::Gateway(d) => gateway(&mut out, d, now, color),
        Description::Service(d) => service(&mut out, d, now, color),
    }
    out
}

fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
}

fn indented(out: &mut String, text: &str, spaces: usize) {
    for line in text.lines() {
        let _ = writeln!(out, "{:spaces$}{line}", "");
    }
}

fn route(out: &mut String, d: &RouteDescription, now: i64, color: bool) {
    field(out, "Name", &d.route.name);
    field(out, "Namespace", &d.route.namespace);
    field(out, "Kind", &d.route.kind);
    field(
        out,
        "Generation",
        d.generation.map_or("-".to_owned(), |g| g.to_string()),
    );
    field(out, "Age", age(d.creation_timestamp.as_deref(), now));
    field(
        out,
        "Hostnames",
        if d.hostnames.is_empty() {
            "*".to_owned()
        } else {
            d.hostnames.join(", ")
        },
    );
    out.push_str("Parents:\n");
    for p in &d.parents {
        let _ = writeln!(out, "  {}", p.parent.display);
        match &p.controller {
            Some(c) => {
                let _ = writeln!(out, "    Controller: {c}");
                indented(out, &conditions(&p.conditions, now).render(true, color), 4);
            }
            None => out.push_str("    NoStatus: no controller wrote status for this parentRef\n"),
        }
    }
    out.push_str("Rules:\n");
    for r in &d.rules {
        let name = r
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  [{}]{name} Matches: {}", r.index, r.matches);
        let _ = writeln!(out, "      Filters: {}", r.filters);
        indented(
            out,
            &backends(&d.route.namespace, &r.backends).render(true, color),
            6,
        );
    }
    list(out, "Analysis", &d.analysis);
    events(out, &d.events, now);
}

fn gateway(out: &mut String, d: &GatewayDescription, now: i64, color: bool) {
    field(out, "Name", &d.name);
    field(out, "Namespace", &d.namespace);
    let class = match (&d.class_controller, &d.class_accepted) {
        (Some(c), Some(a)) => format!("{} (controller {c}, Accepted {a})", d.class_name),
        _ => format!("{} (missing)", d.class_name),
    };
    field(out, "Class", class);
    if d.conditions.is_empty() {
        out.push_str("Conditions:   NoStatus\n");
    } else {
        out.push_str("Conditions:\n");
        indented(out, &conditions(&d.conditions, now).render(true, color), 2);
    }
    out.push_str("Listeners:\n");
    let mut t = Table::new(&[
        "NAME",
        "PORT",
        "PROTOCOL",
        "HOSTNAME",
        "NAMESPACES",
        "KINDS",
        "ATTACHED",
        "STATUS",
    ]);
    for l in &d.listeners {
        t.rows.push(vec![
            Cell::plain(&l.name),
            Cell::plain(l.port.to_string()),
            Cell::plain(&l.protocol),
            Cell::plain(l.hostname.clone().unwrap_or_else(|| "*".to_owned())),
            Cell::plain(&l.allowed_namespaces),
            Cell::plain(if l.allowed_kinds.is_empty() {
                "-".to_owned()
            } else {
                l.allowed_kinds.join(",")
            }),
            Cell::plain(format!(
                "{} (status: {})",
                l.attached_routes,
                l.attached_routes_status
                    .map_or("-".to_owned(), |n| n.to_string())
            )),
            Cell::plain(summary(&l.conditions)),
        ]);
    }
    indented(out, &t.render(true, color), 2);
    out.push_str("Routes:\n");
    let mut t = Table::new(&["ROUTE", "PARENT", "ACCEPTED", "ATTACHES", "LISTENERS"]);
    for r in &d.routes {
        t.rows.push(vec![
            Cell::plain(format!(
                "{}/{}/{}",
                r.route.kind.to_lowercase(),
                r.route.namespace,
                r.route.name
            )),
            Cell::plain(&r.parent.display),
            Cell::status(&r.accepted),
            Cell::status(
                r.attaches
                    .map_or("Unknown", |a| if a { "True" } else { "False" }),
            ),
            Cell::plain(if r.listeners.is_empty() {
                "-".to_owned()
            } else {
                r.listeners.join(",")
            }),
        ]);
    }
    if d.routes.is_empty() {
        out.push_str("  <none>\n");
    } else {
        indented(out, &t.render(true, color), 2);
    }
    list(out, "Analysis", &d.analysis);
    events(out, &d.events, now);
}

fn service(out: &mut String, d: &ServiceDescription, now: i64, color: bool) {
    field(out, "Name", &d.name);
    field(out, "Namespace", &d.namespace);
    field(
        out,
        "ClusterIP",
        d.cluster_ip.clone().unwrap_or_else(|| "-".to_owned()),
    );
    field(
        out,
        "Endpoints",
        d.ready_endpoints
            .map_or("unknown".to_owned(), |n| format!("{n} ready")),
    );
    out.push_str("Ports:\n");
    for p in &d.ports {
        let name = p
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}{name}", p.port);
        for (title, routes) in [
            ("Producer routes", &p.producer_routes),
            ("Consumer routes", &p.consumer_routes),
        ] {
            let _ = writeln!(out, "    {title}:");
            service_routes(out, routes, color, 6);
        }
    }
    if !d.refused.is_empty() {
        out.push_str("Not attached:\n");
        service_routes(out, &d.refused, color, 2);
    }
    out.push_str("Backend of:\n");
    if d.backend_of.is_empty() {
        out.push_str("  <none>\n");
    }
    for b in &d.backend_of {
        let port = b.port.map(|p| format!(":{p}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}/{}/{} rule {} -> {}{port} {}",
            b.route.kind.to_lowercase(),
            b.route.namespace,
            b.route.name,
            b.rule,
            d.name,
            format_percent(b.percent)
        );
    }
    let conflicts: Vec<String> = d
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "port {}: {} {}/{} shadows {}/{} on {}",
                c.port,
                c.winner.kind,
                c.winner.namespace,
                c.winner.name,
                c.shadowed.namespace,
                c.shadowed.name,
                c.matches
            )
        })
        .collect();
    list(out, "Conflicts", &conflicts);
    list(out, "Analysis", &d.analysis);
    events(out, &d.events, now);
}

fn service_routes(out: &mut String, routes: &[ServiceRoute], color: bool, spaces: usize) {
    if routes.is_empty() {
        let _ = writeln!(out, "{:spaces$}<none>", "");
        return;
    }
    let mut t = Table::new(&["ROUTE", "ACCEPTED", "BACKENDS"]);
    for r in routes {
        t.rows.push(vec![
            Cell::plain(format!(
                "{}/{}/{}",
                r.route.kind.to_lowercase(),
                r.route.namespace,
                r.route.name
            )),
            Cell::status(&r.accepted),
            Cell::plain(&r.backends),
        ]);
    }
    indented(out, &t.render(true, color), spaces);
}

fn conditions(conditions: &[Condition], now: i64) -> Table {
    let mut t = Table::new(&[
        "TYPE",
        "STATUS",
        "REASON",
        "OBSERVED",
        "LAST TRANSITION",
        "MESSAGE",
    ]);
    for c in conditions {
        t.rows.push(vec![
            Cell::plain(&c.type_),
            Cell::status(&c.status),
            Cell::plain(&c.reason),
            Cell::plain(
                c.observed_generation
                    .map_or("-".to_owned(), |g| g.to_string()),
            ),
            Cell::plain(
                c.last_transition_time
                    .as_deref()
                    .filter(|t| parse_rfc3339(t).is_some())
                    .map_or("-".to_owned(), |t| format!("{} ago", age(Some(t), now))),
            ),
            Cell::plain(&c.message),
        ]);
    }
    t
}

fn backends(route_ns: &str, backends: &[BackendShare]) -> Table {
    let mut t = Table::new(&[
        "BACKEND", "WEIGHT", "SHARE", "EXISTS", "READY", "REFGRANT", "PROBLEM",
    ]);
    let yes_no = |b: Option<bool>| b.map_or("?", |b| if b { "yes" } else { "no" }).to_owned();
    for b in backends {
        let port = b.port.map(|p| format!(":{p}")).unwrap_or_default();
        let kind = if b.kind == "Service" && b.group.is_empty() {
            String::new()
        } else {
            format!("{}/", b.kind)
        };
        t.rows.push(vec![
            Cell::plain(format!("{kind}{}/{}{port}", b.namespace, b.name)),
            Cell::plain(b.weight.to_string()),
            Cell::plain(format_percent(b.percent)),
            Cell::plain(yes_no(b.exists)),
            Cell::plain(b.ready_endpoints.map_or("?".to_owned(), |n| n.to_string())),
            Cell::plain(match (b.namespace == route_ns, b.permitted) {
                (true, _) => "-",
                (false, true) => "granted",
                (false, false) => "missing",
            }),
            Cell::status(b.problem.clone().unwrap_or_else(|| "-".to_owned())),
        ]);
    }
    if backends.is_empty() {
        t.rows.push(vec![
            Cell::plain("<none>"),
            Cell::plain(""),
            Cell::plain(""),
            Cell::plain(""),
            Cell::plain(""),
            Cell::plain(""),
            Cell::plain(""),
        ]);
    }
    t
}

fn summary(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        return "NoStatus".to_owned();
    }
    conditions
        .iter()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect::<Vec<_>>()
        .join(",")
}

fn list(out: &mut String, title: &str, items: &[String]) {
    let _ = writeln!(out, "{title}:");
    if items.is_empty() {
        out.push_str("  <none>\n");
    }
    for item in items {
        let _ = writeln!(out, "  - {item}");
    }
}

fn events(out: &mut String, events: &[EventOut], now: i64) {
    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
        return;
    }
    let mut t = Table::new(&["TYPE", "REASON", "AGE", "COUNT", "MESSAGE"]);
    for e in events {
        t.rows.push(vec![
            Cell::plain(&e.type_),
            Cell::plain(&e.reason),
            Cell::plain(age(e.last_seen.as_deref(), now)),
            Cell::plain(e.count.to_string()),
            Cell::plain(&e.message),
        ]);
    }
    indented(out, &t.render(true, false), 2);
}
