//! The interception rules as data: a pure function from the flags (and the
//! nat table as it is) to the `iptables-restore` input that installs them.

use std::fmt::Write as _;

/// Chain every inbound TCP connection passes through (from `PREROUTING`).
pub const INBOUND_CHAIN: &str = "FERRY_INBOUND";
/// Chain that redirects inbound TCP to the proxy's inbound port.
pub const INBOUND_REDIRECT_CHAIN: &str = "FERRY_INBOUND_REDIRECT";
/// Chain every outbound TCP connection passes through (from `OUTPUT`).
pub const OUTBOUND_CHAIN: &str = "FERRY_OUTBOUND";
/// Chain that redirects outbound TCP to the proxy's outbound port.
pub const OUTBOUND_REDIRECT_CHAIN: &str = "FERRY_OUTBOUND_REDIRECT";

/// The jump from `PREROUTING` into Ferry's inbound chain.
pub const INBOUND_JUMP: &str = "-A PREROUTING -p tcp -j FERRY_INBOUND";
/// The jump from `OUTPUT` into Ferry's outbound chain.
pub const OUTBOUND_JUMP: &str = "-A OUTPUT -p tcp -j FERRY_OUTBOUND";

/// What to intercept: the flags of `ferry-proxy init`, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interception {
    /// Where inbound TCP is redirected.
    pub inbound_port: u16,
    /// Where outbound TCP is redirected.
    pub outbound_port: u16,
    /// The proxy's UID: its own connections are never redirected.
    pub proxy_uid: u32,
    /// Destination ports of inbound connections left alone.
    pub exclude_inbound_ports: Vec<u16>,
    /// Destination ports of outbound connections left alone.
    pub exclude_outbound_ports: Vec<u16>,
}

// === impl Interception ===

impl Interception {
    /// The `iptables-restore --noflush` input for the nat table. Declaring
    /// Ferry's chains creates them or empties them, so they are rebuilt from
    /// scratch on every run; the jumps from `PREROUTING` and `OUTPUT` are
    /// added only when `existing` (the output of `iptables-save -t nat`)
    /// does not have them yet. Running it twice leaves the same rules.
    pub fn restore_input(&self, existing: &str) -> String {
        let has = |jump: &str| existing.lines().any(|line| line.trim() == jump);
        let mut out = String::from("*nat\n");
        let chains = [
            INBOUND_CHAIN,
            INBOUND_REDIRECT_CHAIN,
            OUTBOUND_CHAIN,
            OUTBOUND_REDIRECT_CHAIN,
        ];
        for chain in chains {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        // iptables-nft empties a declared chain too, but say it explicitly.
        for chain in chains {
            let _ = writeln!(out, "-F {chain}");
        }
        for line in self.chain_rules() {
            out.push_str(&line);
            out.push('\n');
        }
        for jump in [INBOUND_JUMP, OUTBOUND_JUMP] {
            if !has(jump) {
                out.push_str(jump);
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
        out
    }

    /// The rules inside Ferry's chains, in order.
    pub fn chain_rules(&self) -> Vec<String> {
        let mut rules = vec![format!(
            "-A {INBOUND_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            self.inbound_port
        )];
        rules.extend(
            self.exclude_inbound_ports
                .iter()
                .map(|port| format!("-A {INBOUND_CHAIN} -p tcp -m tcp --dport {port} -j RETURN")),
        );
        rules.push(format!(
            "-A {INBOUND_CHAIN} -p tcp -j {INBOUND_REDIRECT_CHAIN}"
        ));
        rules.push(format!(
            "-A {OUTBOUND_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            self.outbound_port
        ));
        // The proxy's own connections (to the original destination, to the
        // app over loopback) must not come back to it.
        rules.push(format!(
            "-A {OUTBOUND_CHAIN} -m owner --uid-owner {} -j RETURN",
            self.proxy_uid
        ));
        // The app talking to itself, over 127.0.0.1 or its own pod IP.
        rules.push(format!("-A {OUTBOUND_CHAIN} -o lo -j RETURN"));
        rules.extend(
            self.exclude_outbound_ports
                .iter()
                .map(|port| format!("-A {OUTBOUND_CHAIN} -p tcp -m tcp --dport {port} -j RETURN")),
        );
        rules.push(format!(
            "-A {OUTBOUND_CHAIN} -p tcp -j {OUTBOUND_REDIRECT_CHAIN}"
        ));
        rules
    }
}
