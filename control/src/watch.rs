//! Kubernetes watches feeding the index: one kube-runtime watcher per
//! resource, each turning its events into [`Change`]s on one channel.
//!
//! A watcher's (re)list is buffered and sent as one [`Change::Relist`], so
//! objects deleted while a watch was down disappear from the index.
//! EndpointSlices are read from `discovery.k8s.io/v1` when the server
//! serves it, else from core/v1 Endpoints (Kubernetes 1.20). Secrets are
//! limited to TLS Secrets, the only ones a listener can reference.

use std::fmt::Debug;

use ferry_core::objects::api::{
    EndpointSlice, Gateway, GatewayClass, GrpcRoute, HttpRoute, Namespace, ReferenceGrant, Secret,
    Service,
};
use ferry_core::objects::{Kind, Object};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::index::{Change, Item, Resource, endpoints_to_slice, pod_info};
use crate::metrics::Metrics;

/// A change and when its watch event arrived (for the watch lag metric).
pub type Timed = (Instant, Change);

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

/// Starts a watch per resource on `tasks`; returns the resources the index
/// must have listed before its outputs are complete.
pub async fn spawn_all(
    client: &Client,
    tx: &mpsc::Sender<Timed>,
    metrics: &Metrics,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Resource>, WatchError> {
    let mut expected = Vec::new();
    macro_rules! watch {
        ($ty:ty, $resource:expr, $config:expr, $to_item:expr) => {{
            let api = Api::<$ty>::all(client.clone());
            let (tx, metrics) = (tx.clone(), metrics.clone());
            tasks.spawn(run(api, $config, $resource, tx, metrics, $to_item));
            expected.push($resource);
        }};
    }
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
    let tls = all().fields("type=kubernetes.io/tls");
    watch!(Secret, core(Kind::Secret), tls, |o| Some(Item::Object(
        Object::Secret(o)
    )));
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

/// Runs one watch until the index goes away.
async fn run<K, F>(
    api: Api<K>,
    config: watcher::Config,
    resource: Resource,
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
            Ok(Event::InitDone) => Some(Change::Relist(resource, std::mem::take(&mut listed))),
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
                (absent && !listed_once).then(|| Change::Relist(resource, Vec::new()))
            }
        };
        if matches!(change, Some(Change::Relist(..))) {
            listed_once = true;
        }
        if let Some(change) = change
            && tx.send((Instant::now(), change)).await.is_err()
        {
            return;
        }
    }
}
