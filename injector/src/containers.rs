//! The containers and volumes the injector adds: `ferry-init` (iptables),
//! `ferry-proxy` (the sidecar) and the identity and trust-anchor volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, Probe,
    ProjectedVolumeSource, ResourceFieldSelector, ResourceRequirements, SecurityContext,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::annotations::{PodSettings, join_ports};
use crate::config::{
    ADMIN_PORT, INBOUND_PORT, INIT_CONTAINER, InjectConfig, OUTBOUND_PORT, PROXY_CONTAINER,
    PROXY_UID, SidecarMode, TOKEN_AUDIENCE, TRUST_ANCHORS_CONFIG_MAP,
};

/// Volume holding the projected ServiceAccount token (audience `ferry`).
pub const IDENTITY_VOLUME: &str = "ferry-identity";
/// Volume holding the trust anchors.
pub const TRUST_VOLUME: &str = "ferry-trust-anchors";
const IDENTITY_DIR: &str = "/var/run/secrets/ferry/identity";
const TRUST_DIR: &str = "/var/run/ferry/trust";

/// The `ferry-init` container: installs the iptables rules, as root with
/// only NET_ADMIN and NET_RAW. The admin port is always skipped so kubelet
/// reaches the proxy's probes directly.
pub(crate) fn init_container(config: &InjectConfig, settings: &PodSettings) -> Container {
    let mut skip_inbound = settings.skip_inbound.clone();
    skip_inbound.push(ADMIN_PORT);
    skip_inbound.sort_unstable();
    skip_inbound.dedup();
    let mut args = vec![
        "init".to_owned(),
        "--inbound-port".to_owned(),
        INBOUND_PORT.to_string(),
        "--outbound-port".to_owned(),
        OUTBOUND_PORT.to_string(),
        "--proxy-uid".to_owned(),
        PROXY_UID.to_string(),
        "--exclude-inbound-ports".to_owned(),
        join_ports(&skip_inbound),
    ];
    if !settings.skip_outbound.is_empty() {
        args.push("--exclude-outbound-ports".to_owned());
        args.push(join_ports(&settings.skip_outbound));
    }
    Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(config.proxy_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        args: Some(args),
        resources: Some(resources(&settings.resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()]),
                drop: Some(vec!["ALL".to_owned()]),
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The `ferry-proxy` sidecar. `app_probes` is the JSON of the rewritten app
/// probes (see the crate doc), if any.
pub(crate) fn proxy_container(
    config: &InjectConfig,
    settings: &PodSettings,
    app_probes: Option<String>,
) -> Container {
    let mut container = Container {
        name: PROXY_CONTAINER.to_owned(),
        image: Some(config.proxy_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        args: Some(vec!["--mode".to_owned(), "sidecar".to_owned()]),
        env: Some(proxy_env(config, settings, app_probes)),
        ports: Some(vec![
            port("ferry-inbound", INBOUND_PORT),
            port("ferry-admin", ADMIN_PORT),
        ]),
        resources: Some(resources(&settings.resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".to_owned()]),
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(PROXY_UID),
            ..SecurityContext::default()
        }),
        readiness_probe: Some(admin_probe("/ready", 5, 3)),
        liveness_probe: Some(admin_probe("/live", 10, 3)),
        volume_mounts: Some(vec![
            mount(IDENTITY_VOLUME, IDENTITY_DIR),
            mount(TRUST_VOLUME, TRUST_DIR),
        ]),
        ..Container::default()
    };
    let timeout = config.proxy_ready_timeout_secs.max(1);
    match config.sidecar_mode {
        SidecarMode::Native => {
            // The kubelet starts the next init container only once the
            // startup probe passed: the app waits for a ready proxy.
            container.restart_policy = Some("Always".to_owned());
            container.startup_probe = Some(admin_probe("/ready", 1, timeout as i32));
        }
        SidecarMode::Classic => {
            // The kubelet starts the next container only once postStart
            // returned: `ferry-proxy await` returns when /ready answers 200.
            container.lifecycle = Some(Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec![
                            "ferry-proxy".to_owned(),
                            "await".to_owned(),
                            "--admin-port".to_owned(),
                            ADMIN_PORT.to_string(),
                            "--timeout".to_owned(),
                            format!("{timeout}s"),
                        ]),
                    }),
                    ..LifecycleHandler::default()
                }),
                ..Lifecycle::default()
            });
        }
    }
    container
}

