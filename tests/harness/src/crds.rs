//! The Gateway API CRDs (standard channel), embedded from the chart's copy.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, Error};
use tokio::task::JoinSet;

macro_rules! standard {
    ($($file:literal),* $(,)?) => {
        &[$((
            $file,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../charts/ferry/files/gateway-api/standard/",
                $file
            )),
        )),*]
    };
}

/// File name and contents of each upstream file of the standard channel,
/// as copied to `charts/ferry/files/gateway-api/standard/`.
pub const GATEWAY_API_STANDARD: &[(&str, &str)] = standard![
    "gateway.networking.k8s.io_backendtlspolicies.yaml",
    "gateway.networking.k8s.io_gatewayclasses.yaml",
    "gateway.networking.k8s.io_gateways.yaml",
    "gateway.networking.k8s.io_grpcroutes.yaml",
    "gateway.networking.k8s.io_httproutes.yaml",
    "gateway.networking.k8s.io_listenersets.yaml",
    "gateway.networking.k8s.io_referencegrants.yaml",
    "gateway.networking.k8s.io_tcproutes.yaml",
    "gateway.networking.k8s.io_tlsroutes.yaml",
    "gateway.networking.k8s.io_udproutes.yaml",
    "gateway.networking.k8s.io_vap_safeupgrades.yaml",
];

/// How long the CRDs may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The CustomResourceDefinitions among [`GATEWAY_API_STANDARD`]. Other
/// documents (the ValidatingAdmissionPolicy that guards upgrades, which
/// needs Kubernetes 1.30) are left out.
pub(crate) fn definitions() -> Result<Vec<CustomResourceDefinition>> {
    let mut crds = Vec::new();
    for (file, text) in GATEWAY_API_STANDARD {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).with_context(|| format!("failed to parse {file}"))?;
        for doc in docs {
            if doc["kind"] == "CustomResourceDefinition" {
                crds.push(serde_json::from_value(doc).with_context(|| format!("in {file}"))?);
            }
        }
    }
    Ok(crds)
}

/// Creates every Gateway API CRD the cluster lacks (existing ones are left
/// as they are) and waits until all of them are Established.
pub(crate) async fn install(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut tasks = JoinSet::new();
    let mut names = Vec::new();
    for crd in definitions()? {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        names.push(name.clone());
        let api = api.clone();
        tasks.spawn(async move {
            match api.create(&PostParams::default(), &crd).await {
                Ok(_) => Ok(()),
                Err(Error::Api(status)) if status.is_already_exists() => Ok(()),
                Err(err) => Err(err).with_context(|| format!("failed to create CRD {name}")),
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("CRD task panicked")??;
    }
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    for name in names {
        while !established(&api.get(&name).await?) {
            if tokio::time::Instant::now() > deadline {
                bail!("CRD {name} not Established after {ESTABLISH_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
