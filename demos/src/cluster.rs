//! The cluster form of a demo: its `manifests/` as they are, plus a
//! Deployment and a selector-based Service for every standalone Service, so
//! the same scenario runs on a real cluster with echo pods instead of
//! loopback servers. Generated, so the two forms cannot drift apart.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::spec::Demo;

/// Renders the demo for `kubectl apply -f -`, with echo pods of `image`.
pub fn render(demo: &Demo, image: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "# {}: {}", demo.name, demo.spec.title);
    if let Some(tls) = &demo.spec.tls {
        let _ = writeln!(
            out,
            "# First: kubectl -n {} create secret tls {} --cert=CERT --key=KEY  (names: {})",
            tls.namespace,
            tls.secret,
            tls.dns_names.join(", ")
        );
    }
    let mut documents = Vec::new();
    for (name, path) in demo.config_files()? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        if name.starts_with("manifests-") {
            out.push_str("---\n");
            out.push_str(&text);
        }
        if name.starts_with("standalone-") {
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .with_context(|| format!("failed to parse {}", path.display()))?;
            documents.extend(docs);
        }
    }
    for service in documents.iter().filter(|d| d["kind"] == "Service") {
        for workload in workloads(service, &documents, image) {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(&workload)?);
        }
    }
    Ok(out)
}

/// A Deployment of echo pods and the Service selecting them.
fn workloads(service: &Value, documents: &[Value], image: &str) -> [Value; 2] {
    let name = service["metadata"]["name"].as_str().unwrap_or("backend");
    let namespace = service["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let slices: Vec<&Value> = documents
        .iter()
        .filter(|d| {
            d["kind"] == "EndpointSlice"
                && d["metadata"]["namespace"] == namespace
                && d["metadata"]["labels"]["kubernetes.io/service-name"] == name
        })
        .collect();
    let replicas: usize = slices
        .iter()
        .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
        .sum();
    let container_port = slices
        .iter()
        .find_map(|s| s["ports"][0]["port"].as_u64())
        .unwrap_or(8080);
    let ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"name": p["name"].as_str().unwrap_or("http"), "port": p["port"], "targetPort": "http"}))
        .collect();
    let labels = json!({"app": name});
    [
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas.max(1),
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "echo",
                        "image": image,
                        // ferry-echo answers with the pod's name and namespace.
                        "args": ["--listen", format!("0.0.0.0:{container_port}")],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        ],
                        "ports": [{"name": "http", "containerPort": container_port}],
                    }]},
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": labels, "ports": ports},
        }),
    ]
}
