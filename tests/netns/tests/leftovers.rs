//! No namespace or process outlives its test: not when the test panics, not
//! when the test process is killed (the next test deletes what it left).
//!
//! The parent tests re-run this test binary as a child that creates a pod
//! linked to another, starts a process inside, prints the pods' names and
//! then panics or hangs until killed.

use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_netns::{Pod, link, namespaces, sweep_leftovers, unavailable};

const CHILD_ENV: &str = "FERRY_NETNS_LEFTOVERS_CHILD";

/// Command lines of all processes, to find the child's `sleep`.
fn processes_with(marker: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
        .filter(|cmd| cmd.contains(marker) && !cmd.contains("--exact"))
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts the child in `mode`; returns it with its pods' names once its
/// process runs.
fn start_child(mode: &str, marker: &str) -> Result<(Child, Vec<String>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_with_pods",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{marker}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    for line in BufReader::new(stdout).lines() {
        // libtest prints `test child_with_pods ... ` before it.
        let line = line?;
        if let Some((_, names)) = line.split_once("PODS ") {
            let names = names.split_whitespace().map(str::to_owned).collect();
            return Ok((child, names));
        }
    }
    let status = child.wait()?;
    bail!("child exited ({status}) before reporting its pods")
}

/// Not a test on its own: what the parents run.
#[test]
fn child_with_pods() -> Result<()> {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let (mode, marker) = spec.split_once(':').context("mode:marker")?;
    let a = Pod::new("a")?;
    let b = Pod::new("b")?;
    link(
        &a,
        Ipv4Addr::new(10, 200, 9, 1),
        &b,
        Ipv4Addr::new(10, 200, 9, 2),
        24,
    )?;
    let mut sleep = a.command("sleep");
    sleep.arg(marker);
    a.spawn(sleep)?;
    wait_until("the sleep runs", || !processes_with(marker).is_empty())?;
    println!("PODS {} {}", a.name(), b.name());
    match mode {
        "panic" => panic!("the test fails while its pods exist"),
        _ => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
    }
}

#[test]
fn a_panicking_test_leaves_nothing() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let marker = "600.0001";
    let (mut child, pods) = start_child("panic", marker)?;
    assert!(!child.wait()?.success(), "the child test should fail");
    let left: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| pods.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces outlived their test: {left:?}");
    wait_until("the sleep is gone", || processes_with(marker).is_empty())?;
    Ok(())
}

#[test]
fn a_killed_test_leaves_nothing_after_the_next_sweep() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let marker = "600.0002";
    let (mut child, pods) = start_child("hang", marker)?;
    child.kill()?;
    child.wait()?;
    // Another test's `Pod::new` may have swept them already.
    sweep_leftovers();
    wait_until("nothing runs in the dead test's pods", || {
        processes_with(marker).is_empty()
    })?;
    let left: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| pods.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces survived the sweep: {left:?}");
    Ok(())
}
