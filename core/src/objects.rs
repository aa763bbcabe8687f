//! The objects Ferry reads, and the synchronous index that holds them.
//!
//! [`Objects`] is fed with [`Objects::apply`] and [`Objects::delete`], from
//! Kubernetes watches in the control plane or from YAML files
//! ([`load_yaml`]) in standalone mode. Compilation and status computation
//! read it; nothing in it does I/O.
//!
//! Gateway API objects use the `gateway-api` crate's experimental-channel
//! types: they are a superset of the standard channel (they add
//! `retry` and other optional fields), so a standard object reads the same.

mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use yaml::{Ignored, LoadError, Loaded, SourceLocation, load_yaml};

/// The Kubernetes and Gateway API types Ferry reads, re-exported so that
/// crates depending on ferry-core use exactly the same ones.
pub mod api {
    pub use gateway_api::experimental::gatewayclasses::GatewayClass;
    pub use gateway_api::experimental::gateways::Gateway;
    pub use gateway_api::experimental::grpcroutes::GrpcRoute;
    pub use gateway_api::experimental::httproutes::HttpRoute;
    pub use gateway_api::experimental::referencegrants::ReferenceGrant;
    pub use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
    pub use k8s_openapi::api::discovery::v1::EndpointSlice;
}

use api::*;

/// API group of the Gateway API kinds.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Label of an EndpointSlice naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One object of a kind Ferry reads.
#[derive(Clone, Debug)]
pub enum Object {
    /// `gateway.networking.k8s.io/v1 GatewayClass`.
    GatewayClass(GatewayClass),
    /// `gateway.networking.k8s.io/v1 Gateway`.
    Gateway(Gateway),
    /// `gateway.networking.k8s.io/v1 HTTPRoute`.
    HttpRoute(HttpRoute),
    /// `gateway.networking.k8s.io/v1 GRPCRoute`.
    GrpcRoute(GrpcRoute),
    /// `gateway.networking.k8s.io/v1 ReferenceGrant` (v1beta1 read too).
    ReferenceGrant(ReferenceGrant),
    /// `v1 Service`.
    Service(Service),
    /// `discovery.k8s.io/v1 EndpointSlice`.
    EndpointSlice(EndpointSlice),
    /// `v1 Secret`.
    Secret(Secret),
    /// `v1 Namespace`.
    Namespace(Namespace),
    /// `v1 ConfigMap` (deployment parameters of GatewayClasses and Gateways).
    ConfigMap(ConfigMap),
}

/// The kinds of [`Object`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// GatewayClass (cluster-scoped).
    GatewayClass,
    /// Gateway.
    Gateway,
    /// HTTPRoute.
    HttpRoute,
    /// GRPCRoute.
    GrpcRoute,
    /// ReferenceGrant.
    ReferenceGrant,
    /// Service.
    Service,
    /// EndpointSlice.
    EndpointSlice,
    /// Secret.
    Secret,
    /// Namespace (cluster-scoped).
    Namespace,
    /// ConfigMap.
    ConfigMap,
}

/// A namespaced object's identity. Namespaces and GatewayClasses use an
/// empty `namespace`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NsName {
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The name.
    pub name: String,
}

/// The synchronous index of every object Ferry reads.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    gateway_classes: BTreeMap<String, GatewayClass>,
    gateways: BTreeMap<NsName, Gateway>,
    http_routes: BTreeMap<NsName, HttpRoute>,
    grpc_routes: BTreeMap<NsName, GrpcRoute>,
    reference_grants: BTreeMap<NsName, ReferenceGrant>,
    services: BTreeMap<NsName, Service>,
    endpoint_slices: BTreeMap<NsName, EndpointSlice>,
    /// Slice names by the Service they belong to.
    slices_by_service: BTreeMap<NsName, BTreeSet<String>>,
    secrets: BTreeMap<NsName, Secret>,
    namespaces: BTreeMap<String, Namespace>,
    config_maps: BTreeMap<NsName, ConfigMap>,
}

/// Errors of [`Objects::apply`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The object has no `metadata.name`.
    #[error("failed to apply {kind}: metadata.name is missing")]
    MissingName {
        /// The object's kind.
        kind: Kind,
    },
}

