//! Hostname intersection between listeners and routes, and specificity.

use crate::model::HostPattern;

/// The hostnames a route serves on a listener: the listener's hostname
/// intersected with each of the route's (no route hostnames: the
/// listener's). A wildcard intersected with a more specific name is the more
/// specific name.
pub fn intersect(listener: &HostPattern, route: &[HostPattern]) -> Vec<HostPattern> {
    if route.is_empty() {
        return vec![listener.clone()];
    }
    let mut out: Vec<HostPattern> = Vec::new();
    for r in route {
        let shared = if covers(listener, r) {
            Some(r.clone())
        } else if covers(r, listener) {
            Some(listener.clone())
        } else {
            None
        };
        if let Some(h) = shared.filter(|h| !out.contains(h)) {
            out.push(h);
        }
    }
    out
}

/// Whether every host `inner` matches is also matched by `outer`.
pub fn covers(outer: &HostPattern, inner: &HostPattern) -> bool {
    match (outer, inner) {
        (HostPattern::Any, _) => true,
        (_, HostPattern::Any) => false,
        (HostPattern::Exact(o), HostPattern::Exact(i)) => o == i,
        (HostPattern::Exact(_), HostPattern::Wildcard(_)) => false,
        (HostPattern::Wildcard(_), HostPattern::Exact(i)) => outer.matches(i),
        (HostPattern::Wildcard(o), HostPattern::Wildcard(i)) => {
            i == o
                || (i.len() > o.len()
                    && i.ends_with(o.as_str())
                    && i.as_bytes()[i.len() - o.len() - 1] == b'.')
        }
    }
}

/// Orders host patterns from most to least specific: exact names (longer
/// first), wildcards (longer suffix first), then any host.
pub fn specificity(h: &HostPattern) -> (u8, std::cmp::Reverse<usize>, String) {
    match h {
        HostPattern::Exact(name) => (0, std::cmp::Reverse(name.len()), name.clone()),
        HostPattern::Wildcard(suffix) => (1, std::cmp::Reverse(suffix.len()), suffix.clone()),
        HostPattern::Any => (2, std::cmp::Reverse(0), String::new()),
    }
}
