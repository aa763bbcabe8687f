//! The binary without a cluster: exit codes, offline check on the demos,
//! inject, version and completion.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-gateway"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("the binary exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(run(&["nope"], None).status.code(), Some(64));
    assert_eq!(run(&["status", "-o", "xml"], None).status.code(), Some(64));
    assert_eq!(run(&["describe", "reviews"], None).status.code(), Some(64));
    assert_eq!(
        run(&["status", "--parent", "reviews"], None).status.code(),
        Some(64)
    );
    assert_eq!(run(&["--help"], None).status.code(), Some(0));
}

#[test]
fn check_demos_offline() {
    let demos = repo().join("demos");
    for entry in std::fs::read_dir(&demos).expect("demos exist") {
        let manifests = entry.expect("entry").path().join("manifests");
        if !manifests.is_dir() {
            continue;
        }
        // A directory, as kubectl's `-f DIR`, and a file.
        let out = run(
            &[
                "check",
                "-f",
                &manifests.display().to_string(),
                "-f",
                &demos.join("gatewayclass.yaml").display().to_string(),
            ],
            None,
        );
        let name = manifests
            .parent()
            .and_then(|p| p.file_name())
            .expect("name");
        // The blog's baz team is deliberately not allowed by the listener.
        let expected = if name == "gateway-api-blog" { 79 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{name:?}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn check_from_stdin_reports_json() {
    let fixture = include_str!("fixtures/mesh.yaml");
    let out = run(&["check", "-f", "-", "-o", "json"], Some(fixture));
    assert_eq!(out.status.code(), Some(79));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["apiVersion"], "ferry.dev/v1");
    assert_eq!(report["kind"], "CheckReport");
    assert!(report["issues"].as_array().expect("issues").len() >= 8);
    let out = run(&["check", "-f", "does-not-exist.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn inject_offline() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
        selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
        spec:\n      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]\n";
    let out = run(
        &["inject", "-f", "-", "--proxy-image", "ferry/proxy:test"],
        Some(deployment),
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("ferry-proxy"), "{text}");
    assert!(text.contains("ferry/proxy:test"), "{text}");
    // The injector's own golden files pin the patch; here: it is wired.
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML out");
    let init = &docs[0]["spec"]["template"]["spec"]["initContainers"];
    let names: Vec<&str> = init
        .as_array()
        .expect("init containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["ferry-init", "ferry-proxy"], "{text}");
    let out = run(
        &["inject", "-f", "-", "--sidecar", "classic"],
        Some(deployment),
    );
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout(&out)).expect("YAML");
    assert_eq!(
        docs[0]["spec"]["template"]["spec"]["containers"][0]["name"],
        "ferry-proxy"
    );
}

#[test]
fn version_and_completion() {
    let out = run(&["version"], None);
    assert!(stdout(&out).starts_with("kubectl-gateway "));
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completion", shell], None);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("describe"), "{shell}");
    }
}

#[test]
fn no_cluster_is_an_error_not_a_panic() {
    let out = run(&["status", "--kubeconfig", "/nonexistent/kubeconfig"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}
