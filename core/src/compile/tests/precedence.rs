//! One test per precedence rule of the spec. Each pits a route that should
//! win by the rule under test against one that would win by every later
//! rule (older, alphabetically first, earlier rule), so the test fails when
//! the rule is broken or applied in the wrong order.

use super::*;

/// An HTTPRoute `default/<name>` on `gw` with optional creation time and
/// hostnames, and the given rules (YAML list items, indented by 2).
fn route(name: &str, created: Option<&str>, hostnames: &[&str], rules: &str) -> String {
    let created = created
        .map(|t| format!(", creationTimestamp: '{t}'"))
        .unwrap_or_default();
    let hostnames = if hostnames.is_empty() {
        String::new()
    } else {
        format!("  hostnames: [{}]\n", hostnames.join(", "))
    };
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default{created}}}\nspec:\n  parentRefs: [{{name: gw}}]\n{hostnames}  rules:\n{rules}"
    )
}

const OLD: Option<&str> = Some("2020-01-01T00:00:00Z");
const NEW: Option<&str> = Some("2024-01-01T00:00:00Z");

/// `a` is older and first alphabetically: it wins every tie. `b` must win
/// by the rule under test.
fn contest(a_rules: &str, b_rules: &str) -> ProxyConfig {
    let yaml = format!(
        "{GATEWAY}{}{}",
        route("a", OLD, &[], a_rules),
        route("b", NEW, &[], b_rules)
    );
    compiled(&yaml).0
}

fn rule(matches: &str) -> String {
    format!("  - matches: [{matches}]\n")
}

#[test]
fn more_specific_hostname_wins() {
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        route(
            "a",
            OLD,
            &["'*.example.com'"],
            &rule("{path: {type: PathPrefix, value: /}}")
        ),
        route(
            "b",
            NEW,
            &["foo.example.com"],
            &rule("{path: {type: PathPrefix, value: /}}")
        ),
        route(
            "c",
            NEW,
            &["'*.foo.example.com'"],
            &rule("{path: {type: PathPrefix, value: /}}")
        ),
    );
    let (config, _) = compiled(&yaml);
    assert_eq!(
        winner(&config, &get("foo.example.com", "/x")),
        "default/b#0"
    );
    assert_eq!(
        winner(&config, &get("bar.example.com", "/x")),
        "default/a#0"
    );
    // A longer wildcard suffix is more specific than a shorter one.
    assert_eq!(
        winner(&config, &get("x.foo.example.com", "/x")),
        "default/c#0"
    );
    assert_eq!(winner(&config, &get("example.com", "/x")), "404");
}

#[test]
fn exact_path_beats_prefix() {
    let config = contest(
        &rule(
            "{path: {type: PathPrefix, value: /foo}, method: GET, headers: [{name: x, value: y}]}",
        ),
        &rule("{path: {type: Exact, value: /foo}}"),
    );
    let req = Req {
        headers: &[("x", "y")],
        ..get("h", "/foo")
    };
    assert_eq!(winner(&config, &req), "default/b#0");
    assert_eq!(
        winner(
            &config,
            &Req {
                headers: &[("x", "y")],
                ..get("h", "/foo/bar")
            }
        ),
        "default/a#0"
    );
}

#[test]
fn longest_prefix_wins() {
    let config = contest(
        &rule("{path: {type: PathPrefix, value: /foo}, method: GET}"),
        &rule("{path: {type: PathPrefix, value: /foo/bar}}"),
    );
    assert_eq!(winner(&config, &get("h", "/foo/bar/baz")), "default/b#0");
    assert_eq!(winner(&config, &get("h", "/foo/barbaz")), "default/a#0");
}

#[test]
fn prefix_beats_regular_expression_and_longer_regex_comes_first() {
    let config = contest(
        &rule("{path: {type: RegularExpression, value: '/foo/.*'}, method: GET}"),
        &rule("{path: {type: PathPrefix, value: /foo}}"),
    );
    assert_eq!(winner(&config, &get("h", "/foo/x")), "default/b#0");

    let config = contest(
        &rule("{path: {type: RegularExpression, value: '/.*'}}"),
        &rule("{path: {type: RegularExpression, value: '/foo/[a-z]+'}}"),
    );
    assert_eq!(winner(&config, &get("h", "/foo/x")), "default/b#0");
    assert_eq!(winner(&config, &get("h", "/foo/1")), "default/a#0");
}

