//! The bridge to ferry-core: the snapshot as core's [`Objects`] index, and
//! core's attachment verdict for a parentRef, so the plugin says what the
//! control plane decides. Core reads HTTPRoutes on Ferry's Gateways and on
//! Services; for other kinds and other controllers' Gateways the plugin's
//! own reading of the spec answers.

use ferry_core::attach::{self, Outcome, Refusal as CoreRefusal, RouteMeta};
use ferry_core::objects::api::{
    Gateway, GatewayClass, HttpRoute, Namespace, ReferenceGrant, Service,
};
use ferry_core::objects::{NsName, Object, Objects};
use serde_json::{Value, json};

use crate::model::{Inventory, ParentRef, Route, RouteKind};

/// Core's verdict: the listeners (empty for Services) or the refusal.
pub(super) type CoreVerdict = Result<Vec<String>, CoreRefusal>;

/// The snapshot as core's index (built once per snapshot).
pub(super) fn objects(inv: &Inventory) -> &Objects {
    inv.core.get_or_init(|| build(inv))
}

fn build(inv: &Inventory) -> Objects {
    fn typed<T: serde::de::DeserializeOwned>(raw: &Value) -> Option<T> {
        serde_json::from_value(raw.clone()).ok()
    }
    let mut objects = Objects::new();
    let mut add = |object: Option<Object>| {
        if let Some(object) = object {
            // An object without a name cannot be indexed; core skips it too.
            let _ = objects.apply(object);
        }
    };
    for c in &inv.gateway_classes {
        add(typed::<GatewayClass>(&c.raw).map(Object::GatewayClass));
    }
    for g in &inv.gateways {
        add(typed::<Gateway>(&g.raw).map(Object::Gateway));
    }
    for g in &inv.reference_grants {
        add(typed::<ReferenceGrant>(&g.raw).map(Object::ReferenceGrant));
    }
    for s in &inv.services {
        add(typed::<Service>(&s.raw).map(Object::Service));
    }
    for r in inv.routes.iter().filter(|r| r.kind == RouteKind::Http) {
        add(typed::<HttpRoute>(&r.raw).map(Object::HttpRoute));
    }
    for (name, labels) in inv.namespaces.iter().flatten() {
        let ns = json!({ "metadata": { "name": name, "labels": labels } });
        add(typed::<Namespace>(&ns).map(Object::Namespace));
    }
    objects
}

/// Core's verdict on one parentRef, when core decides it: an HTTPRoute on
/// a Service or on a Gateway of Ferry's class.
pub(super) fn explain(inv: &Inventory, route: &Route, parent: &ParentRef) -> Option<CoreVerdict> {
    if route.kind != RouteKind::Http || !(parent.is_gateway() || parent.is_service()) {
        return None;
    }
    let typed: HttpRoute = serde_json::from_value(route.raw.clone()).ok()?;
    let id = NsName::new(&route.meta.namespace, &route.meta.name);
    let meta = RouteMeta::of_http_route(&id, &typed);
    let parent_ref = attach::ParentRef {
        group: parent.group().to_owned(),
        kind: parent.kind().to_owned(),
        namespace: parent.namespace(&route.meta.namespace).to_owned(),
        name: parent.name.clone(),
        section_name: parent.section_name.clone(),
        port: parent.port,
    };
    match attach::explain(objects(inv), &meta, &parent_ref).outcome {
        Outcome::NotOurs(_) => None,
        Outcome::Accepted(listeners) => {
            Some(Ok(listeners.into_iter().map(|l| l.listener).collect()))
        }
        Outcome::Refused(refusal) => Some(Err(refusal)),
    }
}
