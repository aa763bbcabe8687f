//! The index task: applies changes in batches and publishes the outputs
//! (status for the writer, views for discovery subscribers) once every
//! watched resource has been listed.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_core::objects::NsName;
use ferry_core::status::Status;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::deployer::render::DeploySettings;
use crate::deployer::{self, Deploy};
use crate::index::{ClusterIndex, Resource};
use crate::metrics::Metrics;
use crate::views::{GatewayView, Views};
use crate::watch::{Timed, Watched};

/// Where the index task sends its outputs.
#[derive(Debug)]
pub struct Outputs {
    /// The computed status, for the status writer.
    pub status: watch::Sender<Option<Arc<Status>>>,
    /// Whether the index has listed everything once (readiness).
    pub synced: watch::Sender<bool>,
    /// Discovery subscribers.
    pub views: Arc<Views>,
    /// What the gateway deployer applies.
    pub deploy: watch::Sender<Option<Arc<Vec<Deploy>>>>,
    /// The Secrets and ConfigMaps the index wants watched (published
    /// before the index is in sync: it cannot be in sync without them).
    pub watched: watch::Sender<Watched>,
    /// The namespaces holding a Ferry Gateway, where the CA publishes the
    /// trust anchors its proxies mount.
    pub gateway_namespaces: watch::Sender<BTreeSet<String>>,
}

/// The index task.
#[derive(Debug)]
pub struct Pipeline {
    /// The index it owns.
    pub index: ClusterIndex,
    /// Resources that must be listed before outputs are published.
    pub expected: Vec<Resource>,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings of deployed gateways; `None` deploys nothing.
    pub deploy: Option<DeploySettings>,
    /// The SPIFFE trust domain of expected endpoint identities.
    pub trust_domain: String,
}

// === impl Pipeline ===

impl Pipeline {
    /// Applies changes until the channel closes.
    pub async fn run(mut self, mut changes: mpsc::Receiver<Timed>, outputs: Outputs) {
        loop {
            let oldest = tokio::select! {
                change = changes.recv() => {
                    let Some((received, change)) = change else { return };
                    self.index.apply(change);
                    while let Ok((_, change)) = changes.try_recv() {
                        self.index.apply(change);
                    }
                    Some(received)
                }
                () = outputs.views.woken() => None,
            };
            let watched = self.index.watched();
            outputs.watched.send_if_modified(|current| {
                if **current == *watched {
                    return false;
                }
                *current = Arc::new(watched.clone());
                true
            });
            if !self.index.is_synced(&self.expected) {
                continue;
            }
            let started = Instant::now();
            self.publish(&outputs, oldest.is_some());
            for (resource, count) in self.index.counts() {
                self.metrics.set_objects(resource, count);
            }
            if let Some(received) = oldest {
                self.metrics
                    .batch_applied(received.elapsed(), started.elapsed());
            }
        }
    }

    /// Computes and publishes the outputs; status only when `changed`.
    /// Views go first, so proxies do not wait for status; a Gateway's view
    /// and the status come from one compilation.
    pub fn publish(&self, outputs: &Outputs, changed: bool) {
        let mut fresh: Option<Status> = None;
        for gateway in outputs.views.subscribed_gateways() {
            let (view, status) = gateway_view(&self.index, &gateway, &self.trust_domain);
            outputs.views.publish_gateway(&gateway, view);
            fresh.get_or_insert(status);
        }
        for target in outputs.views.subscribed_outbound() {
            let view = self.index.outbound(&target, &self.trust_domain);
            outputs.views.publish_outbound(&target, view);
        }
        for port in outputs.views.subscribed_inbound() {
            outputs
                .views
                .publish_inbound(&port, self.index.inbound(&port));
        }
        if changed || outputs.status.borrow().is_none() {
            outputs.views.publish_pods(self.index.pod_owners());
            let status = fresh.unwrap_or_else(|| self.index.status());
            outputs.status.send_replace(Some(Arc::new(status)));
        }
        let namespaces = self.index.gateway_namespaces();
        outputs.gateway_namespaces.send_if_modified(|current| {
            if *current == namespaces {
                return false;
            }
            *current = namespaces;
            true
        });
        if let Some(settings) = &self.deploy {
            let plan = deployer::plan(self.index.objects(), settings);
            outputs.deploy.send_if_modified(|current| {
                if current.as_deref() == Some(&plan) {
                    return false;
                }
                *current = Some(Arc::new(plan));
                true
            });
        }
        outputs
            .synced
            .send_if_modified(|synced| !std::mem::replace(synced, true));
    }
}

/// The view of one Gateway's proxies, with the expected identity of each
/// meshed endpoint in `trust_domain`, and the status computed on the way.
pub fn gateway_view(
    index: &ClusterIndex,
    gateway: &NsName,
    trust_domain: &str,
) -> (GatewayView, Status) {
    let (config, status) = index.gateway_config_with_status(gateway);
    let config = config.map(|c| {
        let mut config = ferry_api::pb::ProxyConfig::from(&c);
        index.fill_identities(&mut config.backends, trust_domain);
        Arc::new(config)
    });
    let status_json = status
        .gateway(gateway)
        .and_then(|s| serde_json::to_string(s).ok())
        .unwrap_or_default();
    let view = GatewayView {
        config,
        status_json,
    };
    (view, status)
}
