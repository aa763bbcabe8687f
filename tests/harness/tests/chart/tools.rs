//! Running real Helm (tests/chart/helm.py) and kubectl for the chart tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ferry_harness::Cluster;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;

pub(crate) const NAMESPACE: &str = "ferry-system";
pub(crate) const RELEASE: &str = "ferry";
pub(crate) const CONTROL: &str = "system:serviceaccount:ferry-system:ferry-control";

pub(crate) fn repo() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.canonicalize().unwrap_or(repo)
}

pub(crate) fn chart() -> String {
    repo().join("charts/ferry").display().to_string()
}

pub(crate) fn values_file(name: &str) -> String {
    repo()
        .join("tests/chart/values")
        .join(name)
        .display()
        .to_string()
}

/// The virtualenv's python, after `tests/chart/setup.sh` (once per process).
pub(crate) fn helm_python() -> Result<PathBuf> {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        let out = Command::new(repo().join("tests/chart/setup.sh"))
            .output()
            .map_err(|e| format!("failed to run tests/chart/setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tests/chart/setup.sh failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    setup.clone().map_err(anyhow::Error::msg)?;
    let cache = match std::env::var_os("FERRY_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) => PathBuf::from(dir).join("ferry"),
            None => {
                PathBuf::from(std::env::var_os("HOME").context("HOME unset")?).join(".cache/ferry")
            }
        },
    };
    Ok(cache.join("helm-venv/bin/python"))
}

/// Runs `helm.py ARGS`; its stdout, or an error with its stderr.
pub(crate) fn helm(args: &[String]) -> Result<String> {
    let out = Command::new(helm_python()?)
        .arg(repo().join("tests/chart/helm.py"))
        .args(args)
        .output()
        .context("failed to run tests/chart/helm.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "helm.py {} failed:\n{}{}",
        args.join(" "),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// `helm template` as release ferry in ferry-system, with NOTES.txt.
pub(crate) fn template(extra: &[&str]) -> Result<String> {
    let mut args = strings(&[
        "template",
        &chart(),
        "--name",
        RELEASE,
        "-n",
        NAMESPACE,
        "--notes",
    ]);
    args.extend(strings(extra));
    helm(&args)
}

/// helm.py against `cluster`, off the async runtime.
pub(crate) async fn helm_on(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let mut args = strings(args);
    args.extend(strings(&[
        "--kubeconfig",
        &cluster.kubeconfig().display().to_string(),
        "-n",
        NAMESPACE,
    ]));
    tokio::task::spawn_blocking(move || helm(&args)).await?
}

pub(crate) async fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<std::process::Output> {
    let kubectl = if Path::new("/usr/bin/kubectl").exists() {
        "/usr/bin/kubectl"
    } else {
        "kubectl"
    };
    tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .await
        .context("failed to run kubectl")
}

/// Whether ferry-control's ServiceAccount may do `what` (kubectl auth can-i).
pub(crate) async fn control_can(cluster: &Cluster, what: &str) -> Result<bool> {
    let mut args: Vec<&str> = vec!["auth", "can-i", "--as", CONTROL];
    args.extend(what.split_whitespace());
    let out = kubectl(cluster, &args).await?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!(
            "can-i {what}: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Server-side applies `object` as ferry-control would (impersonating its
/// ServiceAccount, with its field manager).
pub(crate) async fn apply_as_control(
    cluster: &Cluster,
    manager: &str,
    object: &Value,
) -> Result<()> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(object)?)?;
    let path = file.path().display().to_string();
    let field_manager = format!("--field-manager={manager}");
    let out = kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            &field_manager,
            "--as",
            CONTROL,
            "-f",
            &path,
        ],
    )
    .await?;
    ensure!(
        out.status.success(),
        "apply as ferry-control failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// (resourceVersion, generation) of every CRD.
pub(crate) async fn crd_versions(cluster: &Cluster) -> Result<BTreeMap<String, (String, i64)>> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    Ok(crds
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            let m = c.metadata;
            (
                m.name.unwrap_or_default(),
                (
                    m.resource_version.unwrap_or_default(),
                    m.generation.unwrap_or_default(),
                ),
            )
        })
        .collect())
}

/// Every object of the release's manifest, as `kubectl get -f` finds them.
pub(crate) async fn release_objects(cluster: &Cluster) -> Result<(tempfile::NamedTempFile, usize)> {
    let manifest = helm_on(cluster, &["status", RELEASE, "-o", "manifest"]).await?;
    let count = manifest.matches("\nkind: ").count();
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), manifest)?;
    Ok((file, count))
}

/// The install tests create cluster-wide objects (CRDs, the webhook
/// registration, RBAC): never on a shared cluster.
pub(crate) fn local_only(cluster: &Cluster) -> Result<()> {
    ensure!(
        cluster.is_local(),
        "the chart's install tests create cluster-wide objects: they run on the local \
         apiserver only (unset FERRY_TEST_KUBECONFIG)"
    );
    Ok(())
}

pub(crate) async fn wait_established(
    crds: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<()> {
    for _ in 0..200 {
        let crd = crds.get(name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("CRD {name} not Established")
}
