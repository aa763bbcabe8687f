//! Golden fixtures: `golden/<case>.pod.yaml` in, `golden/<case>.patch.json`
//! out (`null` when the pod is skipped). Regenerate with
//! `FERRY_UPDATE_GOLDEN=1 cargo test -p ferry-injector --test golden`.
//! Every patch is also applied to its pod, and applying the injection to
//! the patched pod must be a no-op.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ferry_injector::{InjectConfig, Injection, SidecarMode, inject, inject_manifests};
use k8s_openapi::api::core::v1::Pod;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn update() -> bool {
    std::env::var_os("FERRY_UPDATE_GOLDEN").is_some()
}

/// The config every fixture uses; a case name ending in `classic` uses the
/// classic sidecar, `tracing` sets a tracing endpoint, `control-tls` the
/// control plane's TLS address.
fn config(case: &str) -> InjectConfig {
    let mut config = InjectConfig::new("v0.1.0");
    config.discovery_addr = "ferry-control.ferry-system.svc.cluster.local:8090".to_owned();
    config.trust_domain = "cluster.local".to_owned();
    if case.ends_with("classic") {
        config = config.with_sidecar_mode(SidecarMode::Classic);
    }
    if case.contains("control-tls") {
        config.control_tls_addr = Some("https://ferry-control.ferry-system.svc:8443".to_owned());
    }
    if case.contains("tracing") {
        config.tracing_endpoint = Some("http://collector.tracing:4317".to_owned());
    }
    config
}

/// Compares `actual` with the file, or writes it under FERRY_UPDATE_GOLDEN.
fn check(path: &Path, actual: &str) -> Result<()> {
    if update() {
        std::fs::write(path, actual).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (FERRY_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    })?;
    if expected != actual && !same_documents(path, &expected, actual) {
        bail!(
            "{} differs (FERRY_UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
    Ok(())
}

/// Equal as data: key order may differ if some crate in the build turns on
/// serde_json's `preserve_order`.
fn same_documents(path: &Path, expected: &str, actual: &str) -> bool {
    if path.extension().is_some_and(|e| e == "json") {
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
        return parse(expected).is_some() && parse(expected) == parse(actual);
    }
    let parse = |s: &str| serde_saphyr::from_multiple::<serde_json::Value>(s).ok();
    parse(expected).is_some() && parse(expected) == parse(actual)
}

fn run_case(pod_path: &Path) -> Result<()> {
    let file = pod_path
        .file_name()
        .and_then(|n| n.to_str())
        .context("file name")?;
    let case = file.trim_end_matches(".pod.yaml");
    let yaml = std::fs::read_to_string(pod_path)?;
    let pod: Pod = serde_saphyr::from_str(&yaml).with_context(|| format!("parsing {file}"))?;
    let config = config(case);
    let patch = match inject(&pod, &config).with_context(|| format!("injecting {case}"))? {
        Injection::Patch(patch) => Some(patch),
        Injection::Skip(_) => None,
    };
    let mut actual = serde_json::to_string_pretty(&patch)?;
    actual.push('\n');
    check(&golden_dir().join(format!("{case}.patch.json")), &actual)?;

    if let Some(patch) = patch {
        let mut value = serde_json::to_value(&pod)?;
        json_patch::patch(&mut value, &patch).with_context(|| format!("applying {case}"))?;
        let injected: Pod = serde_json::from_value(value)?;
        let again = inject(&injected, &config)?;
        assert!(
            matches!(again, Injection::Skip(_)),
            "{case}: injecting twice changed the pod"
        );
    }
    Ok(())
}

#[test]
fn pods_in_patches_out() -> Result<()> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    cases.retain(|p| p.to_string_lossy().ends_with(".pod.yaml"));
    cases.sort();
    assert!(cases.len() >= 8, "golden cases missing: {cases:?}");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| run_case(case).err().map(|e| format!("{e:#}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

#[test]
fn manifests_in_manifests_out() -> Result<()> {
    let input = std::fs::read_to_string(golden_dir().join("manifests/workloads.in.yaml"))?;
    let output = inject_manifests(&input, &config("manifests"))?;
    check(&golden_dir().join("manifests/workloads.out.yaml"), &output)?;
    // Injecting the output again changes nothing.
    let again = inject_manifests(&output, &config("manifests"))?;
    assert_eq!(again, output);
    Ok(())
}
