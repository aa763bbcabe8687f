//! Routes of every kind, their parent and backend references, and status.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use super::{Condition, GATEWAY_GROUP, Meta, ModelError, display_name};

/// The route kinds the plugin reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// HTTPRoute.
    #[default]
    Http,
    /// GRPCRoute.
    Grpc,
    /// TCPRoute.
    Tcp,
    /// TLSRoute.
    Tls,
    /// UDPRoute.
    Udp,
}

/// A `parentRef`, as written or as reported in status.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentRef {
    /// API group (`gateway.networking.k8s.io` when unset).
    pub group: Option<String>,
    /// Kind (`Gateway` when unset).
    pub kind: Option<String>,
    /// Namespace (the route's when unset).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name (Gateway) or port name.
    pub section_name: Option<String>,
    /// Port.
    pub port: Option<i32>,
}

/// A `backendRef`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendRef {
    /// API group (`""` when unset).
    pub group: Option<String>,
    /// Kind (`Service` when unset).
    pub kind: Option<String>,
    /// Namespace (the route's when unset).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Port.
    pub port: Option<i32>,
    /// Weight (1 when unset).
    pub weight: Option<i32>,
    /// Per-backend filters.
    pub filters: Vec<Value>,
}

/// A rule of a route.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    /// Optional rule name.
    pub name: Option<String>,
    /// Matches, as written (their shape depends on the kind).
    pub matches: Vec<Value>,
    /// Filters, as written.
    pub filters: Vec<Value>,
    /// Backends.
    pub backend_refs: Vec<BackendRef>,
}

/// One entry of `status.parents`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent this entry is about.
    pub parent_ref: ParentRef,
    /// The controller that wrote it.
    pub controller_name: String,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// A route of any kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    /// Its kind.
    pub kind: RouteKind,
    /// Metadata.
    pub meta: Meta,
    /// `spec.parentRefs`.
    pub parent_refs: Vec<ParentRef>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// `spec.rules`.
    pub rules: Vec<Rule>,
    /// `status.parents`.
    pub status: Vec<RouteParentStatus>,
    /// The object as read, for ferry-core's typed view.
    pub raw: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRoute {
    metadata: Meta,
    spec: RawSpec,
    status: RawStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSpec {
    parent_refs: Vec<ParentRef>,
    hostnames: Vec<String>,
    rules: Vec<Rule>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus {
    parents: Vec<RouteParentStatus>,
}

/// A route kind name the plugin does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown route kind {0:?}: use httproute, grpcroute, tcproute, tlsroute or udproute")]
pub struct UnknownKind(pub String);

// === impl RouteKind ===

impl RouteKind {
    /// Every kind, in display order.
    pub const ALL: [RouteKind; 5] = [Self::Http, Self::Grpc, Self::Tcp, Self::Tls, Self::Udp];

    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTPRoute",
            Self::Grpc => "GRPCRoute",
            Self::Tcp => "TCPRoute",
            Self::Tls => "TLSRoute",
            Self::Udp => "UDPRoute",
        }
    }

    /// The resource name (`httproutes`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Http => "httproutes",
            Self::Grpc => "grpcroutes",
            Self::Tcp => "tcproutes",
            Self::Tls => "tlsroutes",
            Self::Udp => "udproutes",
        }
    }

    /// The kind from a Kubernetes `kind` field.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RouteKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let lower = lower.split('.').next().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|k| {
                let singular = k.as_str().to_ascii_lowercase();
                lower == singular || lower == k.plural()
            })
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

// === impl ParentRef ===

impl ParentRef {
    /// The group, defaulted.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GATEWAY_GROUP)
    }

    /// The kind, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// The namespace, defaulted to the route's.
    pub fn namespace<'a>(&'a self, route_ns: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(route_ns)
    }

    /// Whether this is a GAMMA Service parent.
    pub fn is_service(&self) -> bool {
        self.group() == "" && self.kind() == "Service"
    }

    /// Whether this is a Gateway parent.
    pub fn is_gateway(&self) -> bool {
        self.group() == GATEWAY_GROUP && self.kind() == "Gateway"
    }

    /// Whether two refs name the same parent once defaults are applied.
    pub fn same_as(&self, other: &ParentRef, route_ns: &str) -> bool {
        self.group() == other.group()
            && self.kind() == other.kind()
            && self.namespace(route_ns) == other.namespace(route_ns)
            && self.name == other.name
            && self.section_name == other.section_name
            && self.port == other.port
    }

    /// `svc/ns/name:port`, `gw/ns/name#listener`, or `Kind/ns/name`.
    pub fn display(&self, route_ns: &str) -> String {
        let ns = self.namespace(route_ns);
        let mut out = if self.is_service() {
            format!("svc/{ns}/{}", self.name)
        } else if self.is_gateway() {
            format!("gw/{ns}/{}", self.name)
        } else {
            format!("{}/{ns}/{}", self.kind(), self.name)
        };
        if let Some(section) = &self.section_name {
            out.push('#');
            out.push_str(section);
        }
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out
    }
}

// === impl BackendRef ===

impl BackendRef {
    /// The group, defaulted.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    /// The kind, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }

    /// The namespace, defaulted to the route's.
    pub fn namespace<'a>(&'a self, route_ns: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(route_ns)
    }

    /// The weight, defaulted to 1 (negative weights count as 0).
    pub fn weight(&self) -> u64 {
        u64::try_from(self.weight.unwrap_or(1)).unwrap_or(0)
    }

    /// Whether it names a core Service.
    pub fn is_service(&self) -> bool {
        self.group() == "" && self.kind() == "Service"
    }

    /// `name:port`, prefixed by `ns/` when cross-namespace and by `Kind/`
    /// when not a Service.
    pub fn display(&self, route_ns: &str) -> String {
        let mut out = String::new();
        if !self.is_service() {
            out.push_str(self.kind());
            out.push('/');
        }
        if self.namespace(route_ns) != route_ns {
            out.push_str(self.namespace(route_ns));
            out.push('/');
        }
        out.push_str(&self.name);
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out
    }
}

// === impl Route ===

impl Route {
    /// Reads a route of a kind from its JSON (any served version).
    pub fn from_json(kind: RouteKind, value: Value) -> Result<Self, ModelError> {
        let name = display_name(&value);
        let raw: RawRoute =
            serde_json::from_value(value.clone()).map_err(|source| ModelError::Decode {
                kind: kind.as_str().to_owned(),
                name,
                source,
            })?;
        Ok(Self {
            kind,
            meta: raw.metadata,
            parent_refs: raw.spec.parent_refs,
            hostnames: raw.spec.hostnames,
            rules: raw.spec.rules,
            status: raw.status.parents,
            raw: value,
        })
    }

    /// The status entries written for a parentRef (one per controller).
    pub fn status_for<'a>(
        &'a self,
        parent: &'a ParentRef,
    ) -> impl Iterator<Item = &'a RouteParentStatus> + 'a {
        self.status
            .iter()
            .filter(move |s| s.parent_ref.same_as(parent, &self.meta.namespace))
    }

    /// `kind/namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind.as_str().to_ascii_lowercase(),
            self.meta.namespace,
            self.meta.name
        )
    }
}
