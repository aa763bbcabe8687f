//! Upstream Gateway API conformance manifests, loaded through the YAML
//! loader and compiled with ferry-core's public API. The expectations are
//! those of the upstream conformance tests of the same name.

use ferry_core::model::{ProxyConfig, RequestHead};
use ferry_core::objects::{Kind, NsName, Objects, load_yaml};
use ferry_core::status::{ConditionType, Reason, Status};
use ferry_core::{GatewaySelector, compile_with_status};
use http::{HeaderMap, Method};

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/gateway-api/conformance"
);
const INFRA: &str = "gateway-conformance-infra";

const CLASS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
";

/// The base manifests plus one test's, with Ferry's GatewayClass.
fn load(test: &str) -> Objects {
    let mut objects = Objects::new();
    for (name, text) in [
        ("class", CLASS.to_string()),
        ("base/manifests.yaml", read("base/manifests.yaml")),
        (test, read(&format!("tests/{test}"))),
    ] {
        let text = text.replace("{GATEWAY_CLASS_NAME}", "ferry");
        let loaded = load_yaml(&text, name).unwrap_or_else(|e| panic!("{e}"));
        for object in loaded.objects {
            objects
                .apply(object)
                .expect("conformance objects have names");
        }
    }
    objects
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{CONFORMANCE}/{path}"))
        .expect("conformance manifests in /work/shared")
}

fn compile_one(objects: &Objects, gateway: &str) -> (ProxyConfig, Status) {
    compile_with_status(objects, &GatewaySelector::One(NsName::new(INFRA, gateway)))
}

