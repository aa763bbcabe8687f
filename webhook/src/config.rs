//! The webhook's settings, typed at the edge: a clap `Args` group that the
//! standalone binary and ferry-control both flatten into their CLI.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferry_injector::{InjectConfig, ProxyResources, SidecarMode};

/// What the apiserver does when it cannot reach the webhook.
///
/// The default is **Ignore**: Ferry being down (or mid-upgrade) must not
/// stop a meshed namespace from scaling, rolling out or rescheduling pods
/// after a node loss. A pod created meanwhile runs uninjected, which is
/// visible (no `ferry.dev/injected` annotation) and fixed by a restart of
/// the pod. Installations that must never run an unmeshed pod (strict
/// mTLS everywhere) choose **Fail** and accept that pod creation in meshed
/// namespaces stops while no webhook replica is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Create the pod uninjected.
    #[default]
    Ignore,
    /// Refuse the pod with an error.
    Fail,
}

/// How to choose the sidecar mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SidecarModeArg {
    /// Native from Kubernetes 1.29 on, classic before (asked at start).
    #[default]
    Auto,
    /// Always a native sidecar (init container with `restartPolicy: Always`).
    Native,
    /// Always the first regular container.
    Classic,
}

/// Who owns the MutatingWebhookConfiguration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Registration {
    /// The webhook applies the whole configuration from its flags (no
    /// installer owns it).
    #[default]
    Apply,
    /// An installer (the Helm chart) owns the configuration, so uninstalling
    /// removes it; the webhook only keeps its `caBundle` in step with the
    /// serving certificate, and never creates the configuration.
    CaBundle,
}

/// Settings of the admission webhook.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address the HTTPS admission server listens on.
    #[arg(
        long = "webhook-addr",
        env = "FERRY_WEBHOOK_ADDR",
        default_value = "0.0.0.0:8443"
    )]
    pub addr: SocketAddr,
    /// Name of the MutatingWebhookConfiguration the webhook owns.
    #[arg(
        long = "webhook-configuration",
        env = "FERRY_WEBHOOK_CONFIGURATION",
        default_value = "ferry-injector"
    )]
    pub configuration: String,
    /// Whether the webhook applies its whole registration or only the
    /// caBundle of one an installer made.
    #[arg(
        long = "webhook-registration",
        env = "FERRY_WEBHOOK_REGISTRATION",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub registration: Registration,
    /// Service the apiserver calls (in `--webhook-namespace`).
    #[arg(
        long = "webhook-service",
        env = "FERRY_WEBHOOK_SERVICE",
        default_value = "ferry-webhook"
    )]
    pub service: String,
    /// Port of that Service.
    #[arg(
        long = "webhook-service-port",
        env = "FERRY_WEBHOOK_SERVICE_PORT",
        default_value_t = 443
    )]
    pub service_port: u16,
    /// Namespace of the Service and of the certificate Secret.
    #[arg(
        long = "webhook-namespace",
        env = "FERRY_WEBHOOK_NAMESPACE",
        default_value = "ferry-system"
    )]
    pub namespace: String,
    /// Call the webhook at this URL instead of the Service (out-of-cluster
    /// webhooks, tests). The path must be `/inject`.
    #[arg(long = "webhook-url", env = "FERRY_WEBHOOK_URL")]
    pub url: Option<String>,
    /// Extra IP addresses in the serving certificate.
    #[arg(
        long = "webhook-cert-ip",
        env = "FERRY_WEBHOOK_CERT_IPS",
        value_delimiter = ','
    )]
    pub cert_ips: Vec<IpAddr>,
    /// Keep the serving certificate in this Secret (shared by replicas;
    /// generated and stored there if missing). Without it, each start
    /// generates its own, which is only right for a single replica.
    #[arg(long = "webhook-cert-secret", env = "FERRY_WEBHOOK_CERT_SECRET")]
    pub cert_secret: Option<String>,
    /// failurePolicy of the registration (see [`FailurePolicy`]).
    #[arg(
        long = "webhook-failure-policy",
        env = "FERRY_WEBHOOK_FAILURE_POLICY",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub failure_policy: FailurePolicy,
    /// timeoutSeconds of the registration: how long the apiserver waits.
    #[arg(long = "webhook-timeout", env = "FERRY_WEBHOOK_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// How long the server waits for one request (headers and body).
    #[arg(long = "webhook-request-timeout", env = "FERRY_WEBHOOK_REQUEST_TIMEOUT", default_value = "4", value_parser = parse_seconds)]
    pub request_timeout: Duration,
    /// How often the registration (and its caBundle) is re-applied.
    #[arg(long = "webhook-resync", env = "FERRY_WEBHOOK_RESYNC", default_value = "60", value_parser = parse_seconds)]
    pub resync: Duration,
    /// Native or classic sidecar.
    #[arg(
        long = "sidecar-mode",
        env = "FERRY_SIDECAR_MODE",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub sidecar_mode: SidecarModeArg,
    /// Proxy image (default `localhost/ferry/proxy:<version>`, as `images/build.sh` names it).
    #[arg(long = "proxy-image", env = "FERRY_PROXY_IMAGE")]
    pub proxy_image: Option<String>,
    /// imagePullPolicy of the injected containers.
    #[arg(
        long = "proxy-image-pull-policy",
        env = "FERRY_PROXY_IMAGE_PULL_POLICY"
    )]
    pub proxy_image_pull_policy: Option<String>,
    /// ferry-control's discovery address as proxies reach it (given to
    /// injected sidecars, and to the gateway proxies ferry-control deploys).
    #[arg(
        long = "proxy-discovery",
        env = "FERRY_PROXY_DISCOVERY",
        default_value = "ferry-control.ferry-system.svc.cluster.local:8090"
    )]
    pub proxy_discovery: String,
    /// ferry-control's TLS address as proxies reach it
    /// (`https://host:port`, matching `--tls-addr` and `--tls-dns-names`).
    /// When set, injected sidecars get their certificates and discovery
    /// there, authenticated; `--proxy-discovery` then serves only the
    /// gateway proxies ferry-control deploys.
    #[arg(long = "proxy-control-tls", env = "FERRY_PROXY_CONTROL_TLS")]
    pub proxy_control_tls: Option<String>,
    /// SPIFFE trust domain.
    #[arg(
        long = "trust-domain",
        env = "FERRY_TRUST_DOMAIN",
        default_value = "cluster.local"
    )]
    pub trust_domain: String,
    /// OTLP endpoint given to proxies.
    #[arg(long = "tracing-endpoint", env = "FERRY_TRACING_ENDPOINT")]
    pub tracing_endpoint: Option<String>,
    /// Default proxy log level.
    #[arg(
        long = "proxy-log-level",
        env = "FERRY_PROXY_LOG_LEVEL",
        default_value = "info"
    )]
    pub proxy_log_level: String,
    /// Default proxy CPU request.
    #[arg(
        long = "proxy-cpu-request",
        env = "FERRY_PROXY_CPU_REQUEST",
        default_value = "100m"
    )]
    pub proxy_cpu_request: String,
    /// Default proxy memory request.
    #[arg(
        long = "proxy-memory-request",
        env = "FERRY_PROXY_MEMORY_REQUEST",
        default_value = "32Mi"
    )]
    pub proxy_memory_request: String,
    /// Default proxy CPU limit (none by default).
    #[arg(long = "proxy-cpu-limit", env = "FERRY_PROXY_CPU_LIMIT")]
    pub proxy_cpu_limit: Option<String>,
    /// Default proxy memory limit.
    #[arg(
        long = "proxy-memory-limit",
        env = "FERRY_PROXY_MEMORY_LIMIT",
        default_value = "256Mi"
    )]
    pub proxy_memory_limit: String,
}

