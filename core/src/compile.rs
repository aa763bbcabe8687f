//! Compilation: Gateway API objects into the [`ProxyConfig`] a gateway proxy
//! serves, and the [`Status`] every object earns on the way.
//!
//! Nothing here fails: an invalid rule, a reference that does not resolve,
//! a listener without a certificate each become status (and, where the spec
//! says so, a 500 for the requests they would have handled) while the rest
//! keeps working.
//!
//! # Precedence
//!
//! A request is routed by the most specific virtual host matching its host
//! (exact names, then wildcards by suffix length, then any host; no
//! fallback to a less specific one). Within it, across every rule of every
//! route, a match sorts before another by, in turn:
//!
//! 1. an `Exact` path match;
//! 2. a `PathPrefix` match, longest prefix first;
//! 3. a `RegularExpression` path match (left to implementations: Ferry
//!    puts them after every prefix, longest source first);
//! 4. a method match;
//! 5. more header matches;
//! 6. more query parameter matches;
//! 7. the older route (`creationTimestamp`; routes without one, as in
//!    files, count as newest);
//! 8. the route's `namespace/name`, alphabetically;
//! 9. the rule's position in the route, then the match's in the rule.
//!
//! # Listeners sharing a port
//!
//! Listeners of the selected Gateways on one port are merged. A request
//! belongs to the most specific listener whose hostname matches it: routes
//! attached through a less specific listener do not serve it, and every
//! listener hostname gets a virtual host even without routes (so its
//! requests get a 404 rather than another listener's routes).
//!
//! # Limits
//!
//! Routes that did not go through the API server's validation are held to
//! the CRD's limits ([`MAX_RULES`], [`MAX_MATCHES`]); regular expressions
//! are compiled with a size limit and match in linear time.

mod backends;
mod filters;
mod gateway_status;
mod grpc;
mod mesh;
mod order;
mod rules;
mod table;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use gateway_api::experimental::httproutes::HttpRouteRules;

use crate::attach::{self, Outcome, ParentAttachment, Refusal, RouteMeta};
use crate::model::{ProxyConfig, RouteEntry};
use crate::objects::api::HttpRoute;
use crate::objects::{Kind, NsName, Objects};
use crate::status::{
    Condition, ConditionType as T, Reason, RouteParentStatus, RouteStatus, Status,
};

pub use mesh::{ServiceRoutes, compile_service, service_backend};

use backends::Resolver;
use order::Precedence;
use rules::CompiledRule;
use table::Placed;

/// Which Gateways a proxy serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewaySelector {
    /// Every Ferry Gateway (standalone mode, tests).
    All,
    /// One Gateway (a gateway deployment).
    One(NsName),
}

/// Most rules an HTTPRoute may have (the CRD's limit, enforced here for
/// routes that did not go through the API server).
pub const MAX_RULES: usize = 16;

/// Most matches across the rules of one HTTPRoute (the CRD's limit).
pub const MAX_MATCHES: usize = 128;

/// A route's rules after compilation.
struct CompiledRoute {
    /// Per rule: compiled, or why it was dropped.
    rules: Vec<Result<CompiledRule, Refusal>>,
    /// References that did not resolve.
    unresolved: Vec<Refusal>,
    /// Why the whole route is refused, if it is.
    refused: Option<Refusal>,
}

// === impl GatewaySelector ===

impl GatewaySelector {
    /// Whether the Gateway is served.
    pub fn selects(&self, gateway: &NsName) -> bool {
        match self {
            Self::All => true,
            Self::One(id) => id == gateway,
        }
    }
}

/// The configuration of a proxy serving the selected Gateways.
pub fn compile(objects: &Objects, selector: &GatewaySelector) -> ProxyConfig {
    compile_with_status(objects, selector).0
}

/// The configuration of a proxy serving the selected Gateways, and the
/// status of every Ferry GatewayClass, Gateway and route (regardless of the
/// selector).
pub fn compile_with_status(objects: &Objects, selector: &GatewaySelector) -> (ProxyConfig, Status) {
    let gateways = attach::ferry_gateways(objects);
    let mut resolver = Resolver::new(objects);
    let mut status = Status {
        gateway_classes: gateway_status::classes(objects),
        ..Status::default()
    };
    let mut attached: BTreeMap<(NsName, String), BTreeSet<NsName>> = BTreeMap::new();
    let mut placed = Vec::new();
    for (meta, route) in routes(objects) {
        let id = &meta.id;
        let attachments: Vec<ParentAttachment> = meta
            .parent_refs
            .iter()
            .map(|p| attach::attach(objects, &gateways, &meta, p))
            .collect();
        if attachments
            .iter()
            .all(|a| matches!(a.outcome, Outcome::NotOurs(_)))
        {
            continue;
        }
        let compiled = match &route {
            Ok(route) => compile_route(&mut resolver, meta.kind, id, route),
            Err(refusal) => CompiledRoute {
                rules: Vec::new(),
                unresolved: Vec::new(),
                refused: Some(refusal.clone()),
            },
        };
        status
            .routes
            .push(route_status(&meta, &attachments, &compiled));
        let created = route
            .as_ref()
            .ok()
            .and_then(|r| r.metadata.creation_timestamp.clone());
        for l in attachments.iter().flat_map(ParentAttachment::attached) {
            attached
                .entry((l.gateway.clone(), l.listener.clone()))
                .or_default()
                .insert(id.clone());
            if compiled.refused.is_some() || !selector.selects(&l.gateway) {
                continue;
            }
            for hostname in &l.hostnames {
                for (index, rule) in compiled.rules.iter().enumerate() {
                    let Ok(rule) = rule else { continue };
                    for (matched, matcher) in rule.matchers.iter().enumerate() {
                        placed.push(Placed {
                            gateway: l.gateway.clone(),
                            listener: l.listener.clone(),
                            hostname: hostname.clone(),
                            key: Precedence::new(matcher, created.as_ref(), id, index, matched),
                            entry: RouteEntry {
                                matcher: matcher.clone(),
                                action: rule.action.clone(),
                            },
                        });
                    }
                }
            }
        }
    }
    status.gateways = gateways
        .values()
        .map(|view| gateway_status::gateway(objects, view, &attached))
        .collect();
    let config = table::build(&gateways, selector, placed, &resolver.backends);
    (config, status)
}

