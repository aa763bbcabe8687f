//! The status Ferry wants on an object, merged with what is there: pure
//! functions from computed [`ferry_core::status`] values and the object's
//! current `status` to the `status` to write.
//!
//! Only Ferry's part changes: on routes, the `status.parents` entries whose
//! `controllerName` is Ferry's; other controllers' entries are kept as they
//! are, in their order. A condition keeps its `lastTransitionTime` while
//! its `status` does not change.

use ferry_core::attach::{FERRY_CONTROLLER, ParentRef};
use ferry_core::status::{
    Condition, GatewayClassStatus, GatewayStatus, ListenerStatus, RouteParentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use ferry_core::objects::GATEWAY_GROUP;

/// Features of the Gateway API Ferry supports, sorted by name as the spec
/// asks; shown on Ferry's GatewayClasses.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "GRPCRoute",
    "Gateway",
    "GatewayHTTPListenerIsolation",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "Mesh",
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "ReferenceGrant",
];

/// Most entries `status.parents` may hold (the CRD's `maxItems`).
const MAX_PARENTS: usize = 32;

/// Conditions as Kubernetes writes them, keeping each one's transition time
/// from `existing` (a JSON array of conditions) when its status is the same.
pub fn conditions(computed: &[Condition], existing: Option<&Value>, now: &Timestamp) -> Value {
    let previous = |type_: &str| {
        existing
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
    };
    Value::Array(
        computed
            .iter()
            .map(|c| {
                let status = if c.status { "True" } else { "False" };
                let time = previous(c.type_.as_str())
                    .filter(|p| p["status"] == status)
                    .and_then(|p| {
                        serde_json::from_value::<Time>(p["lastTransitionTime"].clone()).ok()
                    })
                    .unwrap_or(Time(*now));
                serde_json::to_value(c.to_k8s(time)).unwrap_or(Value::Null)
            })
            .collect(),
    )
}

/// `status` of a Ferry GatewayClass.
pub fn gateway_class(computed: &GatewayClassStatus, existing: &Value, now: &Timestamp) -> Value {
    let features: Vec<Value> = SUPPORTED_FEATURES
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    json!({
        "conditions": conditions(&computed.conditions, existing.get("conditions"), now),
        "supportedFeatures": features,
    })
}

/// `status` of a Ferry Gateway; `addresses` are left as they are (the
/// gateway deployer owns them).
pub fn gateway(computed: &GatewayStatus, existing: &Value, now: &Timestamp) -> Value {
    let listeners: Vec<Value> = computed
        .listeners
        .iter()
        .map(|l| {
            let previous = existing
                .get("listeners")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p["name"] == l.name.as_str());
            listener(l, previous.and_then(|p| p.get("conditions")), now)
        })
        .collect();
    let mut status = existing.as_object().cloned().unwrap_or_default();
    status.insert(
        "conditions".into(),
        conditions(&computed.conditions, existing.get("conditions"), now),
    );
    status.insert("listeners".into(), Value::Array(listeners));
    Value::Object(status)
}

fn listener(l: &ListenerStatus, existing: Option<&Value>, now: &Timestamp) -> Value {
    let kinds: Vec<Value> = l
        .supported_kinds
        .iter()
        .map(|k| json!({ "group": k.group(), "kind": k.as_str() }))
        .collect();
    json!({
        "name": l.name,
        "supportedKinds": kinds,
        "attachedRoutes": l.attached_routes,
        "conditions": conditions(&l.conditions, existing, now),
    })
}

/// A parentRef as written in `status.parents`.
pub fn parent_ref(p: &ParentRef) -> Value {
    let mut out = json!({
        "group": p.group,
        "kind": p.kind,
        "namespace": p.namespace,
        "name": p.name,
    });
    if let Some(section) = &p.section_name {
        out["sectionName"] = json!(section);
    }
    if let Some(port) = p.port {
        out["port"] = json!(port);
    }
    out
}

/// `status.parents` of a route: other controllers' entries as they are,
/// then Ferry's (`ours`, empty to remove them all).
pub fn route_parents(ours: &[RouteParentStatus], existing: &Value, now: &Timestamp) -> Value {
    let existing: Vec<&Value> = existing
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut parents: Vec<Value> = existing
        .iter()
        .filter(|p| p["controllerName"] != FERRY_CONTROLLER)
        .map(|p| (*p).clone())
        .collect();
    for parent in ours {
        let reference = parent_ref(&parent.parent_ref);
        let previous = existing.iter().find(|p| {
            p["controllerName"] == FERRY_CONTROLLER && same_ref(&p["parentRef"], &reference)
        });
        parents.push(json!({
            "parentRef": reference,
            "controllerName": FERRY_CONTROLLER,
            "conditions": conditions(&parent.conditions, previous.and_then(|p| p.get("conditions")), now),
        }));
    }
    parents.truncate(MAX_PARENTS);
    Value::Array(parents)
}

/// Whether two parentRefs name the same parent, with the spec's defaults.
fn same_ref(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, key: &str, default: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let key = |v: &Value| {
        (
            field(v, "group", GATEWAY_GROUP),
            field(v, "kind", "Gateway"),
            field(v, "namespace", ""),
            field(v, "name", ""),
            field(v, "sectionName", ""),
            v.get("port").and_then(Value::as_i64),
        )
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests;
