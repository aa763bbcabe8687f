//! The seeds' scenarios, in the current API, compiled and routed.

use super::*;
use crate::model::{Endpoint, PortProtocol};

const WHOAMI: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: traefik-gateway, namespace: kube-system}
spec:
  gatewayClassName: ferry
  listeners:
  - name: web
    port: 8000
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Same}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-app-1, namespace: kube-system}
spec:
  parentRefs: [{name: traefik-gateway}]
  hostnames: [whoami]
  rules:
  - matches: [{path: {type: Exact, value: /foo}}]
    backendRefs: [{name: whoami, port: 80}]
  - matches: [{path: {type: Exact, value: /}}]
    backendRefs:
    - {name: whoami, port: 80, weight: 3}
    - {name: nginx, port: 80, weight: 1}
---
apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: kube-system}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: kube-system}
spec:
  ports: [{port: 80, appProtocol: kubernetes.io/h2c}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: whoami-abc
  namespace: kube-system
  labels: {kubernetes.io/service-name: whoami}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: metrics, port: 9090}]
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.2]
  conditions: {ready: false}
- addresses: [10.0.0.3]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: nginx-abc
  namespace: kube-system
  labels: {kubernetes.io/service-name: nginx}
addressType: IPv4
ports: [{port: 8081}]
endpoints:
- addresses: [10.0.1.1]
";

#[test]
fn traefik_whoami_host_exact_paths_and_3_to_1() {
    let (config, status) = compiled(WHOAMI);
    let req = |target| Req {
        port: 8000,
        ..get("whoami", target)
    };
    assert_eq!(split(&config, &req("/foo")), ["whoami:80*1"]);
    assert_eq!(split(&config, &req("/")), ["whoami:80*3", "nginx:80*1"]);
    assert_eq!(winner(&config, &req("/bar")), "404");
    assert_eq!(winner(&config, &req("/foo/")), "404");
    assert_eq!(
        winner(
            &config,
            &Req {
                port: 8000,
                ..get("other", "/")
            }
        ),
        "404"
    );

    let whoami = &config
        .backends
        .iter()
        .find(|(id, _)| id.name == "whoami")
        .unwrap()
        .1;
    assert_eq!(
        whoami.endpoints,
        [
            Endpoint::Addr("10.0.0.1:8080".parse().unwrap()),
            Endpoint::Addr("10.0.0.3:8080".parse().unwrap()),
        ],
        "ready (or unknown) endpoints only, on the slice port named like the Service port"
    );
    let nginx = &config
        .backends
        .iter()
        .find(|(id, _)| id.name == "nginx")
        .unwrap()
        .1;
    assert_eq!(
        nginx.endpoints,
        [Endpoint::Addr("10.0.1.1:8081".parse().unwrap())]
    );
    assert_eq!(nginx.protocol, crate::model::BackendProtocol::H2c);

    let parent = parent_status(&status, "kube-system", "http-app-1");
    assert_eq!(
        condition(parent, ConditionType::Accepted),
        (true, Reason::Accepted)
    );
    assert_eq!(
        condition(parent, ConditionType::ResolvedRefs),
        (true, Reason::ResolvedRefs)
    );
    let gw = status
        .gateway(&crate::objects::NsName::new(
            "kube-system",
            "traefik-gateway",
        ))
        .unwrap();
    assert_eq!(gw.listener("web").unwrap().attached_routes, 1);
}

const HELLOWORLD: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: sample-gateway, namespace: sample-ingress}
spec:
  gatewayClassName: ferry
  listeners:
  - name: http
    hostname: '*.sample.com'
    port: 8080
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: helloworld, namespace: sample}
spec:
  parentRefs: [{name: sample-gateway, namespace: sample-ingress}]
  hostnames: [helloworld.sample.com]
  rules:
  - matches: [{path: {type: Exact, value: /hello}}]
    backendRefs:
    - {name: helloworld-v1, port: 5000, weight: 90}
    - {name: helloworld-v2, port: 5000, weight: 10}
---
apiVersion: v1
kind: Service
metadata: {name: helloworld-v1, namespace: sample}
spec: {ports: [{port: 5000}]}
---
apiVersion: v1
kind: Service
metadata: {name: helloworld-v2, namespace: sample}
spec: {ports: [{port: 5000}]}
";

