//! Fresh namespaces for tests, named after the test that asks for them.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, Error};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// Longest DNS label.
const MAX_LEN: usize = 63;
const SUFFIX_LEN: usize = 5;

/// A DNS-label name made of `prefix` (or, if empty, the current test's
/// name) and a random suffix: `watch-sees-route-x7k2p`.
pub(crate) fn unique_name(prefix: &str) -> String {
    let base = if prefix.is_empty() {
        let thread = std::thread::current();
        let test = thread
            .name()
            .and_then(|n| n.rsplit("::").next())
            .unwrap_or("test");
        if test == "main" { "test" } else { test }.to_owned()
    } else {
        prefix.to_owned()
    };
    let mut label: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    label.truncate(MAX_LEN - SUFFIX_LEN - 1);
    let label = label.trim_matches('-');
    let label = if label.is_empty() { "test" } else { label };
    let mut rng = StdRng::from_os_rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    format!("{label}-{suffix}")
}

/// Creates namespace `name` and its `default` ServiceAccount (which the
/// controller manager would make, if it runs, and which Pod admission needs).
pub(crate) async fn create(client: &Client, name: &str) -> Result<()> {
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some([("ferry.dev/test-harness".to_owned(), "true".to_owned())].into()),
        ..ObjectMeta::default()
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta,
                ..Namespace::default()
            },
        )
        .await
        .with_context(|| format!("failed to create namespace {name}"))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let default = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match accounts.create(&PostParams::default(), &default).await {
        Ok(_) => Ok(()),
        Err(Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(err) => {
            Err(err).with_context(|| format!("failed to create {name}/default ServiceAccount"))
        }
    }
}

/// Deletes the namespaces (a real cluster's; local clusters just stop).
pub(crate) async fn delete_all(client: &Client, names: &[String]) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in names {
        match namespaces.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(Error::Api(status)) if status.is_not_found() => {}
            Err(err) => {
                return Err(err).with_context(|| format!("failed to delete namespace {name}"));
            }
        }
    }
    Ok(())
}
