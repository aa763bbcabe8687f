//! A process group whose members die with the test process.
//!
//! The group is led by `sh -c 'read -r _; kill -9 0'`: the shell blocks on a
//! pipe that only the test process writes to (and never does). When the
//! [`Supervisor`] is dropped, or the test process dies in any way, the pipe
//! reaches end of file and the shell kills its whole process group. This
//! needs no `unsafe` (no `prctl` in `pre_exec`) and no polling.

use std::fs::File;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

/// Servers started in one process group, killed together on drop.
#[derive(Debug)]
pub(crate) struct Supervisor {
    watchdog: Child,
    lifeline: Option<ChildStdin>,
    children: Vec<(&'static str, Child)>,
}

// === impl Supervisor ===

impl Supervisor {
    pub(crate) fn new() -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let mut watchdog = Command::new("sh")
            .args(["-c", "read -r _; kill -9 0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("failed to start the watchdog shell")?;
        let lifeline = watchdog.stdin.take();
        Ok(Self {
            watchdog,
            lifeline,
            children: Vec::new(),
        })
    }

    /// Starts `cmd` in the group, with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        cmd: &mut Command,
        log: &Path,
    ) -> Result<()> {
        use std::os::unix::process::CommandExt as _;
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("failed to open {}", log.display()))?;
        let err = out
            .try_clone()
            .context("failed to clone a log file handle")?;
        let pgid = i32::try_from(self.watchdog.id()).context("pid out of range")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(pgid)
            .spawn()
            .with_context(|| format!("failed to start {name} ({:?})", cmd.get_program()))?;
        self.children.push((name, child));
        Ok(())
    }

    /// The first server that has exited, if any.
    pub(crate) fn exited(&mut self) -> Option<(&'static str, ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some((*name, status)),
                _ => None,
            })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // End of file on the watchdog's stdin: it kills the whole group.
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
        for (_, child) in &mut self.children {
            // Already dead unless the watchdog failed; either way, reap it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
