//! Request matching: hostnames, paths, headers, query parameters, method.

use std::fmt;

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;
use serde::{Serialize, Serializer};

use super::RouteAction;
use super::serde_util;

/// The parts of a request that routing looks at.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// Host from `:authority` or `Host`, lowercase, without port.
    pub host: &'a str,
    /// Request method.
    pub method: &'a Method,
    /// Path, without the query string.
    pub path: &'a str,
    /// Raw query string, without the `?`.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// A routing decision: the rule that matched and the path match that made
/// it (needed by `ReplacePrefixMatch`).
#[derive(Clone, Copy, Debug)]
pub struct Matched<'a> {
    /// The path match of the entry that matched.
    pub path: &'a PathMatch,
    /// What to do with the request.
    pub action: &'a std::sync::Arc<RouteAction>,
}

/// Which request hosts a virtual host or certificate applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Any host.
    Any,
    /// Exactly this lowercase name.
    Exact(String),
    /// `*.suffix`: one or more labels followed by `.suffix` (stored without
    /// the leading `*.`).
    Wildcard(String),
}

/// All conditions of one `HTTPRouteMatch`; every one must hold.
#[derive(Clone, Debug, Serialize)]
pub struct RequestMatcher {
    /// Path condition (`PathPrefix /` when the route gives none).
    pub path: PathMatch,
    /// Method condition, if any.
    #[serde(serialize_with = "serde_util::opt_display")]
    pub method: Option<Method>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions.
    pub query: Vec<QueryMatch>,
}

/// A path condition.
#[derive(Clone, Debug, Serialize)]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this, element-wise: `/foo` matches `/foo` and
    /// `/foo/bar` but not `/foobar`. Stored without a trailing `/`, except
    /// for the root `/`.
    Prefix(String),
    /// The whole path matches this regular expression.
    Regex(#[serde(serialize_with = "serde_util::display")] AnchoredRegex),
}

/// A header condition. Names are case-insensitive; when a header appears
/// more than once, its values are joined with `,` before matching.
#[derive(Clone, Debug, Serialize)]
pub struct HeaderMatch {
    /// Header name.
    #[serde(serialize_with = "serde_util::display")]
    pub name: HeaderName,
    /// Value condition.
    pub value: ValueMatch,
}

/// A query parameter condition. Names are case-sensitive; the first
/// occurrence of a parameter is the one matched.
#[derive(Clone, Debug, Serialize)]
pub struct QueryMatch {
    /// Parameter name.
    pub name: String,
    /// Value condition.
    pub value: ValueMatch,
}

/// A condition on a header or query value.
#[derive(Clone, Debug, Serialize)]
pub enum ValueMatch {
    /// Equal to this.
    Exact(String),
    /// Matches this regular expression, anchored at both ends.
    Regex(#[serde(serialize_with = "serde_util::display")] AnchoredRegex),
}

/// A regular expression that must match a whole value. Keeps the source as
/// the user wrote it for display.
#[derive(Clone, Debug)]
pub struct AnchoredRegex {
    source: String,
    regex: Regex,
}

// === impl HostPattern ===

impl HostPattern {
    /// Parses a Gateway API hostname (`example.com`, `*.example.com`);
    /// `None` or an empty string is [`HostPattern::Any`].
    pub fn parse(hostname: Option<&str>) -> Self {
        match hostname.map(str::to_ascii_lowercase) {
            None => Self::Any,
            Some(h) if h.is_empty() => Self::Any,
            Some(h) => match h.strip_prefix("*.") {
                Some(suffix) => Self::Wildcard(suffix.to_string()),
                None => Self::Exact(h),
            },
        }
    }

    /// Whether `host` (lowercase, no port) is covered by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => name.eq_ignore_ascii_case(host),
            Self::Wildcard(suffix) => {
                // Bytes, not `str` slicing: a non-ASCII host must not panic.
                let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
                host.len() > suffix.len() + 1
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && host[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// === impl RequestMatcher ===

impl RequestMatcher {
    /// Whether every condition holds for `req`.
    pub fn matches(&self, req: &RequestHead<'_>) -> bool {
        self.path.matches(req.path)
            && self.method.as_ref().is_none_or(|m| m == req.method)
            && self.headers.iter().all(|h| h.matches(req.headers))
            && self.query.iter().all(|q| q.matches(req.query))
    }
}

// === impl PathMatch ===

impl PathMatch {
    /// Whether `path` satisfies this condition.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => {
                prefix == "/"
                    || (path.starts_with(prefix.as_str())
                        && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
            }
            Self::Regex(re) => re.is_match(path),
        }
    }
}

// === impl HeaderMatch ===

impl HeaderMatch {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        let Ok(first) = first.to_str() else {
            return false;
        };
        match values.next() {
            None => self.value.matches(first),
            Some(second) => {
                let mut joined = String::from(first);
                for value in std::iter::once(second).chain(values) {
                    let Ok(value) = value.to_str() else {
                        return false;
                    };
                    joined.push(',');
                    joined.push_str(value);
                }
                self.value.matches(&joined)
            }
        }
    }
}

// === impl QueryMatch ===

impl QueryMatch {
    fn matches(&self, query: Option<&str>) -> bool {
        let Some(query) = query else {
            return false;
        };
        query
            .split('&')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name == self.name).then_some(value)
            })
            .next()
            .is_some_and(|value| self.value.matches(value))
    }
}

// === impl ValueMatch ===

impl ValueMatch {
    /// Whether `value` satisfies this condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => value == exact,
            Self::Regex(re) => re.is_match(value),
        }
    }
}

// === impl AnchoredRegex ===

impl AnchoredRegex {
    /// Largest compiled program accepted for a user's regular expression.
    pub const SIZE_LIMIT: usize = 1 << 16;

    /// Compiles `source` so that it must match a whole value. The `regex`
    /// crate runs in linear time, so no input can make matching backtrack;
    /// the size limit bounds memory.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(Self::SIZE_LIMIT)
            .dfa_size_limit(Self::SIZE_LIMIT * 4)
            .build()?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl fmt::Display for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
