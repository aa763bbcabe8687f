//! A local etcd + kube-apiserver (+ kube-controller-manager) on loopback.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::Client;
use rand::{Rng as _, SeedableRng as _, distr::Alphanumeric, rngs::StdRng};
use tempfile::TempDir;

use crate::binaries::Binaries;
use crate::pki::TestCa;
use crate::supervisor::Supervisor;

/// How long the apiserver may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts with fresh ports when a port was taken between pick and bind.
const PORT_ATTEMPTS: usize = 3;

/// Running servers and their files. Dropping it stops the servers first,
/// then removes the directory.
#[derive(Debug)]
pub(crate) struct Local {
    // Field order is drop order: processes before their directory.
    supervisor: Supervisor,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) ca_pem: String,
    dir: Option<TempDir>,
}

/// Ports of one attempt.
#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd: u16,
    peer: u16,
    api: u16,
}

// === impl Local ===

impl Local {
    /// Starts etcd and the apiserver, waits for `/readyz`, then starts the
    /// controller manager if asked to.
    pub(crate) async fn start(controller_manager: bool) -> Result<(Self, Client)> {
        let bins = Binaries::locate()?;
        sweep_stale_dirs();
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix(&format!(
                    "{}{}-",
                    crate::DATA_DIR_PREFIX,
                    std::process::id()
                ))
                .tempdir()
                .context("failed to create the cluster directory")?;
            let mut local = Self::spawn(&bins, dir)?;
            let client = crate::cluster::client_from(&local.kubeconfig).await?;
            match local.wait_ready(&client).await {
                Ok(()) => {
                    if controller_manager {
                        local.spawn_controller_manager(&bins)?;
                    }
                    return Ok((local, client));
                }
                Err(err) if local.port_clash() => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    fn spawn(bins: &Binaries, dir: TempDir) -> Result<Self> {
        let d = dir.path();
        let ca = TestCa::new("ferry-harness-ca")?;
        let serving = ca.issue(&[
            "127.0.0.1",
            "10.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ])?;
        let sa = rcgen::KeyPair::generate().context("failed to generate the SA key")?;
        let token = random_token();
        write(d, "ca.crt", &ca.cert_pem())?;
        write(d, "ca.key", &ca.key_pem())?;
        write(d, "apiserver.crt", &serving.cert_pem)?;
        write(d, "apiserver.key", &serving.key_pem)?;
        write(d, "sa.key", &sa.serialize_pem())?;
        write(d, "sa.pub", &sa.public_key_pem())?;
        write(
            d,
            "tokens.csv",
            &format!("{token},admin,admin,system:masters\n"),
        )?;

        let ports = Ports::pick()?;
        let kubeconfig = d.join("kubeconfig");
        write(
            d,
            "kubeconfig",
            &kubeconfig_yaml(ports.api, &d.join("ca.crt"), &token),
        )?;

        let mut supervisor = Supervisor::new()?;
        supervisor.spawn(
            "etcd",
            &mut etcd_command(bins, d, ports),
            &d.join("etcd.log"),
        )?;
        supervisor.spawn(
            "kube-apiserver",
            &mut apiserver_command(bins, d, ports),
            &d.join("apiserver.log"),
        )?;
        Ok(Self {
            supervisor,
            kubeconfig,
            ca_pem: ca.cert_pem(),
            dir: Some(dir),
        })
    }

    fn spawn_controller_manager(&mut self, bins: &Binaries) -> Result<()> {
        let d = self.dir().to_owned();
        let path = |f: &str| d.join(f).display().to_string();
        let mut cmd = Command::new(&bins.controller_manager);
        cmd.args([
            format!("--kubeconfig={}", path("kubeconfig")),
            format!("--service-account-private-key-file={}", path("sa.key")),
            format!("--root-ca-file={}", path("ca.crt")),
            format!("--cluster-signing-cert-file={}", path("ca.crt")),
            format!("--cluster-signing-key-file={}", path("ca.key")),
            format!("--cert-dir={}", path("kcm-certs")),
            "--port=0".into(),
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            "--use-service-account-credentials=false".into(),
            "--controllers=*".into(),
        ]);
        self.supervisor.spawn(
            "kube-controller-manager",
            &mut cmd,
            &d.join("controller-manager.log"),
        )
    }

    async fn wait_ready(&mut self, client: &Client) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some((name, status)) = self.supervisor.exited() {
                bail!(
                    "{name} exited ({status}) before the apiserver was ready\n{}",
                    self.logs()
                );
            }
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(req).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the apiserver was not ready after {READY_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn port_clash(&self) -> bool {
        ["etcd.log", "apiserver.log"].iter().any(|f| {
            fs::read_to_string(self.dir().join(f))
                .is_ok_and(|l| l.contains("address already in use"))
        })
    }

    /// The last lines of each server log, for error messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for file in ["etcd.log", "apiserver.log", "controller-manager.log"] {
            let Ok(text) = fs::read_to_string(self.dir().join(file)) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            out.push_str(&format!(
                "--- {file} (last {} lines)\n{}\n",
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // The supervisor's own drop stops the servers (it is dropped after
        // this function, before `dir`): keep the directory if asked to.
        if std::env::var_os("FERRY_HARNESS_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("ferry-harness: kept {}", dir.keep().display());
        }
    }
}

// === impl Ports ===

impl Ports {
    /// Three distinct free loopback ports (bound, read, released).
    fn pick() -> Result<Self> {
        let listeners = (0..3)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<Result<Vec<_>, _>>()
            .context("failed to find a free port")?;
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Self {
            etcd: port(0)?,
            peer: port(1)?,
            api: port(2)?,
        })
    }
}

fn etcd_command(bins: &Binaries, d: &Path, p: Ports) -> Command {
    let client = format!("http://127.0.0.1:{}", p.etcd);
    let peer = format!("http://127.0.0.1:{}", p.peer);
    let mut cmd = Command::new(&bins.etcd);
    cmd.arg(format!("--data-dir={}", d.join("etcd").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=default={peer}"))
        .args(["--logger=zap", "--log-level=warn"]);
    cmd
}

fn apiserver_command(bins: &Binaries, d: &Path, p: Ports) -> Command {
    let path = |f: &str| d.join(f).display().to_string();
    let mut cmd = Command::new(&bins.apiserver);
    cmd.args([
        format!("--etcd-servers=http://127.0.0.1:{}", p.etcd),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", p.api),
        "--insecure-port=0".into(),
        format!("--cert-dir={}", path("apiserver-certs")),
        format!("--tls-cert-file={}", path("apiserver.crt")),
        format!("--tls-private-key-file={}", path("apiserver.key")),
        format!("--client-ca-file={}", path("ca.crt")),
        format!("--token-auth-file={}", path("tokens.csv")),
        format!("--service-account-key-file={}", path("sa.pub")),
        format!("--service-account-signing-key-file={}", path("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--api-audiences=https://kubernetes.default.svc,ferry".into(),
        // Pods get a projected token volume, as on every current cluster,
        // instead of waiting for a token Secret from the controller manager.
        "--feature-gates=BoundServiceAccountTokenVolume=true".into(),
        "--authorization-mode=RBAC".into(),
        "--service-cluster-ip-range=10.0.0.0/16".into(),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
    ]);
    cmd
}

fn kubeconfig_yaml(port: u16, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferry-test\n  cluster:\n    \
         server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n\
         - name: admin\n  user:\n    token: {token}\ncontexts:\n- name: ferry-test\n  \
         context:\n    cluster: ferry-test\n    user: admin\ncurrent-context: ferry-test\n",
        ca = ca.display(),
    )
}

/// Removes cluster directories whose owning process is gone (killed before
/// its destructors ran); their servers were already killed by the watchdog.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.strip_prefix(crate::DATA_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn random_token() -> String {
    StdRng::from_os_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn write(dir: &Path, file: &str, contents: &str) -> Result<()> {
    fs::write(dir.join(file), contents).with_context(|| format!("failed to write {file}"))
}
