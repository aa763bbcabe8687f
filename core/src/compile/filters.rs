//! HTTPRoute filters validated into [`crate::model::Filter`]s.

use gateway_api::experimental::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters, HttpRouteRulesFiltersCors,
    HttpRouteRulesFiltersRequestHeaderModifier as HeaderFilter, HttpRouteRulesFiltersRequestMirror,
    HttpRouteRulesFiltersRequestRedirect,
    HttpRouteRulesFiltersRequestRedirectPathType as RedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme as Scheme, HttpRouteRulesFiltersType as Type,
    HttpRouteRulesFiltersUrlRewrite, HttpRouteRulesFiltersUrlRewritePathType as RewritePathType,
};
use http::{HeaderName, HeaderValue};

use super::backends::{BackendRef, Resolver};
use crate::attach::Refusal;
use crate::model::{Cors, Filter, HeaderModifier, Mirror, PathModifier, Redirect, Rewrite};
use crate::objects::{Kind, NsName};
use crate::status::Reason;

/// What filter compilation needs from its rule.
pub(super) struct Ctx<'a, 'b> {
    pub(super) resolver: &'b mut Resolver<'a>,
    /// The kind of the route (ReferenceGrants name it).
    pub(super) kind: Kind,
    pub(super) route: &'b NsName,
    /// Whether every match of the rule is a `PathPrefix` match (needed by
    /// `ReplacePrefixMatch`).
    pub(super) all_prefix: bool,
    pub(super) unresolved: &'b mut Vec<Refusal>,
}

/// Compiled filters of a rule or backendRef.
#[derive(Debug, Default)]
pub(super) struct Filters {
    pub(super) filters: Vec<Filter>,
    /// A filter Ferry cannot apply (ExtensionRef, ExternalAuth): the spec
    /// asks for an error response rather than skipping it.
    pub(super) unsupported: bool,
}

/// Backend filters have their own generated types with the same shape;
/// read them as rule filters.
pub(super) fn from_backend_filters(
    list: &[HttpRouteRulesBackendRefsFilters],
) -> Result<Vec<HttpRouteRulesFilters>, String> {
    serde_json::to_value(list)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("backendRef filters cannot be read: {e}"))
}

/// Validates `list` in order.
pub(super) fn compile(
    ctx: &mut Ctx<'_, '_>,
    list: &[HttpRouteRulesFilters],
) -> Result<Filters, String> {
    let mut out = Filters::default();
    let missing = |what: &str| format!("filter {what} has no `{}` field", lower_first(what));
    for f in list {
        let filter = match f.r#type {
            Type::RequestHeaderModifier => Filter::RequestHeaders(headers(
                f.request_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing("RequestHeaderModifier"))?,
            )?),
            Type::ResponseHeaderModifier => {
                let m = f
                    .response_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing("ResponseHeaderModifier"))?;
                // Same shape as the request modifier.
                let m: HeaderFilter = serde_json::to_value(m)
                    .and_then(serde_json::from_value)
                    .map_err(|e| e.to_string())?;
                Filter::ResponseHeaders(headers(&m)?)
            }
            Type::RequestRedirect => Filter::Redirect(redirect(
                ctx,
                f.request_redirect
                    .as_ref()
                    .ok_or_else(|| missing("RequestRedirect"))?,
            )?),
            Type::UrlRewrite => Filter::Rewrite(rewrite(
                ctx,
                f.url_rewrite
                    .as_ref()
                    .ok_or_else(|| missing("URLRewrite"))?,
            )?),
            Type::RequestMirror => Filter::Mirror(mirror(
                ctx,
                f.request_mirror
                    .as_ref()
                    .ok_or_else(|| missing("RequestMirror"))?,
            )?),
            Type::Cors => Filter::Cors(cors(
                f.cors
                    .as_ref()
                    .ok_or_else(|| "filter CORS has no `cors` field".to_string())?,
            )),
            Type::ExtensionRef | Type::ExternalAuth => {
                let what = if f.r#type == Type::ExtensionRef {
                    "ExtensionRef"
                } else {
                    "ExternalAuth"
                };
                ctx.unresolved.push(Refusal::new(
                    Reason::InvalidKind,
                    format!(
                        "filter {what} is not supported by Ferry; requests to this rule get 500"
                    ),
                ));
                out.unsupported = true;
                continue;
            }
        };
        out.filters.push(filter);
    }
    let redirects = out
        .filters
        .iter()
        .filter(|f| matches!(f, Filter::Redirect(_)))
        .count();
    let rewrites = out
        .filters
        .iter()
        .filter(|f| matches!(f, Filter::Rewrite(_)))
        .count();
    if redirects > 0 && rewrites > 0 {
        return Err("RequestRedirect and URLRewrite cannot be used together".to_string());
    }
    Ok(out)
}

