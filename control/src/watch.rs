//! Kubernetes watches feeding the index: one kube-runtime watcher per
//! resource, each turning its events into [`Change`]s on one channel.
//!
//! A watcher's (re)list is buffered and sent as one [`Change::Relist`], so
//! objects deleted while a watch was down disappear from the index.
//! EndpointSlices are read from `discovery.k8s.io/v1` when the server
//! serves it, else from core/v1 Endpoints (Kubernetes 1.20).
//!
//! Secrets and ConfigMaps are not watched as resources: one task keeps a
//! watch per object the index says Ferry references
//! ([`ClusterIndex::watched`](crate::index::ClusterIndex::watched)),
//! selected by `metadata.name` in its namespace, so no other Secret's data
//! ever reaches the process. Field selectors have no "name in (…)", hence a
//! watch per object: there are as many as certificates and parameter
//! ConfigMaps, a few per Gateway.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use ferry_core::objects::api::{
    ConfigMap, EndpointSlice, Gateway, GatewayClass, GrpcRoute, HttpRoute, Namespace,
    ReferenceGrant, Secret, Service,
};
use ferry_core::objects::{Kind, NsName, Object};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::index::{Change, Item, Resource, endpoints_to_slice, pod_info};
use crate::metrics::Metrics;

/// A change and when its watch event arrived (for the watch lag metric).
pub type Timed = (Instant, Change);

/// The objects to watch one by one, by generation
/// ([`ClusterIndex::watched`](crate::index::ClusterIndex::watched)).
pub type Watched = Arc<BTreeMap<(Kind, NsName), u64>>;

/// What one watch covers.
#[derive(Clone, Debug)]
enum Scope {
    /// Every object of the resource: lists become [`Change::Relist`].
    All,
    /// One object, selected by name: lists become [`Change::Fetched`].
    One(NsName),
}

/// Errors of starting the watches.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// API discovery failed.
    #[error("failed to discover whether the server serves {api_version}")]
    Discover {
        /// The group/version asked about.
        api_version: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Starts a watch per resource on `tasks`, and the watches of the
/// referenced objects that `watched` names; returns the resources the index
/// must have listed before its outputs are complete.
pub async fn spawn_all(
    client: &Client,
    tx: &mpsc::Sender<Timed>,
    metrics: &Metrics,
    watched: watch::Receiver<Watched>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Resource>, WatchError> {
    let mut expected = Vec::new();
    macro_rules! watch {
        ($ty:ty, $resource:expr, $config:expr, $to_item:expr) => {{
            let api = Api::<$ty>::all(client.clone());
            let (tx, metrics) = (tx.clone(), metrics.clone());
            let resource = $resource;
            tasks.spawn(run(
                api,
                $config,
                resource,
                Scope::All,
                tx,
                metrics,
                $to_item,
            ));
            expected.push(resource);
        }};
    }
    tasks.spawn(watch_referenced(
        client.clone(),
        watched,
        tx.clone(),
        metrics.clone(),
    ));
    let core = Resource::Core;
    let all = watcher::Config::default;
    watch!(GatewayClass, core(Kind::GatewayClass), all(), |o| {
        Some(Item::Object(Object::GatewayClass(o)))
    });
    watch!(Gateway, core(Kind::Gateway), all(), |o| Some(Item::Object(
        Object::Gateway(o)
    )));
    watch!(HttpRoute, core(Kind::HttpRoute), all(), |o| Some(
        Item::Object(Object::HttpRoute(o))
    ));
    watch!(GrpcRoute, core(Kind::GrpcRoute), all(), |o| Some(
        Item::Object(Object::GrpcRoute(o))
    ));
    watch!(ReferenceGrant, core(Kind::ReferenceGrant), all(), |o| {
        Some(Item::Object(Object::ReferenceGrant(o)))
    });
    watch!(Service, core(Kind::Service), all(), |o| Some(Item::Object(
        Object::Service(o)
    )));
    watch!(Namespace, core(Kind::Namespace), all(), |o| Some(
        Item::Object(Object::Namespace(o))
    ));
    watch!(Pod, Resource::Pod, all(), |o: Pod| pod_info(&o)
        .map(Item::Pod));
    if serves_endpoint_slices(client).await? {
        watch!(EndpointSlice, core(Kind::EndpointSlice), all(), |o| Some(
            Item::Object(Object::EndpointSlice(o))
        ));
    } else {
        tracing::info!(
            "Server has no discovery.k8s.io/v1 EndpointSlices; watching core/v1 Endpoints"
        );
        watch!(
            Endpoints,
            core(Kind::EndpointSlice),
            all(),
            |o: Endpoints| { Some(Item::Object(Object::EndpointSlice(endpoints_to_slice(&o)))) }
        );
    }
    Ok(expected)
}

/// Whether the server serves `discovery.k8s.io/v1` EndpointSlices.
pub async fn serves_endpoint_slices(client: &Client) -> Result<bool, WatchError> {
    let api_version = "discovery.k8s.io/v1";
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "endpointslices")),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(source) => Err(WatchError::Discover {
            api_version: api_version.to_string(),
            source,
        }),
    }
}

