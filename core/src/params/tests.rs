use super::*;
use crate::compile_with_status;
use crate::objects::load_yaml;
use crate::status::ConditionType;

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ferry}
spec:
  controllerName: ferry.dev/gateway-controller
  parametersRef: {group: "", kind: ConfigMap, name: class-params, namespace: ferry-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: class-params, namespace: ferry-system}
data:
  serviceType: NodePort
  replicas: "2"
  serviceAnnotations: |
    lb.example.com/scheme: internal
    lb.example.com/class: a
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-params, namespace: shop}
data:
  replicas: "3"
  serviceAnnotations: '{"lb.example.com/class": "b"}'
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: ferry
  infrastructure:
    parametersRef: {group: "", kind: ConfigMap, name: web-params}
  listeners: [{name: http, protocol: HTTP, port: 80}]
"#;

fn load(yaml: &str) -> Objects {
    Objects::from_objects(load_yaml(yaml, "test.yaml").unwrap().objects).unwrap()
}

fn web(objects: &Objects) -> Result<InfraParams, Refusal> {
    let id = NsName::new("shop", "web");
    effective(objects, &id, objects.gateway(&id).unwrap())
}

/// (GatewayClass Accepted, Gateway Accepted) as (status, reason).
fn accepted(objects: &Objects) -> ((bool, Reason), (bool, Reason)) {
    let (_, status) = compile_with_status(objects, &crate::GatewaySelector::All);
    let class = &status.gateway_classes[0].conditions[0];
    assert_eq!(class.type_, ConditionType::Accepted);
    let gateway = status
        .gateway(&NsName::new("shop", "web"))
        .unwrap()
        .condition(ConditionType::Accepted)
        .unwrap();
    (
        (class.status, class.reason),
        (gateway.status, gateway.reason),
    )
}

#[test]
fn a_gateways_parameters_override_its_classs() {
    let objects = load(BASE);
    let params = web(&objects).unwrap();
    assert_eq!(params.service_type, Some(ServiceType::NodePort));
    assert_eq!(params.replicas, Some(3));
    assert_eq!(
        params.service_annotations,
        BTreeMap::from([
            ("lb.example.com/class".to_string(), "b".to_string()),
            ("lb.example.com/scheme".to_string(), "internal".to_string()),
        ])
    );
    assert_eq!(
        accepted(&objects),
        ((true, Reason::Accepted), (true, Reason::Accepted))
    );
    assert_eq!(
        referenced_config_maps(&objects),
        BTreeSet::from([
            NsName::new("ferry-system", "class-params"),
            NsName::new("shop", "web-params"),
        ])
    );
}

#[test]
fn invalid_parameters_reject_the_class_or_the_gateway() {
    let cases = [
        ("replicas: \"3\"", "replicas: \"-1\"", "replicas \"-1\""),
        (
            "replicas: \"3\"",
            "serviceType: Ingress",
            "serviceType \"Ingress\"",
        ),
        (
            "replicas: \"3\"\n  serviceAnnotations: '{\"lb.example.com/class\": \"b\"}'",
            "serviceAnnotations: '[1, 2]'",
            "serviceAnnotations",
        ),
        (
            "replicas: \"3\"",
            "replica: \"3\"",
            "unknown key \"replica\"",
        ),
        (
            "name: web-params}",
            "name: missing}",
            "ConfigMap shop/missing, which does not exist",
        ),
        (
            "kind: ConfigMap, name: web-params",
            "kind: Secret, name: web-params",
            "/Secret web-params is not supported",
        ),
    ];
    for (from, to, message) in cases {
        let objects = load(&BASE.replace(from, to));
        let refusal = web(&objects).unwrap_err();
        assert_eq!(refusal.reason, Reason::InvalidParameters, "{to}");
        assert!(
            refusal.message.contains(message),
            "{to}: {}",
            refusal.message
        );
        assert_eq!(
            accepted(&objects),
            ((true, Reason::Accepted), (false, Reason::InvalidParameters)),
            "{to}"
        );
    }

    // The class's parameters are invalid: both are rejected.
    let objects = load(&BASE.replace("serviceType: NodePort", "serviceType: nodeport"));
    assert_eq!(
        accepted(&objects),
        (
            (false, Reason::InvalidParameters),
            (false, Reason::InvalidParameters)
        )
    );
    assert!(
        web(&objects)
            .unwrap_err()
            .message
            .starts_with("GatewayClass ferry: ")
    );
    // A class reference to a ConfigMap must name its namespace.
    let objects = load(&BASE.replace(", namespace: ferry-system}", "}"));
    assert_eq!(accepted(&objects).0, (false, Reason::InvalidParameters));
}
