//! `allowedRoutes.namespaces`: which namespaces may attach routes to a
//! listener.

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::{
    GatewayListenersAllowedRoutesNamespaces, GatewayListenersAllowedRoutesNamespacesFrom as From,
};

use crate::objects::Objects;

/// Label every Namespace carries with its own name (set by the API server).
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where routes may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedNamespaces {
    /// Any namespace.
    All,
    /// The Gateway's namespace (the default).
    Same,
    /// Namespaces whose labels match.
    Selector(LabelSelector),
}

/// A Kubernetes label selector. Deserializes from the API's shape
/// (`matchLabels`, `matchExpressions`), for tools that read raw objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be equal.
    pub match_labels: BTreeMap<String, String>,
    /// Expressions that must all hold.
    pub match_expressions: Vec<LabelExpression>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct LabelExpression {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist` (anything else matches
    /// nothing).
    pub operator: String,
    /// Values for `In`/`NotIn`.
    pub values: Vec<String>,
}

// === impl AllowedNamespaces ===

impl AllowedNamespaces {
    /// Reads the listener field; absent means `Same`.
    pub fn new(field: Option<&GatewayListenersAllowedRoutesNamespaces>) -> Self {
        let Some(field) = field else {
            return Self::Same;
        };
        match field.from {
            Some(From::All) => Self::All,
            Some(From::Selector) => {
                let selector = field.selector.as_ref();
                Self::Selector(LabelSelector {
                    match_labels: selector
                        .and_then(|s| s.match_labels.clone())
                        .unwrap_or_default(),
                    match_expressions: selector
                        .and_then(|s| s.match_expressions.as_ref())
                        .map(|exprs| {
                            exprs
                                .iter()
                                .map(|e| LabelExpression {
                                    key: e.key.clone(),
                                    operator: e.operator.clone(),
                                    values: e.values.clone().unwrap_or_default(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            }
            Some(From::Same) | None => Self::Same,
        }
    }

    /// Whether a route in `namespace` may attach to a listener of a Gateway
    /// in `gateway_namespace`. Labels come from the Namespace object; a
    /// namespace missing from the index only has its name label.
    pub fn allows(&self, objects: &Objects, gateway_namespace: &str, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Same => gateway_namespace == namespace,
            Self::Selector(selector) => {
                let mut labels = objects
                    .namespace(namespace)
                    .and_then(|ns| ns.metadata.labels.clone())
                    .unwrap_or_default();
                labels
                    .entry(NAME_LABEL.to_string())
                    .or_insert_with(|| namespace.to_string());
                selector.matches(&labels)
            }
        }
    }

    /// Describes the policy for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::All => "routes from all namespaces",
            Self::Same => "only routes from the Gateway's namespace",
            Self::Selector(_) => "only routes from namespaces matching its selector",
        }
    }
}

// === impl LabelSelector ===

/// kubectl's selector syntax: `a=b,key,!other,env in (x,y)`.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator.as_str() {
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                op => format!("{} {} ({})", e.key, op.to_lowercase(), e.values.join(",")),
            });
        }
        f.write_str(&parts.join(","))
    }
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}
