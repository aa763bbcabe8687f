//! What the journey's steps share: kubectl, Helm and the kubectl plugin as
//! a user runs them (real binaries against the node's apiserver), waits
//! that say what they waited for, and the `ferry-echo call` summary.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use tokio::process::Command;

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A user's tools, pointed at one cluster.
pub(crate) struct Tools {
    pub(crate) kubeconfig: PathBuf,
    pub(crate) kubectl: PathBuf,
    pub(crate) plugin: PathBuf,
    pub(crate) started: Instant,
}

/// What `ferry-echo call` prints: one JSON line.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CallSummary {
    pub(crate) total: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    #[serde(default)]
    pub(crate) by_name: BTreeMap<String, u64>,
    #[serde(default)]
    pub(crate) errors: Vec<String>,
    #[serde(default)]
    pub(crate) first_body: Option<String>,
}

// === impl Tools ===

impl Tools {
    /// Logs a step with the time since the journey started.
    pub(crate) fn step(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Runs `program args…` with the cluster's kubeconfig; stdout, or an
    /// error with both streams.
    pub(crate) async fn run(&self, program: &Path, args: &[&str]) -> Result<String> {
        let output = Command::new(program)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("failed to run {}", program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "{} {} failed ({}):\n{stdout}\n{}",
                program.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    /// `kubectl args…`.
    pub(crate) async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.run(&self.kubectl, args).await
    }

    /// `kubectl get … -o json`, parsed.
    pub(crate) async fn get_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all).await?)?)
    }

    /// `kubectl apply -f FILE`.
    pub(crate) async fn apply(&self, file: &Path) -> Result<String> {
        self.kubectl(&["apply", "-f", &file.to_string_lossy()])
            .await
    }

    /// `kubectl gateway args…` (the plugin binary of this build).
    pub(crate) async fn plugin(&self, args: &[&str]) -> Result<String> {
        self.run(&self.plugin, args).await
    }

    /// Real Helm (tests/chart/helm.py over the Helm library).
    pub(crate) async fn helm(&self, args: &[&str]) -> Result<String> {
        let python = helm_python()?;
        let script = workspace().join("tests/chart/helm.py");
        let mut all = vec![script.to_str().context("non-UTF-8 path")?];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--kubeconfig", self.kubeconfig.to_str().context("path")?]);
        self.run(&python, &all).await
    }

    /// `ferry-echo call ARGS…` run by the app container of `deploy/NAME` in
    /// namespace `ns`: calls made from inside a meshed pod. `call` exits 1
    /// when a call failed; its summary says which, so it is returned anyway.
    pub(crate) async fn call_from(
        &self,
        ns: &str,
        deploy: &str,
        args: &[&str],
    ) -> Result<CallSummary> {
        let target = format!("deploy/{deploy}");
        let output = Command::new(&self.kubectl)
            .args([
                "exec",
                "-n",
                ns,
                &target,
                "-c",
                "app",
                "--",
                "ferry-echo",
                "call",
            ])
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .await
            .context("failed to run kubectl exec")?;
        let out = String::from_utf8_lossy(&output.stdout);
        let line = out
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| {
                format!(
                    "no summary from ferry-echo call {} ({}):\n{out}\n{}",
                    args.join(" "),
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        serde_json::from_str(line).with_context(|| format!("bad summary: {line}"))
    }

    /// Waits until every Deployment of `ns` named in `names` has all its
    /// replicas updated and available.
    pub(crate) async fn rollout(&self, ns: &str, names: &[&str], timeout: Duration) -> Result<()> {
        for name in names {
            let target = format!("deployment/{name}");
            let limit = format!("--timeout={}s", timeout.as_secs());
            self.kubectl(&["rollout", "status", "-n", ns, &target, &limit])
                .await
                .with_context(|| format!("deployment {ns}/{name} did not roll out"))?;
        }
        Ok(())
    }
}

/// The Python of the Helm venv that `tests/chart/setup.sh` prepares.
fn helm_python() -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    let python = cache.join("ferry/helm-venv/bin/python");
    anyhow::ensure!(
        python.is_file(),
        "{} is missing: run tests/setup.sh (tests/chart/setup.sh installs Helm)",
        python.display()
    );
    Ok(python)
}

/// Polls `check` until it gives `Some`, or fails after `timeout` with the
/// last error or `None` it saw.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The condition `type` of a status's `conditions`, as (status, reason).
pub(crate) fn condition<'a>(conditions: &'a Value, kind: &str) -> Option<(&'a str, &'a str)> {
    conditions.as_array()?.iter().find_map(|c| {
        (c["type"] == kind).then(|| {
            (
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
            )
        })
    })
}

/// Sums the calls that named reviews pods of `version` (`reviews-v1-…`).
pub(crate) fn landed(summary: &CallSummary, version: &str) -> u64 {
    let prefix = format!("reviews-{version}-");
    summary
        .by_name
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(_, n)| n)
        .sum()
}