#[test]
fn istio_helloworld_wildcard_listener_route_in_another_namespace_90_10() {
    let (config, status) = compiled(HELLOWORLD);
    let req = |host, target| Req {
        port: 8080,
        ..get(host, target)
    };
    assert_eq!(
        split(&config, &req("helloworld.sample.com", "/hello")),
        ["helloworld-v1:5000*90", "helloworld-v2:5000*10"]
    );
    assert_eq!(
        winner(&config, &req("helloworld.sample.com", "/hello/x")),
        "404"
    );
    assert_eq!(winner(&config, &req("other.sample.com", "/hello")), "404");
    assert_eq!(
        winner(&config, &req("helloworld.example.com", "/hello")),
        "404"
    );
    let parent = parent_status(&status, "sample", "helloworld");
    assert_eq!(
        condition(parent, ConditionType::Accepted),
        (true, Reason::Accepted)
    );
}

#[test]
fn istio_helloworld_refused_when_the_listener_only_allows_its_namespace() {
    let yaml = HELLOWORLD.replace("from: All", "from: Same");
    let (config, status) = compiled(&yaml);
    let parent = parent_status(&status, "sample", "helloworld");
    assert_eq!(
        condition(parent, ConditionType::Accepted),
        (false, Reason::NotAllowedByListeners)
    );
    assert_eq!(
        winner(
            &config,
            &Req {
                port: 8080,
                ..get("helloworld.sample.com", "/hello")
            }
        ),
        "404"
    );
}

const BLOG: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: foo, labels: {gateway: external-https-prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: bar, labels: {gateway: external-https-prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: baz}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: prod-web, namespace: infra}
spec:
  gatewayClassName: ferry
  listeners:
  - name: http
    protocol: HTTP
    port: 80
    allowedRoutes:
      kinds: [{kind: HTTPRoute}]
      namespaces:
        from: Selector
        selector: {matchLabels: {gateway: external-https-prod}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foo-route, namespace: foo}
spec:
  parentRefs: [{name: prod-web, namespace: infra}]
  hostnames: [foo.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /login}}]
    backendRefs: [{name: foo-auth, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /home}}]
    backendRefs: [{name: foo-home, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: foo-404, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bar-route, namespace: bar}
spec:
  parentRefs: [{name: prod-web, namespace: infra}]
  hostnames: [bar.example.com]
  rules:
  - backendRefs:
    - {name: bar-v1, port: 8080, weight: 90}
    - {name: bar-v2, port: 8080, weight: 10}
  - matches: [{headers: [{name: env, value: canary}]}]
    backendRefs: [{name: bar-v2, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: baz-route, namespace: baz}
spec:
  parentRefs: [{name: prod-web, namespace: infra}]
  hostnames: [baz.example.com]
  rules:
  - backendRefs: [{name: baz, port: 8080}]
";

fn blog_services() -> String {
    let mut yaml = BLOG.to_string();
    for (ns, name) in [
        ("foo", "foo-auth"),
        ("foo", "foo-home"),
        ("foo", "foo-404"),
        ("bar", "bar-v1"),
        ("bar", "bar-v2"),
        ("baz", "baz"),
    ] {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{port: 8080}}]}}\n"
        ));
    }
    yaml
}

