use ferry_core::compile::{GatewaySelector, compile};
use ferry_core::objects::{Objects, load_yaml};

use super::*;

const OBJECTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec: {controllerName: ferry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: ferry
  listeners:
    - {name: http, protocol: HTTP, port: 8080}
    - {name: other, protocol: HTTP, port: 8081, hostname: "*.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{name: web}]
  hostnames: [reviews.example.com]
  rules:
    - name: canary
      matches:
        - path: {type: RegularExpression, value: "/api/v[0-9]+/.*"}
          method: POST
          headers: [{type: RegularExpression, name: x-user, value: "a.*"}]
          queryParams: [{name: debug, value: "1"}]
        - path: {type: Exact, value: /exact}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-a, value: "1"}]
            add: [{name: x-b, value: "2"}]
            remove: [x-c]
        - type: RequestMirror
          requestMirror: {backendRef: {name: mirror, port: 80}, percent: 25}
      backendRefs:
        - name: reviews-v1
          port: 9080
          weight: 90
          filters:
            - type: ResponseHeaderModifier
              responseHeaderModifier: {set: [{name: x-v, value: v1}]}
        - {name: reviews-v2, port: 9080, weight: 10}
        - {name: missing, port: 9080, weight: 1}
      timeouts: {request: 10s, backendRequest: 500ms}
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    - matches: [{path: {type: PathPrefix, value: /rw}}]
      filters:
        - type: URLRewrite
          urlRewrite: {hostname: internal, path: {type: ReplaceFullPath, replaceFullPath: /x}}
      backendRefs: [{name: reviews-v1, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: shop}
spec: {ports: [{port: 9080, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec: {ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: mirror, namespace: shop}
spec: {type: ExternalName, externalName: mirror.example.net, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-v1-a, namespace: shop, labels: {kubernetes.io/service-name: reviews-v1}}
addressType: IPv4
ports: [{port: 9080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}, {addresses: [10.0.0.2]}]
"#;

fn compiled() -> ferry_core::model::ProxyConfig {
    let loaded = load_yaml(OBJECTS, "objects.yaml").unwrap();
    let objects = Objects::from_objects(loaded.objects).unwrap();
    compile(&objects, &GatewaySelector::All)
}

#[test]
fn model_survives_the_wire() {
    let model = compiled();
    let wire = pb::ProxyConfig::from(&model);
    assert_eq!(wire.ports.len(), 2, "{wire:#?}");
    assert!(
        wire.backends.iter().any(|b| !b.endpoints.is_empty()),
        "{wire:#?}"
    );
    let back = ProxyConfig::try_from(wire.clone()).unwrap();
    assert_eq!(pb::ProxyConfig::from(&back), wire);
    assert_eq!(format!("{back:?}"), format!("{model:?}"));
}

#[test]
fn prost_bytes_round_trip() {
    use prost::Message as _;
    let wire = pb::ProxyConfig::from(&compiled());
    let bytes = wire.encode_to_vec();
    assert_eq!(pb::ProxyConfig::decode(bytes.as_slice()).unwrap(), wire);
}

#[test]
fn rule_actions_are_shared_by_their_matches() {
    let wire = pb::ProxyConfig::from(&compiled());
    let vhost = wire.ports[0]
        .virtual_hosts
        .iter()
        .find(|v| v.entries.len() > 1)
        .expect("a virtual host with several entries");
    assert!(vhost.actions.len() < vhost.entries.len(), "{vhost:#?}");
    let back = ProxyConfig::try_from(wire.clone()).unwrap();
    let entries = &back.ports[0].routes.virtual_hosts[0].entries;
    let canary: Vec<_> = entries
        .iter()
        .filter(|e| e.action.rule.section.as_deref() == Some("canary"))
        .collect();
    assert_eq!(canary.len(), 2);
    assert!(Arc::ptr_eq(&canary[0].action, &canary[1].action));
}

#[test]
fn invalid_messages_name_the_field() {
    let mut wire = pb::ProxyConfig::from(&compiled());
    let entry = wire.ports[0].virtual_hosts[0].entries[0].clone();
    let mut bad = entry.clone();
    bad.matcher = Some(pb::RequestMatcher {
        path: Some(pb::PathMatch {
            kind: Some(pb::path_match::Kind::Regex("(".into())),
        }),
        ..Default::default()
    });
    wire.ports[0].virtual_hosts[0].entries.push(bad);
    let err = ProxyConfig::try_from(wire.clone()).unwrap_err();
    assert!(err.to_string().contains("regex"), "{err}");

    wire.ports[0].virtual_hosts[0].entries = vec![pb::RouteEntry {
        action: 99,
        ..entry
    }];
    let err = ProxyConfig::try_from(wire).unwrap_err();
    assert!(err.to_string().contains("action"), "{err}");
}

#[test]
fn expected_identities_follow_each_backends_endpoints() {
    let endpoint = |addr: &str, identity: Option<&str>| pb::Endpoint {
        address: Some(pb::endpoint::Address::SocketAddr(addr.into())),
        identity: identity.map(Into::into),
    };
    let backend = |name: &str, endpoints| pb::Backend {
        id: Some(pb::BackendId {
            namespace: "shop".into(),
            name: name.into(),
            port: 9080,
        }),
        endpoints,
        protocol: 0,
    };
    let reviews = "spiffe://cluster.local/ns/shop/sa/reviews";
    let backends = [
        backend(
            "reviews",
            vec![
                endpoint("10.1.0.8:8080", Some(reviews)),
                endpoint("10.1.0.9:8080", None),
            ],
        ),
        backend("legacy", vec![endpoint("10.1.0.10:80", None)]),
    ];
    let id = |name: &str| BackendId {
        namespace: "shop".into(),
        name: name.into(),
        port: 9080,
    };
    assert_eq!(
        expected_identities(&backends).unwrap(),
        ExpectedIdentities::from([
            (id("reviews"), vec![Some(reviews.to_string()), None]),
            (id("legacy"), vec![None]),
        ])
    );
    let mut unnamed = backends[0].clone();
    unnamed.id = None;
    let err = expected_identities(&[unnamed]).unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
}
