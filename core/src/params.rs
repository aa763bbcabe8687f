//! Deployment parameters of Ferry Gateways, from the ConfigMap a
//! GatewayClass's `spec.parametersRef` or a Gateway's
//! `spec.infrastructure.parametersRef` names (group `""`, kind
//! `ConfigMap`; a GatewayClass's reference also names the namespace).
//!
//! Keys of the ConfigMap's `data`:
//!
//! - `serviceType`: `LoadBalancer`, `NodePort` or `ClusterIP`;
//! - `replicas`: a non-negative integer;
//! - `serviceAnnotations`: a YAML (or JSON) map of strings, added to the
//!   gateway's Service.
//!
//! Any other key is an error, so a typo never falls back to a default in
//! silence. A Gateway's parameters override its class's key by key (the
//! annotation maps merge, the Gateway's value winning). A reference to
//! another kind, a ConfigMap that does not exist, or a value that does not
//! parse makes the GatewayClass or Gateway `Accepted: False` with reason
//! `InvalidParameters`, and the Gateway is not deployed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::attach::{Refusal, is_ferry_class};
use crate::objects::api::{Gateway, GatewayClass};
use crate::objects::{NsName, Objects};
use crate::status::Reason;

/// The type of a gateway's Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    /// `LoadBalancer` (the default).
    LoadBalancer,
    /// `NodePort`.
    NodePort,
    /// `ClusterIP`.
    ClusterIp,
}

/// Parameters of a Gateway's deployment; `None` and empty fields keep the
/// deployer's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfraParams {
    /// `serviceType`.
    pub service_type: Option<ServiceType>,
    /// `replicas`.
    pub replicas: Option<i32>,
    /// `serviceAnnotations`.
    pub service_annotations: BTreeMap<String, String>,
}

/// A parametersRef, whichever object holds it.
struct ParamsRef<'a> {
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
}

// === impl ServiceType ===

impl ServiceType {
    /// The type as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalancer => "LoadBalancer",
            Self::NodePort => "NodePort",
            Self::ClusterIp => "ClusterIP",
        }
    }

    /// Reads a type as Kubernetes spells it.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::LoadBalancer, Self::NodePort, Self::ClusterIp]
            .into_iter()
            .find(|t| t.as_str() == value)
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl InfraParams ===

impl InfraParams {
    /// These parameters, overridden by `other`'s where it sets them.
    pub fn overridden_by(mut self, other: InfraParams) -> Self {
        self.service_type = other.service_type.or(self.service_type);
        self.replicas = other.replicas.or(self.replicas);
        self.service_annotations.extend(other.service_annotations);
        self
    }

    /// Reads a ConfigMap's `data`; `at` names it in errors.
    fn parse(data: &BTreeMap<String, String>, at: &str) -> Result<Self, Refusal> {
        let invalid = |message: String| {
            Refusal::new(
                Reason::InvalidParameters,
                format!("ConfigMap {at}: {message}"),
            )
        };
        let mut params = Self::default();
        for (key, value) in data {
            match key.as_str() {
                "serviceType" => {
                    let parsed = ServiceType::parse(value.trim()).ok_or_else(|| {
                        invalid(format!(
                            "serviceType {value:?} is not LoadBalancer, NodePort or ClusterIP"
                        ))
                    })?;
                    params.service_type = Some(parsed);
                }
                "replicas" => {
                    let parsed = value
                        .trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|r| *r >= 0)
                        .ok_or_else(|| {
                            invalid(format!("replicas {value:?} is not a non-negative integer"))
                        })?;
                    params.replicas = Some(parsed);
                }
                "serviceAnnotations" => {
                    let parsed: Option<BTreeMap<String, String>> = serde_saphyr::from_str(value)
                        .map_err(|e| {
                            invalid(format!("serviceAnnotations is not a map of strings: {e}"))
                        })?;
                    params.service_annotations = parsed.unwrap_or_default();
                }
                other => {
                    return Err(invalid(format!(
                        "unknown key {other:?}; Ferry reads serviceType, replicas and serviceAnnotations"
                    )));
                }
            }
        }
        Ok(params)
    }
}

