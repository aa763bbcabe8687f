//! `ferry-proxy init`: the init container that makes a pod's TCP go through
//! its sidecar, with iptables nat rules (DESIGN.md, "Interception").
//!
//! * Inbound: `PREROUTING` jumps to `FERRY_INBOUND`, which returns for the
//!   excluded destination ports (the injector always excludes the admin port
//!   4191, so the kubelet reaches the proxy's probes) and sends the rest to
//!   `FERRY_INBOUND_REDIRECT`: `REDIRECT --to-ports <inbound-port>`.
//! * Outbound: `OUTPUT` jumps to `FERRY_OUTBOUND`, which returns for the
//!   proxy's own UID (its connections to original destinations and to the
//!   app), for anything leaving through `lo` (the app talking to itself) and
//!   for the excluded destination ports, and sends the rest to
//!   `FERRY_OUTBOUND_REDIRECT`: `REDIRECT --to-ports <outbound-port>`.
//!
//! The proxy recovers the address the app dialled with
//! [`crate::orig_dst`]. Rules are computed by a pure function
//! ([`Interception::restore_input`]) and committed in one
//! `iptables-restore --noflush` transaction: Ferry's chains are declared
//! (created, or emptied when they exist) and refilled, and the two jumps are
//! added only if `iptables-save` does not show them yet, so running `init`
//! again gives the same table. The input is printed before it is applied;
//! `--dry-run` only prints it (as for an empty table).
//!
//! IPv4 always. The same rules go to `ip6tables` as well when the pod has
//! an IPv6 address of global scope (ULA included) at init time
//! (`--ipv6 auto`, the default: the CNI has configured the pod's network
//! before any init container runs), so that a dual-stack pod's IPv6 traffic
//! cannot go around the proxy; `--ipv6` (`always`) and `--ipv6 never`
//! override the detection. Link-local addresses alone do not count: Service
//! traffic never uses them, and IPv4-only nodes may lack IPv6 nat.

mod apply;
mod rules;

pub use apply::{Family, IPV4, IPV6, has_net_admin};
pub use rules::{
    INBOUND_CHAIN, INBOUND_JUMP, INBOUND_REDIRECT_CHAIN, Interception, OUTBOUND_CHAIN,
    OUTBOUND_JUMP, OUTBOUND_REDIRECT_CHAIN,
};

/// Flags of `ferry-proxy init` (the injector emits them; see the
/// ferry-injector crate doc).
#[derive(Clone, Debug, clap::Args)]
pub struct InitArgs {
    /// Port inbound TCP is redirected to (the proxy's inbound listener).
    #[arg(long, env = "FERRY_INBOUND_PORT", default_value_t = 4143)]
    pub inbound_port: u16,
    /// Port outbound TCP is redirected to (the proxy's outbound listener).
    #[arg(long, env = "FERRY_OUTBOUND_PORT", default_value_t = 4140)]
    pub outbound_port: u16,
    /// UID the proxy runs as; its own traffic is never redirected.
    #[arg(long, env = "FERRY_PROXY_UID", default_value_t = 2102)]
    pub proxy_uid: u32,
    /// Comma-separated destination ports of inbound TCP not to redirect.
    #[arg(long, env = "FERRY_EXCLUDE_INBOUND_PORTS", value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    pub exclude_inbound_ports: Vec<u16>,
    /// Comma-separated destination ports of outbound TCP not to redirect.
    #[arg(long, env = "FERRY_EXCLUDE_OUTBOUND_PORTS", value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    pub exclude_outbound_ports: Vec<u16>,
    /// Whether the rules also go to ip6tables: when the pod has a global
    /// IPv6 address (`auto`), `always` (`--ipv6` alone), or `never`.
    #[arg(
        long,
        env = "FERRY_INIT_IPV6",
        value_enum,
        default_value_t = Ipv6Mode::Auto,
        num_args = 0..=1,
        default_missing_value = "always"
    )]
    pub ipv6: Ipv6Mode,
    /// Print the rules (as for an empty nat table) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// When `init` installs the ip6tables rules too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ipv6Mode {
    /// When the pod has an IPv6 address of global scope.
    Auto,
    /// Always (`true` is accepted as well).
    #[value(alias = "true")]
    Always,
    /// Never (`false` is accepted as well).
    #[value(alias = "false")]
    Never,
}

/// Where the kernel lists a network namespace's IPv6 addresses; absent
/// when IPv6 is disabled.
const IF_INET6: &str = "/proc/net/if_inet6";

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No permission to change the nat table.
    #[error(
        "failed to change iptables rules: NET_ADMIN is missing (run the init container as root with the NET_ADMIN capability): {detail}"
    )]
    NoNetAdmin {
        /// What told us.
        detail: String,
    },
    /// The iptables command is not installed.
    #[error("failed to run {command}: not found (is iptables installed and on PATH?)")]
    Missing {
        /// The command.
        command: &'static str,
    },
    /// Running or talking to the iptables command failed.
    #[error("failed to run {command}")]
    Io {
        /// The command.
        command: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The iptables command exited with an error.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command.
        command: &'static str,
        /// What it printed.
        stderr: String,
    },
}

// === impl InitArgs ===

impl InitArgs {
    /// The rules these flags ask for.
    pub fn interception(&self) -> Interception {
        Interception {
            inbound_port: self.inbound_port,
            outbound_port: self.outbound_port,
            proxy_uid: self.proxy_uid,
            exclude_inbound_ports: sorted(&self.exclude_inbound_ports),
            exclude_outbound_ports: sorted(&self.exclude_outbound_ports),
        }
    }
}

fn sorted(ports: &[u16]) -> Vec<u16> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Runs `init`: prints the rules to `out`, then (unless `--dry-run`)
/// installs them.
pub fn run(args: &InitArgs, out: &mut impl std::io::Write) -> Result<(), InitError> {
    let interception = args.interception();
    let ipv6 = match args.ipv6 {
        Ipv6Mode::Always => true,
        Ipv6Mode::Never => false,
        Ipv6Mode::Auto => {
            let listed = std::fs::read_to_string(IF_INET6).unwrap_or_default();
            let found = global_ipv6_interface(&listed);
            let _ = match &found {
                Some(interface) => writeln!(
                    out,
                    "# IPv6 address of global scope on {interface}: ip6tables rules too"
                ),
                None => writeln!(out, "# no IPv6 address of global scope: IPv4 rules only"),
            };
            found.is_some()
        }
    };
    let families: &[(Family, &str)] = if ipv6 {
        &[(IPV4, "iptables"), (IPV6, "ip6tables")]
    } else {
        &[(IPV4, "iptables")]
    };
    let print = |out: &mut dyn std::io::Write, name: &str, input: &str| {
        let _ = writeln!(out, "# {name} rules");
        let _ = out.write_all(input.as_bytes());
        let _ = out.flush();
    };
    if args.dry_run {
        for (_, name) in families {
            print(out, name, &interception.restore_input(""));
        }
        return Ok(());
    }
    apply::check_net_admin()?;
    for (family, name) in families {
        let input = interception.restore_input(&family.save_nat()?);
        print(out, name, &input);
        family.restore(&input)?;
        tracing::info!(family = name, "Installed interception rules");
    }
    Ok(())
}

/// The first interface other than loopback with an IPv6 address of global
/// scope in `if_inet6` (the text of `/proc/net/if_inet6`: address, index,
/// prefix length, scope, flags, name).
fn global_ipv6_interface(if_inet6: &str) -> Option<&str> {
    if_inet6.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [_, _, _, "00", _, name] if name != "lo" => Some(name),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests;
