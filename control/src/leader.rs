//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! Every replica runs [`Elector::run`]; the one holding the Lease is the
//! leader and renews it every `renew_every`. The others watch the Lease and
//! take it over once it has not been renewed for `lease_duration` as *they*
//! observed it (a local clock, as client-go does, so clock skew between
//! nodes does not matter). Updates go through `replace` with the observed
//! `resourceVersion`, so two replicas can never both win a round. Leadership
//! is published on a `watch` channel; the status writer only writes while it
//! reads `true`. A round that fails for a reason no retry can mend (the
//! Lease's namespace does not exist, RBAC forbids the Lease) is published
//! on a second channel, so `/ready` says why this replica will never lead.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and the others check.
    pub renew_every: Duration,
}

/// Runs the election of one replica.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    /// Why this replica cannot lead, while a round fails for such a reason.
    blocked: watch::Sender<Option<String>>,
    /// The last (resourceVersion) seen of another holder's Lease, and when.
    observed: Option<(String, Instant)>,
}

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading the Lease failed.
    #[error("failed to read Lease {namespace}/{name}")]
    Read {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The Lease's namespace does not exist: nothing will create it.
    #[error(
        "failed to write Lease {namespace}/{name}: namespace {namespace} does not exist \
         (create it, point --lease-namespace at the control plane's namespace, \
         or run a single replica with --no-leader-election)"
    )]
    NamespaceMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Creating or updating the Lease failed for another reason than a
    /// lost race.
    #[error("failed to write Lease {namespace}/{name}")]
    Write {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
}

// === impl LeaseError ===

impl LeaseError {
    /// Whether retrying cannot help: a missing namespace, or RBAC that
    /// forbids this replica the Lease.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::NamespaceMissing { .. } => true,
            Self::Read { source, .. } | Self::Write { source, .. } => {
                matches!(source.as_ref(), kube::Error::Api(status) if status.is_forbidden())
            }
        }
    }
}

// === impl Elector ===

impl Elector {
    /// An elector and the channel on which it publishes leadership.
    pub fn new(client: Client, config: LeaseConfig) -> (Self, watch::Receiver<bool>) {
        let (leader, rx) = watch::channel(false);
        let api = Api::namespaced(client, &config.namespace);
        let elector = Self {
            api,
            config,
            leader,
            blocked: watch::channel(None).0,
            observed: None,
        };
        (elector, rx)
    }

    /// Why this replica cannot lead (`None` while nothing permanent is in
    /// the way), for readiness.
    pub fn blocked(&self) -> watch::Receiver<Option<String>> {
        self.blocked.subscribe()
    }

    /// Campaigns and renews until every receiver is gone.
    pub async fn run(mut self) {
        while !self.leader.is_closed() {
            let round = self.round().await;
            let blocked = match &round {
                Err(error) if error.is_permanent() => Some(ferry_core::errors::chain(error)),
                _ => None,
            };
            self.blocked.send_if_modified(|was| {
                let changed = *was != blocked;
                *was = blocked;
                changed
            });
            let leading = match round {
                Ok(leading) => leading,
                Err(error) => {
                    let error = ferry_core::errors::chain(&error);
                    tracing::warn!(%error, "Leader election round failed");
                    false
                }
            };
            self.leader.send_if_modified(|was| {
                if *was != leading {
                    tracing::info!(identity = %self.config.identity, leading, "Leadership changed");
                    *was = leading;
                    true
                } else {
                    false
                }
            });
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// One round: returns whether this replica holds the Lease afterwards.
    pub async fn round(&mut self) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|source| LeaseError::Read {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                source: Box::new(source),
            })?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return self.settle(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder == self.config.identity {
            self.observed = None;
            lease.spec = Some(self.spec(spec.acquire_time, transitions));
        } else if holder.is_empty() || self.expired(&lease) {
            tracing::info!(previous = holder, "Taking over the Lease");
            lease.spec = Some(self.spec(None, transitions + 1));
        } else {
            return Ok(false);
        }
        let replaced = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await;
        self.settle(replaced)
    }

    fn settle(&self, written: Result<Lease, kube::Error>) -> Result<bool, LeaseError> {
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(false)
            }
            Err(kube::Error::Api(status))
                if status.is_not_found()
                    && status
                        .details
                        .as_ref()
                        .is_some_and(|d| d.kind == "namespaces") =>
            {
                Err(LeaseError::NamespaceMissing {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                })
            }
            Err(source) => Err(LeaseError::Write {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Whether another holder's Lease went unrenewed for a whole duration,
    /// by our clock: the resourceVersion changes with every renewal.
    fn expired(&mut self, lease: &Lease) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        match &self.observed {
            Some((seen, since)) if *seen == version => since.elapsed() >= duration,
            _ => {
                self.observed = Some((version, Instant::now()));
                false
            }
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Gives the Lease up if `config.identity` holds it, so another replica
/// takes over at its next round instead of waiting for expiry. Call it
/// after this replica's writers have stopped.
pub async fn release(client: Client, config: &LeaseConfig) -> Result<(), LeaseError> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let write_error = |source| LeaseError::Write {
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source: Box::new(source),
    };
    let Some(mut lease) = api
        .get_opt(&config.name)
        .await
        .map_err(|source| LeaseError::Read {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source: Box::new(source),
        })?
    else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.acquire_time = None;
    spec.renew_time = None;
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
        Err(source) => Err(write_error(source)),
    }
}
