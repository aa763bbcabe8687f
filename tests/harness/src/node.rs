//! [`Node`]: a real one-node Kubernetes 1.20 cluster whose pods really run.
//!
//! The node is the one of `tests/node/` (see its README): etcd,
//! kube-apiserver, controller manager, scheduler, containerd, kubelet,
//! kube-proxy and a cluster DNS, on a bridge only this machine reaches, with
//! the images of `tests/node/build.sh` and Ferry's own (`target/images`).
//!
//! Its names are host-wide (bridges, address ranges, iptables chains,
//! `/run/containerd`), so only one node runs on a machine at a time: a
//! [`Node`] holds an exclusive lock on `/tmp/ferry-node.lock` for its whole
//! life and other tests wait for it. The lock is held by
//! `tests/node/watchdog.sh`, which brings the node up, then blocks reading a
//! pipe only the test process writes to; when the [`Node`] is dropped or
//! stopped, or the test process dies in any way, it takes the node down
//! (`down.sh`), checks that nothing is left (`verify-clean.sh`) and only then
//! releases the lock. Before bringing a node up it runs `down.sh` too, for
//! whatever a killed earlier run left.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use ferry_harness::node::Node;
//! use std::time::Duration;
//!
//! let node = Node::start().await?;
//! node.apply(node.namespace(), "apiVersion: v1\nkind: Pod\n...").await?;
//! node.wait_pods_ready(node.namespace(), "app=web", 1, Duration::from_secs(60)).await?;
//! node.stop().await?; // fails if anything was left on the machine
//! # Ok(())
//! # }
//! ```

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::Client;
use kube::api::{Api, ListParams};

/// The node's name in the cluster (`FERRY_NODE_NAME` overrides it).
pub const NODE_NAME: &str = "ferry-node";
/// The node's address, where every component listens: the apiserver on
/// 6443, the cluster DNS on 53 (`FERRY_NODE_IP` overrides it).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// The image every test may use: busybox (`sh`, `httpd`, `nc`, `nslookup`;
/// its `wget` crashes, use `nc`) plus `iptables`. Use `imagePullPolicy: Never`.
pub const TOOLBOX_IMAGE: &str = "localhost/ferry-node/toolbox:1";
/// The lock every node holds for its life.
pub const LOCK_FILE: &str = "/tmp/ferry-node.lock";

/// How often the waiting helpers look.
const POLL: Duration = Duration::from_millis(250);

/// A running node, for one test. Dropping it takes the node down (also when
/// the test panics); [`Node::stop`] does the same and reports leftovers.
pub struct Node {
    client: Client,
    files: Files,
    namespace: String,
    watchdog: Option<Watchdog>,
}

/// Where a node's files are, and the tools that read them.
#[derive(Debug, Clone)]
struct Files {
    dir: PathBuf,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

/// Options for [`Node::start`].
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    images: Option<PathBuf>,
}

/// `watchdog.sh` (the lock holder) and its pipes. Dropping it takes the
/// node down.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    lifeline: Option<ChildStdin>,
    lines: BufReader<ChildStdout>,
}

// === impl NodeBuilder ===

