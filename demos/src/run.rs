//! Starting a demo: echo backends, certificate, the real gateway process.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::echo::EchoServer;
use crate::spec::Demo;
use crate::tls::DemoCertificate;

/// How long the gateway may take to load its config and bind its ports.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A demo that is running; everything stops when it is dropped.
#[derive(Debug)]
pub struct RunningDemo {
    /// Echo backends, one per loopback endpoint.
    pub backends: Vec<EchoServer>,
    /// The gateway's admin address.
    pub admin: SocketAddr,
    /// The ports the gateway's listeners bound, on 127.0.0.1.
    pub listener_ports: Vec<u16>,
    /// The CA to trust for HTTPS demos.
    pub ca_pem: Option<String>,
    /// The directory the gateway reads; files may be changed while running.
    pub config_dir: PathBuf,
    try_lines: Vec<String>,
    gateway: Child,
    _workdir: tempfile::TempDir,
}

// === impl RunningDemo ===

impl RunningDemo {
    /// Starts `demo` with the `ferry-proxy` binary at `proxy`.
    pub async fn start(demo: &Demo, proxy: &Path) -> anyhow::Result<Self> {
        let workdir = tempfile::tempdir().context("failed to make a work directory")?;
        let config_dir = workdir.path().join("config");
        std::fs::create_dir(&config_dir)?;

        let mut documents = Vec::new();
        for (name, file) in demo.config_files()? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("failed to read {}", file.display()))?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .with_context(|| format!("failed to parse {}", file.display()))?;
            documents.extend(docs);
            std::fs::copy(&file, config_dir.join(name))?;
        }

        let mut ca_pem = None;
        let mut ca_path = None;
        if let Some(tls) = &demo.spec.tls {
            let cert = DemoCertificate::generate(&tls.dns_names)?;
            let secret = cert.secret_yaml(&tls.namespace, &tls.secret);
            std::fs::write(config_dir.join("zz-demo-certificate.yaml"), secret)?;
            let path = workdir.path().join("ca.pem");
            std::fs::write(&path, &cert.ca_pem)?;
            ca_path = Some(path);
            ca_pem = Some(cert.ca_pem);
        }

        let mut backends = Vec::new();
        for (addr, name) in loopback_endpoints(&documents) {
            let server = EchoServer::start(&name, addr)
                .await
                .with_context(|| format!("failed to start echo backend {name} on {addr}"))?;
            backends.push(server);
        }

        let admin = free_loopback_addr()?;
        let gateway = Command::new(proxy)
            .args(["--mode", "gateway", "--bind", "127.0.0.1"])
            .arg("--config")
            .arg(&config_dir)
            .arg("--admin")
            .arg(admin.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", proxy.display()))?;

        let listener_ports = listener_ports(&documents);
        let ca_display = ca_path.map(|p| p.display().to_string()).unwrap_or_default();
        let try_lines = demo
            .spec
            .try_lines
            .iter()
            .map(|line| {
                line.replace("{ca}", &ca_display)
                    .replace("{config}", &config_dir.display().to_string())
                    .replace("{demo}", &demo.dir.display().to_string())
            })
            .collect();
        let mut running = Self {
            backends,
            admin,
            listener_ports,
            ca_pem,
            config_dir,
            try_lines,
            gateway,
            _workdir: workdir,
        };
        running.wait_ready().await?;
        Ok(running)
    }

    /// The demo's curl lines, ready to paste.
    pub fn try_lines(&self) -> &[String] {
        &self.try_lines
    }

    /// Waits until the gateway is ready and every listener accepts.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.gateway.try_wait()? {
                bail!("ferry-proxy exited early with {status}");
            }
            if admin_ready(self.admin).await && self.listeners_accept().await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("ferry-proxy was not ready after {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn listeners_accept(&self) -> bool {
        for port in &self.listener_ports {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// Finds `ferry-proxy`: `$FERRY_PROXY_BIN`, or beside the running binary
/// (also from a test binary in `target/*/deps/`).
pub fn proxy_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_PROXY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("ferry-proxy");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "ferry-proxy not found beside {}: build it with `cargo build -p ferry-proxy` or set FERRY_PROXY_BIN",
        exe.display()
    )
}

/// Every (address, name) of a ready loopback endpoint in the EndpointSlices
/// of `documents`. The name is the endpoint's pod (`targetRef.name`), else
/// its `hostname`, else the Service's name.
fn loopback_endpoints(documents: &[Value]) -> BTreeMap<SocketAddr, String> {
    let mut endpoints = BTreeMap::new();
    for slice in documents.iter().filter(|d| d["kind"] == "EndpointSlice") {
        let service = slice["metadata"]["labels"]["kubernetes.io/service-name"]
            .as_str()
            .unwrap_or("backend");
        let ports: Vec<u16> = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            let name = endpoint["targetRef"]["name"]
                .as_str()
                .or(endpoint["hostname"].as_str())
                .unwrap_or(service);
            let addresses = endpoint["addresses"].as_array().into_iter().flatten();
            for ip in addresses.filter_map(|a| a.as_str()?.parse::<std::net::IpAddr>().ok()) {
                if !ip.is_loopback() {
                    continue;
                }
                for port in &ports {
                    endpoints.insert(SocketAddr::new(ip, *port), name.to_string());
                }
            }
        }
    }
    endpoints
}

/// The listener ports of every Gateway in `documents`.
fn listener_ports(documents: &[Value]) -> Vec<u16> {
    let mut ports: Vec<u16> = documents
        .iter()
        .filter(|d| d["kind"] == "Gateway")
        .flat_map(|gw| {
            gw["spec"]["listeners"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|l| u16::try_from(l["port"].as_u64()?).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

async fn admin_ready(admin: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(admin).await else {
        return false;
    };
    let request = "GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200")
}
