//! Compilation tests: the seeds' scenarios, precedence rule by rule, status
//! reasons, and hostile input.

mod backends;
mod grpc;
mod mesh;
mod precedence;
mod robustness;
mod seeds;
mod status;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::model::{ProxyConfig, RequestHead, RouteAction};
use crate::objects::{Objects, load_yaml};
use crate::status::{ConditionType, Reason, RouteParentStatus, Status};
use crate::{GatewaySelector, compile_with_status};

pub(super) const CLASS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
";

/// A Gateway `default/gw` with one HTTP listener on port 80 from all
/// namespaces.
pub(super) const GATEWAY: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ferry
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
";

pub(super) fn objects(yaml: &str) -> Objects {
    let text = format!("{CLASS}---\n{yaml}");
    let loaded = load_yaml(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    Objects::from_objects(loaded.objects).unwrap()
}

pub(super) fn compiled(yaml: &str) -> (ProxyConfig, Status) {
    compile_with_status(&objects(yaml), &GatewaySelector::All)
}

/// A request: `host`, `method`, `path?query`, headers.
pub(super) struct Req<'a> {
    pub(super) port: u16,
    pub(super) host: &'a str,
    pub(super) method: Method,
    pub(super) target: &'a str,
    pub(super) headers: &'a [(&'a str, &'a str)],
}

pub(super) fn get<'a>(host: &'a str, target: &'a str) -> Req<'a> {
    Req {
        port: 80,
        host,
        method: Method::GET,
        target,
        headers: &[],
    }
}

pub(super) fn route<'a>(config: &'a ProxyConfig, req: &Req<'_>) -> Option<&'a RouteAction> {
    let port = config.ports.iter().find(|p| p.port == req.port)?;
    let mut headers = HeaderMap::new();
    for (name, value) in req.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.target, None),
    };
    let head = RequestHead {
        host: req.host,
        method: &req.method,
        path,
        query,
        headers: &headers,
    };
    port.routes.find(&head).map(|m| &**m.action)
}

/// Which route and rule handles the request: `ns/name#rule`, or `404`.
pub(super) fn winner(config: &ProxyConfig, req: &Req<'_>) -> String {
    match route(config, req) {
        Some(action) => format!(
            "{}/{}#{}",
            action.rule.namespace, action.rule.name, action.rule.index
        ),
        None => "404".to_string(),
    }
}

/// The backends of the action handling a request: `name:port*weight`,
/// `invalid*weight` for unresolved ones.
pub(super) fn split(config: &ProxyConfig, req: &Req<'_>) -> Vec<String> {
    let action = route(config, req).expect("request is routed");
    action
        .backends
        .iter()
        .map(|b| match &b.target {
            Some(t) => format!("{}:{}*{}", t.name, t.port, b.weight),
            None => format!("invalid*{}", b.weight),
        })
        .collect()
}

/// The status of the first parentRef of `default/<name>` (HTTPRoute).
pub(super) fn parent_status<'a>(
    status: &'a Status,
    namespace: &str,
    name: &str,
) -> &'a RouteParentStatus {
    let route = status
        .route(
            crate::objects::Kind::HttpRoute,
            &crate::objects::NsName::new(namespace, name),
        )
        .unwrap_or_else(|| panic!("no status for {namespace}/{name}: {status:#?}"));
    &route.parents[0]
}

/// `(status, reason)` of one condition of a parent status.
pub(super) fn condition(parent: &RouteParentStatus, type_: ConditionType) -> (bool, Reason) {
    let c = parent
        .condition(type_)
        .unwrap_or_else(|| panic!("no {type_} in {parent:#?}"));
    (c.status, c.reason)
}
