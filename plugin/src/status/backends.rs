//! Each rule's backends with their effective shares, for rows and cells.

use super::BackendShare;
use crate::analysis::{self, format_percent};
use crate::model::{Inventory, Route};

/// Every rule's backends with their shares and whether they resolve.
pub fn backend_shares(inv: &Inventory, route: &Route) -> Vec<BackendShare> {
    let ns = &route.meta.namespace;
    route
        .rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| {
            analysis::shares(rule).into_iter().map(move |share| {
                let verdict = analysis::backend(inv, route, &share.backend);
                let b = &share.backend;
                BackendShare {
                    rule: i,
                    group: b.group().to_owned(),
                    kind: b.kind().to_owned(),
                    namespace: b.namespace(ns).to_owned(),
                    name: b.name.clone(),
                    port: b.port,
                    weight: share.weight,
                    percent: share.percent,
                    exists: verdict.exists,
                    ready_endpoints: verdict.ready,
                    permitted: verdict.permitted,
                    problem: verdict
                        .refusal
                        .as_ref()
                        .map(|r| r.reason.as_str().to_owned()),
                    message: verdict.refusal.map(|r| r.message),
                }
            })
        })
        .collect()
}

/// `reviews-v1:9080=90%,reviews-v2:9080=10%`, rules separated by ` | `,
/// refused backends flagged with their reason.
pub fn backends_cell(route_ns: &str, backends: &[BackendShare]) -> String {
    if backends.is_empty() {
        return "-".to_owned();
    }
    let mut rules: Vec<String> = Vec::new();
    let mut current = usize::MAX;
    for b in backends {
        if b.rule != current {
            rules.push(String::new());
            current = b.rule;
        }
        let text = rules
            .last_mut()
            .expect("a rule was pushed for the first backend");
        if !text.is_empty() {
            text.push(',');
        }
        if b.kind != "Service" || !b.group.is_empty() {
            text.push_str(&format!("{}/", b.kind));
        }
        if b.namespace != route_ns {
            text.push_str(&format!("{}/", b.namespace));
        }
        text.push_str(&b.name);
        if let Some(port) = b.port {
            text.push_str(&format!(":{port}"));
        }
        text.push('=');
        text.push_str(&format_percent(b.percent));
        if let Some(problem) = &b.problem {
            text.push_str(&format!("({problem})"));
        }
    }
    rules.join(" | ")
}
