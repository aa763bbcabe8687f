//! The MutatingWebhookConfiguration the webhook owns, applied with
//! server-side apply so its `caBundle` always matches the serving
//! certificate, and the server-version probe that picks the sidecar mode.

use std::collections::BTreeMap;

use ferry_injector::{PART_OF_LABEL, SidecarMode};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use crate::WebhookError;
use crate::config::{Registration, WebhookArgs};

/// Field manager of the webhook's writes.
pub const FIELD_MANAGER: &str = "ferry-webhook";
/// Name of the single webhook in the configuration.
pub const WEBHOOK_NAME: &str = "inject.ferry.dev";
/// Path the apiserver posts AdmissionReviews to.
pub const INJECT_PATH: &str = "/inject";
/// Namespace label that turns injection on.
pub const NAMESPACE_LABEL: &str = "ferry.dev/inject";

/// The configuration for `args`, trusting `ca_pem`.
pub fn webhook_configuration(args: &WebhookArgs, ca_pem: &str) -> MutatingWebhookConfiguration {
    let client_config = WebhookClientConfig {
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: args.url.is_none().then(|| ServiceReference {
            name: args.service.clone(),
            namespace: args.namespace.clone(),
            path: Some(INJECT_PATH.to_owned()),
            port: Some(i32::from(args.service_port)),
        }),
        url: args.url.clone(),
    };
    let timeout = i32::try_from(args.timeout.as_secs().clamp(1, 30)).unwrap_or(10);
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(args.configuration.clone()),
            labels: Some(BTreeMap::from([(
                PART_OF_LABEL.to_owned(),
                "ferry".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config,
            failure_policy: Some(args.failure_policy.as_str().to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_LABEL.to_owned(),
                    "enabled".to_owned(),
                )])),
                match_expressions: None,
            }),
            object_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: PART_OF_LABEL.to_owned(),
                    operator: "NotIn".to_owned(),
                    values: Some(vec!["ferry".to_owned()]),
                }]),
                match_labels: None,
            }),
            reinvocation_policy: Some("Never".to_owned()),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".to_owned()]),
                operations: Some(vec!["CREATE".to_owned()]),
                resources: Some(vec!["pods".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            }]),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(timeout),
            ..MutatingWebhook::default()
        }]),
    }
}

/// What [`apply`] sends: the whole configuration, or (an installer owning
/// it) only the caBundle of its webhook, merged by the webhook's name.
pub fn registration_patch(args: &WebhookArgs, ca_pem: &str) -> serde_json::Value {
    match args.registration {
        Registration::Apply => {
            let mut config = webhook_configuration(args, ca_pem);
            config.metadata.managed_fields = None;
            serde_json::json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": config.metadata,
                "webhooks": config.webhooks,
            })
        }
        Registration::CaBundle => serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": { "name": args.configuration },
            "webhooks": [{
                "name": WEBHOOK_NAME,
                "clientConfig": { "caBundle": ByteString(ca_pem.as_bytes().to_vec()) },
            }],
        }),
    }
}

/// Server-side applies [`registration_patch`] (forcing ownership of its
/// fields). With [`Registration::CaBundle`] a configuration that does not
/// exist is an error naming the installer, never created half.
pub async fn apply(
    client: kube::Client,
    args: &WebhookArgs,
    ca_pem: &str,
) -> Result<(), WebhookError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    if args.registration == Registration::CaBundle
        && api
            .get_opt(&args.configuration)
            .await
            .map_err(|source| WebhookError::Register {
                name: args.configuration.clone(),
                source: Box::new(source),
            })?
            .is_none()
    {
        return Err(WebhookError::RegistrationMissing {
            name: args.configuration.clone(),
        });
    }
    let value = registration_patch(args, ca_pem);
    api.patch(
        &args.configuration,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await
    .map_err(|source| WebhookError::Register {
        name: args.configuration.clone(),
        source: Box::new(source),
    })?;
    Ok(())
}

/// Asks the apiserver its version: native sidecars from 1.29 on.
pub async fn detect_sidecar_mode(client: &kube::Client) -> Result<SidecarMode, WebhookError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(|source| WebhookError::ServerVersion {
            source: Box::new(source),
        })?;
    Ok(SidecarMode::for_server_version(&info.major, &info.minor))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookArgs,
    }

    #[test]
    fn registration_selects_labelled_namespaces_and_trusts_the_ca() {
        let args = Cli::parse_from(["t", "--webhook-timeout", "3"]).webhook;
        let value = serde_json::to_value(webhook_configuration(&args, "PEM")).unwrap();
        let hook = &value["webhooks"][0];
        assert_eq!(hook["name"], WEBHOOK_NAME);
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["timeoutSeconds"], 3);
        assert_eq!(
            hook["namespaceSelector"]["matchLabels"][NAMESPACE_LABEL],
            "enabled"
        );
        assert_eq!(hook["clientConfig"]["service"]["path"], INJECT_PATH);
        assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(hook["rules"][0]["operations"][0], "CREATE");
    }

    #[test]
    fn an_installer_owned_registration_gets_only_its_ca_bundle() {
        let args = Cli::parse_from(["t", "--webhook-registration", "ca-bundle"]).webhook;
        let value = registration_patch(&args, "PEM");
        assert_eq!(
            value["webhooks"],
            serde_json::json!([{ "name": WEBHOOK_NAME, "clientConfig": { "caBundle": "UEVN" } }])
        );
        assert_eq!(
            value["metadata"],
            serde_json::json!({ "name": "ferry-injector" })
        );
        let full = Cli::parse_from(["t"]).webhook;
        assert!(registration_patch(&full, "PEM")["webhooks"][0]["rules"].is_array());
        // As Kubernetes spells it (the chart's values), or as the flag does.
        for spelled in ["Fail", "fail"] {
            let args = Cli::parse_from(["t", "--webhook-failure-policy", spelled]).webhook;
            assert_eq!(args.failure_policy.as_str(), "Fail");
        }
    }
}
