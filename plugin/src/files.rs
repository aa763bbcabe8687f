//! Offline input: multi-document YAML files (or stdin) read into an
//! [`Inventory`], for `check -f`.
//!
//! What the files hold is the whole world, with one allowance: when they
//! contain no Service (or no Gateway, no GatewayClass), references to that
//! kind are not judged, since the files are most likely only part of an
//! application (routes checked against a cluster's Services belong in a
//! live `check`). Namespaces not declared in the files have no labels.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{
    Gateway, GatewayClass, Inventory, ModelError, ReferenceGrant, Route, RouteKind, Service,
};

/// Errors reading files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file is not YAML.
    #[error("failed to parse {source_name} as YAML")]
    Yaml {
        /// File name (`-` for stdin).
        source_name: String,
        /// The cause.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A document does not have its kind's shape.
    #[error("in {source_name}")]
    Model {
        /// File name.
        source_name: String,
        /// The cause.
        #[source]
        source: ModelError,
    },
}

/// Reads `(name, text)` sources into one snapshot; objects without a
/// namespace go to `default_namespace`.
pub fn load(
    sources: &[(String, String)],
    default_namespace: &str,
) -> Result<Inventory, FilesError> {
    let mut inv = Inventory::default();
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, text) in sources {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|source| FilesError::Yaml {
                source_name: name.clone(),
                source: Box::new(source),
            })?;
        let mut stack: Vec<Value> = docs;
        while let Some(mut doc) = stack.pop() {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if kind == "List" || kind.ends_with("List") {
                if let Some(Value::Array(items)) = doc.get_mut("items").map(Value::take) {
                    stack.extend(items);
                }
                continue;
            }
            let cluster_scoped = matches!(kind.as_str(), "Namespace" | "GatewayClass");
            if !cluster_scoped
                && doc.pointer("/metadata/namespace").is_none()
                && let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.insert(
                    "namespace".to_owned(),
                    Value::String(default_namespace.to_owned()),
                );
            }
            let wrap = |source| FilesError::Model {
                source_name: name.clone(),
                source,
            };
            match kind.as_str() {
                "Gateway" => inv.gateways.push(Gateway::from_json(doc).map_err(wrap)?),
                "GatewayClass" => inv
                    .gateway_classes
                    .push(GatewayClass::from_json(doc).map_err(wrap)?),
                "ReferenceGrant" => inv
                    .reference_grants
                    .push(ReferenceGrant::from_json(doc).map_err(wrap)?),
                "Service" => inv.services.push(Service::from_json(doc).map_err(wrap)?),
                "Namespace" => {
                    let ns = doc
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let labels = doc
                        .pointer("/metadata/labels")
                        .cloned()
                        .and_then(|l| serde_json::from_value(l).ok())
                        .unwrap_or_default();
                    namespaces.insert(ns.to_owned(), labels);
                }
                other => {
                    if let Some(route_kind) = RouteKind::from_kind(other) {
                        inv.routes
                            .push(Route::from_json(route_kind, doc).map_err(wrap)?);
                    }
                }
            }
        }
    }
    inv.gateways_known = !inv.gateways.is_empty();
    inv.services_known = !inv.services.is_empty();
    inv.gateway_classes_known = !inv.gateway_classes.is_empty();
    inv.namespaces = Some(namespaces);
    inv.sort();
    Ok(inv)
}
