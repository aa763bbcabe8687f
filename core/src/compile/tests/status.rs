//! Status reasons: one test per reason a (route, parentRef), a listener or
//! a Gateway can get.

use super::*;
use crate::objects::NsName;
use crate::status::ConditionType::{
    Accepted, Conflicted, PartiallyInvalid, Programmed, ResolvedRefs,
};

const SVC: &str = "\
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec: {ports: [{port: 80}]}
";

/// `default/r` with the given spec body (indented by 2).
fn route_spec(spec: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default, generation: 7}}\nspec:\n{spec}"
    )
}

fn status_of(yaml: &str) -> (ProxyConfig, Status) {
    compiled(&format!("{GATEWAY}{SVC}{yaml}"))
}

fn accepted_reason(spec: &str) -> (bool, Reason, String) {
    let (_, status) = status_of(&route_spec(spec));
    let parent = parent_status(&status, "default", "r");
    let c = parent.condition(Accepted).unwrap();
    (c.status, c.reason, c.message.clone())
}

fn resolved_reason(spec: &str) -> (bool, Reason, String) {
    let (_, status) = status_of(&route_spec(spec));
    let parent = parent_status(&status, "default", "r");
    let c = parent.condition(ResolvedRefs).unwrap();
    (c.status, c.reason, c.message.clone())
}

#[test]
fn accepted_route_carries_observed_generation() {
    let (_, status) = status_of(&route_spec(
        "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: svc, port: 80}]}]\n",
    ));
    let parent = parent_status(&status, "default", "r");
    assert_eq!(condition(parent, Accepted), (true, Reason::Accepted));
    assert_eq!(
        condition(parent, ResolvedRefs),
        (true, Reason::ResolvedRefs)
    );
    assert!(
        parent
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
    assert_eq!(parent.parent_ref.namespace, "default");
    assert_eq!(parent.parent_ref.kind, "Gateway");
}

#[test]
fn no_matching_parent_for_unknown_section_name() {
    let (ok, reason, message) = accepted_reason("  parentRefs: [{name: gw, sectionName: https}]\n");
    assert_eq!((ok, reason), (false, Reason::NoMatchingParent));
    assert_eq!(message, "Gateway default/gw has no listener named https");
}

#[test]
fn no_matching_parent_for_unknown_port() {
    let (ok, reason, message) = accepted_reason("  parentRefs: [{name: gw, port: 8080}]\n");
    assert_eq!((ok, reason), (false, Reason::NoMatchingParent));
    assert_eq!(message, "Gateway default/gw has no listener on port 8080");
    let (ok, _, _) = accepted_reason("  parentRefs: [{name: gw, port: 80, sectionName: http}]\n");
    assert!(ok);
}

#[test]
fn no_matching_parent_for_missing_gateway_and_unknown_kind() {
    let (ok, reason, message) = accepted_reason("  parentRefs: [{name: nope}]\n");
    assert_eq!((ok, reason), (false, Reason::NoMatchingParent));
    assert_eq!(message, "Gateway default/nope does not exist");
    let (ok, reason, message) =
        accepted_reason("  parentRefs: [{group: example.com, kind: Mesh, name: m}]\n");
    assert_eq!((ok, reason), (false, Reason::NoMatchingParent));
    assert!(
        message.contains("example.com/Mesh is not supported"),
        "{message}"
    );
}

#[test]
fn service_parent_is_accepted_when_the_service_and_port_exist() {
    let spec = |port: u16| {
        format!("  parentRefs: [{{group: '', kind: Service, name: svc, port: {port}}}]\n")
    };
    assert_eq!(accepted_reason(&spec(80)).1, Reason::Accepted);
    let (ok, reason, message) = accepted_reason(&spec(81));
    assert_eq!(
        (ok, reason, message.as_str()),
        (
            false,
            Reason::NoMatchingParent,
            "Service default/svc has no port 81"
        )
    );
    let (ok, reason, _) =
        accepted_reason("  parentRefs: [{group: '', kind: Service, name: other}]\n");
    assert_eq!((ok, reason), (false, Reason::NoMatchingParent));
}

#[test]
fn no_matching_listener_hostname() {
    let gw = GATEWAY.replace(
        "protocol: HTTP,",
        "protocol: HTTP, hostname: foo.example.com,",
    );
    let yaml = format!(
        "{gw}{}",
        route_spec("  parentRefs: [{name: gw}]\n  hostnames: [bar.example.com]\n")
    );
    let (_, status) = compiled(&yaml);
    let parent = parent_status(&status, "default", "r");
    assert_eq!(
        condition(parent, Accepted),
        (false, Reason::NoMatchingListenerHostname)
    );
    assert!(
        parent.conditions[0].message.contains("foo.example.com"),
        "{:?}",
        parent.conditions[0]
    );
}

#[test]
fn not_allowed_by_listeners_for_route_kind() {
    let gw = GATEWAY.replace(
        "allowedRoutes: {",
        "allowedRoutes: {kinds: [{kind: TCPRoute}], ",
    );
    let yaml = format!("{gw}{}", route_spec("  parentRefs: [{name: gw}]\n"));
    let (_, status) = compiled(&yaml);
    let parent = parent_status(&status, "default", "r");
    assert_eq!(
        condition(parent, Accepted),
        (false, Reason::NotAllowedByListeners)
    );
    let listener = status
        .gateway(&NsName::new("default", "gw"))
        .unwrap()
        .listener("http")
        .unwrap();
    let resolved = listener.condition(ResolvedRefs).unwrap();
    assert_eq!(
        (resolved.status, resolved.reason),
        (false, Reason::InvalidRouteKinds)
    );
    assert!(listener.supported_kinds.is_empty());
    assert_eq!(listener.attached_routes, 0);
}

#[test]
fn backend_not_found_for_missing_service_or_port() {
    let (ok, reason, message) = resolved_reason(
        "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: gone, port: 80}]}]\n",
    );
    assert_eq!(
        (ok, reason, message.as_str()),
        (
            false,
            Reason::BackendNotFound,
            "Service default/gone does not exist"
        )
    );
    let (ok, reason, message) = resolved_reason(
        "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: svc, port: 81}]}]\n",
    );
    assert_eq!(
        (ok, reason, message.as_str()),
        (
            false,
            Reason::BackendNotFound,
            "Service default/svc has no port 81"
        )
    );
    // The route is still accepted; its rule answers 500 (no valid target).
    assert!(
        accepted_reason(
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: gone, port: 80}]}]\n"
        )
        .0
    );
}