/// Every route Ferry compiles, as HTTPRoutes: GRPCRoutes are lowered
/// ([`grpc`]), or refused when they cannot be.
fn routes(
    objects: &Objects,
) -> impl Iterator<Item = (RouteMeta, Result<Cow<'_, HttpRoute>, Refusal>)> {
    let http = objects
        .http_routes()
        .map(|(id, r)| (RouteMeta::of_http_route(id, r), Ok(Cow::Borrowed(r))));
    let grpc = objects.grpc_routes().map(|(id, r)| {
        (
            RouteMeta::of_grpc_route(id, r),
            grpc::lower(r).map(Cow::Owned),
        )
    });
    http.chain(grpc)
}

fn compile_route(
    resolver: &mut Resolver<'_>,
    kind: Kind,
    id: &NsName,
    route: &HttpRoute,
) -> CompiledRoute {
    let default_rule = [HttpRouteRules::default()];
    let rules = match route.spec.rules.as_deref() {
        None | Some([]) => &default_rule[..],
        Some(rules) => rules,
    };
    let matches: usize = rules
        .iter()
        .map(|r| r.matches.as_ref().map_or(1, Vec::len))
        .sum();
    let too_big = if rules.len() > MAX_RULES {
        Some(format!(
            "the route has {} rules; at most {MAX_RULES} are allowed",
            rules.len()
        ))
    } else if matches > MAX_MATCHES {
        Some(format!(
            "the route has {matches} matches; at most {MAX_MATCHES} are allowed"
        ))
    } else {
        None
    };
    if let Some(message) = too_big {
        return CompiledRoute {
            rules: Vec::new(),
            unresolved: Vec::new(),
            refused: Some(Refusal::new(Reason::UnsupportedValue, message)),
        };
    }
    let mut unresolved = Vec::new();
    let rules: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| rules::compile_rule(resolver, kind, id, index, rule, &mut unresolved))
        .collect();
    let refused = if rules.iter().all(Result::is_err) {
        Refusal::combine(
            rules
                .iter()
                .filter_map(|r| r.as_ref().err().cloned())
                .collect(),
        )
    } else {
        None
    };
    CompiledRoute {
        rules,
        unresolved,
        refused,
    }
}

fn route_status(
    meta: &RouteMeta,
    attachments: &[ParentAttachment],
    compiled: &CompiledRoute,
) -> RouteStatus {
    let generation = meta.generation;
    let dropped: Vec<Refusal> = compiled
        .rules
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    let resolved = match Refusal::combine(compiled.unresolved.clone()) {
        Some(r) => Condition::no(T::ResolvedRefs, r.reason, r.message, generation),
        None => Condition::yes(
            T::ResolvedRefs,
            Reason::ResolvedRefs,
            "all references resolved",
            generation,
        ),
    };
    let parents = attachments
        .iter()
        .filter_map(|a| {
            let accepted = match (&a.outcome, &compiled.refused) {
                (Outcome::NotOurs(_), _) => return None,
                (Outcome::Refused(r), _) | (_, Some(r)) => {
                    Condition::no(T::Accepted, r.reason, r.message.clone(), generation)
                }
                (Outcome::Accepted(listeners), None) => {
                    let message = if listeners.is_empty() {
                        format!("attached to {}", a.parent_ref)
                    } else {
                        let names: Vec<&str> =
                            listeners.iter().map(|l| l.listener.as_str()).collect();
                        format!(
                            "attached to listeners {} of Gateway {}",
                            names.join(", "),
                            listeners[0].gateway
                        )
                    };
                    Condition::yes(T::Accepted, Reason::Accepted, message, generation)
                }
            };
            let mut conditions = vec![accepted, resolved.clone()];
            if compiled.refused.is_none()
                && let Some(r) = Refusal::combine(dropped.clone())
            {
                let message = format!("rules dropped: {}", r.message);
                conditions.push(Condition::yes(
                    T::PartiallyInvalid,
                    r.reason,
                    message,
                    generation,
                ));
            }
            Some(RouteParentStatus {
                parent_ref: a.parent_ref.clone(),
                conditions,
            })
        })
        .collect();
    RouteStatus {
        kind: meta.kind,
        route: meta.id.clone(),
        parents,
    }
}

#[cfg(test)]
mod tests;
