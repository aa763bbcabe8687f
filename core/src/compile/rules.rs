//! One HTTPRoute rule (or a lowered GRPCRoute's) compiled into matchers and an action, or refused with
//! the reason that makes it invalid.

use std::sync::Arc;
use std::time::Duration;

use gateway_api::experimental::httproutes::{
    HttpRouteRules, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType as HeaderType,
    HttpRouteRulesMatchesMethod as M, HttpRouteRulesMatchesPathType as PathType,
    HttpRouteRulesMatchesQueryParamsType as QueryType, HttpRouteRulesRetry,
};
use http::{HeaderName, Method};

use super::backends::{BackendRef, Resolver};
use super::filters::{self, Filters};
use crate::attach::Refusal;
use crate::model::{
    AnchoredRegex, HeaderMatch, PathMatch, QueryMatch, RequestMatcher, RetryPolicy, RouteAction,
    RuleRef, Timeouts, ValueMatch, WeightedBackend,
};
use crate::objects::{Kind, NsName};
use crate::status::Reason;

/// A valid rule: one matcher per `matches` entry and the shared action.
#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) matchers: Vec<RequestMatcher>,
    pub(super) action: Arc<RouteAction>,
}

/// Compiles rule `index` of a route. `unresolved` collects references that
/// do not resolve (the rule stays, those backends answer 500); an `Err`
/// drops the rule.
pub(super) fn compile_rule(
    resolver: &mut Resolver<'_>,
    kind: Kind,
    route: &NsName,
    index: usize,
    rule: &HttpRouteRules,
    unresolved: &mut Vec<Refusal>,
) -> Result<CompiledRule, Refusal> {
    let invalid = |message: String| {
        Refusal::new(Reason::UnsupportedValue, format!("rule {index}: {message}"))
    };
    let matchers = match rule.matches.as_deref() {
        None | Some([]) => vec![RequestMatcher {
            path: PathMatch::Prefix("/".to_string()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }],
        Some(matches) => matches
            .iter()
            .map(matcher)
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
    };
    let all_prefix = matchers
        .iter()
        .all(|m| matches!(m.path, PathMatch::Prefix(_)));
    let mut ctx = filters::Ctx {
        resolver,
        kind,
        route,
        all_prefix,
        unresolved,
    };
    let rule_filters: Filters =
        filters::compile(&mut ctx, rule.filters.as_deref().unwrap_or_default()).map_err(invalid)?;
    let mut backends = Vec::new();
    for b in rule.backend_refs.iter().flatten() {
        let r = BackendRef {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            namespace: b.namespace.as_deref(),
            name: &b.name,
            port: b.port,
        };
        let target = match ctx.resolver.resolve(kind, &route.namespace, r) {
            Ok(id) => Some(id),
            Err(problem) => {
                ctx.unresolved.push(problem);
                None
            }
        };
        let filters = match b.filters.as_deref() {
            Some(list) if !list.is_empty() => {
                let list = filters::from_backend_filters(list).map_err(invalid)?;
                let compiled = filters::compile(&mut ctx, &list).map_err(invalid)?;
                if compiled.unsupported {
                    return Err(invalid(
                        "backendRef filters of this type are not supported".to_string(),
                    ));
                }
                compiled.filters
            }
            _ => Vec::new(),
        };
        backends.push(WeightedBackend {
            weight: u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0),
            target,
            filters,
        });
    }
    if rule_filters.unsupported {
        // The spec: a filter that cannot be applied must not be skipped;
        // requests get an error instead. No backends means 500.
        backends.clear();
    }
    let timeouts = timeouts(rule).map_err(invalid)?;
    let retry = rule
        .retry
        .as_ref()
        .map(retry)
        .transpose()
        .map_err(invalid)?;
    let action = RouteAction {
        rule: RuleRef {
            kind: kind.as_str().to_string(),
            namespace: route.namespace.clone(),
            name: route.name.clone(),
            index,
            section: rule.name.clone(),
        },
        filters: rule_filters.filters,
        backends,
        timeouts,
        retry,
    };
    Ok(CompiledRule {
        matchers,
        action: Arc::new(action),
    })
}

