//! Which Gateway API resources the server serves, and at which version.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use kube::Client;

use super::FetchError;
use crate::model::GATEWAY_GROUP;

/// The served versions of the Gateway API resources, and whether
/// EndpointSlices are served at `discovery.k8s.io/v1` (not on 1.20).
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// Resource plural to the version to use (the preferred one that
    /// serves it).
    versions: BTreeMap<String, String>,
    /// Whether `discovery.k8s.io/v1` EndpointSlices are served.
    pub endpoint_slices_v1: bool,
}

// === impl Discovered ===

impl Discovered {
    /// Asks the server: group list, then the resources of each version of
    /// the Gateway API group, concurrently.
    pub async fn run(client: &Client) -> Result<Self, FetchError> {
        let groups = client
            .list_api_groups()
            .await
            .map_err(|source| FetchError::Discover {
                group: "(all)".to_owned(),
                source: Box::new(source),
            })?;
        let mut found = Self::default();
        let mut versions: Vec<String> = Vec::new();
        for group in &groups.groups {
            if group.name == GATEWAY_GROUP {
                // The preferred version first, then the others as listed.
                if let Some(preferred) = &group.preferred_version {
                    versions.push(preferred.version.clone());
                }
                for v in &group.versions {
                    if !versions.contains(&v.version) {
                        versions.push(v.version.clone());
                    }
                }
            }
            if group.name == "discovery.k8s.io" {
                found.endpoint_slices_v1 = group.versions.iter().any(|v| v.version == "v1");
            }
        }
        let lists = join_all(versions.iter().map(|v| {
            let api_version = format!("{GATEWAY_GROUP}/{v}");
            async move { client.list_api_group_resources(&api_version).await }
        }))
        .await;
        for (version, listed) in versions.iter().zip(lists) {
            let list = match listed {
                Ok(list) => list,
                Err(kube::Error::Api(status)) if status.is_not_found() => continue,
                Err(source) => {
                    return Err(FetchError::Discover {
                        group: format!("{GATEWAY_GROUP}/{version}"),
                        source: Box::new(source),
                    });
                }
            };
            for resource in list.resources {
                if !resource.name.contains('/') {
                    found
                        .versions
                        .entry(resource.name)
                        .or_insert_with(|| version.clone());
                }
            }
        }
        Ok(found)
    }

    /// The version to use for a Gateway API resource, if served.
    pub fn version_of(&self, plural: &str) -> Option<&str> {
        self.versions.get(plural).map(String::as_str)
    }
}
