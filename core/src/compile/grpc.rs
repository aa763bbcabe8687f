//! GRPCRoutes lowered to the HTTPRoutes that route the same requests, so
//! one compiler, one matcher and one precedence serve both.
//!
//! A gRPC call is an HTTP/2 `POST` to `/<package.Service>/<Method>`. A
//! method match becomes a path match:
//!
//! | `method` match | path match |
//! |---|---|
//! | Exact, service and method | Exact `/<service>/<method>` |
//! | Exact, service only | PathPrefix `/<service>/` |
//! | Exact, method only | RegularExpression `/[^/]+/<method, escaped>` |
//! | RegularExpression | RegularExpression `/(?:<service>)/(?:<method>)`, `[^/]+` for an empty side |
//! | none | PathPrefix `/` |
//!
//! so the spec's precedence (service and method characters, then header
//! matches) follows from the HTTP one: exact paths first, longer prefixes
//! next, expressions last. On a hostname shared with HTTPRoutes, method-only
//! and regular-expression matches therefore come after every HTTPRoute
//! prefix (a catch-all `/` HTTPRoute takes those calls). Header matches, filters (`RequestHeaderModifier`,
//! `ResponseHeaderModifier`, `RequestMirror`) and backendRefs have the same
//! shape in both kinds and are taken as they are. The method and
//! `content-type` are not matched: a request that is not gRPC but has the
//! path of a gRPC method goes where the call would. Backends of GRPCRoutes
//! are reached over HTTP/2 ([`super::backends`]).

use gateway_api::experimental::grpcroutes::{
    GrpcRouteRulesMatches, GrpcRouteRulesMatchesMethod, GrpcRouteRulesMatchesMethodType,
};
use gateway_api::experimental::httproutes::HttpRouteSpec;
use serde_json::{Value, json};

use crate::attach::Refusal;
use crate::objects::api::{GrpcRoute, HttpRoute};
use crate::status::Reason;

/// The HTTPRoute equivalent to `route`; refused when a rule has a method
/// match naming neither service nor method (which the CRD forbids).
pub(super) fn lower(route: &GrpcRoute) -> Result<HttpRoute, Refusal> {
    let refused = |message: String| Refusal::new(Reason::UnsupportedValue, message);
    let mut rules = Vec::new();
    for (index, rule) in route.spec.rules.iter().flatten().enumerate() {
        let mut value = serde_json::to_value(rule)
            .map_err(|e| refused(format!("rule {index} cannot be read: {e}")))?;
        if let Some(matches) = &rule.matches {
            let lowered = matches
                .iter()
                .map(lower_match)
                .collect::<Result<Vec<Value>, String>>()
                .map_err(|m| refused(format!("rule {index}: {m}")))?;
            value["matches"] = Value::Array(lowered);
        }
        rules.push(value);
    }
    let spec = json!({
        "hostnames": route.spec.hostnames,
        "parentRefs": route.spec.parent_refs,
        "rules": rules,
    });
    let spec: HttpRouteSpec = serde_json::from_value(spec)
        .map_err(|e| refused(format!("the route cannot be compiled: {e}")))?;
    Ok(HttpRoute {
        metadata: route.metadata.clone(),
        spec,
        status: None,
    })
}

fn lower_match(m: &GrpcRouteRulesMatches) -> Result<Value, String> {
    let path = match &m.method {
        None => json!({"type": "PathPrefix", "value": "/"}),
        Some(method) => path(method)?,
    };
    Ok(json!({"path": path, "headers": m.headers}))
}

fn path(m: &GrpcRouteRulesMatchesMethod) -> Result<Value, String> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    let any = "[^/]+";
    let (kind, value) = match (m.r#type.as_ref(), service, method) {
        (_, None, None) => {
            return Err("a method match names neither service nor method".to_string());
        }
        (Some(GrpcRouteRulesMatchesMethodType::RegularExpression), s, m) => (
            "RegularExpression",
            format!("/(?:{})/(?:{})", s.unwrap_or(any), m.unwrap_or(any)),
        ),
        (_, Some(s), Some(m)) => ("Exact", format!("/{s}/{m}")),
        (_, Some(s), None) => ("PathPrefix", format!("/{s}/")),
        (_, None, Some(m)) => ("RegularExpression", format!("/{any}/{}", regex::escape(m))),
    };
    Ok(json!({"type": kind, "value": value}))
}