#[test]
fn ref_not_permitted_across_namespaces_without_a_grant() {
    let other = "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: other}\nspec: {ports: [{port: 80}]}\n";
    let spec = "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: svc, namespace: other, port: 80}]}]\n";
    let (config, status) = status_of(&format!("{other}{}", route_spec(spec)));
    let parent = parent_status(&status, "default", "r");
    assert_eq!(
        condition(parent, ResolvedRefs),
        (false, Reason::RefNotPermitted)
    );
    assert_eq!(split(&config, &get("h", "/")), ["invalid*1"]);

    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: other}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]\n  to: [{group: '', kind: Service}]\n";
    let (config, status) = status_of(&format!("{other}{grant}{}", route_spec(spec)));
    let parent = parent_status(&status, "default", "r");
    assert_eq!(
        condition(parent, ResolvedRefs),
        (true, Reason::ResolvedRefs)
    );
    assert_eq!(split(&config, &get("h", "/")), ["svc:80*1"]);
}

#[test]
fn invalid_kind_for_a_backend_that_is_not_a_service() {
    let (ok, reason, message) = resolved_reason(
        "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{group: example.com, kind: Bucket, name: b}]}]\n",
    );
    assert_eq!((ok, reason), (false, Reason::InvalidKind));
    assert!(message.contains("example.com/Bucket"), "{message}");
}

#[test]
fn unsupported_value_drops_the_invalid_rule_and_keeps_the_others() {
    let spec = "  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: '/(unclosed'}}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /ok}}]\n    backendRefs: [{name: svc, port: 80}]\n";
    let (config, status) = status_of(&route_spec(spec));
    let parent = parent_status(&status, "default", "r");
    assert_eq!(condition(parent, Accepted), (true, Reason::Accepted));
    assert_eq!(
        condition(parent, PartiallyInvalid),
        (true, Reason::UnsupportedValue)
    );
    let message = &parent.condition(PartiallyInvalid).unwrap().message;
    assert!(
        message.contains("rule 0: path regular expression `/(unclosed` is not valid"),
        "{message}"
    );
    assert_eq!(winner(&config, &get("h", "/ok")), "default/r#1");
    assert_eq!(winner(&config, &get("h", "/(unclosed")), "404");
}

#[test]
fn unsupported_value_refuses_a_route_whose_rules_are_all_invalid() {
    let spec = "  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: Exact, value: /x}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}}]\n    backendRefs: [{name: svc, port: 80}]\n";
    let (ok, reason, message) = accepted_reason(spec);
    assert_eq!((ok, reason), (false, Reason::UnsupportedValue));
    assert!(
        message
            .contains("ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"),
        "{message}"
    );
}

#[test]
fn routes_of_other_controllers_get_no_status() {
    let other = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: default}\nspec:\n  gatewayClassName: other\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let (_, status) = status_of(&format!(
        "{other}{}",
        route_spec("  parentRefs: [{name: theirs}]\n")
    ));
    assert!(
        status
            .route(
                crate::objects::Kind::HttpRoute,
                &NsName::new("default", "r")
            )
            .is_none()
    );
    assert!(status.gateway(&NsName::new("default", "theirs")).is_none());
    // With one parent of each, only Ferry's gets an entry.
    let spec = "  parentRefs: [{name: theirs}, {name: gw}]\n";
    let (_, status) = status_of(&format!("{other}{}", route_spec(spec)));
    let route = status
        .route(
            crate::objects::Kind::HttpRoute,
            &NsName::new("default", "r"),
        )
        .unwrap();
    assert_eq!(route.parents.len(), 1);
    assert_eq!(route.parents[0].parent_ref.name, "gw");
}

