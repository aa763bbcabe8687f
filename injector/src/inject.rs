//! `(Pod, InjectConfig) -> JSON patch`: the decision whether to inject, and
//! the RFC 6902 operations that add Ferry to a pod.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::{Value, json};

use crate::InjectError;
use crate::annotations::{self, PodSettings};
use crate::config::{INIT_CONTAINER, InjectConfig, PROXY_CONTAINER, SidecarMode};
use crate::{containers, probes};

/// What the injector decided for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// Apply this patch to the pod.
    Patch(json_patch::Patch),
    /// Leave the pod as it is.
    Skip(SkipReason),
}

/// Why a pod is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// It already has the `ferry.dev/injected` annotation or a Ferry container.
    AlreadyInjected,
    /// It uses the node's network namespace, which Ferry must not rewrite.
    HostNetwork,
    /// It is annotated `ferry.dev/inject: disabled`.
    OptedOut,
    /// It is one of Ferry's own pods (`app.kubernetes.io/part-of: ferry`).
    FerryComponent,
}

// SkipReason

impl SkipReason {
    /// A stable name, used as a metric label and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyInjected => "already_injected",
            Self::HostNetwork => "host_network",
            Self::OptedOut => "opted_out",
            Self::FerryComponent => "ferry_component",
        }
    }
}

/// Decides whether `pod` gets Ferry and, if so, returns the patch that adds
/// it. Fails only on invalid `ferry.dev/` annotations.
pub fn inject(pod: &Pod, config: &InjectConfig) -> Result<Injection, InjectError> {
    if let Some(reason) = skip_reason(pod) {
        return Ok(Injection::Skip(reason));
    }
    let empty = Default::default();
    let pod_annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let settings = PodSettings::from_annotations(pod_annotations, config)?;
    let no_spec = Default::default();
    let spec: &PodSpec = pod.spec.as_ref().unwrap_or(&no_spec);
    let mut ops = Vec::new();

    // Probe rewrites address containers by their original index, so they go
    // before Ferry's containers are inserted at the front of the lists.
    let (rewrites, originals) = probes::rewrite(spec, &settings.skip_inbound);
    for rewrite in &rewrites {
        let index = rewrite.container.to_string();
        let path = pointer(&["spec", rewrite.list, &index, rewrite.kind.field()]);
        let value = to_value(&rewrite.probe, "probe")?;
        ops.push(PatchOperation::Replace(ReplaceOperation { path, value }));
    }
    let app_probes =
        match originals.is_empty() {
            true => None,
            false => Some(serde_json::to_string(&originals).map_err(|source| {
                InjectError::Serialize {
                    what: "app probes",
                    source,
                }
            })?),
        };

    let init = to_value(
        &containers::init_container(config, &settings),
        "init container",
    )?;
    let proxy = to_value(
        &containers::proxy_container(config, &settings, app_probes),
        "proxy container",
    )?;
    let mut first_inits = vec![init];
    if config.sidecar_mode == SidecarMode::Native {
        first_inits.push(proxy.clone());
    }
    if spec.init_containers.as_ref().is_none_or(Vec::is_empty) {
        ops.push(add(&["spec", "initContainers"], Value::Array(first_inits)));
    } else {
        for (index, container) in first_inits.into_iter().enumerate() {
            ops.push(add(
                &["spec", "initContainers", &index.to_string()],
                container,
            ));
        }
    }
    if config.sidecar_mode == SidecarMode::Classic {
        ops.push(add(&["spec", "containers", "0"], proxy));
    }

    let volumes = to_value(&containers::volumes(), "volumes")?;
    match &spec.volumes {
        None => ops.push(add(&["spec", "volumes"], volumes)),
        Some(_) => {
            for volume in volumes.as_array().into_iter().flatten() {
                ops.push(add(&["spec", "volumes", "-"], volume.clone()));
            }
        }
    }

    match &pod.metadata.annotations {
        None => ops.push(add(
            &["metadata", "annotations"],
            json!({ annotations::INJECTED: config.version }),
        )),
        Some(_) => ops.push(add(
            &["metadata", "annotations", annotations::INJECTED],
            json!(config.version),
        )),
    }
    Ok(Injection::Patch(json_patch::Patch(ops)))
}

/// Why `pod` must be left alone, if it must.
pub fn skip_reason(pod: &Pod) -> Option<SkipReason> {
    let meta = &pod.metadata;
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let spec = pod.spec.as_ref();
    let has_ferry_container = spec.is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == PROXY_CONTAINER || c.name == INIT_CONTAINER)
    });
    if annotation(annotations::INJECTED).is_some() || has_ferry_container {
        return Some(SkipReason::AlreadyInjected);
    }
    let part_of = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(annotations::PART_OF_LABEL));
    if part_of.is_some_and(|v| v == "ferry") {
        return Some(SkipReason::FerryComponent);
    }
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return Some(SkipReason::HostNetwork);
    }
    if annotation(annotations::INJECT).is_some_and(|v| v.trim().eq_ignore_ascii_case("disabled")) {
        return Some(SkipReason::OptedOut);
    }
    None
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value,
    })
}

/// A JSON pointer (RFC 6901) from unescaped tokens (`ferry.dev/injected`
/// becomes `ferry.dev~1injected`).
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn to_value<T: serde::Serialize>(value: &T, what: &'static str) -> Result<Value, InjectError> {
    serde_json::to_value(value).map_err(|source| InjectError::Serialize { what, source })
}
