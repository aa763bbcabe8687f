//! What an injection needs to know that is not in the Pod: the proxy image,
//! where the control plane is, and the defaults that pod annotations
//! override.

/// Port the proxy accepts intercepted inbound TCP on.
pub const INBOUND_PORT: u16 = 4143;
/// Port the proxy accepts intercepted outbound TCP on.
pub const OUTBOUND_PORT: u16 = 4140;
/// Port of the proxy's admin server (`/live`, `/ready`, `/metrics`, probes).
pub const ADMIN_PORT: u16 = 4191;
/// UID the proxy runs as; the iptables rules let its own traffic through.
pub const PROXY_UID: i64 = 2102;
/// Name of the sidecar container.
pub const PROXY_CONTAINER: &str = "ferry-proxy";
/// Name of the init container that installs the iptables rules.
pub const INIT_CONTAINER: &str = "ferry-init";
/// ConfigMap (in the pod's namespace) holding the trust anchors under `ca.pem`.
pub const TRUST_ANCHORS_CONFIG_MAP: &str = "ferry-trust-anchors";
/// Audience of the projected ServiceAccount token the proxy presents to the CA.
pub const TOKEN_AUDIENCE: &str = "ferry";

/// How the proxy container is added to the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarMode {
    /// An init container with `restartPolicy: Always` (Kubernetes 1.29+):
    /// it starts before the app's init containers and does not keep Jobs
    /// from completing.
    Native,
    /// The first regular container, with a `postStart` hook that holds the
    /// app's containers until the proxy is ready.
    Classic,
}

/// Resource requests and limits of the proxy container, as Kubernetes
/// quantities. `None` leaves that entry out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyResources {
    /// `requests.cpu`.
    pub cpu_request: Option<String>,
    /// `requests.memory`.
    pub memory_request: Option<String>,
    /// `limits.cpu`.
    pub cpu_limit: Option<String>,
    /// `limits.memory`.
    pub memory_limit: Option<String>,
}

/// Everything about an injection that does not come from the Pod itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// Ferry's version, written to the `ferry.dev/injected` annotation.
    pub version: String,
    /// Proxy image, used for both the init container and the sidecar.
    pub proxy_image: String,
    /// `imagePullPolicy` of both containers; `None` leaves the server default.
    pub image_pull_policy: Option<String>,
    /// Address of ferry-control's discovery server (`host:port`).
    pub discovery_addr: String,
    /// ferry-control's TLS address (`https://host:port`); when set, proxies
    /// get their certificates there and watch discovery there, presenting
    /// them (`FERRY_IDENTITY_ADDR` and `FERRY_DISCOVERY_ADDR`), and
    /// `discovery_addr` is not used.
    pub control_tls_addr: Option<String>,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// OTLP endpoint; when `None`, `FERRY_TRACING_ENDPOINT` is not set.
    pub tracing_endpoint: Option<String>,
    /// Default `FERRY_LOG`, overridden by `ferry.dev/proxy-log-level`.
    pub log_level: String,
    /// Default proxy resources, overridden entry by entry by annotations.
    pub resources: ProxyResources,
    /// Native or classic sidecar; the webhook picks it from the server version.
    pub sidecar_mode: SidecarMode,
    /// Seconds the proxy gets to become ready before the pod start fails.
    pub proxy_ready_timeout_secs: u32,
}

// InjectConfig

impl InjectConfig {
    /// Defaults for a given Ferry version: image
    /// `localhost/ferry/proxy:<version>` (as `images/build.sh` names it),
    /// discovery at `ferry-control.ferry-system.svc.cluster.local:8090`,
    /// trust domain `cluster.local`, native sidecar.
    pub fn new(version: impl Into<String>) -> Self {
        let version = version.into();
        Self {
            proxy_image: format!("localhost/ferry/proxy:{version}"),
            version,
            image_pull_policy: None,
            discovery_addr: "ferry-control.ferry-system.svc.cluster.local:8090".to_owned(),
            control_tls_addr: None,
            trust_domain: "cluster.local".to_owned(),
            tracing_endpoint: None,
            log_level: "info".to_owned(),
            resources: ProxyResources {
                cpu_request: Some("100m".to_owned()),
                memory_request: Some("32Mi".to_owned()),
                cpu_limit: None,
                memory_limit: Some("256Mi".to_owned()),
            },
            sidecar_mode: SidecarMode::Native,
            proxy_ready_timeout_secs: 120,
        }
    }

    /// The same config with another sidecar mode.
    pub fn with_sidecar_mode(mut self, mode: SidecarMode) -> Self {
        self.sidecar_mode = mode;
        self
    }
}

// SidecarMode

impl SidecarMode {
    /// Native sidecars from Kubernetes 1.29 on (beta, on by default), classic
    /// before. `minor` may carry a `+` suffix, as some providers report it.
    pub fn for_server_version(major: &str, minor: &str) -> Self {
        let digits = |s: &str| -> Option<u32> {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..end].parse().ok()
        };
        match (digits(major), digits(minor)) {
            (Some(major), Some(minor)) if major > 1 || (major == 1 && minor >= 29) => Self::Native,
            _ => Self::Classic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sidecars_from_1_29() {
        for (major, minor, mode) in [
            ("1", "20", SidecarMode::Classic),
            ("1", "28+", SidecarMode::Classic),
            ("1", "29", SidecarMode::Native),
            ("1", "32+", SidecarMode::Native),
            ("2", "0", SidecarMode::Native),
            ("", "", SidecarMode::Classic),
        ] {
            assert_eq!(
                SidecarMode::for_server_version(major, minor),
                mode,
                "{major}.{minor}"
            );
        }
    }
}
