//! The identity CA: signs each proxy's certificate for its workload
//! identity `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` (the `Certify` RPC of
//! `ferry.identity.v1`, served beside discovery).
//!
//! * Material ([`store`]): trust anchors and issuer from Secret
//!   `ferry-identity` (`kubernetes.io/tls` layout; `ca.crt` may hold several
//!   anchors during a rotation) in the control plane's namespace, supplied
//!   by the installer or created with a new ECDSA P-256 root at first start;
//!   never overwritten. Re-read every [`CaSettings::refresh`], so a rotation
//!   the installer writes is picked up without a restart.
//! * Anchors ([`anchors`]): ConfigMap `ferry-trust-anchors` (`ca.pem`) in
//!   every namespace labelled `ferry.dev/inject=enabled` and every
//!   namespace holding a Ferry Gateway (its deployed proxies mount it).
//! * Certify: the token is reviewed with TokenReview for audience `ferry`
//!   ([`review`]); the CSR must verify and name exactly the token's
//!   identity ([`material::check_csr`]); the leaf is valid for
//!   [`CaSettings::lifetime`] (backdated by [`material::BACKDATE`]) for
//!   client and server authentication. Every refusal is a gRPC status that
//!   names why, counted in `ferry_control_certificates_total`.
//!
//! * TLS ([`tls`], optional, `--tls-addr`): the same gRPC services on a
//!   port of their own with a server certificate from this CA, so tokens
//!   never cross the network in clear; client certificates are optional.
//!
//! Standalone mode (objects from files, no apiserver) has no CA: there is
//! no TokenReview to check proxies with.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_api::identity_pb::identity_server::{Identity as IdentityRpc, IdentityServer};
use ferry_api::identity_pb::{CertifyRequest, CertifyResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};

pub mod anchors;
pub mod material;
pub mod review;
pub mod store;
pub mod tls;

use material::{CsrRefusal, Material, MaterialError};
use review::TokenRefusal;

/// Where the CA keeps its material and how long its certificates live.
#[derive(Clone, Debug)]
pub struct CaSettings {
    /// Namespace of the Secret (the control plane's own).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Lifetime of a signed leaf.
    pub lifetime: Duration,
    /// How often the Secret is read again (rotation).
    pub refresh: Duration,
    /// Also serve the gRPC services with TLS, on a port of their own.
    pub tls: Option<tls::TlsSettings>,
}

/// The `Certify` service.
#[derive(Clone)]
pub struct CaService {
    client: kube::Client,
    trust_domain: String,
    lifetime: Duration,
    material: watch::Receiver<Option<Arc<Material>>>,
    metrics: CaMetrics,
}

/// The CA's metrics.
#[derive(Clone, Debug, Default)]
pub struct CaMetrics {
    certificates: Family<CertifyLabels, Counter>,
    anchor_errors: Counter,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CertifyLabels {
    result: String,
    reason: String,
}

/// Why a `Certify` call gets no certificate.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the CA has no material yet (Secret not readable)")]
    NotReady,
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    #[error(transparent)]
    Csr(#[from] CsrRefusal),
    #[error("failed to sign the certificate")]
    Sign(#[from] MaterialError),
}

// === impl CaService ===

impl CaService {
    /// Starts the CA's tasks (material, anchors) on `tasks` and returns the
    /// service to serve beside discovery.
    pub fn start(
        client: kube::Client,
        trust_domain: String,
        settings: CaSettings,
        gateway_namespaces: watch::Receiver<BTreeSet<String>>,
        registry: &mut Registry,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let metrics = CaMetrics::register(registry);
        let (tx, material) = watch::channel(None);
        tasks.spawn(keep_material(
            client.clone(),
            trust_domain.clone(),
            settings.clone(),
            tx,
        ));
        tasks.spawn(anchors::publish(
            client.clone(),
            material.clone(),
            gateway_namespaces,
            metrics.clone(),
        ));
        Self {
            client,
            trust_domain,
            lifetime: settings.lifetime,
            material,
            metrics,
        }
    }

    /// Keeps a TLS server config with a certificate from this CA for
    /// `settings` (a task on `tasks`).
    pub fn server_config(
        &self,
        settings: tls::TlsSettings,
        tasks: &mut JoinSet<()>,
    ) -> tls::ServerConfigRx {
        let (tx, rx) = watch::channel(None);
        tasks.spawn(tls::keep_server_config(self.material.clone(), settings, tx));
        rx
    }

    /// The tonic server wrapping this service.
    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }

    async fn certify(&self, request: CertifyRequest) -> Result<CertifyResponse, Refusal> {
        let material = self.material.borrow().clone().ok_or(Refusal::NotReady)?;
        let identity = review::review(&self.client, &request.token, &self.trust_domain).await?;
        let csr = material::check_csr(&request.csr_pem, &identity)?;
        let issued = material.sign(&csr, &identity, self.lifetime, SystemTime::now())?;
        tracing::debug!(%identity, "Signed a certificate");
        let valid_until = issued
            .not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Ok(CertifyResponse {
            certificate_chain_pem: issued.chain_pem,
            trust_anchors_pem: material.anchors_pem().to_owned(),
            valid_until_unix: valid_until,
        })
    }
}

#[tonic::async_trait]
impl IdentityRpc for CaService {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let peer = request.remote_addr();
        match CaService::certify(self, request.into_inner()).await {
            Ok(response) => {
                self.metrics.count("issued", "ok");
                Ok(Response::new(response))
            }
            Err(refusal) => {
                let status = refusal.status();
                self.metrics
                    .count(code_label(status.code()), refusal.reason());
                tracing::info!(?peer, error = %status.message(), "Refused a certificate");
                Err(status)
            }
        }
    }
}

