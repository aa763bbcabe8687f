//! The thin I/O layer: connect like kubectl, discover which Gateway API
//! kinds and versions the server serves, and list everything a view needs,
//! concurrently, into an [`Inventory`].
//!
//! A kind whose CRD is missing is skipped with a note; a list the user may
//! not read (403) leaves that part of the snapshot unknown, with a note, so
//! views say "unknown" rather than "missing".

mod convert;
mod discovery;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::join_all;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use kube::{Client, Config};
use serde_json::Value;

pub use discovery::Discovered;

use convert::{event, ready_endpoints};

use crate::model::{
    Gateway, GatewayClass, Inventory, ModelError, ReferenceGrant, Route, RouteKind, Service,
};

/// How to reach the cluster (`--kubeconfig`, `--context`, `--request-timeout`).
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Kubeconfig file; `KUBECONFIG` or `~/.kube/config` when unset.
    pub kubeconfig: Option<PathBuf>,
    /// Context; the current one when unset.
    pub context: Option<String>,
    /// Per-request timeout.
    pub request_timeout: Option<Duration>,
}

/// A client and the context's namespace.
#[derive(Clone)]
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The namespace of the kubeconfig context (`default` when unset).
    pub default_namespace: String,
}

/// Where to list routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace (`-A`).
    All,
}

/// What to fetch.
#[derive(Clone, Debug)]
pub struct Want {
    /// Route kinds to list.
    pub kinds: Vec<RouteKind>,
    /// Where to list routes.
    pub scope: Scope,
    /// `-l`, applied to routes.
    pub label_selector: Option<String>,
    /// Events about this object (`kind`, `namespace`, `name`).
    pub events_for: Option<(String, String, String)>,
}

