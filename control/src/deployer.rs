//! The gateway deployer: for each Gateway of a Ferry class, a
//! ServiceAccount, a Deployment of `ferry-proxy --mode gateway` running as
//! it and a Service ([`render`]), applied in that order with server-side
//! apply (field manager `ferry-control`) while this replica leads, and the
//! Gateway's `status.addresses` filled from the Service. ferry-control
//! needs RBAC to get, create and patch ServiceAccounts, Deployments and
//! Services in the Gateways' namespaces.
//!
//! The plan is computed by the index task ([`plan`]); this task only
//! applies what changed since its last successful apply.

pub mod render;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::attach::is_ferry_class;
use ferry_core::objects::{NsName, Objects};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::writer::FIELD_MANAGER;
use render::{DeploySettings, Rendered};

/// One Gateway's deployment, and its addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploy {
    /// The objects to apply.
    pub rendered: Rendered,
    /// Addresses from the Service as the index last saw it.
    pub addresses: Vec<Value>,
    /// `status.addresses` of the Gateway as the index last saw it.
    pub current: Vec<Value>,
}

/// Errors of one Gateway's deployment.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Applying an object failed.
    #[error("failed to apply {kind} {id} for Gateway {gateway}")]
    Apply {
        /// ServiceAccount, Deployment or Service.
        kind: &'static str,
        /// The object.
        id: NsName,
        /// The Gateway.
        gateway: NsName,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Writing the Gateway's addresses failed.
    #[error("failed to patch status.addresses of Gateway {gateway}")]
    Addresses {
        /// The Gateway.
        gateway: NsName,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Applies plans while leading.
pub struct Deployer {
    client: Client,
    metrics: Metrics,
    applied: BTreeMap<NsName, Rendered>,
}

/// What every Ferry Gateway of `objects` deploys. A Gateway whose
/// parameters are invalid is not deployed (its status says why) rather
/// than deployed with defaults.
pub fn plan(objects: &Objects, settings: &DeploySettings) -> Vec<Deploy> {
    objects
        .gateways()
        .filter(|(_, gw)| is_ferry_class(objects, &gw.spec.gateway_class_name))
        .filter_map(|(id, gw)| {
            let params = ferry_core::params::effective(objects, id, gw).ok()?;
            let rendered = render::render(id, gw, &params, settings)?;
            let service = NsName::new(&id.namespace, render::object_name(&id.name));
            let addresses = objects
                .service(&service)
                .map(render::addresses)
                .unwrap_or_default();
            let current = gw
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .map(|a| {
                    a.iter()
                        .filter_map(|a| serde_json::to_value(a).ok())
                        .collect()
                })
                .unwrap_or_default();
            Some(Deploy {
                rendered,
                addresses,
                current,
            })
        })
        .collect()
}

// === impl Deployer ===

impl Deployer {
    /// A deployer writing with `client`.
    pub fn new(client: Client, metrics: Metrics) -> Self {
        Self {
            client,
            metrics,
            applied: BTreeMap::new(),
        }
    }

    /// Applies every plan while `leader` says so, until a channel closes.
    pub async fn run(
        mut self,
        mut plans: watch::Receiver<Option<Arc<Vec<Deploy>>>>,
        mut leader: watch::Receiver<bool>,
    ) {
        loop {
            while !*leader.borrow_and_update() {
                self.applied.clear();
                if leader.changed().await.is_err() {
                    return;
                }
            }
            let plan = plans.borrow_and_update().clone();
            let mut failed = false;
            for deploy in plan.iter().flat_map(|p| p.iter()) {
                if let Err(error) = self.apply(deploy).await {
                    failed = true;
                    tracing::warn!(%error, "Failed to deploy Gateway");
                }
            }
            let retry = async {
                if failed {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                changed = plans.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
                () = retry => {}
            }
        }
    }

    async fn apply(&mut self, deploy: &Deploy) -> Result<(), DeployError> {
        let r = &deploy.rendered;
        let gateway = &r.gateway;
        if self.applied.get(gateway) != Some(r) {
            self.applied.remove(gateway);
            // The ServiceAccount first: a pod naming a missing one is refused.
            self.apply_object("ServiceAccount", gateway, &r.service_account)
                .await?;
            self.apply_object("Deployment", gateway, &r.deployment)
                .await?;
            self.apply_object("Service", gateway, &r.service).await?;
            tracing::info!(%gateway, "Deployed Gateway");
            self.applied.insert(gateway.clone(), r.clone());
        }
        if !deploy.addresses.is_empty() && deploy.addresses != deploy.current {
            let gateways = crate::writer::gateway_api(&self.client, &gateway.namespace);
            let patch = json!({"status": {"addresses": deploy.addresses}});
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            let result = gateways
                .patch_status(&gateway.name, &params, &Patch::Merge(&patch))
                .await;
            self.metrics.status_write("Gateway", result.is_ok());
            result.map_err(|source| DeployError::Addresses {
                gateway: gateway.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// Server-side applies `object` (a `kind` deployed for `gateway`, in
    /// its namespace, named after it).
    async fn apply_object<K>(
        &self,
        kind: &'static str,
        gateway: &NsName,
        object: &K,
    ) -> Result<(), DeployError>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
        K::DynamicType: Default,
    {
        let name = render::object_name(&gateway.name);
        let api: Api<K> = Api::namespaced(self.client.clone(), &gateway.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = api.patch(&name, &params, &Patch::Apply(object)).await;
        self.metrics.status_write(kind, result.is_ok());
        result.map(drop).map_err(|source| DeployError::Apply {
            kind,
            id: NsName::new(&gateway.namespace, &name),
            gateway: gateway.clone(),
            source: Box::new(source),
        })
    }
}
