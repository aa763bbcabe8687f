//! `kubectl gateway check`: every problem in a snapshot (files or the
//! cluster) as an issue with a stable code and a one-line fix.
//!
//! | code  | severity | what |
//! |-------|----------|------|
//! | GW101 | error    | the parentRef's Gateway or Service does not exist |
//! | GW102 | error    | no listener has the parentRef's `sectionName` |
//! | GW103 | error    | no listener / Service port has the parentRef's `port` |
//! | GW104 | error    | the listener does not admit routes from the route's namespace |
//! | GW105 | error    | the listener does not admit the route's kind |
//! | GW106 | error    | no hostname shared by the route and the listeners |
//! | GW107 | error    | the parent is neither a Gateway nor a Service |
//! | GW201 | error    | the backend Service does not exist |
//! | GW202 | error    | the backend Service has no such port |
//! | GW203 | error    | cross-namespace backend without a ReferenceGrant |
//! | GW204 | error    | the backend is not a core Service |
//! | GW205 | error    | every backend of a rule has weight 0 (requests get 500) |
//! | GW206 | warning  | a backend with weight has no ready endpoints (cluster only) |
//! | GW301 | error    | the Gateway's GatewayClass does not exist |
//! | GW302 | warning  | two routes' rules match the same requests on a Service port |

use serde::Serialize;

use crate::analysis::{self, ParentVerdict};
use std::collections::BTreeMap;

use crate::describe::conflicts_among;
use crate::model::Inventory;
use crate::model::Route;

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    /// Traffic does not go where the user meant.
    Error,
    /// Probably not what the user meant.
    Warning,
}

/// One issue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Stable code (`GW102`).
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// `kind/namespace/name` of the object.
    pub object: String,
    /// The field at fault (`spec.parentRefs[0]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, in one line.
    pub fix: String,
}

/// Every issue in the snapshot, in object order.
pub fn check(inv: &Inventory) -> Vec<Issue> {
    let mut issues = Vec::new();
    // Verdicts of Service parentRefs, by Service, for conflicts.
    let mut by_service: BTreeMap<(String, String), Vec<(&Route, ParentVerdict)>> = BTreeMap::new();
    for route in &inv.routes {
        let object = route.id();
        for (i, parent) in route.parent_refs.iter().enumerate() {
            let verdict = analysis::parent(inv, route, parent);
            if parent.is_service() {
                let key = (
                    parent.namespace(&route.meta.namespace).to_owned(),
                    parent.name.clone(),
                );
                by_service
                    .entry(key)
                    .or_default()
                    .push((route, verdict.clone()));
            }
            if let ParentVerdict::Refused(r) = verdict {
                issues.push(Issue {
                    code: r.cause.code(),
                    severity: Severity::Error,
                    object: object.clone(),
                    field: format!("spec.parentRefs[{i}]"),
                    message: format!("{}: {}", r.reason, r.message),
                    fix: r.cause.fix().to_owned(),
                });
            }
        }
        for (i, rule) in route.rules.iter().enumerate() {
            let shares = analysis::shares(rule);
            if !shares.is_empty() && shares.iter().all(|s| s.weight == 0) {
                issues.push(Issue {
                    code: "GW205",
                    severity: Severity::Error,
                    object: object.clone(),
                    field: format!("spec.rules[{i}].backendRefs"),
                    message: "every backend has weight 0: requests matching this rule get HTTP 500"
                        .to_owned(),
                    fix: "give at least one backendRef a weight above 0".to_owned(),
                });
            }
            for (j, share) in shares.iter().enumerate() {
                let verdict = analysis::backend(inv, route, &share.backend);
                let field = format!("spec.rules[{i}].backendRefs[{j}]");
                if let Some(r) = verdict.refusal {
                    issues.push(Issue {
                        code: r.cause.code(),
                        severity: Severity::Error,
                        object: object.clone(),
                        field,
                        message: format!("{}: {}", r.reason, r.message),
                        fix: r.cause.fix().to_owned(),
                    });
                } else if verdict.ready == Some(0) && share.weight > 0 {
                    issues.push(Issue {
                        code: "GW206",
                        severity: Severity::Warning,
                        object: object.clone(),
                        field,
                        message: format!(
                            "Service {}/{} has no ready endpoints",
                            share.backend.namespace(&route.meta.namespace),
                            share.backend.name
                        ),
                        fix: "check the Service's selector and that its pods are ready".to_owned(),
                    });
                }
            }
        }
    }
    if inv.gateway_classes_known {
        for g in &inv.gateways {
            if inv.gateway_class(&g.class_name).is_none() {
                issues.push(Issue {
                    code: "GW301",
                    severity: Severity::Error,
                    object: format!("gateway/{}/{}", g.meta.namespace, g.meta.name),
                    field: "spec.gatewayClassName".to_owned(),
                    message: format!("GatewayClass {} does not exist", g.class_name),
                    fix: "create the GatewayClass or use an installed one (e.g. ferry)".to_owned(),
                });
            }
        }
    }
    for ((namespace, name), verdicts) in by_service {
        for c in conflicts_among(verdicts) {
            issues.push(Issue {
                code: "GW302",
                severity: Severity::Warning,
                object: format!(
                    "{}/{}/{}",
                    c.shadowed.kind.to_ascii_lowercase(),
                    c.shadowed.namespace,
                    c.shadowed.name
                ),
                field: "spec.rules".to_owned(),
                message: format!(
                    "a rule matching {} on Service {}/{} port {} is shadowed by {}/{} (older)",
                    c.matches, namespace, name, c.port, c.winner.namespace, c.winner.name
                ),
                fix: "make the matches differ, or merge the rules into one route".to_owned(),
            });
        }
    }
    issues
}

/// Issues as text: one line each plus its fix.
pub fn text(issues: &[Issue]) -> String {
    let mut out = String::new();
    for i in issues {
        let severity = match i.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "{} {severity} {} {}: {}\n  fix: {}\n",
            i.code, i.object, i.field, i.message, i.fix
        ));
    }
    out
}
