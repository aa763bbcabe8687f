//! What a Ferry Gateway deploys, as values: a ServiceAccount of its own, a
//! Deployment running `ferry-proxy --mode gateway` as that ServiceAccount
//! and a Service in front of it, all owned by the Gateway so they are
//! garbage-collected with it. The ServiceAccount gives each Gateway's
//! proxies a mesh identity of their own
//! (`spiffe://<trust-domain>/ns/<ns>/sa/<gateway>-ferry`) instead of the
//! namespace's `default`, shared with every other workload using it. The
//! proxy never calls the Kubernetes API (it authenticates to ferry-control
//! with a projected token of audience `ferry`), so its pods get no API
//! token (`automountServiceAccountToken: false`).
//!
//! Settings come from the parameters of the Gateway and its class
//! ([`ferry_core::params`]: a ConfigMap with `serviceType`, `replicas` and
//! `serviceAnnotations`), then from the Gateway's `spec.infrastructure`:
//! its labels and annotations are copied onto every object (as the spec
//! asks), and three Ferry annotations tune them where the parameters do
//! not: `ferry.dev/service-type` (default `LoadBalancer`),
//! `ferry.dev/replicas` (default 1) and `ferry.dev/proxy-image`.
//!
//! When the CA runs, the proxy also gets a workload identity, mounted as
//! the injector mounts a sidecar's ([`GatewayIdentity`]), and calls meshed
//! backends over mTLS.

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::objects::api::Gateway;
use ferry_core::objects::{GATEWAY_GROUP, NsName};
use ferry_core::params::InfraParams;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use serde_json::{Value, json};

use crate::ca::anchors::{CONFIG_MAP, CONFIG_MAP_KEY};
use crate::ca::review::AUDIENCE;

/// Annotation choosing the Service type.
pub const SERVICE_TYPE: &str = "ferry.dev/service-type";
/// Annotation choosing the number of proxy replicas.
pub const REPLICAS: &str = "ferry.dev/replicas";
/// Annotation overriding the proxy image.
pub const PROXY_IMAGE: &str = "ferry.dev/proxy-image";
/// Label naming the Gateway on everything deployed for it.
pub const GATEWAY_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Port of the proxy's admin server (readiness probe).
pub const ADMIN_PORT: u16 = 4191;

/// Where the projected ServiceAccount token is mounted.
const IDENTITY_DIR: &str = "/var/run/secrets/ferry/identity";
/// Where the trust anchors are mounted.
const TRUST_DIR: &str = "/var/run/ferry/trust";

/// Install-wide settings of deployed gateways.
#[derive(Clone, Debug)]
pub struct DeploySettings {
    /// The ferry-proxy image.
    pub proxy_image: String,
    /// The discovery address proxies connect to (`host:port`).
    pub discovery: String,
    /// The proxies' workload identity, when the CA runs; `None` deploys
    /// proxies that call every backend plainly.
    pub identity: Option<GatewayIdentity>,
}

/// What a gateway proxy needs to get its certificate and call meshed
/// backends over mTLS.
#[derive(Clone, Debug)]
pub struct GatewayIdentity {
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// ferry-control's TLS address (`https://host:port`), when the install
    /// has one: certificates and discovery are then asked for there,
    /// authenticated, instead of at [`DeploySettings::discovery`].
    pub control_tls: Option<String>,
}

/// Everything deployed for one Gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The Gateway.
    pub gateway: NsName,
    /// The proxies' ServiceAccount (their mesh identity); applied first,
    /// since a pod naming a missing ServiceAccount is refused.
    pub service_account: ServiceAccount,
    /// The proxies.
    pub deployment: Deployment,
    /// Their Service.
    pub service: Service,
}

