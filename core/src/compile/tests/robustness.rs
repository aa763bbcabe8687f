//! Hostile or broken input becomes status, never a panic, and the rest of
//! the configuration keeps working. Also: filters, timeouts and retries.

use proptest::prelude::*;

use super::*;
use crate::model::{Filter, PathModifier};
use crate::status::ConditionType::{Accepted, PartiallyInvalid, ResolvedRefs};

const GOOD: &str = "\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [good.example.com]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec: {ports: [{port: 80}]}
";

fn bad_route(rules: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: bad, namespace: default}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n{rules}"
    )
}

fn with_good(bad: &str) -> (ProxyConfig, Status) {
    let (config, status) = compiled(&format!("{GATEWAY}{GOOD}{bad}"));
    assert_eq!(
        split(&config, &get("good.example.com", "/")),
        ["svc:80*1"],
        "the good route keeps working"
    );
    (config, status)
}

#[test]
fn a_route_with_200_rules_is_refused_with_status() {
    let rules: String = (0..200)
        .map(|i| format!("  - matches: [{{path: {{type: Exact, value: /r{i}}}}}]\n"))
        .collect();
    let (config, status) = with_good(&bad_route(&rules));
    let parent = parent_status(&status, "default", "bad");
    assert_eq!(
        condition(parent, Accepted),
        (false, Reason::UnsupportedValue)
    );
    assert!(
        parent.conditions[0]
            .message
            .contains("200 rules; at most 16"),
        "{:?}",
        parent.conditions[0]
    );
    assert_eq!(winner(&config, &get("other", "/r1")), "404");
}

#[test]
fn a_regex_that_does_not_compile_or_is_too_big_becomes_status() {
    for (regex, why) in [
        ("'(a'", "unclosed group"),
        ("'a{1000}{1000}'", "size limit"),
    ] {
        let rules = format!(
            "  - matches: [{{headers: [{{name: x, type: RegularExpression, value: {regex}}}]}}]\n"
        );
        let (_, status) = with_good(&bad_route(&rules));
        let parent = parent_status(&status, "default", "bad");
        assert_eq!(
            condition(parent, Accepted),
            (false, Reason::UnsupportedValue),
            "{why}"
        );
        assert!(
            parent.conditions[0]
                .message
                .contains("header regular expression"),
            "{why}: {:?}",
            parent.conditions[0]
        );
    }
}

#[test]
fn a_catastrophic_backtracking_regex_matches_in_linear_time() {
    let rules = "  - matches: [{path: {type: RegularExpression, value: '/(a+)+$'}}]\n";
    let (config, _) = with_good(&bad_route(rules));
    let path = format!("/{}b", "a".repeat(50_000));
    assert_eq!(winner(&config, &get("x", &path)), "404");
    let path = format!("/{}", "a".repeat(50_000));
    assert_eq!(winner(&config, &get("x", &path)), "default/bad#0");
}

#[test]
fn a_parent_ref_to_a_missing_kind_becomes_status() {
    let bad = GOOD
        .replace("name: good", "name: bad")
        .replace(
            "[{name: gw}]",
            "[{group: nowhere.io, kind: Nothing, name: x}, {name: gw}]",
        )
        .replace("good.example.com", "bad.example.com");
    let (config, status) = with_good(&bad);
    let route = status
        .route(
            crate::objects::Kind::HttpRoute,
            &crate::objects::NsName::new("default", "bad"),
        )
        .unwrap();
    assert_eq!(
        condition(&route.parents[0], Accepted),
        (false, Reason::NoMatchingParent)
    );
    assert_eq!(
        condition(&route.parents[1], Accepted),
        (true, Reason::Accepted)
    );
    assert_eq!(split(&config, &get("bad.example.com", "/")), ["svc:80*1"]);
}

#[test]
fn odd_values_never_panic() {
    let rules = "  - matches: [{path: {type: Exact, value: no-slash}}]
  - matches: [{headers: [{name: 'bad header', value: x}]}]
  - backendRefs: [{name: svc, port: -1, weight: -5}, {name: svc, port: 70000}, {name: svc}]
  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200, port: 99999}}]
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: 'a b', value: x}]}}]
  - filters: [{type: RequestHeaderModifier}]
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 80}, fraction: {numerator: 5, denominator: 0}}}]
  - timeouts: {request: 'soon'}
  - timeouts: {request: 1s, backendRequest: 2s}
