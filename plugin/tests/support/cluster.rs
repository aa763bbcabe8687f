//! Cluster test support: apply the fixture world to a real apiserver
//! (status through the status subresource, as the control plane will),
//! and run the real binary against it.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The clock of every cluster golden file (conditions were written at
/// 2026-01-01/02; objects created now have AGE 0s against it).
pub(crate) const NOW: &str = "2026-01-10T00:00:00Z";

/// What a run of the binary gave.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `kubectl-gateway --kubeconfig KC args…` with a fixed clock.
pub(crate) fn run(kubeconfig: &Path, args: &[&str]) -> Result<Output> {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-gateway"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("FERRY_NOW", NOW)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .context("failed to run kubectl-gateway")?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Endpoints" => "endpoints".to_owned(),
        other if other.ends_with('s') => format!("{}es", other.to_ascii_lowercase()),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

fn api(client: &Client, doc: &Value) -> Result<(Api<DynamicObject>, String)> {
    let api_version = doc["apiVersion"].as_str().context("apiVersion")?;
    let kind = doc["kind"].as_str().context("kind")?;
    let ar = resource(api_version, kind);
    let name = doc["metadata"]["name"].as_str().context("name")?.to_owned();
    let api = match doc["metadata"]["namespace"].as_str() {
        Some(ns) if !matches!(kind, "Namespace" | "GatewayClass") => {
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        _ => Api::all_with(client.clone(), &ar),
    };
    Ok((api, name))
}

/// Creates every document of a YAML stream, in order; writes `status`
/// through the status subresource; objects with `metadata.generation: 2`
/// get a spec change after their status, so the status is stale.
pub(crate) async fn apply(client: &Client, yaml: &str) -> Result<()> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        let status = doc.as_object_mut().and_then(|o| o.remove("status"));
        let stale = doc["metadata"]["generation"] == json!(2);
        if let Some(meta) = doc["metadata"].as_object_mut() {
            meta.remove("generation");
            meta.remove("creationTimestamp");
        }
        if stale {
            doc["spec"]["hostnames"] = json!(["stale.invalid"]);
        }
        let (api, name) = api(client, &doc)?;
        let object: DynamicObject = serde_json::from_value(doc.clone())?;
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            // `default` and `kube-system` come with the server.
            Err(kube::Error::Api(e)) if e.is_already_exists() && doc["kind"] == "Namespace" => {}
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to create {} {name}", doc["kind"]));
            }
        }
        if let Some(status) = status {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .with_context(|| format!("failed to write status of {name}"))?;
        }
        if stale {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "hostnames": null } })),
            )
            .await
            .with_context(|| format!("failed to update {name}"))?;
        }
    }
    Ok(())
}
