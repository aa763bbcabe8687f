//! The view layer on the fixture world, without a cluster: every command's
//! output against golden files (`tests/golden/views/`).

#[path = "support/golden.rs"]
mod golden;

use golden::assert_golden;
use kubectl_gateway::describe::{self, Description};
use kubectl_gateway::model::{Inventory, RouteKind};
use kubectl_gateway::output::{self, Items, envelope};
use kubectl_gateway::status::{self, Filter, ParentFilter};
use kubectl_gateway::{check, files, time, tree};

const FIXTURE: &str = include_str!("fixtures/mesh.yaml");

fn world() -> Inventory {
    files::load(&[("mesh.yaml".to_owned(), FIXTURE.to_owned())], "default").expect("fixture loads")
}

fn now() -> i64 {
    time::parse_rfc3339("2026-01-10T00:00:00Z").expect("valid time")
}

fn route<'a>(inv: &'a Inventory, ns: &str, name: &str) -> &'a kubectl_gateway::model::Route {
    inv.routes
        .iter()
        .find(|r| r.meta.namespace == ns && r.meta.name == name)
        .expect("route in fixture")
}

#[test]
fn status_tables() {
    let inv = world();
    let rows = status::rows(&inv, &Filter::default());
    assert_golden(
        "views/status.txt",
        &status::table(&rows, now()).render(true, false),
    );
    assert_golden(
        "views/status-wide.txt",
        &status::wide_table(&rows, now()).render(true, false),
    );
    let json = output::json(&envelope("StatusList", Items { items: rows })).unwrap();
    assert_golden("views/status.json", &json);
}

#[test]
fn status_filters() {
    let inv = world();
    let filter = Filter {
        parent: Some("svc/shop/reviews".parse::<ParentFilter>().unwrap()),
        ..Filter::default()
    };
    let rows = status::rows(&inv, &filter);
    assert!(
        rows.iter()
            .all(|r| r.parent.name == "reviews" && r.parent.kind == "Service")
    );
    let grpc = Filter {
        kinds: vec![RouteKind::Grpc],
        ..Filter::default()
    };
    let rows = status::rows(&inv, &grpc);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        status::backends_cell("shop", &rows[0].backends),
        "reviews-v1:9080=33.3%,reviews-v2:9080=66.7%"
    );
    assert!(
        status::table(&rows, now())
            .render(false, false)
            .starts_with("shop ")
    );
}

#[test]
fn shares_equal_configured_weights() {
    let inv = world();
    let cell = |name: &str| {
        let r = route(&inv, "shop", name);
        status::backends_cell("shop", &status::backend_shares(&inv, r))
    };
    assert_eq!(cell("reviews"), "reviews-v1:9080=90%,reviews-v2:9080=10%");
    assert_eq!(
        cell("reviews-canary"),
        "reviews-v1:9080=0%,reviews-v2:9080=50%,reviews-v3:9080=50%(BackendNotFound)"
    );
    assert_eq!(cell("drained"), "reviews-v1:9080=0%,reviews-v2:9080=0%");
    assert_eq!(
        cell("cross"),
        "other/details:9080=100% | other/ratings:9080=100%(RefNotPermitted)"
    );
}

fn described(d: &Description) -> String {
    describe::render(d, now(), false)
}

#[test]
fn describe_routes() {
    let inv = world();
    for (ns, name) in [
        ("shop", "reviews"),
        ("shop", "reviews-canary"),
        ("shop", "cross"),
        ("foo", "foo-typo"),
        ("baz", "baz-route"),
        ("foo", "foo-elsewhere"),
    ] {
        let d = Description::Route(describe::describe_route(&inv, route(&inv, ns, name)));
        assert_golden(&format!("views/describe-{ns}-{name}.txt"), &described(&d));
    }
    let d = Description::Route(describe::describe_route(
        &inv,
        route(&inv, "shop", "reviews-canary"),
    ));
    let json = output::json(&envelope("RouteDescription", &d)).unwrap();
    assert_golden("views/describe-shop-reviews-canary.json", &json);
}

#[test]
fn describe_gateway_and_service() {
    let inv = world();
    let gw = inv.gateway("infra", "prod-web").unwrap();
    let d = Description::Gateway(describe::describe_gateway(&inv, gw));
    assert_golden("views/describe-gateway-prod-web.txt", &described(&d));
    let svc = inv.service("shop", "reviews").unwrap();
    let d = Description::Service(describe::describe_service(&inv, svc));
    assert_golden("views/describe-service-reviews.txt", &described(&d));
}

#[test]
fn trees() {
    let inv = world();
    let roots = tree::build(&inv, &tree::Target::default());
    assert_golden("views/tree.txt", &tree::text(&roots));
    assert_golden("views/tree.dot", &tree::dot(&roots));
    assert_golden("views/tree.mmd", &tree::mermaid(&roots));
    let only = tree::build(
        &inv,
        &tree::Target {
            kind: Some("gateway".to_owned()),
            name: Some("prod-web".to_owned()),
            namespace: None,
        },
    );
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].children.len(), 1);
}

#[test]
fn check_flags_every_broken_object() {
    let inv = world();
    let issues = check::check(&inv);
    assert_golden("views/check.txt", &check::text(&issues));
    let codes: Vec<(&str, &str)> = issues.iter().map(|i| (i.code, i.object.as_str())).collect();
    for expected in [
        ("GW102", "httproute/foo/foo-typo"),
        ("GW104", "httproute/baz/baz-route"),
        ("GW106", "httproute/foo/foo-elsewhere"),
        ("GW103", "httproute/shop/wrong-port"),
        ("GW201", "httproute/shop/reviews-canary"),
        ("GW203", "httproute/shop/cross"),
        ("GW205", "httproute/shop/drained"),
        ("GW302", "httproute/shop/reviews-dup"),
    ] {
        assert!(codes.contains(&expected), "{expected:?} not in {codes:?}");
    }
    assert!(!codes.iter().any(|(_, o)| *o == "httproute/foo/foo-route"));
    assert!(
        !codes
            .iter()
            .any(|(_, o)| *o == "httproute/other/reviews-for-other")
    );
}
