//! Sidecar mode's settings, parsed from the environment the injector sets
//! (a function of a map, so tests need no environment mutation).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::probes::AppProbes;
use crate::mesh::inbound::{BadPolicy, InboundPolicy};
use crate::server::ServerParams;

/// Port of the inbound listener when `FERRY_INBOUND_PORT` is not set.
pub const DEFAULT_INBOUND_PORT: u16 = 4143;
/// Port of the outbound listener when `FERRY_OUTBOUND_PORT` is not set.
pub const DEFAULT_OUTBOUND_PORT: u16 = 4140;

/// Everything sidecar mode needs, typed.
#[derive(Clone, Debug)]
pub struct SidecarSettings {
    /// Where redirected inbound connections arrive (`0.0.0.0:4143`).
    pub inbound: SocketAddr,
    /// Where redirected outbound connections arrive (`127.0.0.1:4140`:
    /// `REDIRECT` in `OUTPUT` sends local traffic to the loopback address).
    pub outbound: SocketAddr,
    /// The IPv6 inbound listener (`[::]:4143`, IPv6 only), for
    /// `init --ipv6`; skipped when the pod has no IPv6.
    pub inbound_v6: SocketAddr,
    /// The IPv6 outbound listener (`[::1]:4140`).
    pub outbound_v6: SocketAddr,
    /// The admin server (`/live`, `/ready`, `/metrics`, `/config`,
    /// `/app-probe/…`).
    pub admin: SocketAddr,
    /// The app's original HTTP probes, by rewritten path.
    pub app_probes: AppProbes,
    /// Limit of one connect to an original destination or to the app.
    pub connect_timeout: Duration,
    /// Limit of one app probe, from connect to response headers.
    pub probe_timeout: Duration,
    /// What the inbound side does with connections that are not mesh
    /// mTLS (`FERRY_INBOUND_POLICY`: `permissive`, the default, or
    /// `strict`).
    pub inbound_policy: InboundPolicy,
    /// Whether the app gets the verified client identity as the
    /// `ferry-client-identity` header (`FERRY_INBOUND_IDENTITY_HEADER`:
    /// `true` or `false`, the default).
    pub inbound_identity_header: bool,
    /// Where and how outbound targets are discovered; `None` (no
    /// `FERRY_DISCOVERY_ADDR`) forwards every outbound connection untouched.
    pub discovery: Option<DiscoverySettings>,
    /// Ports whose outbound connections are opaque TCP, never detected
    /// (`FERRY_OPAQUE_PORTS`).
    pub opaque_ports: BTreeSet<u16>,
    /// Limits on the clients of the outbound and inbound listeners
    /// ([`ServerParams::sidecar`], or the `FERRY_*` variables of
    /// [`ServerParams::from_env`]); among them `FERRY_DETECT_TIMEOUT`, how
    /// long a connection's first bytes are waited for before it is opaque
    /// (outbound) or not the mesh's (inbound).
    pub server: ServerParams,
    /// How long the proxy serves on after SIGTERM ([`crate::shutdown`];
    /// the binary's `--drain`, `FERRY_DRAIN`).
    pub drain: Duration,
}

/// On-demand discovery of outbound targets.
#[derive(Clone, Debug)]
pub struct DiscoverySettings {
    /// ferry-control's discovery address (`FERRY_DISCOVERY_ADDR`).
    pub addr: String,
    /// The pod's namespace, the caller's namespace of every subscription
    /// (`FERRY_POD_NAMESPACE`, required with discovery).
    pub namespace: String,
    /// How long the first connection to a target waits for its first view
    /// (`FERRY_DISCOVERY_WAIT`) before forwarding it untouched.
    pub first_view_wait: Duration,
    /// Most targets subscribed at once (`FERRY_MAX_TARGETS`); the least
    /// recently used is dropped to make room.
    pub max_targets: usize,
    /// A target without a new connection for this long, and none open, is
    /// unsubscribed (`FERRY_TARGET_IDLE`).
    pub idle_after: Duration,
}

/// A variable of the proxy's environment has a value it cannot use.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse {name}={value:?}: {reason}")]
pub struct SettingsError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

// === impl SidecarSettings ===