#[test]
fn gateway_api_blog_prefixes_split_and_canary_header() {
    let (config, status) = compiled(&blog_services());
    let foo = |target| split(&config, &get("foo.example.com", target));
    assert_eq!(foo("/login"), ["foo-auth:8080*1"]);
    assert_eq!(foo("/login/sso"), ["foo-auth:8080*1"]);
    assert_eq!(foo("/loginx"), ["foo-404:8080*1"]);
    assert_eq!(foo("/home"), ["foo-home:8080*1"]);
    assert_eq!(foo("/"), ["foo-404:8080*1"]);
    assert_eq!(
        split(&config, &get("bar.example.com", "/anything")),
        ["bar-v1:8080*90", "bar-v2:8080*10"]
    );
    let canary = Req {
        headers: &[("env", "canary")],
        ..get("bar.example.com", "/anything")
    };
    assert_eq!(split(&config, &canary), ["bar-v2:8080*1"]);
    let other = Req {
        headers: &[("ENV", "production")],
        ..get("bar.example.com", "/")
    };
    assert_eq!(split(&config, &other), ["bar-v1:8080*90", "bar-v2:8080*10"]);

    // baz's namespace lacks the label: not allowed by the listener.
    assert_eq!(winner(&config, &get("baz.example.com", "/")), "404");
    let baz = parent_status(&status, "baz", "baz-route");
    assert_eq!(
        condition(baz, ConditionType::Accepted),
        (false, Reason::NotAllowedByListeners)
    );
    assert!(
        baz.conditions[0].message.contains("namespace baz"),
        "{:?}",
        baz.conditions[0]
    );
    let gw = status
        .gateway(&crate::objects::NsName::new("infra", "prod-web"))
        .unwrap();
    assert_eq!(gw.listener("http").unwrap().attached_routes, 2);
}

pub(super) const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
pub(super) const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

pub(super) fn tls_secret(namespace: &str, name: &str) -> String {
    use std::fmt::Write;
    let b64 = |s: &str| base64(s.as_bytes());
    let mut out = String::new();
    write!(
        out,
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(CERT),
        b64(KEY)
    )
    .unwrap();
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) const CONSUL: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: example-gateway, namespace: default}
spec:
  gatewayClassName: ferry
  listeners:
  - name: https
    protocol: HTTPS
    port: 8443
    allowedRoutes: {namespaces: {from: Same}}
    tls:
      certificateRefs: [{name: consul-server-cert}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: example-route-1, namespace: default}
spec:
  parentRefs: [{name: example-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /echo}}]
    backendRefs:
    - {kind: Service, name: echo-1, port: 8080, weight: 50}
    - {kind: Service, name: echo-2, port: 8090, weight: 50}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: example-route-2, namespace: default}
spec:
  parentRefs: [{name: example-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{kind: Service, name: frontend, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-1}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-2}
spec: {ports: [{port: 8090}]}
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec: {ports: [{port: 80}]}
";

#[test]
fn consul_https_listener_terminates_tls_and_routes_across_two_routes() {
    let yaml = format!(
        "{CONSUL}---\n{}",
        tls_secret("default", "consul-server-cert")
    );
    let (config, status) = compiled(&yaml);
    let port = &config.ports[0];
    assert_eq!((port.port, port.protocol), (8443, PortProtocol::Https));
    assert_eq!(port.certificates.len(), 1);
    assert_eq!(port.certificates[0].chain_pem, CERT);
    assert_eq!(port.certificates[0].key_pem, KEY);
    assert_eq!(port.certificates[0].hostname, None);
    let req = |target| Req {
        port: 8443,
        ..get("consul.local", target)
    };
    assert_eq!(
        split(&config, &req("/echo/x")),
        ["echo-1:8080*50", "echo-2:8090*50"]
    );
    assert_eq!(split(&config, &req("/")), ["frontend:80*1"]);
    let gw = status
        .gateway(&crate::objects::NsName::new("default", "example-gateway"))
        .unwrap();
    let listener = gw.listener("https").unwrap();
    assert_eq!(listener.attached_routes, 2);
    assert!(
        listener
            .condition(ConditionType::Programmed)
            .unwrap()
            .status
    );
}

#[test]
fn consul_https_listener_without_its_secret_is_not_served() {
    let (config, status) = compiled(CONSUL);
    assert!(config.ports.is_empty());
    let gw = status
        .gateway(&crate::objects::NsName::new("default", "example-gateway"))
        .unwrap();
    let listener = gw.listener("https").unwrap();
    let resolved = listener.condition(ConditionType::ResolvedRefs).unwrap();
    assert_eq!(
        (resolved.status, resolved.reason),
        (false, Reason::InvalidCertificateRef)
    );
    assert!(
        resolved
            .message
            .contains("default/consul-server-cert does not exist"),
        "{resolved:?}"
    );
    assert!(
        !listener
            .condition(ConditionType::Programmed)
            .unwrap()
            .status
    );
}
