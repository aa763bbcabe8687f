//! Subscribed views: what each discovery subscriber sees, published by the
//! index task only when it changes, each with a new version.
//!
//! Subscribers of the same Gateway (or the same outbound target from the
//! same namespace) share one `watch` channel, so a change is compiled once
//! however many proxies watch it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// What a sidecar watches for one outbound target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundKey {
    /// The original destination.
    pub target: SocketAddr,
    /// The caller's namespace.
    pub namespace: String,
}

/// The view of one outbound target: the message without its version.
pub type OutboundView = pb::OutboundUpdate;

/// What a sidecar watches for one port of its own pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboundKey {
    /// The pod's IP.
    pub pod_ip: IpAddr,
    /// The pod port.
    pub port: u16,
}

/// The view of one inbound port: the message without its version.
pub type InboundView = pb::InboundUpdate;

/// A view with the version it was published under.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// Increases with every publication of any view.
    pub version: u64,
    /// The view.
    pub value: T,
    /// What changed since the previous version of this view (its version
    /// and the delta), when both have a configuration (Gateways only).
    pub delta: Option<(u64, Arc<pb::GatewayDelta>)>,
}

/// A subscriber's receiver: `None` until the index has computed the view.
pub type ViewRx<T> = watch::Receiver<Option<Arc<Versioned<T>>>>;

type ViewTx<T> = watch::Sender<Option<Arc<Versioned<T>>>>;

/// The subscriptions of one kind of view.
#[derive(Debug)]
struct Topic<K, T> {
    subscribers: Mutex<HashMap<K, ViewTx<T>>>,
}

/// Every subscribed view.
#[derive(Debug, Default)]
pub struct Views {
    gateways: Topic<NsName, GatewayView>,
    outbound: Topic<OutboundKey, OutboundView>,
    inbound: Topic<InboundKey, InboundView>,
    version: AtomicU64,
    wake: Notify,
    /// Each Pod IP's namespace and ServiceAccount, for authorizing
    /// inbound watches.
    pods: Mutex<Arc<PodOwners>>,
}

/// Each Pod IP's `(namespace, ServiceAccount)`.
pub type PodOwners = HashMap<IpAddr, (String, String)>;

// === impl Topic ===

impl<K, T> Default for Topic<K, T> {
    fn default() -> Self {
        Self {
            subscribers: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash, T: PartialEq> Topic<K, T> {
    /// Subscribes; returns whether the key is new.
    fn watch(&self, key: &K) -> (ViewRx<T>, bool) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = subscribers.get(key) {
            return (tx.subscribe(), false);
        }
        let (tx, rx) = watch::channel(None);
        subscribers.insert(key.clone(), tx);
        (rx, true)
    }

    fn subscribed(&self) -> Vec<K> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|_, tx| tx.receiver_count() > 0);
        subscribers.keys().cloned().collect()
    }

    fn publish(
        &self,
        key: &K,
        view: T,
        version: &AtomicU64,
        delta: impl FnOnce(&T, &T) -> Option<Arc<pb::GatewayDelta>>,
    ) -> bool {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = subscribers.get(key) else {
            return false;
        };
        tx.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.value == view) {
                return false;
            }
            let next = version.fetch_add(1, Ordering::Relaxed) + 1;
            let delta = current
                .as_ref()
                .and_then(|previous| Some((previous.version, delta(&previous.value, &view)?)));
            *current = Some(Arc::new(Versioned {
                version: next,
                value: view,
                delta,
            }));
            true
        })
    }
}

// === impl Views ===

impl Views {
    /// Replaces the Pod owners inbound watches are authorized against.
    pub fn publish_pods(&self, pods: PodOwners) {
        *self.pods.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(pods);
    }

    /// The namespace and ServiceAccount of the Pod with `ip`.
    pub fn pod_owner(&self, ip: &IpAddr) -> Option<(String, String)> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner()).clone();
        pods.get(ip).cloned()
    }

    /// No subscriptions yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Subscribes to a Gateway's view; the index computes it at once if
    /// nobody watched it before.
    pub fn watch_gateway(&self, gateway: &NsName) -> ViewRx<GatewayView> {
        let (rx, new) = self.gateways.watch(gateway);
        if new {
            self.wake.notify_one();
        }
        rx
    }

    /// Subscribes to an outbound target's view.
    pub fn watch_outbound(&self, key: &OutboundKey) -> ViewRx<OutboundView> {
        let (rx, new) = self.outbound.watch(key);
        if new {
            self.wake.notify_one();
        }
        rx
    }

    /// Subscribes to an inbound port's view.
    pub fn watch_inbound(&self, key: &InboundKey) -> ViewRx<InboundView> {
        let (rx, new) = self.inbound.watch(key);
        if new {
            self.wake.notify_one();
        }
        rx
    }

    /// Waits until a new subscription needs a view computed.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The Gateways someone watches; forgets those nobody watches anymore.
    pub fn subscribed_gateways(&self) -> Vec<NsName> {
        self.gateways.subscribed()
    }

    /// The outbound targets someone watches.
    pub fn subscribed_outbound(&self) -> Vec<OutboundKey> {
        self.outbound.subscribed()
    }

    /// The inbound ports someone watches.
    pub fn subscribed_inbound(&self) -> Vec<InboundKey> {
        self.inbound.subscribed()
    }

    /// Publishes a Gateway's view if it differs from the current one.
    /// Returns whether it was sent.
    pub fn publish_gateway(&self, gateway: &NsName, view: GatewayView) -> bool {
        self.gateways
            .publish(gateway, view, &self.version, |before, after| {
                let delta = ferry_api::delta::diff(before.config.as_ref()?, after.config.as_ref()?);
                Some(Arc::new(delta))
            })
    }

    /// Publishes an outbound target's view if it changed.
    pub fn publish_outbound(&self, key: &OutboundKey, view: OutboundView) -> bool {
        self.outbound.publish(key, view, &self.version, |_, _| None)
    }

    /// Publishes an inbound port's view if it changed.
    pub fn publish_inbound(&self, key: &InboundKey, view: InboundView) -> bool {
        self.inbound.publish(key, view, &self.version, |_, _| None)
    }
}