impl NodeBuilder {
    /// Imports every `*.tar` (docker-archive) of `dir` instead of
    /// `FERRY_NODE_IMAGES` or `target/images`.
    pub fn images_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.images = Some(dir.into());
        self
    }

    /// Waits for the node lock, cleans up what an earlier run left, brings
    /// the node up (Ready, DNS answering, images imported) and creates a
    /// fresh namespace named after the test.
    pub async fn start(self) -> Result<Node> {
        if let Some(why) = unavailable() {
            bail!("{why}");
        }
        let scripts = workspace().join("tests/node");
        let stamp = crate::binaries::cache_dir()?
            .join(format!("node-{}/bin/.complete", crate::KUBE_VERSION));
        if !stamp.is_file() {
            bail!(
                "{} is missing: run tests/node/setup.sh once (it builds kubelet, kube-proxy, \
                 kube-scheduler and the node's images; see tests/node/README.md)",
                stamp.display()
            );
        }
        let dir = std::env::var_os("FERRY_NODE_DIR")
            .map_or_else(|| PathBuf::from("/tmp/ferry-node"), PathBuf::from);
        let images = self
            .images
            .or_else(|| std::env::var_os("FERRY_NODE_IMAGES").map(PathBuf::from))
            .unwrap_or_else(|| workspace().join("target/images"));

        let files = Files {
            kubeconfig: dir.join("run/pki/admin.kubeconfig"),
            kubectl: crate::binaries::cache_dir()?
                .join(format!("node-{}/bin/kubectl", crate::KUBE_VERSION)),
            dir: dir.clone(),
        };

        let started = Instant::now();
        let (watchdog, up) = blocking(move || {
            let mut watchdog = Watchdog::spawn(&scripts, &dir, &images)?;
            let up = watchdog.until(|l| l.starts_with("up "))?;
            Ok((watchdog, up))
        })
        .await?;
        if up != "up 0" {
            let logs = files.logs();
            drop(watchdog); // down.sh: undo the partial start
            bail!("the node did not come up ({up})\n{logs}");
        }
        eprintln!("ferry-harness: node up in {:?}", started.elapsed());
        let client = match crate::cluster::client_from(&files.kubeconfig).await {
            Ok(client) => client,
            Err(err) => return Err(err.context(files.logs())),
        };
        let mut node = Node {
            client,
            files,
            namespace: String::new(),
            watchdog: Some(watchdog),
        };
        node.namespace = node.new_namespace("").await?;
        Ok(node)
    }
}

// === impl Node ===

impl Node {
    /// A node with Ferry's images from `FERRY_NODE_IMAGES` or `target/images`.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Options: the images directory.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// A client authenticated as a cluster admin (`system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A kubeconfig file for the same admin.
    pub fn kubeconfig(&self) -> &Path {
        &self.files.kubeconfig
    }

    /// The test's own namespace (with its `default` ServiceAccount).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates another fresh namespace named `prefix-xxxxx` (or after the
    /// test, if `prefix` is empty).
    pub async fn new_namespace(&self, prefix: &str) -> Result<String> {
        let name = crate::namespace::unique_name(prefix);
        crate::namespace::create(&self.client, &name).await?;
        Ok(name)
    }

    /// The node's address (Pod CIDR `10.244.0.0/24`, Services
    /// `10.96.0.0/16`; see `tests/node/README.md`).
    pub fn node_ip(&self) -> Ipv4Addr {
        std::env::var("FERRY_NODE_IP")
            .ok()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(NODE_IP)
    }

    /// The node's directory (`FERRY_NODE_DIR`, default `/tmp/ferry-node`):
    /// `run/` holds the running node's state and logs, `last/` the logs of
    /// the last node taken down, `up.log` and `down.log` the scripts' output.
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// The `kubectl` 1.20 binary (built with the node's binaries), for
    /// tests that run it themselves with [`Node::kubeconfig`].
    pub fn kubectl_path(&self) -> &Path {
        &self.files.kubectl
    }

    /// `kubectl` 1.20 for this node's admin, its discovery cache in the
    /// node's directory; add arguments and run it.
    pub fn kubectl_command(&self) -> Command {
        self.files.kubectl_command()
    }