/// The name of the ServiceAccount, Deployment and Service of Gateway
/// `name`.
pub fn object_name(gateway: &str) -> String {
    let mut name = format!("{gateway}-ferry");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// Renders what Gateway `id` deploys with its (valid) parameters; `None`
/// without a UID (not stored by an API server, e.g. standalone mode).
pub fn render(
    id: &NsName,
    gateway: &Gateway,
    params: &InfraParams,
    settings: &DeploySettings,
) -> Option<Rendered> {
    let uid = gateway.metadata.uid.clone()?;
    let infra = gateway.spec.infrastructure.as_ref();
    let annotations: BTreeMap<String, String> = infra
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();
    let mut labels: BTreeMap<String, String> =
        infra.and_then(|i| i.labels.clone()).unwrap_or_default();
    let selector = BTreeMap::from([
        (GATEWAY_LABEL.to_string(), id.name.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "ferry-control".to_string(),
        ),
    ]);
    labels.extend(selector.clone());
    let service_type = match params.service_type {
        Some(t) => t.as_str(),
        None => annotations
            .get(SERVICE_TYPE)
            .filter(|t| matches!(t.as_str(), "LoadBalancer" | "NodePort" | "ClusterIP"))
            .map_or("LoadBalancer", String::as_str),
    };
    let replicas: i32 = params.replicas.unwrap_or_else(|| {
        annotations
            .get(REPLICAS)
            .and_then(|r| r.parse().ok())
            .filter(|r| *r >= 0)
            .unwrap_or(1)
    });
    let image = annotations
        .get(PROXY_IMAGE)
        .unwrap_or(&settings.proxy_image);
    let ports: BTreeSet<i32> = gateway.spec.listeners.iter().map(|l| l.port).collect();
    let name = object_name(&id.name);
    let owner = json!([{
        "apiVersion": format!("{GATEWAY_GROUP}/v1"),
        "kind": "Gateway",
        "name": id.name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let metadata = json!({
        "name": name,
        "namespace": id.namespace,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": owner,
    });
    let container_ports: Vec<_> = ports
        .iter()
        .map(|p| json!({"name": format!("l{p}"), "containerPort": p}))
        .chain([json!({"name": "admin", "containerPort": ADMIN_PORT})])
        .collect();
    let discovery = settings
        .identity
        .as_ref()
        .and_then(|i| i.control_tls.as_ref())
        .unwrap_or(&settings.discovery);
    let mut container = json!({
        "name": "ferry-proxy",
        "image": image,
        "args": [
            "--mode", "gateway",
            "--discovery", discovery,
            "--gateway", format!("{}/{}", id.namespace, id.name),
            "--admin", format!("0.0.0.0:{ADMIN_PORT}"),
        ],
        "ports": container_ports,
        "readinessProbe": {"httpGet": {"path": "/ready", "port": ADMIN_PORT}},
        "livenessProbe": {"httpGet": {"path": "/live", "port": ADMIN_PORT}},
    });
    let mut pod_spec = json!({
        "serviceAccountName": name,
        "automountServiceAccountToken": false,
    });
    if let Some(identity) = &settings.identity {
        with_identity(&mut container, &mut pod_spec, identity);
    }
    pod_spec["containers"] = json!([container]);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": {"ferry.dev/inject": "disabled"}},
                "spec": pod_spec,
            },
        },
    });
    let service_account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
    });
    let service_ports: Vec<_> = ports
        .iter()
        .map(|p| json!({"name": format!("l{p}"), "port": p, "targetPort": p, "protocol": "TCP"}))
        .collect();
    let mut service_metadata = metadata.clone();
    let mut service_annotations = annotations.clone();
    service_annotations.extend(params.service_annotations.clone());
    service_metadata["annotations"] = json!(service_annotations);
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": service_metadata,
        "spec": {"type": service_type, "selector": selector, "ports": service_ports},
    });
    Some(Rendered {
        gateway: id.clone(),
        service_account: serde_json::from_value(service_account).ok()?,
        deployment: serde_json::from_value(deployment).ok()?,
        service: serde_json::from_value(service).ok()?,
    })
}

/// Gives the proxy `container` of `pod_spec` its identity as the injector
/// gives a sidecar its own: a projected ServiceAccount token for audience
/// `ferry`, the trust anchors of ConfigMap `ferry-trust-anchors` (published
/// by the CA in every namespace with a Ferry Gateway) and the variables
/// naming them.
fn with_identity(container: &mut Value, pod_spec: &mut Value, identity: &GatewayIdentity) {
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let value = |name: &str, value: &str| json!({"name": name, "value": value});
    let mut env = vec![
        field("FERRY_POD_NAMESPACE", "metadata.namespace"),
        field("FERRY_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        value("FERRY_TRUST_DOMAIN", &identity.trust_domain),
        value("FERRY_IDENTITY_TOKEN", &format!("{IDENTITY_DIR}/token")),
        value(
            "FERRY_TRUST_ANCHORS",
            &format!("{TRUST_DIR}/{CONFIG_MAP_KEY}"),
        ),
    ];
    if let Some(tls) = &identity.control_tls {
        env.push(value("FERRY_IDENTITY_ADDR", tls));
    }
    container["env"] = json!(env);
    container["volumeMounts"] = json!([
        {"name": "ferry-identity", "mountPath": IDENTITY_DIR, "readOnly": true},
        {"name": "ferry-trust-anchors", "mountPath": TRUST_DIR, "readOnly": true},
    ]);
    pod_spec["volumes"] = json!([
        {"name": "ferry-identity", "projected": {"sources": [{"serviceAccountToken": {
            "audience": AUDIENCE, "expirationSeconds": 3600, "path": "token",
        }}]}},
        {"name": "ferry-trust-anchors", "configMap": {
            "name": CONFIG_MAP,
            "items": [{"key": CONFIG_MAP_KEY, "path": CONFIG_MAP_KEY}],
        }},
    ]);
}

/// `status.addresses` of a Gateway from its Service: load-balancer
/// ingress when there is one, else the cluster IP.
pub fn addresses(service: &Service) -> Vec<serde_json::Value> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| match (&i.ip, &i.hostname) {
            (Some(ip), _) => Some(json!({"type": "IPAddress", "value": ip})),
            (None, Some(host)) => Some(json!({"type": "Hostname", "value": host})),
            (None, None) => None,
        });
    let out: Vec<_> = ingress.collect();
    if !out.is_empty() {
        return out;
    }
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_ref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(|ip| vec![json!({"type": "IPAddress", "value": ip})])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
