//! Precedence of route matches: the sort key of the crate's compile
//! module documentation ("Precedence"), in field order.

use std::cmp::Reverse;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::model::{PathMatch, RequestMatcher};
use crate::objects::NsName;

/// The sort key of one match; smaller sorts first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Precedence {
    path_kind: u8,
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    /// `(false, Some(t))` sorts before `(true, None)`.
    created: (bool, Option<Time>),
    route: NsName,
    rule: usize,
    matched: usize,
}

// === impl Precedence ===

impl Precedence {
    pub(crate) fn new(
        m: &RequestMatcher,
        created: Option<&Time>,
        route: &NsName,
        rule: usize,
        matched: usize,
    ) -> Self {
        let (path_kind, path_len) = match &m.path {
            PathMatch::Exact(p) => (0, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Regex(re) => (2, re.to_string().len()),
        };
        Self {
            path_kind,
            path_len: Reverse(path_len),
            no_method: m.method.is_none(),
            headers: Reverse(m.headers.len()),
            query: Reverse(m.query.len()),
            created: (created.is_none(), created.cloned()),
            route: route.clone(),
            rule,
            matched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> RequestMatcher {
        RequestMatcher {
            path: PathMatch::Prefix("/".to_string()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    /// Routes are compiled in namespace/name order already, so the
    /// end-to-end test cannot see this key; check it directly.
    #[test]
    fn namespace_then_name_orders_equal_matches() {
        let key =
            |ns: &str, name: &str| Precedence::new(&matcher(), None, &NsName::new(ns, name), 0, 0);
        assert!(key("default", "a") < key("default", "b"));
        assert!(key("aaa", "z") < key("default", "a"));
        assert!(key("default", "a") != key("default", "b"));
    }

    #[test]
    fn created_routes_come_before_routes_without_a_timestamp() {
        let time: Time = serde_json::from_str("\"2020-01-01T00:00:00Z\"").unwrap();
        let created = Precedence::new(&matcher(), Some(&time), &NsName::new("z", "z"), 0, 0);
        let unknown = Precedence::new(&matcher(), None, &NsName::new("a", "a"), 0, 0);
        assert!(created < unknown);
    }
}
