//! No etcd or apiserver outlives its test: not when the test panics, not
//! when the test process is killed, and none left by any earlier run.
//!
//! The parent tests re-run this test binary as a child that starts a
//! cluster, reports its data directory (unique, part of every server's
//! command line), then panics or hangs until killed.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_harness::{Cluster, DATA_DIR_PREFIX, TEST_KUBECONFIG_ENV};

const CHILD_ENV: &str = "FERRY_HARNESS_LEFTOVERS_CHILD";

/// Command lines of all processes on the machine, by pid.
fn processes() -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
    })
    .collect()
}

fn servers_using(dir: &str) -> Vec<String> {
    processes()
        .into_iter()
        .map(|(_, cmd)| cmd)
        .filter(|cmd| cmd.contains(dir))
        .collect()
}

fn wait_until_gone(dir: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = servers_using(dir);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("servers outlived their test:\n{}", left.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the child in `mode`; returns it with its cluster's data directory
/// once its etcd, apiserver and controller manager are all running.
fn start_child(mode: &str) -> Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_with_cluster",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    // libtest prints "test child_with_cluster ... " before our line, and
    // the child waits for us after it: read on a thread, with a deadline.
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, dir)) = line.split_once("DATA_DIR=") {
                tx.take().map(|tx| tx.send(dir.to_owned()));
            }
        }
    });
    let Ok(dir) = rx.recv_timeout(Duration::from_secs(120)) else {
        child.kill()?;
        bail!("the child reported no data dir");
    };
    let running = servers_using(&dir);
    assert_eq!(
        running.len(),
        3,
        "etcd, apiserver and controller manager: {running:#?}"
    );
    Ok((child, dir))
}

/// The child: starts a cluster, reports it, waits for the parent's word,
/// then panics (mode `panic`) or sleeps until killed (mode `hang`).
#[tokio::test]
async fn child_with_cluster() -> Result<()> {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return Ok(()); // only meaningful as the child of the tests below
    };
    let cluster = Cluster::builder().with_controller_manager().start().await?;
    let dir = cluster
        .data_dir()
        .context("a local cluster")?
        .display()
        .to_string();
    println!("DATA_DIR={dir}");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    if mode == "panic" {
        panic!("deliberate panic with a running cluster");
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(cluster);
    Ok(())
}

#[test]
fn no_server_outlives_a_panicking_test() -> Result<()> {
    if std::env::var_os(TEST_KUBECONFIG_ENV).is_some() {
        return Ok(()); // no local servers to leave behind
    }
    let (mut child, dir) = start_child("panic")?;
    writeln!(child.stdin.as_mut().context("stdin")?, "go")?;
    let status = child.wait()?;
    assert!(
        !status.success(),
        "the child test should have failed by panicking"
    );
    wait_until_gone(&dir)?;
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was not removed"
    );
    Ok(())
}

#[test]
fn no_server_outlives_a_killed_test() -> Result<()> {
    if std::env::var_os(TEST_KUBECONFIG_ENV).is_some() {
        return Ok(());
    }
    let (mut child, dir) = start_child("hang")?;
    child.kill()?; // SIGKILL: no unwinding, no destructors
    child.wait()?;
    wait_until_gone(&dir)?;
    // Without destructors the directory stays; the next cluster start sweeps
    // directories of dead owners, but do not rely on that here.
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Servers whose owning test process (`ferry-harness-<pid>-` in their
/// command line) is gone.
fn orphans() -> Vec<String> {
    let all = processes();
    let alive = |pid: u32| all.iter().any(|(p, _)| *p == pid);
    all.iter()
        .map(|(_, cmd)| cmd)
        .filter(|cmd| {
            cmd.split(DATA_DIR_PREFIX)
                .skip(1)
                .filter_map(|rest| rest.split('-').next()?.parse::<u32>().ok())
                .any(|owner| !alive(owner))
        })
        .cloned()
        .collect()
}

#[test]
fn no_server_belongs_to_a_dead_process() {
    // A killed test's servers die within milliseconds (see the test above,
    // which may run at the same time): only lasting orphans are leaks.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut left = orphans();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = orphans();
    }
    assert!(left.is_empty(), "servers of dead test processes: {left:#?}");
}