/// The backend Service names a request is split between, or `404`.
fn backends(
    config: &ProxyConfig,
    host: &str,
    target: &str,
    headers: &[(&'static str, &str)],
) -> String {
    let port = config.ports.iter().find(|p| p.port == 80).expect("port 80");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, value.parse().expect("test header values are valid"));
    }
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let head = RequestHead {
        host,
        method: &Method::GET,
        path,
        query,
        headers: &map,
    };
    match port.routes.find(&head) {
        None => "404".to_string(),
        Some(m) => m
            .action
            .backends
            .iter()
            .map(|b| {
                b.target
                    .as_ref()
                    .map_or("invalid".to_string(), |t| t.name.clone())
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn route_condition(status: &Status, name: &str, type_: ConditionType) -> (bool, Reason) {
    let route = status
        .route(Kind::HttpRoute, &NsName::new(INFRA, name))
        .unwrap_or_else(|| panic!("no status for {name}"));
    let c = route.parents[0].condition(type_).expect("condition");
    (c.status, c.reason)
}

#[test]
fn httproute_path_match_order() {
    let (config, _) = compile_one(&load("httproute-path-match-order.yaml"), "same-namespace");
    for (path, expected) in [
        ("/match/exact/one", "infra-backend-v3"),
        ("/match/exact", "infra-backend-v2"),
        ("/match", "infra-backend-v1"),
        ("/match/prefix/one/any", "infra-backend-v2"),
        ("/match/prefix/any", "infra-backend-v1"),
        ("/match/any", "infra-backend-v3"),
    ] {
        assert_eq!(
            backends(&config, "example.org", path, &[]),
            expected,
            "{path}"
        );
    }
}

#[test]
fn httproute_matching_across_routes() {
    let (config, _) = compile_one(
        &load("httproute-matching-across-routes.yaml"),
        "same-namespace",
    );
    let v1 = "infra-backend-v1";
    let v2 = "infra-backend-v2";
    assert_eq!(backends(&config, "example.com", "/", &[]), v1);
    assert_eq!(backends(&config, "example.net", "/example", &[]), v1);
    assert_eq!(backends(&config, "example.com", "/v2", &[]), v2);
    assert_eq!(backends(&config, "example.com", "/v2/example", &[]), v2);
    assert_eq!(
        backends(&config, "example.com", "/", &[("version", "two")]),
        v2
    );
    assert_eq!(backends(&config, "example.net", "/v2", &[]), v1);
    assert_eq!(backends(&config, "example.org", "/", &[]), "404");
}

#[test]
fn httproute_hostname_intersection() {
    let objects = load("httproute-hostname-intersection.yaml");
    let (config, status) = compile_one(&objects, "httproute-hostname-intersection");
    assert_eq!(
        backends(&config, "very.specific.com", "/s1", &[]),
        "infra-backend-v1"
    );
    assert_eq!(backends(&config, "non.matching.com", "/s1", &[]), "404");
    assert_eq!(
        backends(&config, "foo.nonmatchingwildcard.io", "/s1", &[]),
        "404"
    );
    assert_eq!(
        backends(&config, "foo.wildcard.io", "/s2", &[]),
        "infra-backend-v2"
    );
    assert_eq!(
        backends(&config, "foo.bar.wildcard.io", "/s2", &[]),
        "infra-backend-v2"
    );
    assert_eq!(backends(&config, "wildcard.io", "/s2", &[]), "404");
    assert_eq!(
        backends(&config, "very.specific.com", "/s3", &[]),
        "infra-backend-v3"
    );
    assert_eq!(backends(&config, "foo.specific.com", "/s3", &[]), "404");
    assert_eq!(
        backends(&config, "foo.anotherwildcard.io", "/s4", &[]),
        "infra-backend-v1"
    );
    assert_eq!(
        route_condition(&status, "no-intersecting-hosts", ConditionType::Accepted),
        (false, Reason::NoMatchingListenerHostname)
    );
}

#[test]
fn invalid_references_get_their_reasons() {
    for (test, route, type_, reason) in [
        (
            "httproute-invalid-cross-namespace-backend-ref.yaml",
            "invalid-cross-namespace-backend-ref",
            ConditionType::ResolvedRefs,
            Reason::RefNotPermitted,
        ),
        (
            "httproute-invalid-nonexistent-backendref.yaml",
            "invalid-nonexistent-backend-ref",
            ConditionType::ResolvedRefs,
            Reason::BackendNotFound,
        ),
        (
            "httproute-invalid-backendref-unknown-kind.yaml",
            "invalid-backend-ref-unknown-kind",
            ConditionType::ResolvedRefs,
            Reason::InvalidKind,
        ),
        (
            "httproute-invalid-parentref-not-matching-section-name.yaml",
            "httproute-listener-not-matching-section-name",
            ConditionType::Accepted,
            Reason::NoMatchingParent,
        ),
        (
            "httproute-invalid-parentref-not-matching-listener-port.yaml",
            "httproute-listener-not-matching-route-port",
            ConditionType::Accepted,
            Reason::NoMatchingParent,
        ),
    ] {
        let (_, status) = compile_one(&load(test), "same-namespace");
        assert_eq!(
            route_condition(&status, route, type_),
            (false, reason),
            "{test}"
        );
    }
}

#[test]
fn invalid_cross_namespace_backend_ref_answers_500() {
    let objects = load("httproute-invalid-cross-namespace-backend-ref.yaml");
    let (config, _) = compile_one(&objects, "same-namespace");
    assert_eq!(backends(&config, "example.org", "/", &[]), "invalid");
}

#[test]
fn reference_grant_permits_the_cross_namespace_backend() {
    let (config, status) = compile_one(&load("httproute-reference-grant.yaml"), "same-namespace");
    let route = &status.routes[0];
    assert!(
        route.parents[0]
            .condition(ConditionType::ResolvedRefs)
            .unwrap()
            .status
    );
    assert_eq!(backends(&config, "example.org", "/", &[]), "web-backend");
}

#[test]
fn every_gateway_and_httproute_conformance_manifest_compiles() {
    let mut count = 0;
    for entry in std::fs::read_dir(format!("{CONFORMANCE}/tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with("httproute-") || name.starts_with("gateway-") {
            let objects = load(&name);
            let (_, status) = compile_with_status(&objects, &GatewaySelector::All);
            assert!(!status.gateways.is_empty(), "{name}");
            count += 1;
        }
    }
    assert!(count > 60, "{count}");
}

/// The route handling a request on port 80, or `404`.
fn route_name(config: &ProxyConfig, host: &str, path: &str) -> String {
    let port = config.ports.iter().find(|p| p.port == 80).expect("port 80");
    let headers = HeaderMap::new();
    let head = RequestHead {
        host,
        method: &Method::GET,
        path,
        query: None,
        headers: &headers,
    };
    port.routes
        .find(&head)
        .map_or("404".to_string(), |m| m.action.rule.name.clone())
}

#[test]
fn gateway_http_listener_isolation() {
    for test in [
        "gateway-http-listener-isolation.yaml",
        "gateway-http-listener-isolation-with-hostname-intersection.yaml",
    ] {
        let objects = load(test);
        let gateway = objects
            .gateways()
            .map(|(id, _)| id.name.clone())
            .find(|name| name.starts_with("http-listener-isolation"))
            .expect("the test's Gateway");
        let (config, _) = compile_one(&objects, &gateway);
        let paths = [
            "/empty-hostname",
            "/wildcard-example-com",
            "/wildcard-foo-example-com",
            "/abc-foo-example-com",
        ];
        for (host, served) in [
            ("bar.com", "/empty-hostname"),
            ("bar.example.com", "/wildcard-example-com"),
            ("bar.foo.example.com", "/wildcard-foo-example-com"),
            ("abc.foo.example.com", "/abc-foo-example-com"),
        ] {
            for path in paths {
                let got = route_name(&config, host, path);
                if path == served {
                    assert!(
                        got.starts_with("attaches-to"),
                        "{test}: {host}{path} -> {got}"
                    );
                } else {
                    assert_eq!(got, "404", "{test}: {host}{path}");
                }
            }
        }
    }
}

#[test]
fn gateway_secret_without_a_valid_reference_grant_is_ref_not_permitted() {
    for (test, gateway) in [
        (
            "gateway-secret-missing-reference-grant.yaml",
            "gateway-secret-missing-reference-grant",
        ),
        (
            "gateway-secret-invalid-reference-grant.yaml",
            "gateway-secret-invalid-reference-grant",
        ),
    ] {
        let (config, status) = compile_one(&load(test), gateway);
        let gw = status
            .gateway(&NsName::new(INFRA, gateway))
            .expect("Ferry's Gateway");
        let c = gw
            .listener("https")
            .unwrap()
            .condition(ConditionType::ResolvedRefs)
            .unwrap();
        assert_eq!(
            (c.status, c.reason),
            (false, Reason::RefNotPermitted),
            "{test}"
        );
        let programmed = gw
            .listener("https")
            .unwrap()
            .condition(ConditionType::Programmed)
            .unwrap();
        assert!(!programmed.status, "{test}");
        assert!(config.ports.is_empty(), "{test}");
    }
}
