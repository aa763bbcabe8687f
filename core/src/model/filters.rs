//! Filters a rule or a backendRef applies to a request or its response.

use http::{HeaderName, HeaderValue};
use serde::Serialize;

use super::BackendId;
use super::serde_util;

/// One HTTPRoute filter, validated and ready to apply.
#[derive(Clone, Debug, Serialize)]
pub enum Filter {
    /// `RequestHeaderModifier`.
    RequestHeaders(HeaderModifier),
    /// `ResponseHeaderModifier`.
    ResponseHeaders(HeaderModifier),
    /// `RequestRedirect`: answer with a redirect instead of forwarding.
    Redirect(Redirect),
    /// `URLRewrite`: change host and/or path before forwarding.
    Rewrite(Rewrite),
    /// `RequestMirror`: send a copy to another backend, ignoring its answer.
    Mirror(Mirror),
    /// `CORS`: answer preflights and add CORS response headers.
    Cors(Cors),
}

/// Header changes, applied in the order set, add, remove.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeaderModifier {
    /// Replace (or create) these headers.
    #[serde(serialize_with = "serde_util::header_pairs")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append these values.
    #[serde(serialize_with = "serde_util::header_pairs")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove these headers.
    #[serde(serialize_with = "serde_util::display_seq")]
    pub remove: Vec<HeaderName>,
}

/// A `RequestRedirect`. Fields left `None` keep the request's value.
#[derive(Clone, Debug, Serialize)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// New host.
    pub hostname: Option<String>,
    /// New port. When `None` and the scheme changes, the port is the
    /// scheme's well-known one (and omitted from `Location`).
    pub port: Option<u16>,
    /// New path.
    pub path: Option<PathModifier>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// A `URLRewrite`.
#[derive(Clone, Debug, Serialize)]
pub struct Rewrite {
    /// New Host header.
    pub hostname: Option<String>,
    /// New path.
    pub path: Option<PathModifier>,
}

/// How a redirect or rewrite changes the path.
#[derive(Clone, Debug, Serialize)]
pub enum PathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part matched by the rule's `PathPrefix` match.
    ReplacePrefixMatch(String),
}

/// A `RequestMirror`.
#[derive(Clone, Debug, Serialize)]
pub struct Mirror {
    /// Where copies go; `None` when the reference is invalid (nothing is
    /// mirrored then).
    pub target: Option<BackendId>,
    /// Share of requests mirrored, 0.0 to 100.0.
    pub percent: f64,
}

/// A `CORS` filter.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cors {
    /// Allowed origins; `*` allows any, `https://*.example.com` a subdomain.
    pub allow_origins: Vec<String>,
    /// Allowed methods for preflight (`*` for any).
    pub allow_methods: Vec<String>,
    /// Allowed request headers for preflight (`*` for any).
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page.
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    pub max_age: Option<u32>,
    /// Whether credentials are allowed.
    pub allow_credentials: bool,
}
