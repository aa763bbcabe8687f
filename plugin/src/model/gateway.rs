//! Gateways, their listeners, GatewayClasses and ReferenceGrants.

use serde::Deserialize;
use serde_json::Value;

use super::{Condition, Meta, ModelError, display_name};

/// A label selector: ferry-core's, so the plugin matches namespaces exactly
/// as the control plane does.
pub(crate) use ferry_core::attach::LabelSelector;

/// `allowedRoutes.namespaces`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteNamespaces {
    /// `All`, `Same` (default) or `Selector`.
    pub from: Option<String>,
    /// The selector for `Selector`.
    pub selector: Option<LabelSelector>,
}

/// A `group`/`kind` pair.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupKind {
    /// Group (the Gateway API group when unset).
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
}

/// A listener's `allowedRoutes`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AllowedRoutes {
    /// Which namespaces may attach.
    pub namespaces: Option<RouteNamespaces>,
    /// Which kinds may attach (by protocol when empty).
    pub kinds: Vec<GroupKind>,
}

/// A Gateway listener.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    /// Name (the `sectionName` routes use).
    pub name: String,
    /// Hostname, possibly a `*.` wildcard.
    pub hostname: Option<String>,
    /// Port.
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP`.
    pub protocol: String,
    /// Which routes may attach.
    pub allowed_routes: Option<AllowedRoutes>,
}

/// A listener's status.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Routes attached, as the controller counts them.
    pub attached_routes: i64,
    /// Conditions.
    pub conditions: Vec<Condition>,
}

/// A Gateway.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gateway {
    /// Metadata.
    pub meta: Meta,
    /// `spec.gatewayClassName`.
    pub class_name: String,
    /// `spec.listeners`.
    pub listeners: Vec<Listener>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.listeners`.
    pub listener_status: Vec<ListenerStatus>,
    /// The object as read.
    pub raw: Value,
}

/// A GatewayClass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayClass {
    /// Metadata.
    pub meta: Meta,
    /// `spec.controllerName`.
    pub controller_name: String,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// The object as read.
    pub raw: Value,
}

/// A ReferenceGrant's `from` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct GrantFrom {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
}

/// A ReferenceGrant's `to` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct GrantTo {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name (every object of the kind when unset).
    pub name: Option<String>,
}

/// A ReferenceGrant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReferenceGrant {
    /// Metadata.
    pub meta: Meta,
    /// Who may refer.
    pub from: Vec<GrantFrom>,
    /// To what.
    pub to: Vec<GrantTo>,
    /// The object as read.
    pub raw: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw<S, T> {
    metadata: Meta,
    spec: S,
    status: T,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GatewaySpec {
    gateway_class_name: String,
    listeners: Vec<Listener>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GatewayStatus {
    conditions: Vec<Condition>,
    listeners: Vec<ListenerStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClassSpec {
    controller_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConditionsStatus {
    conditions: Vec<Condition>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GrantSpec {
    from: Vec<GrantFrom>,
    to: Vec<GrantTo>,
}

fn decode<T: serde::de::DeserializeOwned>(kind: &str, value: Value) -> Result<T, ModelError> {
    let name = display_name(&value);
    serde_json::from_value(value).map_err(|source| ModelError::Decode {
        kind: kind.to_owned(),
        name,
        source,
    })
}

// === impl Gateway ===

impl Gateway {
    /// Reads a Gateway from its JSON.
    pub fn from_json(value: Value) -> Result<Self, ModelError> {
        let raw: Raw<GatewaySpec, GatewayStatus> = decode("Gateway", value.clone())?;
        Ok(Self {
            meta: raw.metadata,
            class_name: raw.spec.gateway_class_name,
            listeners: raw.spec.listeners,
            conditions: raw.status.conditions,
            listener_status: raw.status.listeners,
            raw: value,
        })
    }

    /// A listener by name.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

// === impl GatewayClass ===

impl GatewayClass {
    /// Reads a GatewayClass from its JSON.
    pub fn from_json(value: Value) -> Result<Self, ModelError> {
        let raw: Raw<ClassSpec, ConditionsStatus> = decode("GatewayClass", value.clone())?;
        Ok(Self {
            meta: raw.metadata,
            controller_name: raw.spec.controller_name,
            conditions: raw.status.conditions,
            raw: value,
        })
    }
}

// === impl ReferenceGrant ===

impl ReferenceGrant {
    /// Reads a ReferenceGrant from its JSON.
    pub fn from_json(value: Value) -> Result<Self, ModelError> {
        let raw: Raw<GrantSpec, ConditionsStatus> = decode("ReferenceGrant", value.clone())?;
        Ok(Self {
            meta: raw.metadata,
            from: raw.spec.from,
            to: raw.spec.to,
            raw: value,
        })
    }

    /// Whether this grant lets `from_kind` objects in `from_ns` refer to the
    /// object `to_group`/`to_kind`/`to_name` in the grant's namespace.
    pub fn permits(
        &self,
        (from_group, from_kind, from_ns): (&str, &str, &str),
        (to_group, to_kind, to_name): (&str, &str, &str),
    ) -> bool {
        self.from
            .iter()
            .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns)
            && self.to.iter().any(|t| {
                t.group == to_group
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            })
    }
}
