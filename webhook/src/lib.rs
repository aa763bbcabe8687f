//! ferry-webhook owns Ferry's mutating admission webhook: an HTTPS
//! AdmissionReview v1 service (hyper + rustls) around `ferry-injector`, its
//! serving certificate (made with rcgen at start, or kept in a Secret shared
//! by replicas), and the MutatingWebhookConfiguration it registers and keeps
//! in step with that certificate. It runs inside ferry-control (which
//! flattens [`WebhookArgs`] into its CLI and calls [`Webhook::prepare`] and
//! [`Webhook::run`]) or alone as the `ferry-webhook` binary.
//!
//! The registration sends `CREATE pods` in namespaces labelled
//! `ferry.dev/inject=enabled` to `POST /inject`, except Ferry's own pods
//! (object selector on `app.kubernetes.io/part-of`). Its `failurePolicy`
//! defaults to `Ignore`; see [`FailurePolicy`] for why. The sidecar mode
//! follows the apiserver's version, asked once at start (native from 1.29).
//!
//! Every decodable AdmissionReview gets HTTP 200 with the verdict inside;
//! invalid `ferry.dev/` annotations deny the pod with the reason; a body
//! that is not an AdmissionReview gets 400 with an AdmissionReview whose
//! status carries the message. Metrics go on the registry passed in
//! ([`Metrics`]): `ferry_webhook_admissions_total{outcome, reason}` and
//! `ferry_webhook_admission_duration_seconds`.
//!
//! Timeouts: the apiserver waits `--webhook-timeout` (5 s, the
//! registration's `timeoutSeconds`, kept short so that under `Ignore` a hung
//! webhook delays pod creation little); the server gives a client
//! `--webhook-request-timeout` (4 s) for the TLS handshake, for the headers
//! and for the body (at most [`MAX_BODY_BYTES`]).
//!
//! Permissions it needs: `get`/`patch` on its MutatingWebhookConfiguration
//! (server-side apply, field manager [`FIELD_MANAGER`]), `get` on
//! `/version`, and with `--webhook-cert-secret` `get`/`create` on that
//! Secret. One replica may generate its own certificate; several must share
//! it through the Secret, or they would overwrite each other's `caBundle`.
#![warn(missing_docs)]

mod config;
mod metrics;
mod registration;
mod review;
mod server;
mod service;
mod tls;

use std::future::Future;
use std::net::SocketAddr;

use ferry_injector::InjectConfig;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use config::{FailurePolicy, Registration, SidecarModeArg, WebhookArgs};
pub use metrics::{Metrics, Outcome};
pub use registration::{
    FIELD_MANAGER, INJECT_PATH, NAMESPACE_LABEL, WEBHOOK_NAME, apply as apply_registration,
    detect_sidecar_mode, registration_patch, webhook_configuration,
};
pub use review::{Reviewed, review};
pub use server::{ServerTimeouts, serve};
pub use service::{AdmissionService, MAX_BODY_BYTES, ResponseFuture};
pub use tls::ServingCert;