    /// Runs `kubectl ARGS` and returns its stdout; fails with its stderr.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with_input(args, None).await
    }

    /// `kubectl apply -n NAMESPACE -f -` with `yaml` (one or more documents).
    pub async fn apply(&self, namespace: &str, yaml: &str) -> Result<String> {
        self.kubectl_with_input(&["apply", "-n", namespace, "-f", "-"], Some(yaml))
            .await
    }

    async fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut cmd = self.kubectl_command();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = input.unwrap_or_default().to_owned();
        let line = format!("kubectl {}", args.join(" "));
        blocking(move || {
            let mut child = cmd
                .spawn()
                .with_context(|| format!("failed to run {line}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.as_bytes())?;
            }
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "{line} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .await
    }

    /// Waits until the node reports Ready.
    pub async fn wait_node_ready(&self, timeout: Duration) -> Result<()> {
        let nodes: Api<NodeObject> = Api::all(self.client.clone());
        let name = node_name();
        self.wait(timeout, &format!("node {name} Ready"), || async {
            let node = nodes.get_opt(&name).await?;
            let ready = node
                .and_then(|n| n.status?.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Ok(ready.then_some(()))
        })
        .await
    }

    /// Waits until exactly `count` pods (not being deleted) match `selector`
    /// in `namespace` and all are Ready; returns them.
    pub async fn wait_pods_ready(
        &self,
        namespace: &str,
        selector: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("{count} pods {selector} Ready in {namespace}");
        let params = ListParams::default().labels(selector);
        self.wait(timeout, &what, || async {
            let list: Vec<Pod> = pods
                .list(&params)
                .await?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = list.len() == count && list.iter().all(pod_ready);
            Ok(ready.then_some(list))
        })
        .await
    }

    /// Waits until Deployment `name` is rolled out: every replica updated
    /// and available, no old ones left (like `kubectl rollout status`).
    pub async fn wait_rollout(&self, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("deployment {namespace}/{name} rolled out");
        self.wait(timeout, &what, || async {
            let Some(d) = deployments.get_opt(name).await? else {
                return Ok(None);
            };
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let s = d.status.unwrap_or_default();
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) == want;
            Ok(done.then_some(()))
        })
        .await
    }

    /// Waits until pod `name` has finished (`Succeeded` or `Failed`);
    /// returns it.
    pub async fn wait_pod_finished(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        self.wait(
            timeout,
            &format!("pod {namespace}/{name} finished"),
            || async {
                let pod = pods.get_opt(name).await?;
                let phase = pod
                    .as_ref()
                    .and_then(|p| p.status.as_ref()?.phase.as_deref());
                let finished = matches!(phase, Some("Succeeded" | "Failed"));
                Ok(pod.filter(|_| finished))
            },
        )
        .await
    }

    /// Polls `check` until it returns `Some`; on timeout fails with the
    /// pods' states and the node's logs.
    async fn wait<T, F, Fut>(&self, timeout: Duration, what: &str, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            if let Some(dead) = self.files.exited() {
                bail!("{dead} exited while waiting for {what}\n{}", self.logs());
            }
            match check().await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(err) => last_error = Some(err),
            }
            if Instant::now() > deadline {
                let error = last_error
                    .map(|e| format!("last error: {e:#}\n"))
                    .unwrap_or_default();
                bail!(
                    "timed out after {timeout:?} waiting for {what}\n{error}{}",
                    self.logs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pods of every namespace, the last events, and the last lines of
    /// `up.sh`'s output and of every component's log, for failure messages.
    pub fn logs(&self) -> String {
        self.files.logs()
    }

    /// Takes the node down now and checks that nothing is left on the
    /// machine (`verify-clean.sh`); fails, with what is left, otherwise.
    pub async fn stop(mut self) -> Result<()> {
        let watchdog = self.watchdog.take();
        let dir = self.files.dir.clone();
        blocking(move || match watchdog {
            Some(mut w) => w.finish(),
            None => Ok(()),
        })
        .await
        .with_context(|| {
            let report = std::fs::read_to_string(dir.join("verify-clean.log")).unwrap_or_default();
            let down = std::fs::read_to_string(dir.join("down.log")).unwrap_or_default();
            format!("the node was not taken down cleanly\n{report}--- down.log\n{down}")
        })
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.files.dir)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

// === impl Files ===

impl Files {
    fn kubectl_command(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("run/kube-cache"));
        cmd
    }

    /// The first component of the node (by its pid file) that is no longer
    /// running.
    fn exited(&self) -> Option<String> {
        let entries = std::fs::read_dir(self.dir.join("run/pids")).ok()?;
        entries.flatten().find_map(|entry| {
            let pid = std::fs::read_to_string(entry.path()).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()));
            let running = status.is_ok_and(|s| {
                !s.lines()
                    .any(|l| l.starts_with("State:") && l.contains("zombie"))
            });
            let name = entry.path().file_stem()?.to_string_lossy().into_owned();
            (!running).then_some(name)
        })
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for args in [
            &["get", "pods", "-A", "-o", "wide"][..],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
        ] {
            if let Ok(o) = self.kubectl_command().args(args).output() {
                out.push_str(&format!("--- kubectl {}\n", args.join(" ")));
                out.push_str(&tail(&String::from_utf8_lossy(&o.stdout), 30));
                out.push_str(&String::from_utf8_lossy(&o.stderr));
            }
        }
        let mut files = vec![self.dir.join("up.log")];
        if let Ok(entries) = std::fs::read_dir(self.dir.join("run/log")) {
            let mut logs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            logs.sort();
            files.extend(logs);
        }
        for file in files {
            if let Ok(text) = std::fs::read_to_string(&file) {
                out.push_str(&format!(
                    "--- {} (last lines)\n{}",
                    file.display(),
                    tail(&text, 15)
                ));
            }
        }
        out
    }
}

// === impl Watchdog ===

impl Watchdog {
    fn spawn(scripts: &Path, dir: &Path, images: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(scripts.join("watchdog.sh"))
            .env("FERRY_NODE_DIR", dir)
            .env("FERRY_NODE_LOCK", LOCK_FILE)
            .env("FERRY_NODE_IMAGES", images)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C meant for the test must not stop the
            // teardown.
            .process_group(0)
            .spawn()
            .context("failed to start the node watchdog (bash)")?;
        let lifeline = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().context("no watchdog stdout")?);
        Ok(Self {
            child,
            lifeline,
            lines,
        })
    }

    /// Reads the watchdog's lines until one satisfies `done`; returns it.
    fn until(&mut self, done: impl Fn(&str) -> bool) -> Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line)? == 0 {
                bail!(
                    "the node watchdog exited early ({:?})",
                    self.child.try_wait()
                );
            }
            let line = line.trim();
            if line == "waiting" {
                eprintln!("ferry-harness: waiting for {LOCK_FILE}: another node runs");
            }
            if done(line) {
                return Ok(line.to_owned());
            }
        }
    }

    /// Closes the lifeline and waits for `down.sh` and `verify-clean.sh`.
    fn finish(&mut self) -> Result<()> {
        drop(self.lifeline.take());
        let result = self.until(|l| l.starts_with("clean ") || l == "kept");
        let _ = self.child.wait();
        match result?.as_str() {
            "clean 0" => Ok(()),
            "kept" => {
                eprintln!("ferry-harness: FERRY_NODE_KEEP: node kept; tests/node/down.sh stops it");
                Ok(())
            }
            other => bail!("verify-clean.sh found leftovers ({other})"),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.lifeline.is_some()
            && let Err(err) = self.finish()
        {
            eprintln!("ferry-harness: {err:#} (logs in /tmp/ferry-node or FERRY_NODE_DIR)");
        }
    }
}

/// Why a node cannot run here (not root, no `ip`), or `None`;
/// [`NodeBuilder::start`] fails with it.
pub fn unavailable() -> Option<String> {
    ferry_netns::unavailable()
}

/// Runs blocking work (processes, pipes) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task failed")?
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_name() -> String {
    std::env::var("FERRY_NODE_NAME").unwrap_or_else(|_| NODE_NAME.to_owned())
}

/// The workspace root (this crate is `tests/harness`).
fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The cache of `tests/cluster/kube.sh` and `tests/node/build.sh`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    out.push('\n');
    out
}
