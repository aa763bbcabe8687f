//! The cluster index: ferry-core's [`Objects`] plus what only the control
//! plane needs (Pods), fed by [`Change`]s from watches or files.
//!
//! [`ClusterIndex`] is synchronous and does no I/O. Watches and the file
//! source turn what they see into [`Change`]s; one task applies them and
//! hands the outputs ([`ClusterIndex::status`],
//! [`ClusterIndex::gateway_config`]) to the status writer and the discovery
//! server. A test applies changes and asserts the outputs.
//!
//! # Secrets and ConfigMaps
//!
//! The index holds only the Secrets that the HTTPS listeners of Ferry
//! Gateways reference and may read (ReferenceGrants applied as ferry-core
//! applies them, [`ferry_core::attach::referenced_secrets`]), and only the
//! ConfigMaps Ferry GatewayClasses and Gateways name as parameters
//! ([`ferry_core::params::referenced_config_maps`]). Whenever a
//! GatewayClass, Gateway or ReferenceGrant changes, the set is recomputed:
//! an object no longer referenced is dropped at once, and one offered to
//! [`ClusterIndex::apply`] that is not referenced is never stored.
//!
//! The cluster source watches each referenced object on its own
//! ([`ClusterIndex::watched`]; a watch per object with a `metadata.name`
//! field selector in its namespace), because field selectors cannot
//! express "one of these names" and a watch of every Secret would bring
//! every Secret's data into the process. Each such watch reports its list
//! as a [`Change::Fetched`]; until every referenced object has been
//! fetched (present or absent), the index is not in sync, so a Gateway is
//! never published, deployed or given status without the certificates and
//! parameters it references. An object referenced again after being
//! dropped gets a new watch (its generation changes), which lists it anew.

mod convert;
mod inbound;
mod outbound;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferry_core::attach::referenced_secrets;
use ferry_core::compile::{GatewaySelector, compile, compile_with_status};
use ferry_core::model::ProxyConfig;
use ferry_core::objects::{Kind, NsName, Object, Objects};
use ferry_core::params::referenced_config_maps;
use ferry_core::status::Status;

pub use convert::{OPAQUE_PORTS, endpoints_to_slice, opaque_ports, pod_info};

/// What the index stores: every kind of [`Objects`], and Pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A kind ferry-core stores.
    Core(Kind),
    /// Pods (ServiceAccount, addresses, readiness).
    Pod,
}

/// The part of a Pod the control plane needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// The Pod.
    pub id: NsName,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// `status.podIPs`.
    pub ips: Vec<IpAddr>,
    /// Whether the `Ready` condition is `True`.
    pub ready: bool,
    /// Ports its `ferry.dev/opaque-ports` annotation lists.
    pub opaque_ports: Vec<u16>,
}

/// One stored item.
// Items move once, through a channel, into the index: boxing would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Item {
    /// A Gateway API or core object.
    Object(Object),
    /// A Pod.
    Pod(PodInfo),
}

/// One change seen by a watch or the file source.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Change {
    /// An item was created or updated.
    Apply(Item),
    /// An item was deleted.
    Delete(Resource, NsName),
    /// A watch (re)listed a resource: these are all of its items, and the
    /// resource is in sync from now on.
    Relist(Resource, Vec<Item>),
    /// A watch of one object (re)listed it: its current version, or `None`
    /// when it does not exist (or cannot be read).
    Fetched(Resource, NsName, Option<Item>),
}

/// The synchronous index of everything the control plane watches.
#[derive(Clone, Debug, Default)]
pub struct ClusterIndex {
    objects: Objects,
    keys: BTreeMap<Resource, BTreeSet<NsName>>,
    pods: BTreeMap<NsName, PodInfo>,
    synced: BTreeSet<Resource>,
    service_ips: BTreeMap<IpAddr, NsName>,
    pod_ips: BTreeMap<IpAddr, NsName>,
    /// EndpointSlices by the addresses of their endpoints.
    slice_ips: BTreeMap<IpAddr, BTreeSet<NsName>>,
    revision: u64,
    rejected: u64,
    /// Referenced Secrets and ConfigMaps, each with the revision it became
    /// referenced at.
    referenced: BTreeMap<(Kind, NsName), u64>,
    /// Referenced objects whose content is known (fetched or listed).
    known: BTreeSet<(Kind, NsName)>,
}

// === impl Resource ===

impl Resource {
    /// Every resource the control plane watches.
    pub fn all() -> impl Iterator<Item = Resource> {
        Kind::ALL
            .into_iter()
            .map(Resource::Core)
            .chain([Resource::Pod])
    }

