use proptest::prelude::*;

use super::*;

fn h(s: &str) -> HostPattern {
    HostPattern::parse(Some(s))
}

#[test]
fn intersection_follows_the_spec_examples() {
    // Listener without hostname: the route's hostnames.
    assert_eq!(
        intersect(&HostPattern::Any, &[h("a.example.com")]),
        [h("a.example.com")]
    );
    // Route without hostnames: the listener's.
    assert_eq!(intersect(&h("*.example.com"), &[]), [h("*.example.com")]);
    // A wildcard listener and specific route names: the names it covers.
    assert_eq!(
        intersect(
            &h("*.example.com"),
            &[
                h("a.example.com"),
                h("example.com"),
                h("a.b.example.com"),
                h("x.org")
            ]
        ),
        [h("a.example.com"), h("a.b.example.com")]
    );
    // A specific listener and a wildcard route: the listener's name.
    assert_eq!(
        intersect(&h("a.example.com"), &[h("*.example.com")]),
        [h("a.example.com")]
    );
    // Two wildcards: the more specific one.
    assert_eq!(
        intersect(&h("*.example.com"), &[h("*.a.example.com")]),
        [h("*.a.example.com")]
    );
    assert_eq!(
        intersect(&h("*.a.example.com"), &[h("*.example.com")]),
        [h("*.a.example.com")]
    );
    assert!(intersect(&h("*.example.com"), &[h("*.example.org")]).is_empty());
    assert!(intersect(&h("a.example.com"), &[h("b.example.com")]).is_empty());
}

#[test]
fn specificity_orders_exact_then_longer_wildcards_then_any() {
    let mut hosts = [
        HostPattern::Any,
        h("*.com"),
        h("a.example.com"),
        h("*.example.com"),
        h("b.com"),
    ];
    hosts.sort_by_key(specificity);
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["a.example.com", "b.com", "*.example.com", "*.com", "*"]
    );
}

#[test]
fn label_selectors_support_every_operator() {
    let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
    let expr = |operator: &str, values: &[&str]| LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![LabelExpression {
            key: "env".to_string(),
            operator: operator.to_string(),
            values: values.iter().map(ToString::to_string).collect(),
        }],
    };
    assert!(expr("In", &["prod", "dev"]).matches(&labels));
    assert!(!expr("In", &["dev"]).matches(&labels));
    assert!(expr("NotIn", &["dev"]).matches(&labels));
    assert!(!expr("NotIn", &["prod"]).matches(&labels));
    assert!(expr("Exists", &[]).matches(&labels));
    assert!(!expr("DoesNotExist", &[]).matches(&labels));
    assert!(!expr("Bogus", &[]).matches(&labels));
    let by_label = LabelSelector {
        match_labels: labels.clone(),
        match_expressions: Vec::new(),
    };
    assert!(by_label.matches(&labels));
    assert!(!by_label.matches(&BTreeMap::new()));
}

#[test]
fn selector_sees_the_implicit_namespace_name_label() {
    let allowed = AllowedNamespaces::Selector(LabelSelector {
        match_labels: [(
            "kubernetes.io/metadata.name".to_string(),
            "shop".to_string(),
        )]
        .into(),
        match_expressions: Vec::new(),
    });
    let objects = Objects::new();
    assert!(allowed.allows(&objects, "infra", "shop"));
    assert!(!allowed.allows(&objects, "infra", "other"));
    assert!(AllowedNamespaces::Same.allows(&objects, "infra", "infra"));
    assert!(!AllowedNamespaces::Same.allows(&objects, "infra", "shop"));
    assert!(AllowedNamespaces::All.allows(&objects, "infra", "shop"));
}

#[test]
fn explain_gives_a_verdict_per_listener() {
    let yaml = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: ferry
  listeners:
  - {name: same, port: 80, protocol: HTTP}
  - {name: all, port: 80, protocol: HTTP, hostname: a.example.com, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [b.example.com]
";
    let objects =
        Objects::from_objects(crate::objects::load_yaml(yaml, "t.yaml").unwrap().objects).unwrap();
    let id = NsName::new("shop", "r");
    let route = RouteMeta::of_http_route(&id, objects.http_route(&id).unwrap());
    let result = explain(&objects, &route, &route.parent_refs[0]);
    let Outcome::Refused(refusal) = &result.outcome else {
        panic!("{result:?}")
    };
    assert_eq!(refusal.reason, Reason::NoMatchingListenerHostname);
    let verdicts: Vec<(&str, Reason)> = result
        .listeners
        .iter()
        .map(|v| (v.listener.as_str(), v.refusal.as_ref().unwrap().reason))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("same", Reason::NotAllowedByListeners),
            ("all", Reason::NoMatchingListenerHostname)
        ]
    );
    assert!(
        refusal
            .message
            .contains("listener same allows only routes from the Gateway's namespace"),
        "{refusal:?}"
    );
}

fn pattern() -> impl Strategy<Value = HostPattern> {
    let name = prop::collection::vec("[ab]", 1..4).prop_map(|l| l.join("."));
    prop_oneof![
        Just(HostPattern::Any),
        name.clone().prop_map(HostPattern::Exact),
        name.prop_map(HostPattern::Wildcard),
    ]
}

proptest! {
    #[test]
    fn covers_agrees_with_matching(outer in pattern(), inner in pattern(), host in prop::collection::vec("[ab]", 1..6)) {
        let host = host.join(".");
        if covers(&outer, &inner) && inner.matches(&host) {
            prop_assert!(outer.matches(&host));
        }
    }

    #[test]
    fn intersections_only_serve_hosts_both_sides_accept(
        listener in pattern(),
        route in prop::collection::vec(pattern().prop_filter("route names are not empty", |p| *p != HostPattern::Any), 0..3),
        host in prop::collection::vec("[ab]", 1..6),
    ) {
        let host = host.join(".");
        for shared in intersect(&listener, &route) {
            if shared.matches(&host) {
                prop_assert!(listener.matches(&host));
                prop_assert!(route.is_empty() || route.iter().any(|r| r.matches(&host)));
            }
        }
        // And nothing both accept is lost.
        if listener.matches(&host) && (route.is_empty() || route.iter().any(|r| r.matches(&host))) {
            prop_assert!(intersect(&listener, &route).iter().any(|s| s.matches(&host)));
        }
    }
}