#[test]
fn listener_conditions_for_protocols_and_conflicts() {
    let gw = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default, generation: 3}
spec:
  gatewayClassName: ferry
  listeners:
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: a, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: a2, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: b, port: 80, protocol: HTTP, hostname: b.example.com}
  - {name: plain, port: 8443, protocol: HTTP}
  - {name: tls, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}
";
    let (config, status) = compiled(gw);
    let gw = status.gateway(&NsName::new("default", "gw")).unwrap();
    let cond = |listener: &str, t| {
        let c = gw.listener(listener).unwrap().condition(t).unwrap();
        (c.status, c.reason)
    };
    assert_eq!(cond("tcp", Accepted), (false, Reason::UnsupportedProtocol));
    assert_eq!(cond("a", Conflicted), (true, Reason::HostnameConflict));
    assert_eq!(cond("a2", Conflicted), (true, Reason::HostnameConflict));
    assert_eq!(cond("b", Conflicted), (false, Reason::NoConflicts));
    assert_eq!(cond("b", Programmed), (true, Reason::Programmed));
    assert_eq!(cond("plain", Conflicted), (true, Reason::ProtocolConflict));
    assert_eq!(
        cond("tls", ResolvedRefs),
        (false, Reason::InvalidCertificateRef)
    );
    assert_eq!(cond("a", Programmed), (false, Reason::Invalid));
    let accepted = gw.condition(Accepted).unwrap();
    assert_eq!(
        (accepted.status, accepted.reason),
        (true, Reason::ListenersNotValid)
    );
    assert_eq!(accepted.observed_generation, Some(3));
    // Only listener b is served.
    assert_eq!(config.ports.len(), 1);
    assert_eq!(config.ports[0].routes.virtual_hosts.len(), 1);
    assert_eq!(
        config.ports[0].routes.virtual_hosts[0].hostname.to_string(),
        "b.example.com"
    );
}

#[test]
fn certificate_in_another_namespace_needs_a_grant() {
    let gw = GATEWAY.replace(
        "{name: http, port: 80, protocol: HTTP,",
        "{name: http, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: certs}]},",
    );
    let secret = super::seeds::tls_secret("certs", "cert");
    let (config, status) = compiled(&format!("{gw}---\n{secret}"));
    let listener = status
        .gateway(&NsName::new("default", "gw"))
        .unwrap()
        .listener("http")
        .unwrap();
    let resolved = listener.condition(ResolvedRefs).unwrap();
    assert_eq!(
        (resolved.status, resolved.reason),
        (false, Reason::RefNotPermitted)
    );
    assert!(config.ports.is_empty());

    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: certs}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]\n  to: [{group: '', kind: Secret, name: cert}]\n";
    let (config, status) = compiled(&format!("{gw}---\n{secret}---\n{grant}"));
    let listener = status
        .gateway(&NsName::new("default", "gw"))
        .unwrap()
        .listener("http")
        .unwrap();
    assert!(listener.condition(ResolvedRefs).unwrap().status);
    assert_eq!(config.ports[0].certificates.len(), 1);
}

#[test]
fn gateway_class_of_ferry_is_accepted() {
    let (_, status) = compiled(GATEWAY);
    assert_eq!(status.gateway_classes.len(), 1);
    assert_eq!(status.gateway_classes[0].name, "ferry");
    assert!(status.gateway_classes[0].conditions[0].status);
}

#[test]
fn attached_routes_counts_routes_not_parent_refs() {
    let spec = "  parentRefs: [{name: gw}, {name: gw, sectionName: http}]\n";
    let (_, status) = status_of(&route_spec(spec));
    let gw = status.gateway(&NsName::new("default", "gw")).unwrap();
    assert_eq!(gw.listener("http").unwrap().attached_routes, 1);
    assert_eq!(status.routes[0].parents.len(), 2);
}

#[test]
fn status_serializes_with_spec_spelling() {
    let (_, status) = status_of(&route_spec(
        "  parentRefs: [{name: gw, sectionName: nope}]\n",
    ));
    let json = serde_json::to_value(&status).unwrap();
    let condition = &json["routes"][0]["parents"][0]["conditions"][0];
    assert_eq!(condition["type"], "Accepted");
    assert_eq!(condition["status"], false);
    assert_eq!(condition["reason"], "NoMatchingParent");
    let k8s = parent_status(&status, "default", "r").conditions[0].to_k8s(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
    );
    assert_eq!(
        (
            k8s.status.as_str(),
            k8s.reason.as_str(),
            k8s.observed_generation
        ),
        ("False", "NoMatchingParent", Some(7))
    );
}
