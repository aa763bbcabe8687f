//! Property tests of request matching against simple reference models.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

use super::*;

/// Paths over a tiny alphabet, so that prefixes and near-misses are common.
fn path() -> impl Strategy<Value = String> {
    "(/[ab]{0,2}){1,4}/?"
}

/// A normalized prefix as compile stores it: no trailing `/` except root.
fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_string()), "(/[ab]{1,2}){1,3}"]
}

/// Element-wise prefix match, the spec's definition.
fn reference_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    let want: Vec<&str> = prefix.split('/').collect();
    let have: Vec<&str> = path.split('/').collect();
    have.len() >= want.len() && have[..want.len()] == want[..]
}

fn head<'a>(
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> RequestHead<'a> {
    RequestHead {
        host,
        method: &Method::GET,
        path,
        query,
        headers,
    }
}

fn label() -> impl Strategy<Value = String> {
    "[ab]{1,2}"
}

fn host() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

proptest! {
    #[test]
    fn prefix_matches_element_wise(prefix in prefix(), path in path()) {
        let m = PathMatch::Prefix(prefix.clone());
        prop_assert_eq!(m.matches(&path), reference_prefix(&prefix, &path));
    }

    #[test]
    fn prefix_never_matches_inside_a_path_element(prefix in "(/[ab]{1,2}){1,3}", tail in "[ab]{1,2}") {
        let m = PathMatch::Prefix(prefix.clone());
        prop_assert!(m.matches(&prefix));
        let slash = format!("{prefix}/");
        prop_assert!(m.matches(&slash));
        let below = format!("{prefix}/{tail}");
        prop_assert!(m.matches(&below));
        let glued = format!("{prefix}{tail}");
        prop_assert!(!m.matches(&glued));
    }

    #[test]
    fn exact_matches_only_the_same_path_and_implies_prefix(exact in "(/[ab]{1,2}){1,3}", path in path()) {
        let matched = PathMatch::Exact(exact.clone()).matches(&path);
        prop_assert_eq!(matched, path == exact);
        if matched {
            prop_assert!(PathMatch::Prefix(exact).matches(&path));
        }
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_are_not(
        name in "[a-z][a-z-]{0,8}",
        upper in prop::collection::vec(any::<bool>(), 9),
        value in "[a-zA-Z0-9]{1,8}",
    ) {
        let sent: String = name
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_bytes(sent.as_bytes()).unwrap(), HeaderValue::from_str(&value).unwrap());
        let matcher = |v: &str| HeaderMatch {
            name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value: ValueMatch::Exact(v.to_string()),
        };
        prop_assert!(matcher(&value).matches(&headers));
        let flipped: String = value.chars().map(|c| if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect();
        prop_assert_eq!(matcher(&flipped).matches(&headers), flipped == value);
    }

    #[test]
    fn regexes_are_anchored_at_both_ends(a in "[a-c]{1,4}", b in "[a-c]{1,4}", value in "[a-c]{0,9}") {
        let re = AnchoredRegex::new(&format!("{}|{}", regex::escape(&a), regex::escape(&b))).unwrap();
        prop_assert_eq!(re.is_match(&value), value == a || value == b);
        let re = AnchoredRegex::new(&regex::escape(&a)).unwrap();
        let (ab, ba) = (format!("{a}{b}"), format!("{b}{a}"));
        prop_assert!(!re.is_match(&ab));
        prop_assert!(!re.is_match(&ba));
    }

    #[test]
    fn wildcard_hosts_need_at_least_one_more_label(suffix in host(), extra in prop::collection::vec(label(), 0..3), other in host()) {
        let pattern = HostPattern::parse(Some(&format!("*.{suffix}")));
        let host = if extra.is_empty() { suffix.clone() } else { format!("{}.{suffix}", extra.join(".")) };
        prop_assert_eq!(pattern.matches(&host), !extra.is_empty());
        prop_assert_eq!(pattern.matches(&host.to_ascii_uppercase()), !extra.is_empty());
        // Glued to the suffix without a dot is not a subdomain.
        let glued = format!("x{suffix}");
        prop_assert!(!pattern.matches(&glued));
        let reference = other.len() > suffix.len() + 1 && other.ends_with(&format!(".{suffix}"));
        prop_assert_eq!(pattern.matches(&other), reference);
    }

    #[test]
    fn any_host_text_is_matched_without_panicking(host in "\\PC{0,12}", suffix in "[aé.]{1,4}") {
        let _ = HostPattern::Wildcard(suffix.clone()).matches(&host);
        let _ = HostPattern::Exact(suffix).matches(&host);
    }

    #[test]
    fn query_params_match_the_first_occurrence(name in "[a-c]{1,2}", first in "[0-2]", second in "[0-2]") {
        let m = QueryMatch { name: name.clone(), value: ValueMatch::Exact(first.clone()) };
        let query = format!("z=9&{name}={first}&{name}={second}");
        prop_assert!(m.matches(Some(&query)));
        let m = QueryMatch { name: name.clone(), value: ValueMatch::Exact(second.clone()) };
        prop_assert_eq!(m.matches(Some(&query)), first == second);
        prop_assert!(!m.matches(None));
    }

    #[test]
    fn all_conditions_of_a_matcher_must_hold(path in path(), with_header in any::<bool>(), get in any::<bool>()) {
        let matcher = RequestMatcher {
            path: PathMatch::Prefix("/".to_string()),
            method: Some(Method::GET),
            headers: vec![HeaderMatch { name: HeaderName::from_static("env"), value: ValueMatch::Exact("canary".into()) }],
            query: Vec::new(),
        };
        let mut headers = HeaderMap::new();
        if with_header {
            headers.insert("env", HeaderValue::from_static("canary"));
        }
        let method = if get { Method::GET } else { Method::POST };
        let req = RequestHead { method: &method, ..head("h", &path, None, &headers) };
        prop_assert_eq!(matcher.matches(&req), with_header && get);
    }
}

#[test]
fn repeated_headers_are_joined_with_commas() {
    let mut headers = HeaderMap::new();
    headers.append("x", HeaderValue::from_static("a"));
    headers.append("x", HeaderValue::from_static("b"));
    let m = |v: &str| HeaderMatch {
        name: HeaderName::from_static("x"),
        value: ValueMatch::Exact(v.to_string()),
    };
    assert!(m("a,b").matches(&headers));
    assert!(!m("a").matches(&headers));
}

#[test]
fn non_ascii_hosts_do_not_panic() {
    assert!(!HostPattern::Wildcard("bb".to_string()).matches("aaéb"));
    assert!(HostPattern::Wildcard("b".to_string()).matches("é.b"));
}

#[test]
fn oversized_regexes_are_refused() {
    assert!(AnchoredRegex::new("a{1000}{1000}").is_err());
    assert!(AnchoredRegex::new("(unclosed").is_err());
}