    /// The kind's name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Core(kind) => kind.as_str(),
            Resource::Pod => "Pod",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Item ===

impl Item {
    /// What kind of item this is.
    pub fn resource(&self) -> Resource {
        match self {
            Item::Object(o) => Resource::Core(o.kind()),
            Item::Pod(_) => Resource::Pod,
        }
    }

    /// The item's namespace and name, if it has a name.
    pub fn id(&self) -> Option<NsName> {
        match self {
            Item::Object(o) => o.id().ok(),
            Item::Pod(p) => Some(p.id.clone()),
        }
    }
}

// === impl ClusterIndex ===

impl ClusterIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one change. Never fails: an item without a name is counted
    /// in [`ClusterIndex::rejected`] and otherwise ignored.
    pub fn apply(&mut self, change: Change) {
        self.revision += 1;
        let resource = match &change {
            Change::Apply(item) => item.resource(),
            Change::Delete(resource, _)
            | Change::Relist(resource, _)
            | Change::Fetched(resource, _, _) => *resource,
        };
        match change {
            Change::Apply(item) => self.put(item),
            Change::Delete(resource, id) => self.remove(resource, &id),
            Change::Fetched(resource, id, item) => {
                match item {
                    Some(item) => self.put(item),
                    None => self.remove(resource, &id),
                }
                if let Resource::Core(kind) = resource
                    && self.referenced.contains_key(&(kind, id.clone()))
                {
                    self.known.insert((kind, id));
                }
            }
            Change::Relist(resource, items) => {
                let listed: BTreeSet<NsName> = items.iter().filter_map(Item::id).collect();
                let gone: Vec<NsName> = self
                    .keys
                    .get(&resource)
                    .map(|keys| keys.difference(&listed).cloned().collect())
                    .unwrap_or_default();
                for id in gone {
                    self.remove(resource, &id);
                }
                for item in items {
                    self.put(item);
                }
                self.synced.insert(resource);
                let listed = self
                    .referenced
                    .keys()
                    .filter(|(kind, _)| resource == Resource::Core(*kind));
                self.known.extend(listed.cloned().collect::<Vec<_>>());
            }
        }
        if matches!(
            resource,
            Resource::Core(Kind::GatewayClass | Kind::Gateway | Kind::ReferenceGrant)
        ) {
            self.update_referenced();
        }
    }

    /// Recomputes which Secrets and ConfigMaps are referenced; drops the
    /// others.
    fn update_referenced(&mut self) {
        let secrets = referenced_secrets(&self.objects).into_iter();
        let config_maps = referenced_config_maps(&self.objects).into_iter();
        let now: BTreeSet<(Kind, NsName)> = secrets
            .map(|id| (Kind::Secret, id))
            .chain(config_maps.map(|id| (Kind::ConfigMap, id)))
            .collect();
        if now.iter().eq(self.referenced.keys()) {
            return;
        }
        let dropped: Vec<(Kind, NsName)> = self
            .referenced
            .keys()
            .filter(|key| !now.contains(*key))
            .cloned()
            .collect();
        for key in dropped {
            self.referenced.remove(&key);
            self.known.remove(&key);
            self.remove(Resource::Core(key.0), &key.1);
        }
        for key in now {
            self.referenced.entry(key).or_insert(self.revision);
        }
    }

    fn put(&mut self, item: Item) {
        let resource = item.resource();
        let Some(id) = item.id() else {
            self.rejected += 1;
            return;
        };
        if let Resource::Core(kind @ (Kind::Secret | Kind::ConfigMap)) = resource
            && !self.referenced.contains_key(&(kind, id.clone()))
        {
            return;
        }
        self.forget_ips(resource, &id);
        match item {
            Item::Object(object) => {
                if let Object::Service(service) = &object {
                    for ip in outbound::service_ips(service) {
                        self.service_ips.insert(ip, id.clone());
                    }
                }
                if let Object::EndpointSlice(slice) = &object {
                    for ip in inbound::slice_ips(slice) {
                        self.slice_ips.entry(ip).or_default().insert(id.clone());
                    }
                }
                if self.objects.apply(object).is_err() {
                    self.rejected += 1;
                    return;
                }
            }
            Item::Pod(pod) => {
                for ip in &pod.ips {
                    self.pod_ips.insert(*ip, id.clone());
                }
                self.pods.insert(id.clone(), pod);
            }
        }
        self.keys.entry(resource).or_default().insert(id);
    }

