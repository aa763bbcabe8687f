//! Status as values: the conditions Ferry computes for GatewayClasses,
//! Gateways, their listeners, and each (route, parentRef).
//!
//! Computing status is pure ([`crate::compile::compile_with_status`]); the
//! control plane writes these values to the API server (with
//! [`Condition::to_k8s`]), a proxy shows them on `/config`, and the kubectl
//! plugin prints them. Condition types and reasons are enums, spelled as the
//! Gateway API spells them by `as_str()`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::{Serialize, Serializer};

use crate::attach::ParentRef;
use crate::objects::{Kind, NsName};

/// A condition type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// The object is valid and accepted by Ferry.
    Accepted,
    /// Every reference of the object resolved.
    ResolvedRefs,
    /// The configuration reached the data plane.
    Programmed,
    /// A listener conflicts with another one on the same port.
    Conflicted,
    /// Some rules of a route are invalid and were dropped.
    PartiallyInvalid,
}

/// A condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Positive reason of `Accepted`.
    Accepted,
    /// Positive reason of `ResolvedRefs`.
    ResolvedRefs,
    /// Positive reason of `Programmed`.
    Programmed,
    /// Negative reason of `Conflicted` (no conflict).
    NoConflicts,
    /// Route: no listener of the parent allows the route (namespace, kind).
    NotAllowedByListeners,
    /// Route: no hostname is shared by the route and a listener.
    NoMatchingListenerHostname,
    /// Route: the parentRef matches no parent (or no listener by
    /// `sectionName`/`port`).
    NoMatchingParent,
    /// Route: a field has a value Ferry does not support or that is invalid.
    UnsupportedValue,
    /// Route: a backendRef names an object that does not exist.
    BackendNotFound,
    /// A cross-namespace reference without a ReferenceGrant allowing it.
    RefNotPermitted,
    /// A reference to a kind Ferry does not support.
    InvalidKind,
    /// Listener: a certificateRef is invalid.
    InvalidCertificateRef,
    /// Listener: `allowedRoutes.kinds` names a kind Ferry does not support.
    InvalidRouteKinds,
    /// Listener: the protocol is not supported.
    UnsupportedProtocol,
    /// Listener: the port cannot be used.
    PortUnavailable,
    /// Listener: another listener has the same port and hostname.
    HostnameConflict,
    /// Listener: another listener has the same port and another protocol.
    ProtocolConflict,
    /// Gateway: some listeners are invalid.
    ListenersNotValid,
    /// Generic negative reason of `Programmed`.
    Invalid,
    /// GatewayClass: the class names parameters Ferry does not read.
    InvalidParameters,
}

/// One condition as computed (without a transition time, which the writer
/// keeps from the previous status when nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// The type.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True` or `False`.
    pub status: bool,
    /// Why.
    pub reason: Reason,
    /// What is wrong or right, in plain words.
    pub message: String,
    /// `metadata.generation` of the object the condition is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Everything Ferry computed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// GatewayClasses whose controllerName is Ferry's.
    pub gateway_classes: Vec<GatewayClassStatus>,
    /// Gateways of those classes.
    pub gateways: Vec<GatewayStatus>,
    /// Routes with at least one parentRef Ferry is responsible for.
    pub routes: Vec<RouteStatus>,
}

/// Status of a GatewayClass.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayClassStatus {
    /// The class name.
    pub name: String,
    /// `Accepted`.
    pub conditions: Vec<Condition>,
}

/// Status of a Gateway.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayStatus {
    /// The Gateway.
    #[serde(serialize_with = "display")]
    pub gateway: NsName,
    /// `Accepted`, `Programmed`.
    pub conditions: Vec<Condition>,
    /// One per listener, in spec order.
    pub listeners: Vec<ListenerStatus>,
}

/// Status of one Gateway listener.
#[derive(Clone, Debug, Serialize)]
pub struct ListenerStatus {
    /// The listener name.
    pub name: String,
    /// Route kinds that may attach.
    #[serde(serialize_with = "display_seq")]
    pub supported_kinds: Vec<Kind>,
    /// How many routes attached to it.
    pub attached_routes: u32,
    /// `Accepted`, `ResolvedRefs`, `Programmed`, `Conflicted`.
    pub conditions: Vec<Condition>,
}

