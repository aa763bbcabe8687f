//! The mesh under test: a real apiserver (ferry-harness), a real
//! `ferry-control` process, and pods that are network namespaces plugged
//! into one bridge, each with `ferry-proxy init` rules, a `ferry-proxy
//! --mode sidecar` and an app. The Kubernetes side of each pod (its
//! ServiceAccount, its Pod object with the namespace's IP, the Endpoints
//! naming it) is written to the apiserver by the test, since no kubelet runs.
//!
//! Sidecars reach ferry-control at the node's address (`NODE:8090`): a
//! relay in the node namespace carries each connection over a unix socket
//! to the test process, which connects to ferry-control on loopback.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_harness::Cluster;
use ferry_netns::{Pod, bridge, plug};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod as KubePod, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apps;

/// The node's address on the bridge; the relay listens on it.
pub(crate) const NODE: Ipv4Addr = Ipv4Addr::new(10, 210, 255, 254);
/// The relay's port on the node: the sidecars' discovery address.
pub(crate) const RELAY_PORT: u16 = 8090;
/// The UID the sidecars run as; `init` lets its traffic through.
pub(crate) const PROXY_UID: u32 = 2102;
/// ferry-control's namespace (its default).
const CONTROL_NAMESPACE: &str = "ferry-system";
/// The trust domain of the test mesh.
pub(crate) const TRUST_DOMAIN: &str = "cluster.local";
/// `FERRY_LOG` for sidecars and ferry-control, e.g. `ferry_proxy=debug`.
const LOG_ENV: &str = "FERRY_TEST_MESH_LOG";

/// What runs in a pod.
#[derive(Clone, Debug)]
pub(crate) enum App {
    /// Nothing: a client pod; the test runs programs in it.
    None,
    /// The HTTP app answering `name=<name>` on `port`.
    Http { name: &'static str, port: u16 },
    /// The line-echo app on `port`.
    Echo { port: u16 },
}

/// How to make a pod.
#[derive(Clone, Debug)]
pub(crate) struct PodSpec<'a> {
    /// Its Kubernetes namespace.
    pub(crate) namespace: &'a str,
    /// Its name.
    pub(crate) name: &'a str,
    /// The ServiceAccount its Pod object names (what ferry-control
    /// expects it to prove).
    pub(crate) service_account: &'a str,
    /// The ServiceAccount whose token its sidecar gets, when not the same:
    /// an impostor.
    pub(crate) token_account: Option<&'a str>,
    /// What runs beside the sidecar.
    pub(crate) app: App,
    /// More sidecar environment.
    pub(crate) env: Vec<(&'a str, &'a str)>,
}

impl<'a> PodSpec<'a> {
    /// A pod running `app` as `service_account` in `namespace`, its
    /// sidecar holding that account's identity, with no extra environment.
    pub(crate) fn new(
        namespace: &'a str,
        name: &'a str,
        service_account: &'a str,
        app: App,
    ) -> Self {
        Self {
            namespace,
            name,
            service_account,
            token_account: None,
            app,
            env: Vec::new(),
        }
    }
}

/// A pod of the mesh.
#[derive(Debug)]
pub(crate) struct MeshPod {
    /// The network namespace.
    pub(crate) netns: Pod,
    /// Its Kubernetes namespace.
    pub(crate) namespace: String,
    /// Its name (Pod object).
    pub(crate) name: String,
    /// Its address on the bridge.
    pub(crate) ip: Ipv4Addr,
}

/// The running mesh.
pub(crate) struct World {
    pub(crate) cluster: Cluster,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) node: Pod,
    control: Option<Child>,
    control_addr: SocketAddr,
    control_admin: SocketAddr,
    control_args: Vec<String>,
    next_ip: u8,
}

