//! Publishes the trust anchors as ConfigMap `ferry-trust-anchors` (key
//! `ca.pem`) in every namespace labelled for injection, where the injector
//! mounts it into each proxy, and in every namespace holding a Ferry
//! Gateway, where the deployer mounts it into the gateway's proxies.
//! Namespaces that gain the label or a Gateway get it at once; new anchors
//! (a rotation) reach all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use super::CaMetrics;
use super::material::Material;

/// Name of the ConfigMap the injector mounts.
pub const CONFIG_MAP: &str = "ferry-trust-anchors";
/// Its key holding the anchors (PEM).
pub const CONFIG_MAP_KEY: &str = "ca.pem";
/// Field manager of the ConfigMaps.
const FIELD_MANAGER: &str = "ferry-control";
/// How often namespaces whose ConfigMap failed are tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Keeps the ConfigMap in step with `material` in every namespace with
/// `ferry.dev/inject=enabled` and in the `gateways` namespaces (those with a
/// Ferry Gateway). Runs until `material`'s sender is dropped.
pub async fn publish(
    client: Client,
    mut material: watch::Receiver<Option<Arc<Material>>>,
    mut gateways: watch::Receiver<BTreeSet<String>>,
    metrics: CaMetrics,
) {
    let selector = format!("{}=enabled", ferry_webhook::NAMESPACE_LABEL);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut events = watcher(namespaces, watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut labelled: BTreeSet<String> = BTreeSet::new();
    // Namespaces with a Ferry Gateway, as last seen.
    let mut with_gateway = gateways.borrow_and_update().clone();
    let mut gateways_open = true;
    // Namespaces whose ConfigMap is not known to hold the current anchors.
    let mut pending: BTreeSet<String> = with_gateway.clone();
    let mut retry = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Apply(ns) | Event::InitApply(ns))) => {
                    if let Some(name) = ns.metadata.name {
                        labelled.insert(name.clone());
                        pending.insert(name);
                    }
                }
                Some(Ok(Event::Delete(ns))) => {
                    if let Some(name) = ns.metadata.name {
                        labelled.remove(&name);
                        pending.remove(&name);
                    }
                }
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(error)) => tracing::warn!(%error, "Namespace watch failed"),
                None => return,
            },
            changed = material.changed() => {
                if changed.is_err() {
                    return;
                }
                pending.clone_from(&labelled);
                pending.extend(with_gateway.iter().cloned());
            }
            changed = gateways.changed(), if gateways_open => {
                if changed.is_err() {
                    // The index task is gone: the last namespaces stay.
                    gateways_open = false;
                    continue;
                }
                let current = gateways.borrow_and_update().clone();
                pending.extend(current.difference(&with_gateway).cloned());
                pending.retain(|ns| labelled.contains(ns) || current.contains(ns));
                with_gateway = current;
            }
            _ = retry.tick() => {}
        }
        let current = material.borrow().clone();
        let Some(current) = current else { continue };
        let mut failed = BTreeSet::new();
        for namespace in std::mem::take(&mut pending) {
            if let Err(error) = apply(&client, &namespace, current.anchors_pem()).await {
                tracing::warn!(%error, %namespace, "Failed to publish the trust anchors");
                metrics.anchors_failed();
                failed.insert(namespace);
            }
        }
        pending = failed;
    }
}

/// Server-side applies the ConfigMap in `namespace`.
async fn apply(client: &Client, namespace: &str, anchors_pem: &str) -> Result<(), kube::Error> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "ferry".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            CONFIG_MAP_KEY.to_owned(),
            anchors_pem.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    let mut value = serde_json::to_value(&map).expect("invariant: a ConfigMap serializes");
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    maps.patch(
        CONFIG_MAP,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await
    .map(drop)
}
