//! Offline injection of YAML manifests (`kubectl gateway inject -f FILE`):
//! Pods, pod-template workloads and Lists of them, other objects untouched.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value};

use crate::InjectError;
use crate::config::InjectConfig;
use crate::inject::{Injection, inject};

/// Injects every Pod and pod template in a multi-document YAML stream and
/// returns the stream as YAML. Objects of other kinds, pods that must be
/// skipped and empty documents pass through (empty ones are dropped).
/// Unlike the webhook, there is no namespace label to consult: every pod not
/// opted out is injected.
pub fn inject_manifests(yaml: &str, config: &InjectConfig) -> Result<String, InjectError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|source| InjectError::ParseManifest {
            source: Box::new(source),
        })?;
    let mut out = Vec::with_capacity(docs.len());
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        inject_object(&mut doc, config)?;
        out.push(doc);
    }
    serde_saphyr::to_string_multiple(&out).map_err(|source| InjectError::WriteManifest {
        source: Box::new(source),
    })
}

/// Injects one object in place, recursing into `List`s.
pub fn inject_object(object: &mut Value, config: &InjectConfig) -> Result<(), InjectError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let template = match kind.as_str() {
        "Pod" => {
            return inject_pod(object, config, &kind, &name);
        }
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => "/spec/template",
        "CronJob" => "/spec/jobTemplate/spec/template",
        kind if kind == "List" || kind.ends_with("List") => {
            if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    inject_object(item, config)?;
                }
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    match object.pointer_mut(template) {
        Some(template) => inject_pod(template, config, &kind, &name),
        None => Ok(()),
    }
}

/// Injects a Pod or a pod template (both are `{metadata, spec}`).
fn inject_pod(
    pod: &mut Value,
    config: &InjectConfig,
    kind: &str,
    name: &str,
) -> Result<(), InjectError> {
    let Some(object) = pod.as_object_mut() else {
        return Ok(());
    };
    object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let typed: Pod = serde_json::from_value(Value::Object(object.clone())).map_err(|source| {
        InjectError::DecodeTemplate {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        }
    })?;
    if let Injection::Patch(patch) = inject(&typed, config)? {
        json_patch::patch(pod, &patch).map_err(|source| InjectError::ApplyPatch {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_job_templates_are_injected_and_bad_yaml_is_an_error() {
        let yaml = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: job, image: job:1}]\n";
        let out = inject_manifests(yaml, &InjectConfig::new("v1")).unwrap();
        let doc: Value = serde_saphyr::from_str(&out).unwrap();
        let template = doc.pointer("/spec/jobTemplate/spec/template").unwrap();
        assert_eq!(
            template.pointer("/metadata/annotations/ferry.dev~1injected"),
            Some(&Value::from("v1"))
        );
        assert_eq!(
            template.pointer("/spec/initContainers/1/name"),
            Some(&Value::from("ferry-proxy"))
        );

        let err = inject_manifests("kind: [unclosed", &InjectConfig::new("v1")).unwrap_err();
        assert!(matches!(err, InjectError::ParseManifest { .. }), "{err}");
        let err = inject_manifests(
            "kind: Pod\nspec: {containers: 3}\n",
            &InjectConfig::new("v1"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Pod"), "{err}");
    }
}