fn free_port() -> Result<u16> {
    Ok(StdListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// This test binary re-run inside `pod` as the `#[test]` named `test`,
/// with `var=value`: the child modes of `main.rs`.
pub(crate) fn child(pod: &Pod, test: &str, var: &str, value: &str) -> Result<Command> {
    let exe = std::env::current_exe()?;
    let mut command = pod.command(&exe.to_string_lossy());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, value);
    Ok(command)
}

// === impl World ===

impl World {
    /// Starts the apiserver, ferry-control (with `control_args` beside
    /// the usual flags), the node and its relay.
    pub(crate) async fn start(control_args: &[&str]) -> Result<Self> {
        let cluster = Cluster::start().await?;
        // ferry-control's own namespace: the CA keeps its Secret there.
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": CONTROL_NAMESPACE}}))?;
        Api::<Namespace>::all(cluster.client())
            .create(&PostParams::default(), &namespace)
            .await?;
        let dir = tempfile::tempdir()?;
        let node = Pod::new("node")?;
        bridge(&node, NODE, 16)?;
        let control_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let control_admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));

        // The relay: node TCP -> unix socket -> this process -> control.
        let socket = dir.path().join("discovery.sock");
        let unix = UnixListener::bind(&socket)?;
        std::thread::spawn(move || {
            for conn in unix.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Ok(tcp) = TcpStream::connect(control_addr) {
                        let _ = apps::splice(tcp, conn);
                    }
                });
            }
        });
        let relay = format!("{NODE}:{RELAY_PORT}|{}", socket.display());
        let mut relay = child(&node, "relay", "FERRY_MESH_RELAY", &relay)?;
        relay.stdout(Stdio::null());
        node.spawn(relay)?;

        let mut world = Self {
            cluster,
            dir,
            node,
            control: None,
            control_addr,
            control_admin,
            control_args: control_args.iter().map(|a| a.to_string()).collect(),
            next_ip: 1,
        };
        world.start_control().await?;
        Ok(world)
    }

    /// Starts ferry-control (again) and waits until it is ready.
    pub(crate) async fn start_control(&mut self) -> Result<()> {
        let binary = env!("CARGO_BIN_EXE_ferry-control");
        let log = std::env::var(LOG_ENV).unwrap_or_else(|_| "warn".into());
        let child = Command::new(binary)
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .env("FERRY_LOG", log)
            .args(["--discovery-addr", &self.control_addr.to_string()])
            .args(["--admin-addr", &self.control_admin.to_string()])
            .args(["--no-leader-election", "--no-deploy"])
            .args(["--trust-domain", TRUST_DOMAIN])
            .args(&self.control_args)
            .stdin(Stdio::null())
            .spawn()
            .context("failed to start ferry-control")?;
        self.control = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_status(self.control_admin, "/ready").await == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("ferry-control never became ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a failed wait reports: the outbound targets of `pod`'s sidecar
    /// as its `/config` shows them, and ferry-control's watch metrics.
    pub(crate) async fn diagnostics(&self, pod: &MeshPod) -> String {
        let config = pod
            .netns
            .command("curl")
            .args(["-s", "http://127.0.0.1:4191/config"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
        let targets = match config.as_deref().map(serde_json::from_str::<Value>) {
            Ok(Ok(config)) => config["outbound"]["targets"].to_string(),
            Ok(Err(error)) => format!("/config is not JSON: {error}"),
            Err(error) => format!("no /config: {error}"),
        };
        let metrics = http_get(self.control_admin, "/metrics")
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.starts_with("ferry_control_watch") || l.starts_with("ferry_control_discovery")
            })
            .collect::<Vec<_>>()
            .join("\n");
        // Can the sidecar reach ferry-control (through the node's relay)
        // now? A gRPC port answers a plain GET with an HTTP/2 error, which
        // is enough: the connection was accepted.
        let started = Instant::now();
        let probe = pod
            .netns
            .command_as(PROXY_UID, "curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "3",
                "-w",
                "%{http_code} %{errormsg}",
            ])
            .arg(format!("http://{NODE}:{RELAY_PORT}/"))
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
        format!(
            "sidecar of {}: targets {targets}\nrelay probe from the pod: {probe:?} in {:?}\nferry-control:\n{metrics}",
            pod.name,
            started.elapsed()
        )
    }

    /// Kills ferry-control (SIGKILL), as a crashed control plane.
    pub(crate) fn kill_control(&mut self) -> Result<()> {
        if let Some(mut child) = self.control.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// A Kubernetes namespace labelled for the mesh.
    pub(crate) async fn namespace(&self, prefix: &str) -> Result<String> {
        let name = self.cluster.new_namespace(prefix).await?;
        let namespaces: Api<Namespace> = Api::all(self.cluster.client());
        namespaces
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"ferry.dev/inject": "enabled"}}})),
            )
            .await?;
        Ok(name)
    }

    /// A meshed pod: the namespace plugged into the node, its Kubernetes
    /// objects, `init` rules, the sidecar, then the app.
    pub(crate) async fn pod(&mut self, spec: PodSpec<'_>) -> Result<MeshPod> {
        let PodSpec {
            namespace,
            name,
            service_account,
            token_account,
            app,
            env,
        } = spec;
        let ip = Ipv4Addr::new(10, 210, 0, self.next_ip);
        self.next_ip += 1;
        let netns = Pod::new(name)?;
        plug(&self.node, &netns, ip, 16)?;
        self.kube_pod(namespace, name, service_account, ip).await?;
        let token = self
            .token(namespace, token_account.unwrap_or(service_account))
            .await?;

        netns.run(&[
            &self.proxy()?.to_string_lossy(),
            "init",
            "--proxy-uid",
            &PROXY_UID.to_string(),
            "--exclude-inbound-ports",
            "4191",
        ])?;
        let log = std::env::var(LOG_ENV).unwrap_or_else(|_| "warn".into());
        let anchors = self.dir.path().join(format!("{namespace}-ca.pem"));
        let mut sidecar = netns.command_as(PROXY_UID, &self.proxy()?.to_string_lossy());
        sidecar
            .args(["--mode", "sidecar"])
            .env("FERRY_LOG", log)
            .env("FERRY_POD_NAME", name)
            .env("FERRY_POD_NAMESPACE", namespace)
            .env("FERRY_POD_IP", ip.to_string())
            .env(
                "FERRY_SERVICE_ACCOUNT",
                token_account.unwrap_or(service_account),
            )
            .env("FERRY_DISCOVERY_ADDR", format!("{NODE}:{RELAY_PORT}"))
            .env("FERRY_TRUST_DOMAIN", TRUST_DOMAIN)
            .env("FERRY_IDENTITY_TOKEN", &token)
            .env("FERRY_TRUST_ANCHORS", &anchors)
            .env("FERRY_ADMIN_ADDR", "0.0.0.0:4191");
        for (key, value) in env {
            sidecar.env(key, value);
        }
        netns.spawn(sidecar)?;
        match app {
            App::None => {}
            App::Http { name, port } => netns.spawn(child(
                &netns,
                "http_app",
                "FERRY_MESH_APP",
                &format!("{name}:{port}"),
            )?)?,
            App::Echo { port } => netns.spawn(child(
                &netns,
                "echo_app",
                "FERRY_MESH_ECHO",
                &port.to_string(),
            )?)?,
        }
        let pod = MeshPod {
            netns,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ip,
        };
        self.wait_ready(&pod)?;
        Ok(pod)
    }

    /// A pod outside the mesh: plugged into the node with `app`, without
    /// rules, sidecar or Kubernetes objects.
    pub(crate) fn plain_pod(&mut self, name: &str, app: App) -> Result<(Pod, Ipv4Addr)> {
        let ip = Ipv4Addr::new(10, 210, 0, self.next_ip);
        self.next_ip += 1;
        let netns = Pod::new(name)?;
        plug(&self.node, &netns, ip, 16)?;
        if let App::Http { name, port } = app {
            netns.spawn(child(
                &netns,
                "http_app",
                "FERRY_MESH_APP",
                &format!("{name}:{port}"),
            )?)?;
        }
        Ok((netns, ip))
    }

    fn proxy(&self) -> Result<PathBuf> {
        ferry_harness::workspace_binary("ferry-proxy")
    }

    /// The ServiceAccount (created if missing) and a Running, Ready Pod
    /// object with `ip`, as a kubelet would report it.
    async fn kube_pod(
        &self,
        namespace: &str,
        name: &str,
        service_account: &str,
        ip: Ipv4Addr,
    ) -> Result<()> {
        let client = self.cluster.client();
        self.account(namespace, service_account).await?;
        let pods: Api<KubePod> = Api::namespaced(client, namespace);
        let pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "serviceAccountName": service_account,
                "automountServiceAccountToken": false,
                "containers": [{"name": "app", "image": "app:test"}],
            },
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running",
                "podIP": ip.to_string(),
                "podIPs": [{"ip": ip.to_string()}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }})),
        )
        .await?;
        Ok(())
    }

    /// Creates ServiceAccount `namespace/name` unless it exists.
    async fn account(&self, namespace: &str, name: &str) -> Result<()> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.cluster.client(), namespace);
        let account = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A token of `service_account` for audience `ferry`, in a file.
    pub(crate) async fn token(&self, namespace: &str, service_account: &str) -> Result<PathBuf> {
        self.account(namespace, service_account).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.cluster.client(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec!["ferry".to_owned()],
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(service_account, &PostParams::default(), &request)
            .await?;
        let token = issued.status.context("TokenRequest without status")?.token;
        let path = self
            .dir
            .path()
            .join(format!("{namespace}-{service_account}.token"));
        std::fs::write(&path, token)?;
        // The sidecar runs as PROXY_UID and must read it.
        Command::new("chmod").arg("a+r").arg(&path).status()?;
        Ok(path)
    }

    /// Writes the trust anchors ferry-control published in `namespace`
    /// (ConfigMap `ferry-trust-anchors`) where that namespace's sidecars
    /// read them, once it exists.
    pub(crate) async fn trust_anchors(&self, namespace: &str) -> Result<()> {
        let maps: Api<ConfigMap> = Api::namespaced(self.cluster.client(), namespace);
        let deadline = Instant::now() + Duration::from_secs(30);
        let pem = loop {
            if let Some(map) = maps.get_opt("ferry-trust-anchors").await?
                && let Some(pem) = map.data.and_then(|d| d.get("ca.pem").cloned())
            {
                break pem;
            }
            if Instant::now() > deadline {
                bail!("ferry-control never published trust anchors in {namespace}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let path = self.dir.path().join(format!("{namespace}-ca.pem"));
        std::fs::write(&path, pem)?;
        Command::new("chmod").arg("a+r").arg(&path).status()?;
        Ok(())
    }

    fn wait_ready(&self, pod: &MeshPod) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = pod
                .netns
                .command("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg("http://127.0.0.1:4191/ready")
                .output()?;
            if out.stdout == b"200" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the sidecar of {} never became ready", pod.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.kill_control();
    }
}

/// The status code of `GET path` at `addr`, or `None` when unreachable.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path)
        .await?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The whole answer (head and body) to `GET path` at `addr`.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nhost: ferry\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    Some(answer)
}
