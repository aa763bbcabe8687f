use ferry_core::status::{ConditionType, Reason};
use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2026-01-02T03:04:05Z".parse().unwrap()
}

fn ours(reason: Reason, ok: bool) -> RouteParentStatus {
    let accepted = if ok {
        Condition::yes(ConditionType::Accepted, reason, "attached", Some(2))
    } else {
        Condition::no(ConditionType::Accepted, reason, "refused", Some(2))
    };
    RouteParentStatus {
        parent_ref: ParentRef {
            group: GATEWAY_GROUP.into(),
            kind: "Gateway".into(),
            namespace: "shop".into(),
            name: "web".into(),
            section_name: None,
            port: None,
        },
        conditions: vec![accepted],
    }
}

fn other() -> Value {
    json!({
        "parentRef": {"name": "theirs"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2020-01-01T00:00:00Z"}],
    })
}

#[test]
fn other_controllers_entries_survive_and_ours_are_replaced() {
    let existing = json!({"parents": [other(), {
        "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "shop", "name": "web"},
        "controllerName": FERRY_CONTROLLER,
        "conditions": [],
    }]});
    let parents = route_parents(&[ours(Reason::Accepted, true)], &existing, &now());
    let parents = parents.as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], other());
    assert_eq!(parents[1]["controllerName"], FERRY_CONTROLLER);
    assert_eq!(parents[1]["parentRef"]["name"], "web");
    assert_eq!(parents[1]["conditions"][0]["observedGeneration"], 2);

    // Removing ours leaves theirs alone.
    let parents = route_parents(&[], &existing, &now());
    assert_eq!(parents, json!([other()]));
}

#[test]
fn transition_time_moves_only_when_status_changes() {
    let first = route_parents(&[ours(Reason::Accepted, true)], &json!({}), &now());
    let time = first[0]["conditions"][0]["lastTransitionTime"].clone();
    assert_eq!(time, json!("2026-01-02T03:04:05Z"));

    let later: Timestamp = "2026-02-02T00:00:00Z".parse().unwrap();
    let existing = json!({ "parents": first });
    let same = route_parents(&[ours(Reason::Accepted, true)], &existing, &later);
    assert_eq!(same, first, "nothing changed, nothing to write");

    let flipped = route_parents(
        &[ours(Reason::NotAllowedByListeners, false)],
        &existing,
        &later,
    );
    assert_eq!(
        flipped[0]["conditions"][0]["lastTransitionTime"],
        json!("2026-02-02T00:00:00Z")
    );
    assert_eq!(
        flipped[0]["conditions"][0]["reason"],
        "NotAllowedByListeners"
    );
}

#[test]
fn parent_refs_match_with_defaults() {
    let written = json!({"name": "web", "namespace": "shop"});
    let full =
        json!({"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "shop", "name": "web"});
    assert!(same_ref(&written, &full));
    assert!(!same_ref(
        &json!({"name": "web", "namespace": "shop", "port": 80}),
        &full
    ));
}

#[test]
fn gateway_status_keeps_addresses_and_lists_features() {
    let gw = GatewayStatus {
        gateway: ferry_core::objects::NsName::new("shop", "web"),
        conditions: vec![Condition::yes(
            ConditionType::Accepted,
            Reason::Accepted,
            "ok",
            Some(1),
        )],
        listeners: vec![ListenerStatus {
            name: "http".into(),
            supported_kinds: vec![ferry_core::objects::Kind::HttpRoute],
            attached_routes: 3,
            conditions: vec![],
        }],
    };
    let existing = json!({"addresses": [{"type": "IPAddress", "value": "10.0.0.9"}]});
    let status = gateway(&gw, &existing, &now());
    assert_eq!(status["addresses"], existing["addresses"]);
    assert_eq!(status["listeners"][0]["attachedRoutes"], 3);
    assert_eq!(
        status["listeners"][0]["supportedKinds"],
        json!([{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}])
    );
    let class = GatewayClassStatus {
        name: "ferry".into(),
        conditions: vec![],
    };
    let features = gateway_class(&class, &json!({}), &now())["supportedFeatures"].clone();
    let names: Vec<&str> = features
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}
