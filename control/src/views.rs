//! Subscribed views: what each discovery subscriber sees, published by the
//! index task only when it changes, each with a new version.
//!
//! Subscribers of the same Gateway share one `watch` channel, so a change
//! is compiled once however many proxies watch it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_api::pb;
use ferry_core::objects::NsName;
use tokio::sync::{Notify, watch};

/// The view of a gateway proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayView {
    /// The compiled configuration; `None` when the Gateway does not exist
    /// or is not of a Ferry class.
    pub config: Option<Arc<pb::ProxyConfig>>,
    /// The Gateway's computed status, as JSON.
    pub status_json: String,
}

/// A view with the version it was published under.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// Increases with every publication of any view.
    pub version: u64,
    /// The view.
    pub value: T,
    /// What changed since the previous version of this view (its version
    /// and the delta), when both have a configuration.
    pub delta: Option<(u64, Arc<pb::GatewayDelta>)>,
}

/// A subscriber's receiver: `None` until the index has computed the view.
pub type ViewRx<T> = watch::Receiver<Option<Arc<Versioned<T>>>>;

type ViewTx<T> = watch::Sender<Option<Arc<Versioned<T>>>>;

/// Every subscribed view.
#[derive(Debug, Default)]
pub struct Views {
    gateways: Mutex<HashMap<NsName, ViewTx<GatewayView>>>,
    version: AtomicU64,
    wake: Notify,
}

// === impl Views ===

impl Views {
    /// No subscriptions yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Subscribes to a Gateway's view; the index computes it at once if
    /// nobody watched it before.
    pub fn watch_gateway(&self, gateway: &NsName) -> ViewRx<GatewayView> {
        let mut gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = gateways.get(gateway) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        gateways.insert(gateway.clone(), tx);
        drop(gateways);
        self.wake.notify_one();
        rx
    }

    /// Waits until a new subscription needs a view computed.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The Gateways someone watches; forgets those nobody watches anymore.
    pub fn subscribed_gateways(&self) -> Vec<NsName> {
        let mut gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        gateways.retain(|_, tx| tx.receiver_count() > 0);
        gateways.keys().cloned().collect()
    }

    /// Publishes a Gateway's view if it differs from the current one.
    /// Returns whether it was sent.
    pub fn publish_gateway(&self, gateway: &NsName, view: GatewayView) -> bool {
        let gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = gateways.get(gateway) else {
            return false;
        };
        tx.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.value == view) {
                return false;
            }
            let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
            let delta = current.as_ref().and_then(|previous| {
                let before = previous.value.config.as_ref()?;
                let after = view.config.as_ref()?;
                let delta = ferry_api::delta::diff(before, after);
                Some((previous.version, Arc::new(delta)))
            });
            *current = Some(Arc::new(Versioned {
                version,
                value: view,
                delta,
            }));
            true
        })
    }
}