fn lower_first(s: &str) -> String {
    match s {
        "URLRewrite" => "urlRewrite".to_string(),
        _ => {
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
    }
}

fn headers(m: &HeaderFilter) -> Result<HeaderModifier, String> {
    let pair = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), String> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name `{name}` is not valid"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("value of header `{name}` is not valid"))?;
        Ok((n, v))
    };
    Ok(HeaderModifier {
        set: m
            .set
            .iter()
            .flatten()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?,
        add: m
            .add
            .iter()
            .flatten()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?,
        remove: m
            .remove
            .iter()
            .flatten()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("header name `{n}` is not valid"))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn path_modifier(
    ctx: &Ctx<'_, '_>,
    prefix: bool,
    full: Option<&String>,
    replace_prefix: Option<&String>,
    filter: &str,
) -> Result<PathModifier, String> {
    if prefix {
        if !ctx.all_prefix {
            return Err(format!(
                "{filter} ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"
            ));
        }
        let value = replace_prefix
            .ok_or_else(|| format!("{filter} ReplacePrefixMatch has no replacePrefixMatch"))?;
        Ok(PathModifier::ReplacePrefixMatch(value.clone()))
    } else {
        let value =
            full.ok_or_else(|| format!("{filter} ReplaceFullPath has no replaceFullPath"))?;
        Ok(PathModifier::ReplaceFullPath(value.clone()))
    }
}

fn redirect(
    ctx: &Ctx<'_, '_>,
    r: &HttpRouteRulesFiltersRequestRedirect,
) -> Result<Redirect, String> {
    let status = u16::try_from(r.status_code.unwrap_or(302))
        .ok()
        .filter(|s| matches!(s, 301 | 302 | 303 | 307 | 308))
        .ok_or_else(|| {
            format!(
                "redirect status {} is not one of 301, 302, 303, 307, 308",
                r.status_code.unwrap_or(0)
            )
        })?;
    let port = r
        .port
        .map(|p| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("redirect port {p} is not valid"))
        })
        .transpose()?;
    let path = r
        .path
        .as_ref()
        .map(|p| {
            let prefix = p.r#type == RedirectPathType::ReplacePrefixMatch;
            path_modifier(
                ctx,
                prefix,
                p.replace_full_path.as_ref(),
                p.replace_prefix_match.as_ref(),
                "RequestRedirect",
            )
        })
        .transpose()?;
    Ok(Redirect {
        scheme: r.scheme.as_ref().map(|s| match s {
            Scheme::Http => "http".to_string(),
            Scheme::Https => "https".to_string(),
        }),
        hostname: r.hostname.clone(),
        port,
        path,
        status,
    })
}

fn rewrite(ctx: &Ctx<'_, '_>, r: &HttpRouteRulesFiltersUrlRewrite) -> Result<Rewrite, String> {
    let path = r
        .path
        .as_ref()
        .map(|p| {
            let prefix = p.r#type == RewritePathType::ReplacePrefixMatch;
            path_modifier(
                ctx,
                prefix,
                p.replace_full_path.as_ref(),
                p.replace_prefix_match.as_ref(),
                "URLRewrite",
            )
        })
        .transpose()?;
    Ok(Rewrite {
        hostname: r.hostname.clone(),
        path,
    })
}

fn mirror(ctx: &mut Ctx<'_, '_>, m: &HttpRouteRulesFiltersRequestMirror) -> Result<Mirror, String> {
    let b = &m.backend_ref;
    let r = BackendRef {
        group: b.group.as_deref(),
        kind: b.kind.as_deref(),
        namespace: b.namespace.as_deref(),
        name: &b.name,
        port: b.port,
    };
    let target = match ctx.resolver.resolve(ctx.kind, &ctx.route.namespace, r) {
        Ok(id) => Some(id),
        Err(problem) => {
            ctx.unresolved.push(problem);
            None
        }
    };
    let percent = match (m.percent, &m.fraction) {
        (Some(p), _) => f64::from(p),
        (None, Some(f)) => {
            let denominator = f.denominator.unwrap_or(100);
            if denominator <= 0 || f.numerator < 0 || f.numerator > denominator {
                return Err(format!(
                    "mirror fraction {}/{denominator} is not valid",
                    f.numerator
                ));
            }
            f64::from(f.numerator) * 100.0 / f64::from(denominator)
        }
        (None, None) => 100.0,
    };
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("mirror percent {percent} is not between 0 and 100"));
    }
    Ok(Mirror { target, percent })
}

fn cors(c: &HttpRouteRulesFiltersCors) -> Cors {
    Cors {
        allow_origins: c.allow_origins.clone().unwrap_or_default(),
        allow_methods: c.allow_methods.clone().unwrap_or_default(),
        allow_headers: c.allow_headers.clone().unwrap_or_default(),
        expose_headers: c.expose_headers.clone().unwrap_or_default(),
        max_age: c.max_age.and_then(|a| u32::try_from(a).ok()),
        allow_credentials: c.allow_credentials.unwrap_or(false),
    }
}
