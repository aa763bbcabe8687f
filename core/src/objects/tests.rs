use super::*;

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/gateway-api/conformance"
);

fn conformance(path: &str) -> String {
    std::fs::read_to_string(format!("{CONFORMANCE}/{path}"))
        .expect("conformance manifests are in /work/shared")
}

#[test]
fn reports_schema_errors_at_their_line_and_column() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  rules:
  - matches:
    - path:
        type: Prefix
        value: /
";
    let err = load_yaml(text, "routes.yaml").unwrap_err();
    let LoadError::Invalid {
        at,
        kind,
        name,
        message,
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!((at.line, at.column), (9, Some(15)), "{err}");
    assert_eq!(*kind, Kind::HttpRoute);
    assert_eq!(name, "r");
    assert!(message.contains("PathPrefix"), "{message}");
    assert!(
        err.to_string()
            .starts_with("routes.yaml:9:15: failed to read HTTPRoute r"),
        "{err}"
    );
}

#[test]
fn error_lines_count_from_the_start_of_the_file() {
    let text = "\
---
apiVersion: v1
kind: Service
metadata:
  name: s
spec:
  ports:
  - port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - namex: gw
";
    let err = load_yaml(text, "f.yaml").unwrap_err();
    assert!(err.to_string().starts_with("f.yaml:16:5:"), "{err}");
    assert!(err.to_string().contains("missing field `name`"), "{err}");
}

#[test]
fn reports_syntax_errors() {
    let err = load_yaml("apiVersion: v1\nkind: Service\nspec: [\n", "bad.yaml").unwrap_err();
    assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn requires_api_version_and_kind() {
    let err = load_yaml("metadata:\n  name: x\n", "f.yaml").unwrap_err();
    assert!(matches!(err, LoadError::MissingTypeMeta { .. }), "{err}");
}

#[test]
fn rejects_v1alpha1_and_names_the_current_version() {
    let text = "\
apiVersion: networking.x-k8s.io/v1alpha1
kind: HTTPRoute
metadata:
  name: old-group
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: HTTPRoute
metadata:
  name: whoami
spec:
  rules:
  - forwardTo:
    - serviceName: whoami
";
    // The pre-graduation group is not a Gateway API group at all: ignored.
    let err = load_yaml(text, "seed.yaml").unwrap_err();
    let LoadError::UnsupportedVersion { at, current, .. } = &err else {
        panic!("unexpected {err}");
    };
    assert_eq!(at.line, 6);
    assert_eq!(*current, "gateway.networking.k8s.io/v1");
    assert!(
        err.to_string().contains("`forwardTo` became `backendRefs`"),
        "{err}"
    );
}

#[test]
fn accepts_v1beta1_reference_grants() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: g
  namespace: backends
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: routes
  to:
  - group: ''
    kind: Service
";
    let loaded = load_yaml(text, "f.yaml").unwrap();
    assert_eq!(loaded.objects.len(), 1);
    assert_eq!(loaded.objects[0].kind(), Kind::ReferenceGrant);
}

#[test]
fn ignores_other_kinds_explicitly() {
    let text = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: t
";
    let loaded = load_yaml(text, "f.yaml").unwrap();
    assert!(loaded.objects.is_empty());
    let ignored: Vec<String> = loaded.ignored.iter().map(ToString::to_string).collect();
    assert_eq!(
        ignored,
        [
            "f.yaml:1: ignored apps/v1 Deployment web (Ferry does not route with this kind)",
            "f.yaml:6: ignored example.com/v1 Widget w (Ferry does not know this kind)",
            "f.yaml:11: ignored gateway.networking.k8s.io/v1alpha2 TCPRoute t (Ferry does not serve this Gateway API kind yet)",
        ]
    );
}

#[test]
fn loads_the_upstream_conformance_base() {
    let loaded = load_yaml(&conformance("base/manifests.yaml"), "base/manifests.yaml").unwrap();
    let objects = Objects::from_objects(loaded.objects).unwrap();
    let counts = objects.counts();
    assert!(counts[&Kind::Gateway] >= 4, "{counts:?}");
    assert!(counts[&Kind::Service] >= 5, "{counts:?}");
    assert!(counts[&Kind::Namespace] >= 3, "{counts:?}");
    assert!(loaded.ignored.iter().any(|i| i.kind == "Deployment"));
}

#[test]
fn loads_every_upstream_httproute_conformance_test() {
    let dir = format!("{CONFORMANCE}/tests");
    let mut routes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("httproute-") && !name.starts_with("gateway-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded = load_yaml(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        routes += loaded
            .objects
            .iter()
            .filter(|o| o.kind() == Kind::HttpRoute)
            .count();
    }
    assert!(routes > 50, "{routes}");
}

#[test]
fn apply_defaults_the_namespace_and_delete_removes() {
    let text = "\
apiVersion: v1
kind: Service
metadata:
  name: s
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s-abc
  labels:
    kubernetes.io/service-name: s
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
";
    let mut objects = Objects::from_objects(load_yaml(text, "f.yaml").unwrap().objects).unwrap();
    let id = NsName::new("default", "s");
    let service = objects.service(&id).expect("stored in default");
    assert_eq!(service.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(objects.endpoint_slices_of(&id).count(), 1);
    assert_eq!(
        objects
            .endpoint_slices_of(&NsName::new("default", "t"))
            .count(),
        0
    );
    assert!(objects.delete(Kind::Service, "default", "s"));
    assert!(!objects.delete(Kind::Service, "default", "s"));
    assert!(objects.service(&id).is_none());
}

#[test]
fn apply_rejects_objects_without_name() {
    let loaded = load_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "f.yaml").unwrap();
    let err = Objects::from_objects(loaded.objects).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to apply Namespace: metadata.name is missing"
    );
}

#[test]
fn reads_kubectl_lists_item_by_item() {
    let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: shop}
  spec: {ports: [{port: 80}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: r, namespace: shop}
  spec: {parentRefs: [{name: gw}]}
";
    let loaded = load_yaml(text, "list.yaml").unwrap();
    let kinds: Vec<Kind> = loaded.objects.iter().map(Object::kind).collect();
    assert_eq!(kinds, [Kind::Service, Kind::HttpRoute]);
    assert_eq!(loaded.ignored.len(), 1);

    let bad = text.replace("parentRefs: [{name: gw}]", "parentRefs: [{namex: gw}]");
    let err = load_yaml(&bad, "list.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("list.yaml:1: failed to read HTTPRoute r: items[2]: missing field `name`"),
        "{err}"
    );
    assert_eq!(err.location().line, 1);
}

#[test]
fn endpoint_slices_follow_their_service_label_across_updates() {
    let slice = |service: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s-1\n  namespace: ns\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nendpoints: []\n"
        )
    };
    let mut objects = Objects::new();
    let a = NsName::new("ns", "a");
    let b = NsName::new("ns", "b");
    for object in load_yaml(&slice("a"), "f.yaml").unwrap().objects {
        objects.apply(object).unwrap();
    }
    assert_eq!(objects.endpoint_slices_of(&a).count(), 1);
    for object in load_yaml(&slice("b"), "f.yaml").unwrap().objects {
        objects.apply(object).unwrap();
    }
    assert_eq!(objects.endpoint_slices_of(&a).count(), 0);
    assert_eq!(objects.endpoint_slices_of(&b).count(), 1);
    assert!(objects.delete(Kind::EndpointSlice, "ns", "s-1"));
    assert_eq!(objects.endpoint_slices_of(&b).count(), 0);
}
