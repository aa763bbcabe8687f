//! Pods as network namespaces, for end-to-end tests with real processes and
//! real iptables (DESIGN.md, "Tests").
//!
//! A [`Pod`] is a network namespace named `ferry-<pid>-<n>-<role>` (unique
//! per test process, so tests run in parallel) with `lo` up. [`link`] joins
//! two pods with a veth pair created directly inside them (nothing is ever
//! added to the host's namespace) and gives each end an address; use a
//! private range such as `10.200.0.0/16`, which only exists inside these
//! namespaces. For more than two pods, [`bridge`] makes one namespace a
//! switch and [`plug`] joins each pod to it. [`Pod::command`] runs a
//! program inside with `ip netns exec`; [`Pod::spawn`] keeps a
//! long-running one, killed when the pod is dropped.
//!
//! Teardown: dropping a [`Pod`] (also while a test panics) kills its
//! processes and deletes the namespace, and with it its links and iptables
//! rules, after killing every process still inside it. Processes are
//! started under `setpriv --pdeathsig KILL`, so they normally die with the
//! test process even when it is killed; the namespaces such a test leaves
//! behind, and anything still running in them, are removed by the next
//! [`Pod::new`] ([`sweep_leftovers`]), since their names carry the pid of a
//! process that no longer exists.
//!
//! Tests need root and `ip` (iproute2); [`unavailable`] says why not, so a
//! test can skip with that message. CI runs as root, so there they run.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};

/// Prefix of every namespace this crate creates.
pub const PREFIX: &str = "ferry-";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace standing for a pod.
#[derive(Debug)]
pub struct Pod {
    name: String,
    addr: Mutex<Option<Ipv4Addr>>,
    children: Mutex<Vec<Child>>,
}

/// Why end-to-end tests cannot run here (not root, no `ip`), or `None`.
pub fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("network namespace tests need root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("network namespace tests need `ip` (iproute2)".into()),
    }
}

/// Joins `a` and `b` with a veth pair named `eth0` on both sides, addresses
/// `a_addr/prefix` and `b_addr/prefix`, both up.
pub fn link(a: &Pod, a_addr: Ipv4Addr, b: &Pod, b_addr: Ipv4Addr, prefix: u8) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", "eth0", "netns", &a.name, "type", "veth", "peer", "name", "eth0", "netns",
        &b.name,
    ]))?;
    for (pod, addr) in [(a, a_addr), (b, b_addr)] {
        pod.run(&[
            "ip",
            "addr",
            "add",
            &format!("{addr}/{prefix}"),
            "dev",
            "eth0",
        ])?;
        pod.run(&["ip", "link", "set", "eth0", "up"])?;
        *pod.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
    Ok(())
}

/// Makes `node` a switch for several pods: a bridge `br0`, up, with
/// `addr/prefix` on it (the node's own address, e.g. for a relay to a
/// server outside the namespaces). Pods join it with [`plug`].
///
/// The bridge gets a fixed MAC address of its own (locally administered,
/// made of `addr`). Without one, Linux gives a bridge the lowest MAC of
/// its ports, which changes as pods join: pods that had already resolved
/// the node kept sending to the old MAC, and the node dropped their
/// packets until their neighbour entries expired.
pub fn bridge(node: &Pod, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let [a, b, c, d] = addr.octets();
    let mac = format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
    node.run(&[
        "ip", "link", "add", "br0", "address", &mac, "type", "bridge",
    ])?;
    node.run(&[
        "ip",
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        "br0",
    ])?;
    node.run(&["ip", "link", "set", "br0", "up"])?;
    *node.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    Ok(())
}

/// Plugs `pod` into `node`'s bridge ([`bridge`]): a veth pair, `eth0` in
/// the pod with `addr/prefix` and a default route through it (so that
/// addresses no pod has, like Service cluster IPs, can still be dialled
/// and redirected by the pod's nat rules), its peer a port of `br0`.
pub fn plug(node: &Pod, pod: &Pod, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    static PORTS: AtomicUsize = AtomicUsize::new(0);
    let port = format!("port{}", PORTS.fetch_add(1, Ordering::Relaxed));
    run(Command::new("ip").args([
        "link", "add", "eth0", "netns", &pod.name, "type", "veth", "peer", "name", &port, "netns",
        &node.name,
    ]))?;
    node.run(&["ip", "link", "set", &port, "master", "br0"])?;
    node.run(&["ip", "link", "set", &port, "up"])?;
    pod.run(&[
        "ip",
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        "eth0",
    ])?;
    pod.run(&["ip", "link", "set", "eth0", "up"])?;
    pod.run(&["ip", "route", "add", "default", "dev", "eth0"])?;
    *pod.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    Ok(())
}

/// Deletes the namespaces of test processes that no longer run; returns
/// their names.
pub fn sweep_leftovers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if delete(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Kills every process inside namespace `name`, then deletes it.
fn delete(name: &str) -> Result<()> {
    if let Ok(out) = run(Command::new("ip").args(["netns", "pids", name])) {
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).output();
        }
    }
    run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

/// Names of the namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The pid in `ferry-<pid>-<n>-<role>`.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

// === impl Pod ===

impl Pod {
    /// Creates the namespace `ferry-<pid>-<n>-<role>` with `lo` up, after
    /// deleting those left by earlier, dead test processes.
    pub fn new(role: &str) -> Result<Self> {
        sweep_leftovers();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let pod = Self {
            name,
            addr: Mutex::new(None),
            children: Mutex::new(Vec::new()),
        };
        pod.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(pod)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address [`link`] gave the pod.
    pub fn addr(&self) -> Option<Ipv4Addr> {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `program` to run inside the pod, as root, killed with the test
    /// process.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.name,
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
        ]);
        command.arg(program);
        command
    }

    /// `program` to run inside the pod as `uid` (and gid `uid`, no
    /// supplementary groups).
    pub fn command_as(&self, uid: u32, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.name,
            "setpriv",
            "--pdeathsig",
            "KILL",
        ]);
        command.args([format!("--reuid={uid}"), format!("--regid={uid}")]);
        command.args(["--clear-groups", "--"]);
        command.arg(program);
        command
    }

    /// Runs `args` inside the pod to completion; fails unless it exits 0.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let (program, rest) = args.split_first().context("empty command")?;
        run(self.command(program).args(rest))
    }

    /// Starts `command` (from [`Pod::command`]) and keeps it until the pod
    /// is dropped.
    pub fn spawn(&self, mut command: Command) -> Result<()> {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {command:?}"))?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let children = self.children.get_mut().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = delete(&self.name);
    }
}