";
    let (_, status) = with_good(&bad_route(rules));
    let parent = parent_status(&status, "default", "bad");
    assert_eq!(condition(parent, Accepted), (true, Reason::Accepted));
    assert_eq!(
        condition(parent, PartiallyInvalid),
        (true, Reason::UnsupportedValue)
    );
    assert_eq!(
        condition(parent, ResolvedRefs),
        (false, Reason::BackendNotFound)
    );
    let message = &parent.condition(PartiallyInvalid).unwrap().message;
    for expected in [
        "rule 0: path `no-slash` does not start with `/`",
        "rule 1: header name `bad header` is not valid",
        "rule 3: redirect status 200 is not one of",
        "rule 4: header name `a b` is not valid",
        "rule 5: filter RequestHeaderModifier has no `requestHeaderModifier` field",
        "rule 6: mirror fraction 5/0 is not valid",
        "rule 7: timeouts.request `soon` is not a valid duration",
        "rule 8: timeouts.backendRequest is longer than timeouts.request",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in {message}"
        );
    }
}

#[test]
fn all_weights_zero_or_invalid_leave_no_backend_to_choose() {
    let rules = "  - matches: [{path: {type: PathPrefix, value: /zero}}]
    backendRefs: [{name: svc, port: 80, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /invalid}}]
    backendRefs: [{name: nope, port: 80}, {kind: Bucket, group: x.io, name: b}]
  - matches: [{path: {type: PathPrefix, value: /none}}]
";
    let (config, _) = with_good(&bad_route(rules));
    assert_eq!(split(&config, &get("x", "/zero")), ["svc:80*0"]);
    assert_eq!(
        split(&config, &get("x", "/invalid")),
        ["invalid*1", "invalid*1"]
    );
    assert!(split(&config, &get("x", "/none")).is_empty());
}

#[test]
fn filters_timeouts_and_retry_compile() {
    let rules = "  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: '1'}], add: [{name: x-b, value: '2'}], remove: [x-c]}}
    - {type: URLRewrite, urlRewrite: {hostname: internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 80}, fraction: {numerator: 1, denominator: 3}}}
    - {type: CORS, cors: {allowOrigins: ['https://*.example.com'], allowMethods: [GET], maxAge: 60, allowCredentials: true}}
    backendRefs:
    - name: svc
      port: 80
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-backend, value: svc}]}}]
    timeouts: {request: 1h2m, backendRequest: 500ms}
    retry: {attempts: 3, codes: [502, 503], backoff: 100ms}
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}}]
  - matches: [{path: {type: PathPrefix, value: /ext}}]
    filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: Magic, name: m}}]
    backendRefs: [{name: svc, port: 80}]
";
    let (config, status) = with_good(&bad_route(rules));
    let api = route(&config, &get("x", "/api/users")).unwrap();
    assert_eq!(api.filters.len(), 5);
    let Filter::RequestHeaders(m) = &api.filters[0] else {
        panic!("{:?}", api.filters[0])
    };
    assert_eq!(
        (m.set[0].0.as_str(), m.add.len(), m.remove[0].as_str()),
        ("x-a", 1, "x-c")
    );
    let Filter::Rewrite(rw) = &api.filters[1] else {
        panic!()
    };
    assert_eq!(rw.hostname.as_deref(), Some("internal"));
    assert!(matches!(&rw.path, Some(PathModifier::ReplacePrefixMatch(p)) if p == "/v2"));
    let Filter::Mirror(m25) = &api.filters[2] else {
        panic!()
    };
    assert_eq!(
        (m25.target.as_ref().unwrap().name.as_str(), m25.percent),
        ("svc", 25.0)
    );
    let Filter::Mirror(third) = &api.filters[3] else {
        panic!()
    };
    assert!((third.percent - 100.0 / 3.0).abs() < 1e-9);
    let Filter::Cors(cors) = &api.filters[4] else {
        panic!()
    };
    assert_eq!((cors.max_age, cors.allow_credentials), (Some(60), true));
    assert!(
        matches!(&api.backends[0].filters[0], Filter::ResponseHeaders(m) if m.set[0].0 == "x-backend")
    );
    assert_eq!(
        api.timeouts.request,
        Some(std::time::Duration::from_secs(3720))
    );
    assert_eq!(
        api.timeouts.backend_request,
        Some(std::time::Duration::from_millis(500))
    );
    let retry = api.retry.as_ref().unwrap();
    assert_eq!(
        (retry.attempts, retry.codes.as_slice(), retry.backoff),
        (
            3,
            &[502, 503][..],
            Some(std::time::Duration::from_millis(100))
        )
    );

    let old = route(&config, &get("x", "/old")).unwrap();
    let Filter::Redirect(r) = &old.filters[0] else {
        panic!()
    };
    assert_eq!(
        (r.scheme.as_deref(), r.hostname.as_deref(), r.status),
        (Some("https"), Some("new.example.com"), 301)
    );
    assert!(old.backends.is_empty());

    // An unsupported filter is not skipped: the rule answers 500.
    let ext = route(&config, &get("x", "/ext")).unwrap();
    assert!(ext.backends.is_empty());
    let parent = parent_status(&status, "default", "bad");
    assert_eq!(
        condition(parent, ResolvedRefs),
        (false, Reason::InvalidKind)
    );
}