// === impl Kind ===

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 10] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::ReferenceGrant,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
        Kind::Namespace,
        Kind::ConfigMap,
    ];

    /// The kind as Kubernetes spells it (`HTTPRoute`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
            Kind::Namespace => "Namespace",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::GatewayClass
            | Kind::Gateway
            | Kind::HttpRoute
            | Kind::GrpcRoute
            | Kind::ReferenceGrant => GATEWAY_GROUP,
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Service | Kind::Secret | Kind::Namespace | Kind::ConfigMap => "",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::GatewayClass | Kind::Namespace)
    }

    /// Looks a kind up by group and name, as written in a reference.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.as_str() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl NsName ===

impl NsName {
    /// Builds an identity from a namespace and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The identity of an object from its metadata; a namespaced object
    /// without a namespace is in `default`, like `kubectl apply` does.
    fn of(kind: Kind, meta: &ObjectMeta) -> Result<Self, ApplyError> {
        let name = meta.name.clone().ok_or(ApplyError::MissingName { kind })?;
        let namespace = if kind.is_namespaced() {
            meta.namespace
                .clone()
                .unwrap_or_else(|| "default".to_string())
        } else {
            String::new()
        };
        Ok(Self { namespace, name })
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

// === impl Object ===

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::Gateway,
            Object::HttpRoute(_) => Kind::HttpRoute,
            Object::GrpcRoute(_) => Kind::GrpcRoute,
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
            Object::Namespace(_) => Kind::Namespace,
            Object::ConfigMap(_) => Kind::ConfigMap,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::GrpcRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        }
    }

    /// The object's identity (namespace defaulted to `default`).
    pub fn id(&self) -> Result<NsName, ApplyError> {
        NsName::of(self.kind(), self.metadata())
    }
}

// === impl Objects ===

impl Objects {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an index from objects, e.g. the output of [`load_yaml`].
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Result<Self, ApplyError> {
        let mut index = Self::new();
        for object in objects {
            index.apply(object)?;
        }
        Ok(index)
    }

    /// Adds or replaces an object. A namespaced object without a namespace
    /// is stored in `default` (its metadata is updated to say so).
    pub fn apply(&mut self, object: Object) -> Result<(), ApplyError> {
        let id = object.id()?;
        let ns = Some(id.namespace.clone()).filter(|ns| !ns.is_empty());
        match object {
            Object::GatewayClass(o) => {
                self.gateway_classes.insert(id.name, o);
            }
            Object::Namespace(o) => {
                self.namespaces.insert(id.name, o);
            }
            Object::Gateway(mut o) => {
                o.metadata.namespace = ns;
                self.gateways.insert(id, o);
            }
            Object::HttpRoute(mut o) => {
                o.metadata.namespace = ns;
                self.http_routes.insert(id, o);
            }
            Object::GrpcRoute(mut o) => {
                o.metadata.namespace = ns;
                self.grpc_routes.insert(id, o);
            }
            Object::ReferenceGrant(mut o) => {
                o.metadata.namespace = ns;
                self.reference_grants.insert(id, o);
            }
            Object::Service(mut o) => {
                o.metadata.namespace = ns;
                self.services.insert(id, o);
            }
            Object::EndpointSlice(mut o) => {
                o.metadata.namespace = ns;
                self.unindex_slice(&id);
                if let Some(service) = slice_service(&o) {
                    self.slices_by_service
                        .entry(NsName::new(&id.namespace, service))
                        .or_default()
                        .insert(id.name.clone());
                }
                self.endpoint_slices.insert(id, o);
            }
            Object::Secret(mut o) => {
                o.metadata.namespace = ns;
                self.secrets.insert(id, o);
            }
            Object::ConfigMap(mut o) => {
                o.metadata.namespace = ns;
                self.config_maps.insert(id, o);
            }
        }
        Ok(())
    }

    /// Removes an object; `namespace` is ignored for cluster-scoped kinds.
    /// Returns whether something was removed.
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> bool {
        let id = NsName::new(namespace, name);
        match kind {
            Kind::GatewayClass => self.gateway_classes.remove(name).is_some(),
            Kind::Namespace => self.namespaces.remove(name).is_some(),
            Kind::Gateway => self.gateways.remove(&id).is_some(),
            Kind::HttpRoute => self.http_routes.remove(&id).is_some(),
            Kind::GrpcRoute => self.grpc_routes.remove(&id).is_some(),
            Kind::ReferenceGrant => self.reference_grants.remove(&id).is_some(),
            Kind::Service => self.services.remove(&id).is_some(),
            Kind::EndpointSlice => {
                self.unindex_slice(&id);
                self.endpoint_slices.remove(&id).is_some()
            }
            Kind::Secret => self.secrets.remove(&id).is_some(),
            Kind::ConfigMap => self.config_maps.remove(&id).is_some(),
        }
    }

