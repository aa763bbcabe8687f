//! What a Ferry Gateway deploys, as values: a Deployment running
//! `ferry-proxy --mode gateway` and a Service in front of it, both owned by
//! the Gateway so they are garbage-collected with it.
//!
//! Settings come from the parameters of the Gateway and its class
//! ([`ferry_core::params`]: a ConfigMap with `serviceType`, `replicas` and
//! `serviceAnnotations`), then from the Gateway's `spec.infrastructure`:
//! its labels and annotations are copied onto both objects (as the spec
//! asks), and three Ferry annotations tune them where the parameters do
//! not: `ferry.dev/service-type` (default `LoadBalancer`),
//! `ferry.dev/replicas` (default 1) and `ferry.dev/proxy-image`.

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::objects::api::Gateway;
use ferry_core::objects::{GATEWAY_GROUP, NsName};
use ferry_core::params::InfraParams;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

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

/// Install-wide settings of deployed gateways.
#[derive(Clone, Debug)]
pub struct DeploySettings {
    /// The ferry-proxy image.
    pub proxy_image: String,
    /// The discovery address proxies connect to (`host:port`).
    pub discovery: String,
}

/// Everything deployed for one Gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The Gateway.
    pub gateway: NsName,
    /// The proxies.
    pub deployment: Deployment,
    /// Their Service.
    pub service: Service,
}

/// The name of the Deployment and Service of Gateway `name`.
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
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": {"ferry.dev/inject": "disabled"}},
                "spec": {
                    "containers": [{
                        "name": "ferry-proxy",
                        "image": image,
                        "args": [
                            "--mode", "gateway",
                            "--discovery", settings.discovery,
                            "--gateway", format!("{}/{}", id.namespace, id.name),
                            "--admin", format!("0.0.0.0:{ADMIN_PORT}"),
                        ],
                        "ports": container_ports,
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": ADMIN_PORT}},
                        "livenessProbe": {"httpGet": {"path": "/live", "port": ADMIN_PORT}},
                    }],
                },
            },
        },
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
        deployment: serde_json::from_value(deployment).ok()?,
        service: serde_json::from_value(service).ok()?,
    })
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
