//! The objects the plugin reads, as small version-tolerant values.
//!
//! Routes of every kind (HTTP, GRPC, TCP, TLS, UDP) and every served version
//! share one shape here: the plugin reads them from JSON (a list call or a
//! YAML file) with lenient serde structs, so a `v1alpha2` TCPRoute and a
//! `v1` HTTPRoute land in the same [`Route`]. [`Inventory`] holds one
//! snapshot of everything a view needs; views never do I/O.

mod gateway;
mod route;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub use gateway::{AllowedRoutes, Gateway, GatewayClass, Listener, ReferenceGrant};
pub use route::{BackendRef, ParentRef, Route, RouteKind, RouteParentStatus, Rule};

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Object metadata the views use.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// RFC 3339 creation time.
    pub creation_timestamp: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A status condition (`metav1.Condition`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Generation the condition was computed for.
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: Option<String>,
}

/// A Service port.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name.
    pub name: Option<String>,
    /// Port number.
    pub port: i32,
    /// `TCP`, `UDP`, ...
    pub protocol: Option<String>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

/// The parts of a Service the views use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    /// Metadata.
    pub meta: Meta,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.clusterIP`.
    pub cluster_ip: Option<String>,
    /// The object as read.
    pub raw: Value,
}

/// A Kubernetes Event about an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Last time seen (RFC 3339).
    pub last_seen: Option<String>,
    /// How many times it was seen.
    pub count: i32,
    /// Kind of the object it is about.
    pub kind: String,
    /// Namespace of the object it is about.
    pub namespace: String,
    /// Name of the object it is about.
    pub name: String,
}

/// One snapshot of everything the views read: from the cluster or files.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Routes of every kind read.
    pub routes: Vec<Route>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// GatewayClasses.
    pub gateway_classes: Vec<GatewayClass>,
    /// ReferenceGrants.
    pub reference_grants: Vec<ReferenceGrant>,
    /// Services.
    pub services: Vec<Service>,
    /// Namespace labels, by namespace; `None` when namespaces could not be read.
    pub namespaces: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Ready endpoint addresses per `(namespace, service)`; `None` when
    /// unknown (offline files without EndpointSlices).
    pub ready_endpoints: Option<BTreeMap<(String, String), usize>>,
    /// Events, when fetched (describe).
    pub events: Vec<Event>,
    /// Whether Gateways (and GatewayClasses) were read: when not, a missing
    /// Gateway is not reported as missing.
    pub gateways_known: bool,
    /// Whether Services were read.
    pub services_known: bool,
    /// Whether GatewayClasses were read.
    pub gateway_classes_known: bool,
    /// The snapshot as ferry-core's index, built on first use.
    pub core: std::sync::OnceLock<ferry_core::Objects>,
}

/// Errors turning JSON into model values.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A document does not have the shape of its kind.
    #[error("failed to read {kind} {name}")]
    Decode {
        /// Kind.
        kind: String,
        /// `namespace/name` or name.
        name: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct RawService {
    metadata: Meta,
    spec: RawServiceSpec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawServiceSpec {
    ports: Vec<ServicePort>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
}

// === impl Condition ===

impl Condition {
    /// Whether the condition is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The condition of a type in a list.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

// === impl Service ===

impl Service {
    /// Reads a Service from its JSON.
    pub fn from_json(value: Value) -> Result<Self, ModelError> {
        let name = display_name(&value);
        let raw: RawService =
            serde_json::from_value(value.clone()).map_err(|source| ModelError::Decode {
                kind: "Service".to_owned(),
                name,
                source,
            })?;
        Ok(Self {
            meta: raw.metadata,
            ports: raw.spec.ports,
            cluster_ip: raw.spec.cluster_ip,
            raw: value,
        })
    }

    /// The port with this number, if the Service has it.
    pub fn port(&self, port: i32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

// === impl Inventory ===

impl Inventory {
    /// A Gateway by namespace and name.
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&Gateway> {
        self.gateways
            .iter()
            .find(|g| g.meta.namespace == namespace && g.meta.name == name)
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.meta.namespace == namespace && s.meta.name == name)
    }

    /// A GatewayClass by name.
    pub fn gateway_class(&self, name: &str) -> Option<&GatewayClass> {
        self.gateway_classes.iter().find(|c| c.meta.name == name)
    }

    /// Labels of a namespace: `None` when namespaces are unknown, empty when
    /// the namespace is not listed.
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .as_ref()
            .map(|all| all.get(namespace).cloned().unwrap_or_default())
    }

    /// Ready endpoints of a Service, when known.
    pub fn ready(&self, namespace: &str, name: &str) -> Option<usize> {
        self.ready_endpoints.as_ref().map(|all| {
            all.get(&(namespace.to_owned(), name.to_owned()))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Sorts every list by namespace and name, so views are deterministic.
    pub fn sort(&mut self) {
        self.routes.sort_by(|a, b| {
            (a.kind, &a.meta.namespace, &a.meta.name).cmp(&(
                b.kind,
                &b.meta.namespace,
                &b.meta.name,
            ))
        });
        self.gateways.sort_by(|a, b| {
            (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name))
        });
        self.gateway_classes
            .sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        self.services.sort_by(|a, b| {
            (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name))
        });
        self.reference_grants.sort_by(|a, b| {
            (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name))
        });
    }
}

/// `namespace/name` of a JSON object, for error messages.
pub(crate) fn display_name(value: &Value) -> String {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    match value.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}
