//! The status writer: writes the status the index computed, only while this
//! replica holds the Lease.
//!
//! Each object is written with a JSON merge patch of its `status`
//! subresource, carrying the `resourceVersion` it was computed from, so a
//! concurrent change by another controller makes the write fail with a
//! conflict (then it is re-read and retried) instead of erasing that
//! controller's entries. What was written is remembered, so an unchanged
//! object costs nothing; a failed write is retried after `retry_after`.

pub mod desired;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::objects::{GATEWAY_GROUP, Kind, NsName};
use ferry_core::status::Status;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferry-control";

/// Writes status while leading.
pub struct StatusWriter {
    client: Client,
    metrics: Metrics,
    timeout: Duration,
    retry_after: Duration,
    /// Per object, the computed part last written (without times).
    written: BTreeMap<(Kind, NsName), Value>,
}

/// Errors of one write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading the object failed.
    #[error("failed to read {kind} {id}")]
    Read {
        /// Kind.
        kind: Kind,
        /// Object.
        id: NsName,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Patching its status failed.
    #[error("failed to patch status of {kind} {id}")]
    Patch {
        /// Kind.
        kind: Kind,
        /// Object.
        id: NsName,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// The write took too long.
    #[error("timed out writing status of {kind} {id}")]
    Timeout {
        /// Kind.
        kind: Kind,
        /// Object.
        id: NsName,
    },
}

// === impl StatusWriter ===

impl StatusWriter {
    /// A writer that gives each write `timeout`.
    pub fn new(client: Client, metrics: Metrics, timeout: Duration) -> Self {
        Self {
            client,
            metrics,
            timeout,
            retry_after: Duration::from_secs(5),
            written: BTreeMap::new(),
        }
    }

    /// Writes every computed status while `leader` says so, until either
    /// channel closes.
    pub async fn run(
        mut self,
        mut status: watch::Receiver<Option<Arc<Status>>>,
        mut leader: watch::Receiver<bool>,
    ) {
        loop {
            while !*leader.borrow_and_update() {
                self.metrics.set_leader(false);
                // Another replica may write meanwhile: forget what we wrote.
                self.written.clear();
                if leader.changed().await.is_err() {
                    return;
                }
            }
            self.metrics.set_leader(true);
            let current = status.borrow_and_update().clone();
            let failed = match current {
                Some(current) => self.write_all(&current).await,
                None => 0,
            };
            let retry = async {
                if failed > 0 {
                    tokio::time::sleep(self.retry_after).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
                () = retry => {}
            }
        }
    }

    /// Writes what changed; returns how many writes failed.
    pub async fn write_all(&mut self, status: &Status) -> usize {
        let mut wanted: BTreeMap<(Kind, NsName), Value> = BTreeMap::new();
        for class in &status.gateway_classes {
            let id = NsName::new("", &class.name);
            wanted.insert((Kind::GatewayClass, id), json!(class.conditions));
        }
        for gateway in &status.gateways {
            wanted.insert((Kind::Gateway, gateway.gateway.clone()), json!(gateway));
        }
        for route in &status.routes {
            wanted.insert((route.kind, route.route.clone()), json!(route.parents));
        }
        // Routes that are no longer Ferry's lose Ferry's entries.
        let gone: BTreeSet<(Kind, NsName)> = self
            .written
            .keys()
            .filter(|(kind, _)| matches!(kind, Kind::HttpRoute | Kind::GrpcRoute))
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        let mut failed = 0;
        for (key, value) in wanted.iter().chain(gone.iter().map(|k| (k, &Value::Null))) {
            if self.written.get(key) == Some(value) {
                continue;
            }
            let (kind, id) = key;
            let result = tokio::time::timeout(self.timeout, self.write(status, *kind, id)).await;
            let result = result.unwrap_or_else(|_| {
                Err(WriteError::Timeout {
                    kind: *kind,
                    id: id.clone(),
                })
            });
            self.metrics.status_write(kind.as_str(), result.is_ok());
            match result {
                Ok(()) if value.is_null() => {
                    self.written.remove(key);
                }
                Ok(()) => {
                    self.written.insert(key.clone(), value.clone());
                }
                Err(error) => {
                    failed += 1;
                    self.written.remove(key);
                    tracing::warn!(%error, "Failed to write status");
                }
            }
        }
        failed
    }

    /// Reads the object and patches its status if it differs, retrying on
    /// conflicts.
    async fn write(&self, status: &Status, kind: Kind, id: &NsName) -> Result<(), WriteError> {
        let api = self.api(kind, id);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let object = match api.get_status(&id.name).await {
                Ok(object) => object,
                // Deleted meanwhile: nothing to write.
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(source) => {
                    return Err(WriteError::Read {
                        kind,
                        id: id.clone(),
                        source: Box::new(source),
                    });
                }
            };
            let existing = object.data.get("status").cloned().unwrap_or(Value::Null);
            let Some(wanted) = Self::desired(status, kind, id, &existing) else {
                return Ok(());
            };
            if wanted == existing {
                return Ok(());
            }
            let patch = json!({
                "metadata": { "resourceVersion": object.metadata.resource_version },
                "status": wanted,
            });
            match api
                .patch_status(&id.name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_conflict() && attempts < 3 => continue,
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(source) => {
                    return Err(WriteError::Patch {
                        kind,
                        id: id.clone(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    /// The whole `status` to write, from the computed values and the
    /// object's current `status`.
    fn desired(status: &Status, kind: Kind, id: &NsName, existing: &Value) -> Option<Value> {
        let now = Timestamp::now();
        match kind {
            Kind::GatewayClass => {
                let class = status.gateway_classes.iter().find(|c| c.name == id.name)?;
                let mut out = existing.as_object().cloned().unwrap_or_default();
                if let Value::Object(ours) = desired::gateway_class(class, existing, &now) {
                    out.extend(ours);
                }
                Some(Value::Object(out))
            }
            Kind::Gateway => Some(desired::gateway(status.gateway(id)?, existing, &now)),
            Kind::HttpRoute | Kind::GrpcRoute => {
                let ours = status
                    .route(kind, id)
                    .map(|r| r.parents.as_slice())
                    .unwrap_or_default();
                let mut out = existing.as_object().cloned().unwrap_or_default();
                out.insert(
                    "parents".into(),
                    desired::route_parents(ours, existing, &now),
                );
                Some(Value::Object(out))
            }
            _ => None,
        }
    }

    fn api(&self, kind: Kind, id: &NsName) -> Api<DynamicObject> {
        dynamic_api(&self.client, kind, &id.namespace)
    }
}

/// The Gateways of a namespace, as dynamic objects.
pub fn gateway_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    dynamic_api(client, Kind::Gateway, namespace)
}

/// The API of a Gateway API kind (routes, Gateways, GatewayClasses).
fn dynamic_api(client: &Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    {
        let plural = match kind {
            Kind::GatewayClass => "gatewayclasses",
            Kind::Gateway => "gateways",
            Kind::GrpcRoute => "grpcroutes",
            _ => "httproutes",
        };
        let gvk = GroupVersionKind::gvk(GATEWAY_GROUP, "v1", kind.as_str());
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        if kind.is_namespaced() {
            Api::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        }
    }
}
