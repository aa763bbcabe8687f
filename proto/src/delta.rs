//! Deltas between two views: what the server sends a subscriber that is
//! up to date with the previous version, so one route change costs one
//! virtual host on the wire, not the whole Gateway.
//!
//! [`diff`] and [`apply`] are inverse: `apply(old, diff(old, new)) == new`,
//! with virtual hosts in ferry-core's order (most specific first).

use std::collections::BTreeMap;

use ferry_core::attach::specificity;
use ferry_core::model::HostPattern;

use crate::pb;

/// Why a delta could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A virtual host's hostname is missing.
    #[error("failed to apply a delta: a virtual host of port {port} has no hostname")]
    NoHostname {
        /// The port.
        port: u32,
    },
}

type HostKey = (u8, String);

fn host_key(h: Option<&pb::HostPattern>) -> Option<HostKey> {
    use pb::host_pattern::Kind;
    match h?.kind.as_ref()? {
        Kind::Any(_) => Some((0, String::new())),
        Kind::Exact(name) => Some((1, name.clone())),
        Kind::Wildcard(suffix) => Some((2, suffix.clone())),
    }
}

fn host_pattern(key: &HostKey) -> HostPattern {
    match key.0 {
        0 => HostPattern::Any,
        1 => HostPattern::Exact(key.1.clone()),
        _ => HostPattern::Wildcard(key.1.clone()),
    }
}

fn pb_host(key: &HostKey) -> pb::HostPattern {
    use pb::host_pattern::Kind;
    let kind = match key.0 {
        0 => Kind::Any(pb::Empty {}),
        1 => Kind::Exact(key.1.clone()),
        _ => Kind::Wildcard(key.1.clone()),
    };
    pb::HostPattern { kind: Some(kind) }
}

fn backend_key(b: &pb::Backend) -> Option<(String, String, u32)> {
    b.id.as_ref()
        .map(|id| (id.namespace.clone(), id.name.clone(), id.port))
}

fn vhosts(port: &pb::Port) -> BTreeMap<HostKey, &pb::VirtualHost> {
    port.virtual_hosts
        .iter()
        .filter_map(|v| Some((host_key(v.hostname.as_ref())?, v)))
        .collect()
}

/// What changed from `old` to `new`.
pub fn diff(old: &pb::ProxyConfig, new: &pb::ProxyConfig) -> pb::GatewayDelta {
    let old_ports: BTreeMap<u32, &pb::Port> = old.ports.iter().map(|p| (p.port, p)).collect();
    let mut delta = pb::GatewayDelta::default();
    for port in &new.ports {
        let before = old_ports.get(&port.port);
        let before_hosts = before.map(|p| vhosts(p)).unwrap_or_default();
        let after_hosts = vhosts(port);
        let upserts: Vec<pb::VirtualHost> = after_hosts
            .iter()
            .filter(|(k, v)| before_hosts.get(*k) != Some(*v))
            .map(|(_, v)| (*v).clone())
            .collect();
        let removed: Vec<pb::HostPattern> = before_hosts
            .keys()
            .filter(|k| !after_hosts.contains_key(*k))
            .map(pb_host)
            .collect();
        let same_port = before
            .is_some_and(|b| b.protocol == port.protocol && b.certificates == port.certificates);
        if same_port && upserts.is_empty() && removed.is_empty() {
            continue;
        }
        delta.ports.push(pb::PortDelta {
            port: port.port,
            protocol: port.protocol,
            certificates: port.certificates.clone(),
            virtual_hosts: upserts,
            removed_hosts: removed,
        });
    }
    let new_ports: Vec<u32> = new.ports.iter().map(|p| p.port).collect();
    delta.removed_ports = old_ports
        .keys()
        .filter(|p| !new_ports.contains(p))
        .copied()
        .collect();
    let old_backends: BTreeMap<_, &pb::Backend> = old
        .backends
        .iter()
        .filter_map(|b| Some((backend_key(b)?, b)))
        .collect();
    let new_backends: BTreeMap<_, &pb::Backend> = new
        .backends
        .iter()
        .filter_map(|b| Some((backend_key(b)?, b)))
        .collect();
    delta.backends = new_backends
        .iter()
        .filter(|(k, b)| old_backends.get(*k) != Some(*b))
        .map(|(_, b)| (*b).clone())
        .collect();
    delta.removed_backends = old_backends
        .iter()
        .filter(|(k, _)| !new_backends.contains_key(*k))
        .filter_map(|(_, b)| b.id.clone())
        .collect();
    delta
}