// === impl ParamsRef ===

impl<'a> ParamsRef<'a> {
    fn of_class(class: &'a GatewayClass) -> Option<Self> {
        let p = class.spec.parameters_ref.as_ref()?;
        Some(Self {
            group: &p.group,
            kind: &p.kind,
            name: &p.name,
            namespace: p.namespace.as_deref(),
        })
    }

    fn of_gateway(id: &'a NsName, gateway: &'a Gateway) -> Option<Self> {
        let p = gateway
            .spec
            .infrastructure
            .as_ref()?
            .parameters_ref
            .as_ref()?;
        Some(Self {
            group: &p.group,
            kind: &p.kind,
            name: &p.name,
            namespace: Some(&id.namespace),
        })
    }

    /// The ConfigMap it names, if it names one.
    fn config_map(&self) -> Result<NsName, Refusal> {
        if !self.group.is_empty() || self.kind != "ConfigMap" {
            return Err(Refusal::new(
                Reason::InvalidParameters,
                format!(
                    "parametersRef {}/{} {} is not supported; Ferry reads core ConfigMaps",
                    self.group, self.kind, self.name
                ),
            ));
        }
        let namespace = self.namespace.ok_or_else(|| {
            Refusal::new(
                Reason::InvalidParameters,
                format!("parametersRef to ConfigMap {} has no namespace", self.name),
            )
        })?;
        Ok(NsName::new(namespace, self.name))
    }

    fn resolve(&self, objects: &Objects) -> Result<InfraParams, Refusal> {
        let id = self.config_map()?;
        let config_map = objects.config_map(&id).ok_or_else(|| {
            Refusal::new(
                Reason::InvalidParameters,
                format!("parametersRef names ConfigMap {id}, which does not exist"),
            )
        })?;
        InfraParams::parse(
            config_map.data.as_ref().unwrap_or(&BTreeMap::new()),
            &id.to_string(),
        )
    }
}

/// The parameters of a GatewayClass (default ones without a parametersRef).
pub fn of_class(objects: &Objects, class: &GatewayClass) -> Result<InfraParams, Refusal> {
    ParamsRef::of_class(class).map_or(Ok(InfraParams::default()), |p| p.resolve(objects))
}

/// The parameters of a Gateway's own parametersRef, without its class's.
pub fn of_gateway(
    objects: &Objects,
    id: &NsName,
    gateway: &Gateway,
) -> Result<InfraParams, Refusal> {
    ParamsRef::of_gateway(id, gateway).map_or(Ok(InfraParams::default()), |p| p.resolve(objects))
}

/// The parameters a Gateway is deployed with: its class's, overridden by
/// its own. A class's invalid parameters are the Gateway's too.
pub fn effective(
    objects: &Objects,
    id: &NsName,
    gateway: &Gateway,
) -> Result<InfraParams, Refusal> {
    let class_name = &gateway.spec.gateway_class_name;
    let class = match objects.gateway_class(class_name) {
        Some(class) => of_class(objects, class).map_err(|r| {
            Refusal::new(
                r.reason,
                format!("GatewayClass {class_name}: {}", r.message),
            )
        })?,
        None => InfraParams::default(),
    };
    Ok(class.overridden_by(of_gateway(objects, id, gateway)?))
}

/// The ConfigMaps that Ferry GatewayClasses and Gateways name as
/// parameters: the only ConfigMaps the control plane needs to hold.
pub fn referenced_config_maps(objects: &Objects) -> BTreeSet<NsName> {
    let classes = objects
        .gateway_classes()
        .filter(|(name, _)| is_ferry_class(objects, name))
        .filter_map(|(_, class)| ParamsRef::of_class(class)?.config_map().ok());
    let gateways = objects
        .gateways()
        .filter(|(_, gw)| is_ferry_class(objects, &gw.spec.gateway_class_name))
        .filter_map(|(id, gw)| ParamsRef::of_gateway(id, gw)?.config_map().ok());
    classes.chain(gateways).collect()
}

#[cfg(test)]
mod tests;