/// Keeps one watch per object in `watched` (restarted when its generation
/// changes), until either channel closes.
async fn watch_referenced(
    client: Client,
    mut watched: watch::Receiver<Watched>,
    tx: mpsc::Sender<Timed>,
    metrics: Metrics,
) {
    let mut running: HashMap<(Kind, NsName), (u64, AbortHandle)> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let wanted = watched.borrow_and_update().clone();
        running.retain(|id, (generation, task)| {
            let keep = wanted.get(id) == Some(generation);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, generation) in wanted.iter() {
            if running.contains_key(key) {
                continue;
            }
            let (kind, id) = key;
            let config = watcher::Config::default().fields(&format!("metadata.name={}", id.name));
            let (tx, metrics, scope) = (tx.clone(), metrics.clone(), Scope::One(id.clone()));
            let resource = Resource::Core(*kind);
            let task = match kind {
                Kind::Secret => {
                    let api = Api::<Secret>::namespaced(client.clone(), &id.namespace);
                    tasks.spawn(run(api, config, resource, scope, tx, metrics, |o| {
                        Some(Item::Object(Object::Secret(o)))
                    }))
                }
                _ => {
                    let api = Api::<ConfigMap>::namespaced(client.clone(), &id.namespace);
                    tasks.spawn(run(api, config, resource, scope, tx, metrics, |o| {
                        Some(Item::Object(Object::ConfigMap(o)))
                    }))
                }
            };
            running.insert(key.clone(), (*generation, task));
        }
        tokio::select! {
            changed = watched.changed() => if changed.is_err() { return },
            Some(_) = tasks.join_next() => {}
        }
    }
}

/// Runs one watch until the index goes away.
async fn run<K, F>(
    api: Api<K>,
    config: watcher::Config,
    resource: Resource,
    scope: Scope,
    tx: mpsc::Sender<Timed>,
    metrics: Metrics,
    to_item: F,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Option<Item> + Send + 'static,
{
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed = Vec::new();
    let mut listed_once = false;
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(Event::Apply(object)) => to_item(object).map(Change::Apply),
            Ok(Event::Delete(object)) => to_item(object)
                .and_then(|item| item.id())
                .map(|id| Change::Delete(resource, id)),
            Ok(Event::Init) => {
                listed.clear();
                None
            }
            Ok(Event::InitApply(object)) => {
                listed.extend(to_item(object));
                None
            }
            Ok(Event::InitDone) => Some(match &scope {
                Scope::All => Change::Relist(resource, std::mem::take(&mut listed)),
                Scope::One(id) => Change::Fetched(resource, id.clone(), listed.pop()),
            }),
            Err(error) => {
                metrics.watch_error(resource);
                tracing::warn!(%error, %resource, "Watch failed; retrying with backoff");
                // A resource the server does not serve (a CRD not
                // installed) or that we may not list is empty until it is:
                // the rest of the index must not wait for it.
                let absent = matches!(
                    &error,
                    watcher::Error::InitialListFailed(kube::Error::Api(s))
                        if s.is_not_found() || s.is_forbidden() || matches!(s.code, 403 | 404)
                );
                match &scope {
                    Scope::All => {
                        (absent && !listed_once).then(|| Change::Relist(resource, Vec::new()))
                    }
                    // One object that cannot be read yet (for any reason) is
                    // reported absent, so the index does not wait for it.
                    Scope::One(id) => {
                        (!listed_once).then(|| Change::Fetched(resource, id.clone(), None))
                    }
                }
            }
        };
        if matches!(change, Some(Change::Relist(..) | Change::Fetched(..))) {
            listed_once = true;
        }
        if let Some(change) = change
            && tx.send((Instant::now(), change)).await.is_err()
        {
            return;
        }
    }
}
