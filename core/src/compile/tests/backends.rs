//! Backend resolution: Service types, EndpointSlice address types, ports,
//! protocols.

use super::*;
use crate::model::{BackendProtocol, Endpoint};

fn backend_of(yaml: &str, name: &str) -> crate::model::Backend {
    let route = format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{{name: {name}, port: 80}}]}}]\n"
    );
    let (config, _) = compiled(&format!("{GATEWAY}---\n{yaml}{route}"));
    let (_, backend) = config
        .backends
        .iter()
        .find(|(id, _)| id.name == name)
        .unwrap_or_else(|| panic!("no backend {name} in {config:#?}"));
    backend.clone()
}

#[test]
fn external_name_services_resolve_by_dns() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\nspec: {type: ExternalName, externalName: api.example.com.}\n";
    let backend = backend_of(yaml, "ext");
    assert_eq!(
        backend.endpoints,
        [Endpoint::Dns {
            host: "api.example.com".to_string(),
            port: 80
        }]
    );
}

#[test]
fn fqdn_endpoint_slices_resolve_by_dns_and_ipv6_slices_by_address() {
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec: {ports: [{name: web, port: 80, appProtocol: kubernetes.io/ws}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-fqdn, namespace: default, labels: {kubernetes.io/service-name: svc}}
addressType: FQDN
ports: [{name: web, port: 8080}]
endpoints: [{addresses: [backend.internal]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-v6, namespace: default, labels: {kubernetes.io/service-name: svc}}
addressType: IPv6
ports: [{name: web, port: 8081}, {name: other, port: 9}]
endpoints:
- addresses: ['fd00::1']
- addresses: ['fd00::2']
  conditions: {ready: false}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-service, namespace: default, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports: [{name: web, port: 80}]
endpoints: [{addresses: [10.9.9.9]}]
";
    let backend = backend_of(yaml, "svc");
    assert_eq!(backend.protocol, BackendProtocol::WebSocket);
    assert_eq!(
        backend.endpoints,
        [
            Endpoint::Addr("[fd00::1]:8081".parse().unwrap()),
            Endpoint::Dns {
                host: "backend.internal".to_string(),
                port: 8080
            },
        ]
    );
}

#[test]
fn a_service_without_endpoints_is_a_backend_with_none() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\nspec: {ports: [{port: 80}]}\n";
    let backend = backend_of(yaml, "empty");
    assert!(backend.endpoints.is_empty());
    assert_eq!(backend.protocol, BackendProtocol::Http1);
}

#[test]
fn only_referenced_backends_are_in_the_config() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: used, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: unused, namespace: default}\nspec: {ports: [{port: 80}]}\n";
    let route = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: other-gateway}]\n  rules: [{backendRefs: [{name: unused, port: 80}]}]\n";
    let (config, _) = compiled(&format!("{GATEWAY}---\n{yaml}{route}"));
    assert!(config.backends.is_empty());
    let (config, _) = compiled(&format!(
        "{GATEWAY}---\n{yaml}{}",
        route
            .replace("other-gateway", "gw")
            .replace("unused", "used")
    ));
    let names: Vec<&str> = config.backends.keys().map(|id| id.name.as_str()).collect();
    assert_eq!(names, ["used"]);
}

#[test]
fn one_selected_gateway_only() {
    let second = GATEWAY
        .replace("name: gw,", "name: gw2,")
        .replace("port: 80", "port: 81");
    let route = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw2}]\n";
    let objects = objects(&format!("{GATEWAY}---\n{second}{route}"));
    let one = crate::compile(
        &objects,
        &GatewaySelector::One(crate::objects::NsName::new("default", "gw")),
    );
    let ports: Vec<u16> = one.ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, [80]);
    assert!(
        one.ports[0]
            .routes
            .virtual_hosts
            .iter()
            .all(|v| v.entries.is_empty())
    );
    let all = crate::compile(&objects, &GatewaySelector::All);
    let ports: Vec<u16> = all.ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, [80, 81]);
    assert_eq!(
        winner(
            &all,
            &Req {
                port: 81,
                ..get("h", "/")
            }
        ),
        "default/r#0"
    );
}
