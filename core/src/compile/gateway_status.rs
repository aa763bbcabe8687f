//! Status of GatewayClasses, Gateways and their listeners.

use std::collections::{BTreeMap, BTreeSet};

use crate::attach::{FERRY_CONTROLLER, GatewayView, ListenerView};
use crate::objects::{NsName, Objects};
use crate::params;
use crate::status::{
    Condition, ConditionType as T, GatewayClassStatus, GatewayStatus, ListenerStatus, Reason,
};

/// `Accepted` for every GatewayClass naming Ferry's controller.
pub(super) fn classes(objects: &Objects) -> Vec<GatewayClassStatus> {
    objects
        .gateway_classes()
        .filter(|(_, c)| c.spec.controller_name == FERRY_CONTROLLER)
        .map(|(name, class)| {
            let generation = class.metadata.generation;
            let accepted = match params::of_class(objects, class) {
                Err(r) => Condition::no(T::Accepted, r.reason, r.message, generation),
                Ok(_) => Condition::yes(
                    T::Accepted,
                    Reason::Accepted,
                    "handled by Ferry",
                    generation,
                ),
            };
            GatewayClassStatus {
                name: name.to_string(),
                conditions: vec![accepted],
            }
        })
        .collect()
}

/// Gateway and listener conditions; `attached` counts routes per
/// (Gateway, listener).
pub(super) fn gateway(
    objects: &Objects,
    view: &GatewayView,
    attached: &BTreeMap<(NsName, String), BTreeSet<NsName>>,
) -> GatewayStatus {
    let generation = view.generation;
    let listeners: Vec<ListenerStatus> = view
        .listeners
        .iter()
        .map(|l| {
            let count = attached
                .get(&(view.id.clone(), l.name.clone()))
                .map_or(0, BTreeSet::len);
            listener(l, u32::try_from(count).unwrap_or(u32::MAX), generation)
        })
        .collect();
    let invalid: Vec<&str> = view
        .listeners
        .iter()
        .filter(|l| l.not_accepted.is_some())
        .map(|l| l.name.as_str())
        .collect();
    let parameters = objects
        .gateway(&view.id)
        .map(|gw| params::effective(objects, &view.id, gw));
    let accepted = if let Some(Err(r)) = parameters {
        Condition::no(T::Accepted, r.reason, r.message, generation)
    } else if invalid.is_empty() {
        Condition::yes(
            T::Accepted,
            Reason::Accepted,
            "handled by Ferry",
            generation,
        )
    } else if invalid.len() == view.listeners.len() {
        let message = format!("no listener is valid: {}", invalid.join(", "));
        Condition::no(T::Accepted, Reason::ListenersNotValid, message, generation)
    } else {
        let message = format!("listeners not valid: {}", invalid.join(", "));
        Condition::yes(T::Accepted, Reason::ListenersNotValid, message, generation)
    };
    let programmed = if view.listeners.iter().any(ListenerView::is_served) && accepted.status {
        Condition::yes(
            T::Programmed,
            Reason::Programmed,
            "configuration compiled for the proxy",
            generation,
        )
    } else {
        Condition::no(
            T::Programmed,
            Reason::Invalid,
            "no listener can be served",
            generation,
        )
    };
    GatewayStatus {
        gateway: view.id.clone(),
        conditions: vec![accepted, programmed],
        listeners,
    }
}

fn listener(l: &ListenerView, attached_routes: u32, generation: Option<i64>) -> ListenerStatus {
    let accepted = match &l.not_accepted {
        Some(r) => Condition::no(T::Accepted, r.reason, r.message.clone(), generation),
        None => Condition::yes(
            T::Accepted,
            Reason::Accepted,
            "listener is valid",
            generation,
        ),
    };
    let resolved = match &l.unresolved {
        Some(r) => Condition::no(T::ResolvedRefs, r.reason, r.message.clone(), generation),
        None => Condition::yes(
            T::ResolvedRefs,
            Reason::ResolvedRefs,
            "all references resolved",
            generation,
        ),
    };
    let conflicted = match &l.conflict {
        Some(r) => Condition::yes(T::Conflicted, r.reason, r.message.clone(), generation),
        None => Condition::no(
            T::Conflicted,
            Reason::NoConflicts,
            "no conflicts",
            generation,
        ),
    };
    let programmed = if l.is_served() {
        Condition::yes(
            T::Programmed,
            Reason::Programmed,
            "listener is served",
            generation,
        )
    } else {
        let why = l
            .not_accepted
            .as_ref()
            .or(l.conflict.as_ref())
            .or(l.unresolved.as_ref())
            .map_or("listener cannot be served", |r| r.message.as_str());
        Condition::no(T::Programmed, Reason::Invalid, why, generation)
    };
    ListenerStatus {
        name: l.name.clone(),
        supported_kinds: l.supported_kinds.clone(),
        attached_routes,
        conditions: vec![accepted, resolved, programmed, conflicted],
    }
}
