//! GAMMA: routes whose parent is a Service steer calls to that Service.
//!
//! For a client in namespace `N` calling Service `S` on port `P`, the routes
//! that apply are HTTPRoutes (and GRPCRoutes, lowered to HTTPRoutes) with a
//! parentRef to `S` (with no port, or port `P`) that Ferry accepts:
//!
//! - consumer routes, in `N` when `N` is not `S`'s namespace: when any
//!   exists, they replace the producer routes for that client;
//! - otherwise producer routes, in `S`'s namespace.
//!
//! Route hostnames are ignored (the Service is the host). Entries are
//! ordered by the usual precedence ([`super::order`]). With no route at all
//! the answer is `None`: the call goes to the Service as Kubernetes would
//! route it. With routes but no match, the proxy answers 404.

use std::collections::BTreeMap;

use super::backends::{BackendRef, Resolver};
use super::compile_route;
use super::order::Precedence;
use crate::attach::{self, Outcome};
use crate::model::{Backend, BackendId, HostPattern, RouteEntry, RouteTable, VirtualHost};
use crate::objects::{Kind, NsName, Objects};

/// The compiled routes of one Service port, for one client namespace.
#[derive(Clone, Debug, Default)]
pub struct ServiceRoutes {
    /// One virtual host matching any host.
    pub routes: RouteTable,
    /// Backends referenced by the routes.
    pub backends: BTreeMap<BackendId, Backend>,
}

/// The routes for calls from `client_namespace` to `service` on `port`, or
/// `None` when no accepted route has the Service as parent.
pub fn compile_service(
    objects: &Objects,
    service: &NsName,
    port: u16,
    client_namespace: &str,
) -> Option<ServiceRoutes> {
    let gateways = BTreeMap::new();
    let mut resolver = Resolver::new(objects);
    let mut producer = Vec::new();
    let mut consumer = Vec::new();
    for (meta, route) in super::routes(objects) {
        let id = &meta.id;
        let is_consumer = id.namespace != service.namespace;
        if is_consumer && id.namespace != client_namespace {
            continue;
        }
        let Ok(route) = route else { continue };
        let binds = meta.parent_refs.iter().any(|p| {
            p.is_service()
                && p.namespace == service.namespace
                && p.name == service.name
                && p.port.is_none_or(|p| p == i32::from(port))
                && matches!(
                    attach::attach(objects, &gateways, &meta, p).outcome,
                    Outcome::Accepted(_)
                )
        });
        if !binds {
            continue;
        }
        let compiled = compile_route(&mut resolver, meta.kind, id, &route);
        if compiled.refused.is_some() {
            continue;
        }
        let created = route.metadata.creation_timestamp.as_ref();
        let entries = compiled
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|r| (i, r)));
        let target = if is_consumer {
            &mut consumer
        } else {
            &mut producer
        };
        for (index, rule) in entries {
            for (matched, matcher) in rule.matchers.iter().enumerate() {
                target.push((
                    Precedence::new(matcher, created, id, index, matched),
                    RouteEntry {
                        matcher: matcher.clone(),
                        action: rule.action.clone(),
                    },
                ));
            }
        }
    }
    let mut entries = if consumer.is_empty() {
        producer
    } else {
        consumer
    };
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let entries: Vec<RouteEntry> = entries.into_iter().map(|(_, e)| e).collect();
    let used = super::table::referenced(entries.iter());
    let backends = used
        .into_iter()
        .filter_map(|id| resolver.backends.get(&id).map(|b| (id, b.clone())))
        .collect();
    Some(ServiceRoutes {
        routes: RouteTable {
            virtual_hosts: vec![VirtualHost {
                hostname: HostPattern::Any,
                entries,
            }],
        },
        backends,
    })
}

/// The backend of a Service port itself (its ready endpoints and protocol),
/// or `None` when the Service or the port does not exist: where a call to
/// a Service goes when no route applies.
pub fn service_backend(
    objects: &Objects,
    service: &NsName,
    port: u16,
) -> Option<(BackendId, Backend)> {
    let mut resolver = Resolver::new(objects);
    let reference = BackendRef {
        group: None,
        kind: None,
        namespace: Some(&service.namespace),
        name: &service.name,
        port: Some(i32::from(port)),
    };
    let id = resolver
        .resolve(Kind::HttpRoute, &service.namespace, reference)
        .ok()?;
    let backend = resolver.backends.remove(&id)?;
    Some((id, backend))
}