impl SidecarSettings {
    /// Reads `FERRY_INBOUND_PORT`, `FERRY_OUTBOUND_PORT`, `FERRY_ADMIN_ADDR`
    /// (else `admin`, the `--admin` flag), `FERRY_APP_PROBES`, the outbound
    /// variables (`FERRY_DISCOVERY_ADDR`, `FERRY_POD_NAMESPACE`,
    /// `FERRY_OPAQUE_PORTS`, `FERRY_DISCOVERY_WAIT`,
    /// `FERRY_MAX_TARGETS`, `FERRY_TARGET_IDLE`; durations as `500ms`,
    /// `2s`, `10m`) and the limits on clients ([`ServerParams::from_env`])
    /// from `vars`.
    pub fn from_env<I>(vars: I, admin: SocketAddr) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let port = |name: &'static str, default: u16| -> Result<u16, SettingsError> {
            match vars.get(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u16>() {
                    Ok(port) if port > 0 => Ok(port),
                    _ => Err(SettingsError {
                        name,
                        value: value.clone(),
                        reason: "expected a port number (1-65535)".into(),
                    }),
                },
            }
        };
        let inbound_port = port("FERRY_INBOUND_PORT", DEFAULT_INBOUND_PORT)?;
        let outbound_port = port("FERRY_OUTBOUND_PORT", DEFAULT_OUTBOUND_PORT)?;
        let admin = match vars.get("FERRY_ADMIN_ADDR") {
            None => admin,
            Some(value) => value.trim().parse().map_err(|_| SettingsError {
                name: "FERRY_ADMIN_ADDR",
                value: value.clone(),
                reason: "expected IP:PORT".into(),
            })?,
        };
        let app_probes = match vars.get("FERRY_APP_PROBES") {
            None => AppProbes::default(),
            Some(json) => AppProbes::from_json(json).map_err(|error| SettingsError {
                name: "FERRY_APP_PROBES",
                value: json.clone(),
                reason: error.to_string(),
            })?,
        };
        let error = |name: &'static str, reason: &str| SettingsError {
            name,
            value: vars.get(name).cloned().unwrap_or_default(),
            reason: reason.to_string(),
        };
        let duration = |name: &'static str, default: Duration| match vars.get(name) {
            None => Ok(default),
            Some(value) => match ferry_core::flags::parse_duration(value.trim()) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(error(
                    name,
                    "expected a positive duration such as 500ms, 2s or 10m",
                )),
            },
        };
        let opaque_ports = match vars.get("FERRY_OPAQUE_PORTS") {
            None => BTreeSet::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
                .collect::<Option<BTreeSet<u16>>>()
                .ok_or_else(|| error("FERRY_OPAQUE_PORTS", "expected a comma list of ports"))?,
        };
        let server = ServerParams::from_env(&vars, ServerParams::sidecar())?;
        let discovery = match vars.get("FERRY_DISCOVERY_ADDR").map(|a| a.trim()) {
            None | Some("") => None,
            Some(addr) => {
                if let Err(e) = ferry_api::client::endpoint(addr) {
                    return Err(error("FERRY_DISCOVERY_ADDR", &e.to_string()));
                }
                let namespace = vars
                    .get("FERRY_POD_NAMESPACE")
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        error(
                            "FERRY_POD_NAMESPACE",
                            "required with FERRY_DISCOVERY_ADDR (the caller's namespace)",
                        )
                    })?;
                let max_targets = match vars.get("FERRY_MAX_TARGETS") {
                    None => 10_000,
                    Some(value) => value
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| error("FERRY_MAX_TARGETS", "expected a positive number"))?,
                };
                Some(DiscoverySettings {
                    addr: addr.to_string(),
                    namespace,
                    first_view_wait: duration("FERRY_DISCOVERY_WAIT", Duration::from_secs(2))?,
                    max_targets,
                    idle_after: duration("FERRY_TARGET_IDLE", Duration::from_secs(600))?,
                })
            }
        };
        let inbound_policy = match vars.get("FERRY_INBOUND_POLICY") {
            None => InboundPolicy::default(),
            Some(value) => value.parse().map_err(|error: BadPolicy| SettingsError {
                name: "FERRY_INBOUND_POLICY",
                value: value.clone(),
                reason: error.to_string(),
            })?,
        };
        let inbound_identity_header = match vars.get("FERRY_INBOUND_IDENTITY_HEADER") {
            None => false,
            Some(value) => value.trim().parse().map_err(|_| SettingsError {
                name: "FERRY_INBOUND_IDENTITY_HEADER",
                value: value.clone(),
                reason: "expected true or false".into(),
            })?,
        };
        Ok(Self {
            inbound: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), inbound_port),
            outbound: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), outbound_port),
            inbound_v6: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), inbound_port),
            outbound_v6: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), outbound_port),
            admin,
            app_probes,
            connect_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(10),
            inbound_policy,
            inbound_identity_header,
            discovery,
            opaque_ports,
            server,
            drain: crate::shutdown::DEFAULT_DRAIN,
        })
    }
}

#[cfg(test)]
mod inbound_tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<SidecarSettings, SettingsError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        SidecarSettings::from_env(vars, "127.0.0.1:4191".parse().expect("an address"))
    }

    #[test]
    fn inbound_policy_and_identity_header() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.inbound_policy, InboundPolicy::Permissive);
        assert!(!defaults.inbound_identity_header);
        let set = settings(&[
            ("FERRY_INBOUND_POLICY", "strict"),
            ("FERRY_INBOUND_IDENTITY_HEADER", "true"),
        ])
        .unwrap();
        assert_eq!(set.inbound_policy, InboundPolicy::Strict);
        assert!(set.inbound_identity_header);
        for (name, value) in [
            ("FERRY_INBOUND_POLICY", "lenient"),
            ("FERRY_INBOUND_IDENTITY_HEADER", "yes"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