fn matcher(m: &HttpRouteRulesMatches) -> Result<RequestMatcher, String> {
    let path = match &m.path {
        None => PathMatch::Prefix("/".to_string()),
        Some(p) => {
            let value = p.value.as_deref().unwrap_or("/");
            match p.r#type.clone().unwrap_or(PathType::PathPrefix) {
                PathType::Exact | PathType::PathPrefix if !value.starts_with('/') => {
                    return Err(format!("path `{value}` does not start with `/`"));
                }
                PathType::Exact => PathMatch::Exact(value.to_string()),
                PathType::PathPrefix => {
                    let trimmed = value.trim_end_matches('/');
                    PathMatch::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
                }
                PathType::RegularExpression => PathMatch::Regex(regex(value, "path")?),
            }
        }
    };
    let method = m.method.as_ref().map(method);
    let mut headers: Vec<HeaderMatch> = Vec::new();
    for h in m.headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("header name `{}` is not valid", h.name))?;
        // Only the first entry for a name counts (the spec).
        if headers.iter().any(|existing| existing.name == name) {
            continue;
        }
        let value = match h.r#type.clone().unwrap_or(HeaderType::Exact) {
            HeaderType::Exact => ValueMatch::Exact(h.value.clone()),
            HeaderType::RegularExpression => ValueMatch::Regex(regex(&h.value, "header")?),
        };
        headers.push(HeaderMatch { name, value });
    }
    let mut query: Vec<QueryMatch> = Vec::new();
    for q in m.query_params.iter().flatten() {
        if query.iter().any(|existing| existing.name == q.name) {
            continue;
        }
        let value = match q.r#type.clone().unwrap_or(QueryType::Exact) {
            QueryType::Exact => ValueMatch::Exact(q.value.clone()),
            QueryType::RegularExpression => ValueMatch::Regex(regex(&q.value, "query parameter")?),
        };
        query.push(QueryMatch {
            name: q.name.clone(),
            value,
        });
    }
    Ok(RequestMatcher {
        path,
        method,
        headers,
        query,
    })
}

fn regex(source: &str, what: &str) -> Result<AnchoredRegex, String> {
    AnchoredRegex::new(source).map_err(|error| {
        let error = error.to_string();
        let first = error.lines().last().unwrap_or_default().trim();
        format!("{what} regular expression `{source}` is not valid: {first}")
    })
}

fn method(m: &M) -> Method {
    match m {
        M::Get => Method::GET,
        M::Head => Method::HEAD,
        M::Post => Method::POST,
        M::Put => Method::PUT,
        M::Delete => Method::DELETE,
        M::Connect => Method::CONNECT,
        M::Options => Method::OPTIONS,
        M::Trace => Method::TRACE,
        M::Patch => Method::PATCH,
    }
}

fn timeouts(rule: &HttpRouteRules) -> Result<Timeouts, String> {
    let Some(t) = &rule.timeouts else {
        return Ok(Timeouts::default());
    };
    let request = t
        .request
        .as_deref()
        .map(|d| duration(d, "timeouts.request"))
        .transpose()?
        .flatten();
    let backend_request = t
        .backend_request
        .as_deref()
        .map(|d| duration(d, "timeouts.backendRequest"))
        .transpose()?
        .flatten();
    if let (Some(request), Some(backend)) = (request, backend_request)
        && backend > request
    {
        return Err("timeouts.backendRequest is longer than timeouts.request".to_string());
    }
    Ok(Timeouts {
        request,
        backend_request,
    })
}

/// Parses a Gateway API duration (`10s`, `500ms`, `1h2m`); zero disables
/// the timeout (`None`).
pub(crate) fn duration(value: &str, field: &str) -> Result<Option<Duration>, String> {
    let parsed: gateway_api::Duration = value
        .parse()
        .map_err(|e| format!("{field} `{value}` is not a valid duration ({e})"))?;
    let nanos =
        u64::try_from(parsed.as_nanos()).map_err(|_| format!("{field} `{value}` is too long"))?;
    Ok(Some(Duration::from_nanos(nanos)).filter(|d| !d.is_zero()))
}

fn retry(r: &HttpRouteRulesRetry) -> Result<RetryPolicy, String> {
    let codes = r
        .codes
        .iter()
        .flatten()
        .map(|c| {
            u16::try_from(*c)
                .ok()
                .filter(|c| (400..600).contains(c))
                .ok_or_else(|| format!("retry code {c} is not an HTTP error status"))
        })
        .collect::<Result<_, _>>()?;
    let attempts = u32::try_from(r.attempts.unwrap_or(1))
        .map_err(|_| "retry.attempts is negative".to_string())?;
    let backoff = r
        .backoff
        .as_deref()
        .map(|d| duration(d, "retry.backoff"))
        .transpose()?
        .flatten();
    Ok(RetryPolicy {
        codes,
        attempts,
        backoff,
    })
}
