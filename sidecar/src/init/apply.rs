//! The thin, impure part of `init`: checks NET_ADMIN, reads the nat table
//! with `iptables-save` and feeds the rules to `iptables-restore --noflush`
//! (one atomic commit of the whole table).

use std::io::{ErrorKind, Write as _};
use std::process::{Command, Stdio};

use super::InitError;

/// Bit of CAP_NET_ADMIN in the capability sets of `/proc/self/status`.
const CAP_NET_ADMIN: u32 = 12;

/// An iptables family: the commands that read and write its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    /// `iptables-save` or `ip6tables-save`.
    pub save: &'static str,
    /// `iptables-restore` or `ip6tables-restore`.
    pub restore: &'static str,
}

/// IPv4.
pub const IPV4: Family = Family {
    save: "iptables-save",
    restore: "iptables-restore",
};

/// IPv6.
pub const IPV6: Family = Family {
    save: "ip6tables-save",
    restore: "ip6tables-restore",
};

/// Whether the effective capabilities in `status` (the text of
/// `/proc/self/status`) include CAP_NET_ADMIN; `None` if they are not there.
pub fn has_net_admin(status: &str) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << CAP_NET_ADMIN) != 0)
}

/// Fails with [`InitError::NoNetAdmin`] when this process lacks NET_ADMIN.
pub(super) fn check_net_admin() -> Result<(), InitError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match has_net_admin(&status) {
        Some(false) => Err(InitError::NoNetAdmin {
            detail: "CAP_NET_ADMIN is not in the effective capabilities".into(),
        }),
        // Unknown: let iptables tell.
        Some(true) | None => Ok(()),
    }
}

// === impl Family ===

impl Family {
    /// The nat table as `iptables-save -t nat` prints it.
    pub fn save_nat(self) -> Result<String, InitError> {
        let output = Command::new(self.save)
            .args(["-t", "nat"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| spawn_error(self.save, source))?;
        if !output.status.success() {
            return Err(exit_error(self.save, &output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Commits `input` with `iptables-restore --noflush`.
    pub fn restore(self, input: &str) -> Result<(), InitError> {
        let mut child = Command::new(self.restore)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| spawn_error(self.restore, source))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|source| InitError::Io {
                    command: self.restore,
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| InitError::Io {
            command: self.restore,
            source,
        })?;
        if !output.status.success() {
            return Err(exit_error(self.restore, &output.stderr));
        }
        Ok(())
    }
}

fn spawn_error(command: &'static str, source: std::io::Error) -> InitError {
    if source.kind() == ErrorKind::NotFound {
        InitError::Missing { command }
    } else {
        InitError::Io { command, source }
    }
}

/// Tells a missing permission apart from other failures: iptables-legacy
/// says "Permission denied (you must be root)", iptables-nft "Operation not
/// permitted".
fn exit_error(command: &'static str, stderr: &[u8]) -> InitError {
    let stderr = String::from_utf8_lossy(stderr).trim().to_string();
    if stderr.contains("Permission denied")
        || stderr.contains("Operation not permitted")
        || stderr.contains("must be root")
    {
        InitError::NoNetAdmin {
            detail: format!("{command}: {stderr}"),
        }
    } else {
        InitError::Failed { command, stderr }
    }
}