/// Splits a full view into a first part and deltas that each carry at most
/// `max` virtual hosts and backends, so no message of a large view is
/// large. Applying the deltas in order to the first part gives `full`.
pub fn split(full: &pb::ProxyConfig, max: usize) -> (pb::ProxyConfig, Vec<pb::GatewayDelta>) {
    let max = max.max(1);
    let items = full.backends.len()
        + full
            .ports
            .iter()
            .map(|p| p.virtual_hosts.len())
            .sum::<usize>();
    if items <= max {
        return (full.clone(), Vec::new());
    }
    let first = pb::ProxyConfig {
        ports: full
            .ports
            .iter()
            .map(|p| pb::Port {
                port: p.port,
                protocol: p.protocol,
                certificates: p.certificates.clone(),
                virtual_hosts: Vec::new(),
            })
            .collect(),
        backends: Vec::new(),
    };
    let mut parts = Vec::new();
    let mut part = pb::GatewayDelta::default();
    let mut count = 0;
    for port in &full.ports {
        for vhost in &port.virtual_hosts {
            if count == max {
                parts.push(std::mem::take(&mut part));
                count = 0;
            }
            if part.ports.last().is_none_or(|p| p.port != port.port) {
                part.ports.push(pb::PortDelta {
                    port: port.port,
                    protocol: port.protocol,
                    certificates: port.certificates.clone(),
                    ..pb::PortDelta::default()
                });
            }
            if let Some(last) = part.ports.last_mut() {
                last.virtual_hosts.push(vhost.clone());
            }
            count += 1;
        }
    }
    for backend in &full.backends {
        if count == max {
            parts.push(std::mem::take(&mut part));
            count = 0;
        }
        part.backends.push(backend.clone());
        count += 1;
    }
    if count > 0 {
        parts.push(part);
    }
    (first, parts)
}

/// Applies `delta` to `config`.
pub fn apply(config: &mut pb::ProxyConfig, delta: pb::GatewayDelta) -> Result<(), DeltaError> {
    config
        .ports
        .retain(|p| !delta.removed_ports.contains(&p.port));
    for change in delta.ports {
        let index = match config.ports.iter().position(|p| p.port == change.port) {
            Some(index) => index,
            None => {
                config.ports.push(pb::Port {
                    port: change.port,
                    ..pb::Port::default()
                });
                config.ports.len() - 1
            }
        };
        let port = &mut config.ports[index];
        port.protocol = change.protocol;
        port.certificates = change.certificates;
        let mut hosts: BTreeMap<HostKey, pb::VirtualHost> = std::mem::take(&mut port.virtual_hosts)
            .into_iter()
            .filter_map(|v| Some((host_key(v.hostname.as_ref())?, v)))
            .collect();
        for removed in &change.removed_hosts {
            if let Some(key) = host_key(Some(removed)) {
                hosts.remove(&key);
            }
        }
        for vhost in change.virtual_hosts {
            let key = host_key(vhost.hostname.as_ref())
                .ok_or(DeltaError::NoHostname { port: change.port })?;
            hosts.insert(key, vhost);
        }
        let mut ordered: Vec<(HostKey, pb::VirtualHost)> = hosts.into_iter().collect();
        ordered.sort_by_cached_key(|(k, _)| specificity(&host_pattern(k)));
        port.virtual_hosts = ordered.into_iter().map(|(_, v)| v).collect();
    }
    config.ports.sort_by_key(|p| p.port);
    let removed: std::collections::BTreeSet<_> = delta
        .removed_backends
        .iter()
        .map(|id| (id.namespace.clone(), id.name.clone(), id.port))
        .collect();
    let mut backends: BTreeMap<_, pb::Backend> = std::mem::take(&mut config.backends)
        .into_iter()
        .filter_map(|b| Some((backend_key(&b)?, b)))
        .filter(|(k, _)| !removed.contains(k))
        .collect();
    for backend in delta.backends {
        if let Some(key) = backend_key(&backend) {
            backends.insert(key, backend);
        }
    }
    config.backends = backends.into_values().collect();
    Ok(())
}

#[cfg(test)]
mod tests;