#[test]
fn zero_timeouts_disable_them() {
    let rules = "  - timeouts: {request: 0s}\n";
    let (config, _) = with_good(&bad_route(rules));
    assert_eq!(
        route(&config, &get("x", "/")).unwrap().timeouts.request,
        None
    );
}

#[test]
fn listener_isolation_keeps_requests_on_the_most_specific_listener() {
    let gw = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ferry
  listeners:
  - {name: empty, port: 80, protocol: HTTP}
  - {name: wildcard, port: 80, protocol: HTTP, hostname: '*.example.com'}
  - {name: abc, port: 80, protocol: HTTP, hostname: abc.example.com}
";
    let route = |name: &str, section: &str, hostnames: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: gw, sectionName: {section}}}]\n  hostnames: {hostnames}\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: /{name}}}}}]}}]\n"
        )
    };
    let yaml = format!(
        "{gw}{}{}{}",
        route("empty", "empty", "[]"),
        route("wild", "wildcard", "[]"),
        route("both", "empty", "['*.example.com']"),
    );
    let (config, _) = compiled(&yaml);
    assert_eq!(
        winner(&config, &get("foo.org", "/empty")),
        "default/empty#0"
    );
    assert_eq!(
        winner(&config, &get("foo.example.com", "/wild")),
        "default/wild#0"
    );
    // foo.example.com belongs to the wildcard listener: routes of the
    // empty-hostname listener do not apply, even with a matching hostname.
    assert_eq!(winner(&config, &get("foo.example.com", "/empty")), "404");
    assert_eq!(winner(&config, &get("foo.example.com", "/both")), "404");
    // abc.example.com belongs to the abc listener, which has no routes.
    assert_eq!(winner(&config, &get("abc.example.com", "/wild")), "404");
}

/// Any text in the places users write free-form values compiles without
/// panicking, into a route or into status.
fn arbitrary_route(path: &str, header: &str, value: &str, query: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: fuzz, namespace: default}}\nspec:\n  parentRefs: [{{name: gw, sectionName: {h}}}]\n  hostnames: [{v}]\n  rules:\n  - matches:\n    - path: {{type: RegularExpression, value: {p}}}\n      headers: [{{name: {h}, type: RegularExpression, value: {v}}}]\n      queryParams: [{{name: {qn}, value: {v}}}]\n    - path: {{type: PathPrefix, value: {p}}}\n    filters: [{{type: URLRewrite, urlRewrite: {{hostname: {v}, path: {{type: ReplacePrefixMatch, replacePrefixMatch: {p}}}}}}}]\n    backendRefs: [{{name: {v}, namespace: {h}, port: 80}}]\n    timeouts: {{request: {qn}}}\n",
        p = q(path),
        h = q(header),
        v = q(value),
        qn = q(query),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compile_never_panics_on_arbitrary_values(
        path in "\\PC{0,20}",
        header in "\\PC{0,12}",
        value in "\\PC{0,20}",
        query in "[a-z0-9]{0,4}",
    ) {
        let yaml = format!("{GATEWAY}{}", arbitrary_route(&path, &header, &value, &query));
        let (_, status) = compiled(&yaml);
        prop_assert_eq!(status.routes.len(), 1);
    }
}
