//! Sidecar mode's settings, parsed from the environment the injector sets
//! (a function of a map, so tests need no environment mutation).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::probes::AppProbes;
use crate::mesh::inbound::{BadPolicy, InboundPolicy};

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
    /// (else `admin`, the `--admin` flag) and `FERRY_APP_PROBES` from
    /// `vars`. The other variables of the injector's contract (identity,
    /// discovery, trust anchors) are for parts not built yet and are ignored.
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
