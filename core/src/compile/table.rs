//! Ports and virtual hosts built from placed route entries.
//!
//! Listener isolation: a request is handled by the most specific listener
//! whose hostname matches it, so an entry placed through a listener is
//! dropped from a virtual host that a more specific listener on the same
//! port covers, and every listener hostname gets a virtual host even when
//! no route attached to it (so its requests get a 404 instead of falling
//! through to a less specific listener's routes).

use std::collections::{BTreeMap, BTreeSet};

use super::order::Precedence;
use crate::attach::{self, GatewayView};
use crate::model::{
    Backend, BackendId, Filter, HostPattern, PortConfig, PortProtocol, ProxyConfig, RouteEntry,
    RouteTable, VirtualHost,
};
use crate::objects::NsName;

use super::GatewaySelector;

/// One match of one rule, placed on one listener under one hostname.
pub(super) struct Placed {
    pub(super) gateway: NsName,
    pub(super) listener: String,
    pub(super) hostname: HostPattern,
    pub(super) key: Precedence,
    pub(super) entry: RouteEntry,
}

struct Port {
    protocol: PortProtocol,
    /// Served listeners: gateway, listener name, hostname.
    listeners: Vec<(NsName, String, HostPattern)>,
    config: PortConfig,
    hosts: BTreeMap<HostPattern, Vec<(Precedence, RouteEntry)>>,
}

pub(super) fn build(
    gateways: &BTreeMap<NsName, GatewayView>,
    selector: &GatewaySelector,
    placed: Vec<Placed>,
    backends: &BTreeMap<BackendId, Backend>,
) -> ProxyConfig {
    let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
    for view in gateways.values().filter(|v| selector.selects(&v.id)) {
        for l in view.listeners.iter().filter(|l| l.is_served()) {
            let Some(protocol) = l.protocol else { continue };
            let port = ports.entry(l.port).or_insert_with(|| Port {
                protocol,
                listeners: Vec::new(),
                config: PortConfig {
                    port: l.port,
                    protocol,
                    certificates: Vec::new(),
                    routes: RouteTable::default(),
                },
                hosts: BTreeMap::new(),
            });
            // Another selected Gateway took the port with another protocol.
            if port.protocol != protocol {
                continue;
            }
            port.listeners
                .push((view.id.clone(), l.name.clone(), l.hostname.clone()));
            port.config
                .certificates
                .extend(l.certificates.iter().cloned());
        }
    }
    let listener_port: BTreeMap<(NsName, String), u16> = ports
        .iter()
        .flat_map(|(port, p)| {
            p.listeners
                .iter()
                .map(|(g, l, _)| ((g.clone(), l.clone()), *port))
        })
        .collect();
    for p in placed {
        let Some(port) = listener_port.get(&(p.gateway.clone(), p.listener.clone())) else {
            continue;
        };
        let port = ports
            .get_mut(port)
            .expect("listener_port only names ports in the map");
        let own = port
            .listeners
            .iter()
            .find(|(g, l, _)| *g == p.gateway && *l == p.listener)
            .map(|(_, _, h)| rank(h))
            .expect("the listener is on this port");
        let shadowed = port
            .listeners
            .iter()
            .any(|(_, _, h)| attach::covers(h, &p.hostname) && rank(h) < own);
        if !shadowed {
            port.hosts
                .entry(p.hostname)
                .or_default()
                .push((p.key, p.entry));
        }
    }
    let mut config = ProxyConfig::default();
    let mut used = BTreeSet::new();
    for (_, mut port) in ports {
        for (_, _, h) in &port.listeners {
            port.hosts.entry(h.clone()).or_default();
        }
        let mut vhosts: Vec<VirtualHost> = port
            .hosts
            .into_iter()
            .map(|(hostname, mut entries)| {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries.dedup_by(|a, b| a.0 == b.0);
                VirtualHost {
                    hostname,
                    entries: entries.into_iter().map(|(_, e)| e).collect(),
                }
            })
            .collect();
        vhosts.sort_by_key(|v| attach::specificity(&v.hostname));
        used.extend(referenced(vhosts.iter().flat_map(|v| &v.entries)));
        port.config.routes = RouteTable {
            virtual_hosts: vhosts,
        };
        config.ports.push(port.config);
    }
    config.backends = used
        .into_iter()
        .filter_map(|id| backends.get(&id).map(|b| (id, b.clone())))
        .collect();
    config
}

/// Specificity without the name: listeners of equal rank do not shadow
/// each other.
fn rank(h: &HostPattern) -> (u8, std::cmp::Reverse<usize>) {
    let (rank, len, _) = attach::specificity(h);
    (rank, len)
}

/// Backends the entries send requests (or mirrored copies) to.
pub(super) fn referenced<'a>(entries: impl Iterator<Item = &'a RouteEntry>) -> BTreeSet<BackendId> {
    let mut used = BTreeSet::new();
    for entry in entries {
        let action = &entry.action;
        used.extend(action.backends.iter().filter_map(|b| b.target.clone()));
        let filters = action
            .filters
            .iter()
            .chain(action.backends.iter().flat_map(|b| &b.filters));
        used.extend(filters.filter_map(|f| match f {
            Filter::Mirror(m) => m.target.clone(),
            _ => None,
        }));
    }
    used
}