/// Status of one route: one entry per parentRef Ferry is responsible for.
#[derive(Clone, Debug, Serialize)]
pub struct RouteStatus {
    /// The route kind.
    #[serde(serialize_with = "display")]
    pub kind: Kind,
    /// The route.
    #[serde(serialize_with = "display")]
    pub route: NsName,
    /// Per parentRef.
    pub parents: Vec<RouteParentStatus>,
}

/// Status of a route for one parentRef.
#[derive(Clone, Debug, Serialize)]
pub struct RouteParentStatus {
    /// The parentRef, with defaults filled in.
    pub parent_ref: ParentRef,
    /// `Accepted`, `ResolvedRefs`, and `PartiallyInvalid` when some rules
    /// were dropped.
    pub conditions: Vec<Condition>,
}

// === impl ConditionType ===

impl ConditionType {
    /// As the Gateway API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::ResolvedRefs => "ResolvedRefs",
            Self::Programmed => "Programmed",
            Self::Conflicted => "Conflicted",
            Self::PartiallyInvalid => "PartiallyInvalid",
        }
    }
}

impl Serialize for ConditionType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Reason ===

impl Reason {
    /// As the Gateway API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::ResolvedRefs => "ResolvedRefs",
            Self::Programmed => "Programmed",
            Self::NoConflicts => "NoConflicts",
            Self::NotAllowedByListeners => "NotAllowedByListeners",
            Self::NoMatchingListenerHostname => "NoMatchingListenerHostname",
            Self::NoMatchingParent => "NoMatchingParent",
            Self::UnsupportedValue => "UnsupportedValue",
            Self::BackendNotFound => "BackendNotFound",
            Self::RefNotPermitted => "RefNotPermitted",
            Self::InvalidKind => "InvalidKind",
            Self::InvalidCertificateRef => "InvalidCertificateRef",
            Self::InvalidRouteKinds => "InvalidRouteKinds",
            Self::UnsupportedProtocol => "UnsupportedProtocol",
            Self::PortUnavailable => "PortUnavailable",
            Self::HostnameConflict => "HostnameConflict",
            Self::ProtocolConflict => "ProtocolConflict",
            Self::ListenersNotValid => "ListenersNotValid",
            Self::Invalid => "Invalid",
            Self::InvalidParameters => "InvalidParameters",
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Condition ===

impl Condition {
    /// A condition that holds.
    pub fn yes(
        type_: ConditionType,
        reason: Reason,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Self {
            type_,
            status: true,
            reason,
            message: message.into(),
            observed_generation: generation,
        }
    }

    /// A condition that does not hold.
    pub fn no(
        type_: ConditionType,
        reason: Reason,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Self {
            status: false,
            ..Self::yes(type_, reason, message, generation)
        }
    }

    /// The Kubernetes condition, with the transition time the writer
    /// chose (the previous one when type, status and reason are unchanged).
    pub fn to_k8s(&self, last_transition_time: meta::Time) -> meta::Condition {
        meta::Condition {
            last_transition_time,
            message: self.message.clone(),
            observed_generation: self.observed_generation,
            reason: self.reason.as_str().to_string(),
            status: if self.status { "True" } else { "False" }.to_string(),
            type_: self.type_.as_str().to_string(),
        }
    }
}

/// Finds a condition by type.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

// === impl Status ===

impl Status {
    /// The status of one route, if Ferry computed one.
    pub fn route(&self, kind: Kind, route: &NsName) -> Option<&RouteStatus> {
        self.routes
            .iter()
            .find(|r| r.kind == kind && r.route == *route)
    }

    /// The status of one Gateway, if it is Ferry's.
    pub fn gateway(&self, gateway: &NsName) -> Option<&GatewayStatus> {
        self.gateways.iter().find(|g| g.gateway == *gateway)
    }
}

// === impl GatewayStatus ===

impl GatewayStatus {
    /// The status of one listener.
    pub fn listener(&self, name: &str) -> Option<&ListenerStatus> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// A Gateway-level condition.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        find(&self.conditions, type_)
    }
}

// === impl ListenerStatus ===

impl ListenerStatus {
    /// A listener condition.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        find(&self.conditions, type_)
    }
}

// === impl RouteParentStatus ===

impl RouteParentStatus {
    /// A condition of this (route, parentRef).
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        find(&self.conditions, type_)
    }
}

fn display<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn display_seq<T: fmt::Display, S: Serializer>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}
