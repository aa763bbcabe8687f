use super::*;
use crate::objects::load_yaml;

fn objects(yaml: &str) -> Objects {
    Objects::from_objects(load_yaml(yaml, "test.yaml").unwrap().objects).unwrap()
}

const GRANT: &str = "\
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: routes}]
  to: [{group: '', kind: Service, name: only}]
";

fn route_in(namespace: &str) -> From<'_> {
    From {
        kind: Kind::HttpRoute,
        namespace,
    }
}

fn service(name: &str) -> To<'_> {
    To {
        kind: Kind::Service,
        namespace: "backends",
        name,
    }
}

#[test]
fn same_namespace_needs_no_grant() {
    let o = Objects::new();
    assert!(permitted(&o, route_in("backends"), service("x")));
    assert!(!permitted(&o, route_in("routes"), service("x")));
}

#[test]
fn grant_is_specific_to_namespace_kind_and_name() {
    let o = objects(GRANT);
    assert!(permitted(&o, route_in("routes"), service("only")));
    assert!(!permitted(&o, route_in("routes"), service("other")));
    assert!(!permitted(&o, route_in("elsewhere"), service("only")));
    let gateway = From {
        kind: Kind::Gateway,
        namespace: "routes",
    };
    assert!(!permitted(&o, gateway, service("only")));
    let secret = To {
        kind: Kind::Secret,
        namespace: "backends",
        name: "only",
    };
    assert!(!permitted(&o, route_in("routes"), secret));
}

#[test]
fn grant_without_name_allows_every_object_of_the_kind() {
    let o = objects(&GRANT.replace(", name: only", ""));
    assert!(permitted(&o, route_in("routes"), service("anything")));
}
