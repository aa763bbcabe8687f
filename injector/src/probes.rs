//! Rewriting the app's HTTP probes to the proxy's admin port, so they keep
//! working when inbound traffic is intercepted (contract in the crate doc).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::config::ADMIN_PORT;

/// Path prefix of rewritten probes on the admin port.
pub const APP_PROBE_PREFIX: &str = "/app-probe/";

/// One original probe, as the proxy receives it in `FERRY_APP_PROBES`
/// (a JSON object keyed by the rewritten path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProbe {
    /// The app's port, resolved from a named port if needed.
    pub port: u16,
    /// Original path, `/` when the probe had none.
    pub path: String,
    /// `HTTP` or `HTTPS` (HTTPS is not verified, as the kubelet does).
    pub scheme: String,
    /// Headers the kubelet would have sent (`Host` among them, if set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<AppProbeHeader>,
}

/// A header of an [`AppProbe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppProbeHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Which probe field of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// A probe to replace in `spec.<list>[container]`.
#[derive(Debug, Clone)]
pub(crate) struct ProbeRewrite {
    pub(crate) list: &'static str,
    pub(crate) container: usize,
    pub(crate) kind: ProbeKind,
    pub(crate) probe: Probe,
}

// ProbeKind

impl ProbeKind {
    const ALL: [Self; 3] = [Self::Liveness, Self::Readiness, Self::Startup];

    /// The segment of the rewritten path.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
            Self::Startup => "startup",
        }
    }

    /// The field name in a Container, as in a JSON pointer.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
            Self::Startup => "startupProbe",
        }
    }

    fn get(self, container: &Container) -> Option<&Probe> {
        match self {
            Self::Liveness => container.liveness_probe.as_ref(),
            Self::Readiness => container.readiness_probe.as_ref(),
            Self::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// Finds the app's HTTP probes that interception would break and returns
/// their replacements with the originals keyed by the new path. Probes on
/// skipped inbound ports, with a `host` (they do not reach the pod), or on
/// a named port the container does not declare are left alone. The app's
/// own native sidecars (init containers with `restartPolicy: Always`) are
/// probed like its containers; other init containers have no probes.
pub(crate) fn rewrite(
    spec: &PodSpec,
    skip_inbound: &[u16],
) -> (Vec<ProbeRewrite>, BTreeMap<String, AppProbe>) {
    let mut rewrites = Vec::new();
    let mut originals = BTreeMap::new();
    let regular = spec
        .containers
        .iter()
        .enumerate()
        .map(|c| ("containers", c));
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| ("initContainers", c));
    for (list, (index, container)) in regular.chain(sidecars) {
        for kind in ProbeKind::ALL {
            let Some(probe) = kind.get(container) else {
                continue;
            };
            let Some(http) = &probe.http_get else {
                continue;
            };
            if http.host.is_some() {
                continue;
            }
            let Some(port) = resolve_port(container, &http.port) else {
                continue;
            };
            if skip_inbound.contains(&port) || port == ADMIN_PORT {
                continue;
            }
            let path = format!("{APP_PROBE_PREFIX}{}/{}", container.name, kind.as_str());
            originals.insert(
                path.clone(),
                AppProbe {
                    port,
                    path: http
                        .path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "/".to_owned()),
                    scheme: http
                        .scheme
                        .clone()
                        .unwrap_or_else(|| "HTTP".to_owned())
                        .to_uppercase(),
                    http_headers: http
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|h| AppProbeHeader {
                            name: h.name.clone(),
                            value: h.value.clone(),
                        })
                        .collect(),
                },
            );
            let probe = Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(path),
                    port: IntOrString::Int(i32::from(ADMIN_PORT)),
                    scheme: Some("HTTP".to_owned()),
                    host: None,
                    http_headers: None,
                }),
                ..probe.clone()
            };
            rewrites.push(ProbeRewrite {
                list,
                container: index,
                kind,
                probe,
            });
        }
    }
    (rewrites, originals)
}

fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => {
                container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))?
                    .container_port
            }
        },
    };
    u16::try_from(number).ok().filter(|p| *p > 0)
}