    /// Every GatewayClass by name.
    pub fn gateway_classes(&self) -> impl Iterator<Item = (&str, &GatewayClass)> {
        self.gateway_classes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A GatewayClass by name.
    pub fn gateway_class(&self, name: &str) -> Option<&GatewayClass> {
        self.gateway_classes.get(name)
    }

    /// Every Gateway, sorted by namespace and name.
    pub fn gateways(&self) -> impl Iterator<Item = (&NsName, &Gateway)> {
        self.gateways.iter()
    }

    /// A Gateway by namespace and name.
    pub fn gateway(&self, id: &NsName) -> Option<&Gateway> {
        self.gateways.get(id)
    }

    /// Every HTTPRoute, sorted by namespace and name.
    pub fn http_routes(&self) -> impl Iterator<Item = (&NsName, &HttpRoute)> {
        self.http_routes.iter()
    }

    /// An HTTPRoute by namespace and name.
    pub fn http_route(&self, id: &NsName) -> Option<&HttpRoute> {
        self.http_routes.get(id)
    }

    /// Every GRPCRoute, sorted by namespace and name.
    pub fn grpc_routes(&self) -> impl Iterator<Item = (&NsName, &GrpcRoute)> {
        self.grpc_routes.iter()
    }

    /// ReferenceGrants in one namespace (they grant access *to* it).
    pub fn reference_grants_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a ReferenceGrant> {
        in_namespace(&self.reference_grants, namespace)
    }

    /// A Service by namespace and name.
    pub fn service(&self, id: &NsName) -> Option<&Service> {
        self.services.get(id)
    }

    /// Every Service, sorted by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = (&NsName, &Service)> {
        self.services.iter()
    }

    /// An EndpointSlice by namespace and name.
    pub fn endpoint_slice(&self, id: &NsName) -> Option<&EndpointSlice> {
        self.endpoint_slices.get(id)
    }

    /// EndpointSlices of a Service (by the `kubernetes.io/service-name`
    /// label), in name order.
    pub fn endpoint_slices_of<'a>(
        &'a self,
        service: &'a NsName,
    ) -> impl Iterator<Item = &'a EndpointSlice> {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                self.endpoint_slices
                    .get(&NsName::new(&service.namespace, name))
            })
    }

    fn unindex_slice(&mut self, id: &NsName) {
        let Some(service) = self.endpoint_slices.get(id).and_then(slice_service) else {
            return;
        };
        let key = NsName::new(&id.namespace, service);
        if let Some(names) = self.slices_by_service.get_mut(&key) {
            names.remove(&id.name);
            if names.is_empty() {
                self.slices_by_service.remove(&key);
            }
        }
    }

    /// A Secret by namespace and name.
    pub fn secret(&self, id: &NsName) -> Option<&Secret> {
        self.secrets.get(id)
    }

    /// A ConfigMap by namespace and name.
    pub fn config_map(&self, id: &NsName) -> Option<&ConfigMap> {
        self.config_maps.get(id)
    }

    /// A Namespace by name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.get(name)
    }

    /// How many objects of each kind are stored.
    pub fn counts(&self) -> BTreeMap<Kind, usize> {
        BTreeMap::from([
            (Kind::GatewayClass, self.gateway_classes.len()),
            (Kind::Gateway, self.gateways.len()),
            (Kind::HttpRoute, self.http_routes.len()),
            (Kind::GrpcRoute, self.grpc_routes.len()),
            (Kind::ReferenceGrant, self.reference_grants.len()),
            (Kind::Service, self.services.len()),
            (Kind::EndpointSlice, self.endpoint_slices.len()),
            (Kind::Secret, self.secrets.len()),
            (Kind::Namespace, self.namespaces.len()),
            (Kind::ConfigMap, self.config_maps.len()),
        ])
    }
}

fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)
        .map(String::as_str)
}

fn in_namespace<'a, T>(
    map: &'a BTreeMap<NsName, T>,
    namespace: &'a str,
) -> impl Iterator<Item = &'a T> {
    let start = NsName::new(namespace, "");
    map.range(start..)
        .take_while(move |(id, _)| id.namespace == namespace)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