    /// Drops the IPs the stored version of an item had.
    fn forget_ips(&mut self, resource: Resource, id: &NsName) {
        if resource == Resource::Core(Kind::EndpointSlice) {
            let slice = self.objects.endpoint_slice(id);
            for ip in slice.map(inbound::slice_ips).unwrap_or_default() {
                if let Some(slices) = self.slice_ips.get_mut(&ip) {
                    slices.remove(id);
                    if slices.is_empty() {
                        self.slice_ips.remove(&ip);
                    }
                }
            }
            return;
        }
        let ips = match resource {
            Resource::Core(Kind::Service) => self
                .objects
                .service(id)
                .map(outbound::service_ips)
                .unwrap_or_default(),
            Resource::Pod => self.pods.get(id).map(|p| p.ips.clone()).unwrap_or_default(),
            Resource::Core(_) => return,
        };
        let map = match resource {
            Resource::Pod => &mut self.pod_ips,
            _ => &mut self.service_ips,
        };
        for ip in ips {
            if map.get(&ip) == Some(id) {
                map.remove(&ip);
            }
        }
    }

    fn remove(&mut self, resource: Resource, id: &NsName) {
        self.forget_ips(resource, id);
        match resource {
            Resource::Core(kind) => {
                self.objects.delete(kind, &id.namespace, &id.name);
            }
            Resource::Pod => {
                self.pods.remove(id);
            }
        }
        if let Some(keys) = self.keys.get_mut(&resource) {
            keys.remove(id);
        }
    }

    /// Marks resources that will never be listed (e.g. EndpointSlices when
    /// Endpoints are watched instead) as in sync.
    pub fn mark_synced(&mut self, resource: Resource) {
        self.synced.insert(resource);
    }

    /// Whether every resource in `expected` has been listed once, and
    /// every referenced Secret and ConfigMap fetched.
    pub fn is_synced(&self, expected: &[Resource]) -> bool {
        expected.iter().all(|r| self.synced.contains(r))
            && self.referenced.keys().all(|key| self.known.contains(key))
    }

    /// The Secrets and ConfigMaps to watch one by one, each with a
    /// generation: an object whose generation changed was dropped and
    /// referenced again, and must be listed anew.
    pub fn watched(&self) -> &BTreeMap<(Kind, NsName), u64> {
        &self.referenced
    }

    /// Increases with every change applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Items ignored because they had no name.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The Gateway API and core objects.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Each Pod IP's namespace and ServiceAccount.
    pub fn pod_owners(&self) -> crate::views::PodOwners {
        self.pod_ips
            .iter()
            .filter_map(|(ip, id)| {
                let pod = self.pods.get(id)?;
                Some((*ip, (id.namespace.clone(), pod.service_account.clone())))
            })
            .collect()
    }

    /// A Pod by namespace and name.
    pub fn pod(&self, id: &NsName) -> Option<&PodInfo> {
        self.pods.get(id)
    }

    /// How many items of each resource are stored.
    pub fn counts(&self) -> BTreeMap<Resource, usize> {
        Resource::all()
            .map(|r| (r, self.keys.get(&r).map_or(0, BTreeSet::len)))
            .collect()
    }

    /// The status of every Ferry GatewayClass, Gateway and route.
    pub fn status(&self) -> Status {
        compile_with_status(&self.objects, &GatewaySelector::All).1
    }

    /// What the proxies of one Gateway serve; `None` when the Gateway does
    /// not exist or is not of a Ferry class.
    pub fn gateway_config(&self, gateway: &NsName) -> Option<ProxyConfig> {
        let gw = self.objects.gateway(gateway)?;
        if !ferry_core::attach::is_ferry_class(&self.objects, &gw.spec.gateway_class_name) {
            return None;
        }
        Some(compile(
            &self.objects,
            &GatewaySelector::One(gateway.clone()),
        ))
    }

    /// The namespaces holding a Gateway of a Ferry class.
    pub fn gateway_namespaces(&self) -> BTreeSet<String> {
        self.objects
            .gateways()
            .filter(|(_, gw)| {
                ferry_core::attach::is_ferry_class(&self.objects, &gw.spec.gateway_class_name)
            })
            .map(|(id, _)| id.namespace.clone())
            .collect()
    }

    /// [`ClusterIndex::gateway_config`] and [`ClusterIndex::status`] from
    /// one compilation.
    pub fn gateway_config_with_status(&self, gateway: &NsName) -> (Option<ProxyConfig>, Status) {
        let selector = GatewaySelector::One(gateway.clone());
        let (config, status) = compile_with_status(&self.objects, &selector);
        let ours = self.objects.gateway(gateway).is_some_and(|gw| {
            ferry_core::attach::is_ferry_class(&self.objects, &gw.spec.gateway_class_name)
        });
        (ours.then_some(config), status)
    }
}

#[cfg(test)]
mod tests;