// === impl Refusal ===

impl Refusal {
    fn status(&self) -> Status {
        let message = ferry_core::errors::chain(self);
        match self {
            Self::NotReady | Self::Token(TokenRefusal::Review(_) | TokenRefusal::Timeout) => {
                Status::unavailable(message)
            }
            Self::Token(_) => Status::unauthenticated(message),
            Self::Csr(CsrRefusal::Invalid(_)) => Status::invalid_argument(message),
            Self::Csr(CsrRefusal::WrongIdentity { .. }) => Status::permission_denied(message),
            Self::Sign(_) => Status::internal(message),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::NotReady => "not_ready",
            Self::Token(refusal) => refusal.reason(),
            Self::Csr(CsrRefusal::Invalid(_)) => "csr_invalid",
            Self::Csr(CsrRefusal::WrongIdentity { .. }) => "csr_identity",
            Self::Sign(_) => "sign_failed",
        }
    }
}

// === impl CaMetrics ===

impl CaMetrics {
    /// Registers the CA's metrics on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "ferry_control_certificates",
            "Certify calls by result (issued or the gRPC code) and reason",
            metrics.certificates.clone(),
        );
        registry.register(
            "ferry_control_trust_anchor_errors",
            "Failed writes of the trust-anchor ConfigMap",
            metrics.anchor_errors.clone(),
        );
        metrics
    }

    fn count(&self, result: &str, reason: &str) {
        self.certificates
            .get_or_create(&CertifyLabels {
                result: result.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn anchors_failed(&self) {
        self.anchor_errors.inc();
    }
}

fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::Unavailable => "unavailable",
        _ => "internal",
    }
}

/// Loads (or creates) the Secret, retrying until it works, then reads it
/// again every `settings.refresh` and publishes changed material.
async fn keep_material(
    client: kube::Client,
    trust_domain: String,
    settings: CaSettings,
    tx: watch::Sender<Option<Arc<Material>>>,
) {
    let (namespace, name) = (&settings.namespace, &settings.secret);
    let mut backoff = Duration::from_millis(200);
    loop {
        match store::load_or_create(&client, namespace, name, &trust_domain).await {
            Ok((material, origin)) => {
                tracing::info!(%namespace, secret = %name, ?origin, "Identity CA ready");
                tx.send_replace(Some(Arc::new(material)));
                break;
            }
            Err(error) => {
                tracing::warn!(error = %ferry_core::errors::chain(&error), "Identity CA not ready");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    loop {
        tokio::time::sleep(settings.refresh).await;
        match store::load(&client, namespace, name).await {
            Ok(Some(material)) => {
                let changed = tx
                    .borrow()
                    .as_ref()
                    .is_none_or(|current| !current.same_as(&material));
                if changed {
                    tracing::info!(%namespace, secret = %name, "Identity CA material changed");
                    tx.send_replace(Some(Arc::new(material)));
                }
            }
            Ok(None) => {
                tracing::warn!(%namespace, secret = %name, "Identity CA Secret is gone; keeping the material in memory");
            }
            Err(error) => {
                tracing::warn!(error = %ferry_core::errors::chain(&error), "Failed to re-read the identity CA Secret");
            }
        }
    }
}