// WebhookArgs

impl WebhookArgs {
    /// The injector's config for a server whose version gave `detected`.
    pub fn inject_config(&self, version: &str, detected: SidecarMode) -> InjectConfig {
        let mut config = InjectConfig::new(version);
        if let Some(image) = &self.proxy_image {
            config.proxy_image = image.clone();
        }
        config.image_pull_policy = self.proxy_image_pull_policy.clone();
        config.discovery_addr = self.proxy_discovery.clone();
        config.control_tls_addr = self.proxy_control_tls.clone();
        config.trust_domain = self.trust_domain.clone();
        config.tracing_endpoint = self.tracing_endpoint.clone();
        config.log_level = self.proxy_log_level.clone();
        config.resources = ProxyResources {
            cpu_request: Some(self.proxy_cpu_request.clone()),
            memory_request: Some(self.proxy_memory_request.clone()),
            cpu_limit: self.proxy_cpu_limit.clone(),
            memory_limit: Some(self.proxy_memory_limit.clone()),
        };
        config.sidecar_mode = match self.sidecar_mode {
            SidecarModeArg::Auto => detected,
            SidecarModeArg::Native => SidecarMode::Native,
            SidecarModeArg::Classic => SidecarMode::Classic,
        };
        config
    }

    /// DNS names of the serving certificate: the Service's in-cluster names.
    pub fn cert_dns_names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        vec![
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            "localhost".to_owned(),
        ]
    }
}

// FailurePolicy

impl FailurePolicy {
    /// The value in the MutatingWebhookConfiguration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ignore => "Ignore",
            Self::Fail => "Fail",
        }
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let s = s.trim().trim_end_matches('s');
    s.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("expected a whole number of seconds, got {s:?}"))
}