#[test]
fn method_match_wins_over_more_headers() {
    let config = contest(
        &rule("{headers: [{name: a, value: '1'}, {name: b, value: '2'}, {name: c, value: '3'}]}"),
        &rule("{method: GET}"),
    );
    let req = Req {
        headers: &[("a", "1"), ("b", "2"), ("c", "3")],
        ..get("h", "/")
    };
    assert_eq!(winner(&config, &req), "default/b#0");
    assert_eq!(
        winner(
            &config,
            &Req {
                method: Method::POST,
                ..req
            }
        ),
        "default/a#0"
    );
}

#[test]
fn most_header_matches_win_over_more_query_params() {
    let config = contest(
        &rule(
            "{headers: [{name: a, value: '1'}], queryParams: [{name: q, value: '1'}, {name: r, value: '2'}]}",
        ),
        &rule("{headers: [{name: a, value: '1'}, {name: b, value: '2'}]}"),
    );
    let req = Req {
        headers: &[("a", "1"), ("b", "2")],
        ..get("h", "/?q=1&r=2")
    };
    assert_eq!(winner(&config, &req), "default/b#0");
}

#[test]
fn most_query_param_matches_win() {
    let config = contest(
        &rule("{queryParams: [{name: q, value: '1'}]}"),
        &rule("{queryParams: [{name: q, value: '1'}, {name: r, value: '2'}]}"),
    );
    assert_eq!(winner(&config, &get("h", "/?q=1&r=2")), "default/b#0");
    assert_eq!(winner(&config, &get("h", "/?q=1")), "default/a#0");
}

#[test]
fn oldest_route_wins_a_tie() {
    let same = rule("{path: {type: PathPrefix, value: /}}");
    let yaml = format!(
        "{GATEWAY}{}{}",
        route("a", NEW, &[], &same),
        route("b", OLD, &[], &same)
    );
    let (config, _) = compiled(&yaml);
    assert_eq!(winner(&config, &get("h", "/")), "default/b#0");
    // Without timestamps (files), a route that has one is older.
    let yaml = format!(
        "{GATEWAY}{}{}",
        route("a", None, &[], &same),
        route("b", NEW, &[], &same)
    );
    assert_eq!(winner(&compiled(&yaml).0, &get("h", "/")), "default/b#0");
}

#[test]
fn namespace_and_name_break_the_remaining_tie() {
    let same = rule("{path: {type: PathPrefix, value: /}}");
    let yaml = format!(
        "{GATEWAY}{}{}",
        route("b", None, &[], &same),
        route("a", None, &[], &same)
    );
    assert_eq!(winner(&compiled(&yaml).0, &get("h", "/")), "default/a#0");
    // The namespace comes first: aaa/z before default/a.
    let other = route("z", None, &[], &same)
        .replace("namespace: default", "namespace: aaa")
        .replace("{name: gw}", "{name: gw, namespace: default}");
    let yaml = format!("{GATEWAY}{}{other}", route("a", None, &[], &same));
    assert_eq!(winner(&compiled(&yaml).0, &get("h", "/")), "aaa/z#0");
}

#[test]
fn first_rule_then_first_match_wins_within_a_route() {
    let rules = format!(
        "{}{}",
        rule("{path: {type: PathPrefix, value: /x}}"),
        rule("{path: {type: PathPrefix, value: /x}}")
    );
    let yaml = format!("{GATEWAY}{}", route("a", None, &[], &rules));
    assert_eq!(winner(&compiled(&yaml).0, &get("h", "/x")), "default/a#0");
    // A more specific match in a later rule still wins across rules.
    let rules = format!(
        "{}{}",
        rule("{path: {type: PathPrefix, value: /x}}"),
        rule("{path: {type: Exact, value: /x}}")
    );
    let yaml = format!("{GATEWAY}{}", route("a", None, &[], &rules));
    assert_eq!(winner(&compiled(&yaml).0, &get("h", "/x")), "default/a#1");
}

#[test]
fn hostname_specificity_comes_before_path_precedence() {
    // The wildcard route has an exact path, the exact-host route only a
    // prefix: the host decides first.
    let yaml = format!(
        "{GATEWAY}{}{}",
        route(
            "a",
            OLD,
            &["'*.example.com'"],
            &rule("{path: {type: Exact, value: /p}}")
        ),
        route(
            "b",
            NEW,
            &["foo.example.com"],
            &rule("{path: {type: PathPrefix, value: /}}")
        ),
    );
    assert_eq!(
        winner(&compiled(&yaml).0, &get("foo.example.com", "/p")),
        "default/b#0"
    );
}