/// The projected token and trust-anchor volumes.
pub(crate) fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: IDENTITY_VOLUME.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(TOKEN_AUDIENCE.to_owned()),
                        expiration_seconds: Some(3600),
                        path: "token".to_owned(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: TRUST_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: TRUST_ANCHORS_CONFIG_MAP.to_owned(),
                items: Some(vec![KeyToPath {
                    key: "ca.pem".to_owned(),
                    path: "ca.pem".to_owned(),
                    mode: None,
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

fn proxy_env(
    config: &InjectConfig,
    settings: &PodSettings,
    app_probes: Option<String>,
) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("FERRY_POD_NAME", "metadata.name"),
        field_env("FERRY_POD_NAMESPACE", "metadata.namespace"),
        field_env("FERRY_POD_IP", "status.podIP"),
        field_env("FERRY_SERVICE_ACCOUNT", "spec.serviceAccountName"),
    ];
    match &config.control_tls_addr {
        Some(tls) => env.extend([
            value_env("FERRY_DISCOVERY_ADDR", tls),
            value_env("FERRY_IDENTITY_ADDR", tls),
        ]),
        None => env.push(value_env("FERRY_DISCOVERY_ADDR", &config.discovery_addr)),
    }
    env.push(value_env("FERRY_TRUST_DOMAIN", &config.trust_domain));
    if let Some(endpoint) = &config.tracing_endpoint {
        env.push(value_env("FERRY_TRACING_ENDPOINT", endpoint));
    }
    env.extend([
        value_env("FERRY_LOG", &settings.log_level),
        value_env("FERRY_IDENTITY_TOKEN", &format!("{IDENTITY_DIR}/token")),
        value_env("FERRY_TRUST_ANCHORS", &format!("{TRUST_DIR}/ca.pem")),
    ]);
    if !settings.opaque.is_empty() {
        env.push(value_env(
            "FERRY_OPAQUE_PORTS",
            &join_ports(&settings.opaque),
        ));
    }
    if let Some(policy) = settings.inbound_policy {
        env.push(value_env("FERRY_INBOUND_POLICY", policy));
    }
    if let Some(header) = settings.inbound_identity_header {
        env.push(value_env("FERRY_INBOUND_IDENTITY_HEADER", header));
    }
    if settings.resources.cpu_limit.is_some() {
        // The proxy's CPU limit, rounded up to whole cores: its threads.
        env.push(EnvVar {
            name: "FERRY_PROXY_CORES".to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some(PROXY_CONTAINER.to_owned()),
                    resource: "limits.cpu".to_owned(),
                    divisor: Some(Quantity("1".to_owned())),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    env.extend([
        value_env("FERRY_INBOUND_PORT", &INBOUND_PORT.to_string()),
        value_env("FERRY_OUTBOUND_PORT", &OUTBOUND_PORT.to_string()),
        value_env("FERRY_ADMIN_ADDR", &format!("0.0.0.0:{ADMIN_PORT}")),
    ]);
    if let Some(probes) = app_probes {
        env.push(value_env("FERRY_APP_PROBES", &probes));
    }
    env
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn admin_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(ADMIN_PORT)),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn resources(r: &crate::config::ProxyResources) -> ResourceRequirements {
    let map = |entries: [(&str, &Option<String>); 2]| {
        let map: BTreeMap<String, Quantity> = entries
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), Quantity(v.clone()))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: map([("cpu", &r.cpu_request), ("memory", &r.memory_request)]),
        limits: map([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)]),
        ..ResourceRequirements::default()
    }
}