/// Errors of the fetch layer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The kubeconfig cannot be read or used.
    #[error("failed to load the kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// The client cannot be built.
    #[error("failed to create a Kubernetes client")]
    Client(#[source] Box<kube::Error>),
    /// API discovery failed.
    #[error("failed to discover the API group {group}")]
    Discover {
        /// The group.
        group: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// A list call failed.
    #[error("failed to list {resource}")]
    List {
        /// The resource path.
        resource: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// A listed object does not decode.
    #[error(transparent)]
    Decode(#[from] ModelError),
}

/// A list that the user may not read or that is not served.
type Listed = Result<Option<Vec<Value>>, FetchError>;

// === impl Connection ===

impl Connection {
    /// Connects like kubectl: `--kubeconfig`, else `KUBECONFIG`, else
    /// `~/.kube/config` (in-cluster config as a last resort).
    pub async fn connect(options: &ConnectOptions) -> Result<Self, FetchError> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..KubeConfigOptions::default()
        };
        let loaded = match &options.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        };
        let mut config = match loaded {
            Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                .await
                .map_err(FetchError::Kubeconfig)?,
            Err(err) if options.kubeconfig.is_some() => return Err(FetchError::Kubeconfig(err)),
            Err(err) => Config::incluster().map_err(|_| FetchError::Kubeconfig(err))?,
        };
        if let Some(timeout) = options.request_timeout {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
        }
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| FetchError::Client(Box::new(e)))?;
        Ok(Self {
            client,
            default_namespace,
        })
    }

    /// Fetches the snapshot a view needs. Notes (skipped kinds, lists the
    /// user may not read) go to `notes`.
    pub async fn inventory(
        &self,
        want: &Want,
        notes: &mut Vec<String>,
    ) -> Result<Inventory, FetchError> {
        let found = Discovered::run(&self.client).await?;
        let route_kinds: Vec<(RouteKind, String)> = want
            .kinds
            .iter()
            .filter_map(|kind| match found.version_of(kind.plural()) {
                Some(version) => Some((*kind, version.to_owned())),
                None => {
                    notes.push(format!(
                        "{kind}s are not served by this cluster (CRD missing); skipped"
                    ));
                    None
                }
            })
            .collect();
        let route_params = ListParams {
            label_selector: want.label_selector.clone(),
            ..ListParams::default()
        };
        let route_lists = join_all(route_kinds.iter().map(|(kind, version)| {
            let path = collection(
                &format!("gateway.networking.k8s.io/{version}"),
                kind.plural(),
                &want.scope,
            );
            self.list(path, route_params.clone())
        }));
        let gw_path = |plural: &str| -> Option<(String, ListParams)> {
            found.version_of(plural).map(|v| {
                let path = collection(
                    &format!("gateway.networking.k8s.io/{v}"),
                    plural,
                    &Scope::All,
                );
                (path, ListParams::default())
            })
        };
        let gateways = self.list_opt(gw_path("gateways"));
        let classes = self.list_opt(gw_path("gatewayclasses"));
        let grants = self.list_opt(gw_path("referencegrants"));
        let services = self.list(
            collection("v1", "services", &Scope::All),
            ListParams::default(),
        );
        let namespaces = self.list("/api/v1/namespaces".to_owned(), ListParams::default());
        let endpoints = if found.endpoint_slices_v1 {
            self.list(
                collection("discovery.k8s.io/v1", "endpointslices", &Scope::All),
                ListParams::default(),
            )
        } else {
            self.list(
                collection("v1", "endpoints", &Scope::All),
                ListParams::default(),
            )
        };
        let events = self.list_opt(want.events_for.as_ref().map(|(kind, ns, name)| {
            let params = ListParams {
                field_selector: Some(format!(
                    "involvedObject.kind={kind},involvedObject.name={name}"
                )),
                ..ListParams::default()
            };
            (
                collection("v1", "events", &Scope::Namespace(ns.clone())),
                params,
            )
        }));
        let (route_lists, gateways, classes, grants, services, namespaces, endpoints, events) = tokio::join!(
            route_lists,
            gateways,
            classes,
            grants,
            services,
            namespaces,
            endpoints,
            events
        );

        let mut inv = Inventory::default();
        for ((kind, _), listed) in route_kinds.iter().zip(route_lists) {
            for item in known(listed, kind.plural(), notes)?.unwrap_or_default() {
                inv.routes.push(Route::from_json(*kind, item)?);
            }
        }
        if let Some(items) = known(gateways, "gateways", notes)? {
            inv.gateways_known = true;
            for item in items {
                inv.gateways.push(Gateway::from_json(item)?);
            }
        }
        if let Some(items) = known(classes, "gatewayclasses", notes)? {
            inv.gateway_classes_known = true;
            for item in items {
                inv.gateway_classes.push(GatewayClass::from_json(item)?);
            }
        }
        for item in known(grants, "referencegrants", notes)?.unwrap_or_default() {
            inv.reference_grants.push(ReferenceGrant::from_json(item)?);
        }
        if let Some(items) = known(services, "services", notes)? {
            inv.services_known = true;
            for item in items {
                inv.services.push(Service::from_json(item)?);
            }
        }
        inv.namespaces = known(namespaces, "namespaces", notes)?.map(|items| {
            items
                .into_iter()
                .filter_map(|ns| {
                    let name = ns.pointer("/metadata/name")?.as_str()?.to_owned();
                    let labels = serde_json::from_value(
                        ns.pointer("/metadata/labels")
                            .cloned()
                            .unwrap_or(Value::Null),
                    )
                    .unwrap_or_default();
                    Some((name, labels))
                })
                .collect()
        });
        inv.ready_endpoints = known(endpoints, "endpoints", notes)?
            .map(|items| ready_endpoints(&items, found.endpoint_slices_v1));
        let events = match want.events_for {
            Some(_) => known(events, "events", notes)?,
            None => events?,
        };
        inv.events = events.unwrap_or_default().iter().map(event).collect();
        inv.sort();
        Ok(inv)
    }

    async fn list_opt(&self, what: Option<(String, ListParams)>) -> Listed {
        match what {
            Some((path, params)) => self.list(path, params).await,
            None => Ok(None),
        }
    }

    /// Lists a collection; `None` when forbidden or not served.
    async fn list(&self, path: String, params: ListParams) -> Listed {
        let request = Request::new(path.clone())
            .list(&params)
            .map_err(|e| FetchError::List {
                resource: path.clone(),
                source: Box::new(kube::Error::BuildRequest(e)),
            })?;
        match self.client.request::<Value>(request).await {
            Ok(mut list) => Ok(Some(match list.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            })),
            Err(kube::Error::Api(status)) if status.is_forbidden() || status.is_not_found() => {
                Ok(None)
            }
            Err(source) => Err(FetchError::List {
                resource: path,
                source: Box::new(source),
            }),
        }
    }
}

/// The collection path of a resource.
fn collection(api_version: &str, plural: &str, scope: &Scope) -> String {
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match scope {
        Scope::All => format!("{base}/{plural}"),
        Scope::Namespace(ns) => format!("{base}/namespaces/{ns}/{plural}"),
    }
}

fn known(listed: Listed, what: &str, notes: &mut Vec<String>) -> Listed {
    let listed = listed?;
    if listed.is_none() {
        notes.push(format!(
            "cannot list {what} (forbidden or not served); shown as unknown"
        ));
    }
    Ok(listed)
}
