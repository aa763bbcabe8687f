use super::*;

fn share(rule: usize, name: &str, ns: &str, percent: f64, problem: Option<&str>) -> BackendShare {
    BackendShare {
        rule,
        group: String::new(),
        kind: "Service".to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        port: Some(9080),
        weight: 1,
        percent,
        exists: None,
        ready_endpoints: None,
        permitted: true,
        problem: problem.map(str::to_owned),
        message: None,
    }
}

#[test]
fn backends_cell_groups_rules() {
    let cell = backends_cell(
        "shop",
        &[
            share(0, "a", "shop", 90.0, None),
            share(0, "b", "shop", 10.0, None),
            share(1, "c", "other", 100.0, Some("RefNotPermitted")),
        ],
    );
    assert_eq!(
        cell,
        "a:9080=90%,b:9080=10% | other/c:9080=100%(RefNotPermitted)"
    );
    assert_eq!(backends_cell("shop", &[]), "-");
}

#[test]
fn parent_filters_parse() {
    let f: ParentFilter = "gw/infra/prod-web".parse().unwrap();
    assert_eq!(
        (f.kind.as_str(), f.namespace.as_str(), f.name.as_str()),
        ("Gateway", "infra", "prod-web")
    );
    let f: ParentFilter = "Service/shop/reviews".parse().unwrap();
    assert_eq!(f.kind, "Service");
    assert!("reviews".parse::<ParentFilter>().is_err());
    assert!("pod/a/b".parse::<ParentFilter>().is_err());
}

#[test]
fn no_status_and_stale_rows() {
    let route = Route::from_json(
        RouteKind::Http,
        serde_json::json!({
            "metadata": {"name": "r", "namespace": "ns", "generation": 3},
            "spec": {"parentRefs": [{"name": "gw"}, {"name": "gw2"}]},
            "status": {"parents": [{
                "parentRef": {"name": "gw", "namespace": "ns", "group": "gateway.networking.k8s.io", "kind": "Gateway"},
                "controllerName": "x",
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 2}]
            }]}
        }),
    )
    .unwrap();
    let inv = Inventory {
        routes: vec![route],
        ..Inventory::default()
    };
    let rows = rows(&inv, &Filter::default());
    assert_eq!(rows[0].attention, Some(Attention::NoStatus));
    assert_eq!(rows[0].parent.display, "gw/ns/gw2");
    assert_eq!(rows[1].attention, Some(Attention::Stale));
    assert_eq!(rows[1].reason, "Stale");
    assert_eq!(rows[1].resolved_refs, "Unknown");
}
