//! Only the Secrets that Ferry Gateways reference are held.

use super::*;

const SECRET: Resource = Resource::Core(Kind::Secret);

const GATEWAY: &str = r#"
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
    - {name: https, protocol: HTTPS, port: 443, hostname: a.example.com, tls: {certificateRefs: [{name: used}]}}
"#;

const EXTRA_LISTENERS: &str = r#"
    - {name: more, protocol: HTTPS, port: 443, hostname: b.example.com, tls: {certificateRefs: [{name: unused}]}}
    - {name: shared, protocol: HTTPS, port: 443, hostname: c.example.com, tls: {certificateRefs: [{name: shared, namespace: certs}]}}
"#;

fn secret(namespace: &str, name: &str) -> Item {
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"\n  tls.key: \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\"\n"
    );
    items(&yaml).remove(0)
}

fn fetched(namespace: &str, name: &str) -> Change {
    Change::Fetched(
        SECRET,
        NsName::new(namespace, name),
        Some(secret(namespace, name)),
    )
}

fn watched(index: &ClusterIndex) -> Vec<String> {
    index
        .watched()
        .keys()
        .map(|(kind, id)| format!("{kind} {}/{}", id.namespace, id.name))
        .collect()
}

fn holds(index: &ClusterIndex, name: &str) -> bool {
    index.objects().secret(&NsName::new("shop", name)).is_some()
}

fn stored(index: &ClusterIndex) -> usize {
    index.counts()[&SECRET]
}

#[test]
fn only_referenced_secrets_are_watched_and_stored() {
    let mut index = super::index(GATEWAY);
    assert_eq!(watched(&index), ["Secret shop/used"]);
    assert!(
        !index.is_synced(&[]),
        "not in sync before the referenced Secret is fetched"
    );
    index.apply(Change::Apply(secret("shop", "unused")));
    index.apply(fetched("shop", "used"));
    assert!(index.is_synced(&[]));
    assert_eq!(stored(&index), 1);
    assert!(!holds(&index, "unused"));
    let config = index.gateway_config(&NsName::new("shop", "web")).unwrap();
    assert_eq!(config.ports[0].certificates.len(), 1);

    // A listener referencing `unused`, and one across namespaces without a
    // ReferenceGrant: only the first becomes referenced, and is fetched.
    index.apply(Change::Apply(
        items(&(GATEWAY.to_string() + EXTRA_LISTENERS)).remove(1),
    ));
    assert_eq!(watched(&index), ["Secret shop/unused", "Secret shop/used"]);
    assert!(!index.is_synced(&[]));
    index.apply(fetched("shop", "unused"));
    assert!(index.is_synced(&[]));
    assert_eq!(stored(&index), 2);
    let first = index.watched()[&(Kind::Secret, NsName::new("shop", "unused"))];

    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: gw, namespace: certs}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: shop}]\n  to: [{group: '', kind: Secret}]\n";
    index.apply(Change::Apply(items(grant).remove(0)));
    assert_eq!(
        watched(&index),
        [
            "Secret certs/shared",
            "Secret shop/unused",
            "Secret shop/used"
        ]
    );
    index.apply(Change::Fetched(
        SECRET,
        NsName::new("certs", "shared"),
        None,
    ));
    assert!(index.is_synced(&[]), "an absent Secret counts as fetched");

    // References dropped: the Secrets leave memory at once.
    index.apply(Change::Apply(items(GATEWAY).remove(1)));
    assert_eq!(watched(&index), ["Secret shop/used"]);
    assert_eq!(stored(&index), 1);
    assert!(!holds(&index, "unused"));
    // A late event of the stopped watch is not stored.
    index.apply(fetched("shop", "unused"));
    assert_eq!(stored(&index), 1);

    // Referenced again: a new generation, so the Secret is listed anew.
    index.apply(Change::Apply(
        items(&(GATEWAY.to_string() + EXTRA_LISTENERS)).remove(1),
    ));
    assert_ne!(
        index.watched()[&(Kind::Secret, NsName::new("shop", "unused"))],
        first
    );
    assert!(!index.is_synced(&[]));

    // A Gateway of another class references nothing.
    let mut other =
        super::index(&GATEWAY.replace("ferry.dev/gateway-controller", "example.com/other"));
    other.apply(Change::Apply(secret("shop", "used")));
    assert!(watched(&other).is_empty());
    assert_eq!(stored(&other), 0);
}

#[test]
fn a_relist_of_secrets_fetches_every_referenced_one() {
    // The file source lists every Secret at once.
    let mut index = super::index(GATEWAY);
    index.apply(Change::Relist(
        SECRET,
        vec![secret("shop", "used"), secret("shop", "unused")],
    ));
    assert!(index.is_synced(&[SECRET]));
    assert_eq!(stored(&index), 1);
}