/// Ferry's version, written into injected pods and the default image tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of the webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// rcgen failed to make the CA or the serving certificate.
    #[error("failed to generate the serving certificate")]
    GenerateCert {
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// Reading or creating the certificate Secret failed.
    #[error("failed to read or create the certificate Secret {namespace}/{name}")]
    CertSecret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The certificate Secret lacks a key.
    #[error("certificate Secret {namespace}/{name} has no UTF-8 {key}")]
    CertSecretField {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A PEM block of the serving certificate does not parse.
    #[error("failed to read the {what} PEM of the serving certificate")]
    ReadPem {
        /// Which part.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key PEM holds no private key.
    #[error("the serving certificate's key PEM holds no private key")]
    MissingKey,
    /// rustls refused the certificate or key.
    #[error("failed to build the TLS server config")]
    TlsConfig {
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// Applying the MutatingWebhookConfiguration failed.
    #[error("failed to apply MutatingWebhookConfiguration {name}")]
    Register {
        /// Name of the configuration.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The installer's MutatingWebhookConfiguration, whose caBundle this
    /// webhook keeps, does not exist.
    #[error(
        "failed to set the caBundle of MutatingWebhookConfiguration {name}: it does not exist \
         (with --webhook-registration ca-bundle the installer, e.g. the Helm chart, creates it)"
    )]
    RegistrationMissing {
        /// Name of the configuration.
        name: String,
    },
    /// Asking the apiserver its version failed.
    #[error("failed to get the apiserver version")]
    ServerVersion {
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Binding the listener failed.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A webhook ready to serve: certificate made, listener bound, metrics
/// registered.
pub struct Webhook {
    args: WebhookArgs,
    client: kube::Client,
    cert: ServingCert,
    service: AdmissionService,
    listener: TcpListener,
}

// Webhook

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("args", &self.args)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Asks the server's version, gets the certificate, binds the listener
    /// and registers the metrics on `registry`.
    pub async fn prepare(
        args: WebhookArgs,
        client: kube::Client,
        registry: &mut Registry,
    ) -> Result<Self, WebhookError> {
        let listener = TcpListener::bind(args.addr)
            .await
            .map_err(|source| WebhookError::Bind {
                addr: args.addr,
                source,
            })?;
        Self::prepare_with_listener(args, client, registry, listener).await
    }

    /// [`prepare`](Self::prepare) on a listener the caller bound (its
    /// address wins over `args.addr`).
    pub async fn prepare_with_listener(
        args: WebhookArgs,
        client: kube::Client,
        registry: &mut Registry,
        listener: TcpListener,
    ) -> Result<Self, WebhookError> {
        let detected = detect_sidecar_mode(&client).await?;
        let config = args.inject_config(VERSION, detected);
        let (dns, ips) = (args.cert_dns_names(), args.cert_ips.clone());
        let cert = match &args.cert_secret {
            Some(name) => {
                ServingCert::from_secret_or_generate(
                    client.clone(),
                    &args.namespace,
                    name,
                    &dns,
                    &ips,
                )
                .await?
            }
            None => ServingCert::generate(&dns, &ips)?,
        };
        let metrics = Metrics::register(registry);
        let service =
            AdmissionService::new(config, args.failure_policy, metrics, args.request_timeout);
        Ok(Self {
            args,
            client,
            cert,
            service,
            listener,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The injector config in use (sidecar mode as detected).
    pub fn inject_config(&self) -> &InjectConfig {
        self.service.config()
    }

    /// The serving certificate (its `ca_pem` is the registration's caBundle).
    pub fn cert(&self) -> &ServingCert {
        &self.cert
    }

    /// Registers the webhook, then serves until `shutdown` resolves,
    /// re-applying the registration every `resync` so the caBundle and
    /// settings stay in step even if someone edits or deletes it.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), WebhookError> {
        let tls = self.cert.server_config()?;
        let timeouts = ServerTimeouts {
            handshake: self.args.request_timeout,
            header_read: self.args.request_timeout,
        };
        apply_registration(self.client.clone(), &self.args, &self.cert.ca_pem).await?;
        info!(
            addr = ?self.local_addr(),
            configuration = %self.args.configuration,
            sidecar_mode = ?self.service.config().sidecar_mode,
            failure_policy = self.args.failure_policy.as_str(),
            "Admission webhook serving"
        );
        let resync = async {
            let mut interval = tokio::time::interval(self.args.resync);
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(error) =
                    apply_registration(self.client.clone(), &self.args, &self.cert.ca_pem).await
                {
                    warn!(error = %DisplayChain(&error), "Failed to re-apply the webhook registration");
                }
            }
        };
        tokio::select! {
            () = serve(self.listener, tls, self.service, timeouts, shutdown) => {}
            () = resync => {}
        }
        Ok(())
    }
}

/// Displays an error with its sources, `a: b: c`.
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
