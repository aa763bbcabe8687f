//! Against the harness's real kube-apiserver: the apiserver itself calls the
//! webhook registered by [`Webhook::run`], and what it stores is what counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ferry_harness::Cluster;
use ferry_injector::SidecarMode;
use ferry_webhook::{Webhook, WebhookArgs};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    webhook: WebhookArgs,
}

fn args(url: &str, failure_policy: &str) -> WebhookArgs {
    Cli::parse_from([
        "test",
        "--webhook-url",
        url,
        "--webhook-cert-ip",
        "127.0.0.1",
        "--webhook-failure-policy",
        failure_policy,
        "--webhook-resync",
        "1",
        "--proxy-image",
        "ferry/proxy:test",
    ])
    .webhook
}

/// A fresh namespace labelled `ferry.dev/inject=enabled`.
async fn meshed_namespace(cluster: &Cluster) -> Result<String> {
    let name = cluster.new_namespace("meshed").await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let labels = json!({"metadata": {"labels": {"ferry.dev/inject": "enabled"}}});
    namespaces
        .patch(&name, &PatchParams::default(), &Patch::Merge(labels))
        .await?;
    Ok(name)
}

fn pod(name: &str, annotations: Value, labels: Value, host_network: bool) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations, "labels": labels},
        "spec": {
            "hostNetwork": host_network,
            "containers": [{
                "name": "app", "image": "app.invalid/app:1",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}
            }]
        }
    }))?)
}

async fn create(api: &Api<Pod>, pod: &Pod) -> Result<Pod> {
    Ok(api.create(&PostParams::default(), pod).await?)
}

fn injected(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.contains_key("ferry.dev/injected")
}

/// The apiserver loads webhook configurations and namespace labels
/// asynchronously: create pods until `done` says the new state is in force.
async fn create_until(
    api: &Api<Pod>,
    prefix: &str,
    done: impl Fn(&Result<Pod>) -> bool,
) -> Result<Result<Pod>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0u32.. {
        let result = create(
            api,
            &pod(&format!("{prefix}-{attempt}"), json!({}), json!({}), false)?,
        )
        .await;
        if done(&result) {
            return Ok(result);
        }
        if Instant::now() > deadline {
            bail!("no change after 30 s; last result: {result:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!("u32 attempts ran out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_injects_pods_of_labelled_namespaces_only() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: a remote apiserver cannot reach a webhook on this host's loopback");
        return Ok(());
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}/inject", listener.local_addr()?);
    let mut registry = Registry::default();
    let webhook = Webhook::prepare_with_listener(
        args(&url, "ignore"),
        cluster.client(),
        &mut registry,
        listener,
    )
    .await?;
    let version = cluster.server_version();
    let expected_mode = SidecarMode::for_server_version(&version.major, &version.minor);
    assert_eq!(webhook.inject_config().sidecar_mode, expected_mode);
    let ca_pem = webhook.cert().ca_pem.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(webhook.run(async move {
        let _ = stopped.await;
    }));

    let meshed = meshed_namespace(&cluster).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &meshed);
    let stored = create_until(&pods, "app", |r| r.as_ref().is_ok_and(injected)).await??;
    check_injected(&stored, expected_mode).with_context(|| format!("{stored:#?}"))?;

    // With the webhook in force: an unlabelled namespace is untouched, and so
    // are opted-out, hostNetwork and Ferry's own pods.
    let plain: Api<Pod> = Api::namespaced(cluster.client(), cluster.namespace());
    let untouched = create(&plain, &pod("plain", json!({}), json!({}), false)?).await?;
    assert!(
        !injected(&untouched) && untouched.spec.as_ref().map(|s| s.containers.len()) == Some(1)
    );
    for (name, annotations, labels, host_network) in [
        (
            "opted-out",
            json!({"ferry.dev/inject": "disabled"}),
            json!({}),
            false,
        ),
        ("host-net", json!({}), json!({}), true),
        (
            "ferry-own",
            json!({}),
            json!({"app.kubernetes.io/part-of": "ferry"}),
            false,
        ),
    ] {
        let stored = create(&pods, &pod(name, annotations, labels, host_network)?).await?;
        assert!(!injected(&stored), "{name} was injected");
        assert_eq!(
            stored.spec.as_ref().map(|s| s.containers.len()),
            Some(1),
            "{name}"
        );
    }

    // A typo in an annotation is refused with the reason.
    let typo = pod(
        "typo",
        json!({"ferry.dev/proxy-cpu-limit": "lots"}),
        json!({}),
        false,
    )?;
    let error = create(&pods, &typo)
        .await
        .expect_err("typo admitted")
        .to_string();
    assert!(
        error.contains("ferry.dev/proxy-cpu-limit") && error.contains("lots"),
        "{error}"
    );

    // The caBundle is kept in step: an edit is undone by the next resync.
    let configs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let other_ca = ferry_webhook::ServingCert::generate(&["x".to_owned()], &[])?.ca_pem;
    let edit = json!({"webhooks": [{"name": "inject.ferry.dev", "clientConfig": {"caBundle": ByteString(other_ca.into_bytes())}}]});
    configs
        .patch(
            "ferry-injector",
            &PatchParams::default(),
            &Patch::Strategic(edit),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let config = configs.get("ferry-injector").await?;
        let bundle = config
            .webhooks
            .unwrap_or_default()
            .first()
            .and_then(|w| w.client_config.ca_bundle.clone());
        if bundle.map(|b| b.0) == Some(ca_pem.clone().into_bytes()) {
            break;
        }
        assert!(Instant::now() < deadline, "caBundle not restored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(&mut metrics, &registry)?;
    assert!(
        metrics
            .contains("ferry_webhook_admissions_total{outcome=\"injected\",reason=\"injected\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"opted_out\""), "{metrics}");
    let _ = stop.send(());
    running.await??;
    Ok(())
}

/// What the apiserver stored is the injected pod, validated by the server.
fn check_injected(pod: &Pod, mode: SidecarMode) -> Result<()> {
    let spec = pod.spec.as_ref().context("no spec")?;
    let inits = spec.init_containers.clone().unwrap_or_default();
    let names = |cs: &[k8s_openapi::api::core::v1::Container]| {
        cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
    };
    let proxy = match mode {
        SidecarMode::Classic => {
            assert_eq!(names(&spec.containers), ["ferry-proxy", "app"]);
            assert_eq!(names(&inits), ["ferry-init"]);
            &spec.containers[0]
        }
        SidecarMode::Native => {
            assert_eq!(names(&inits), ["ferry-init", "ferry-proxy"]);
            assert_eq!(inits[1].restart_policy.as_deref(), Some("Always"));
            &inits[1]
        }
    };
    let init_caps = inits[0]
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.clone())
        .context("caps")?;
    assert_eq!(
        init_caps.add,
        Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()])
    );
    let security = proxy
        .security_context
        .as_ref()
        .context("proxy securityContext")?;
    assert_eq!(
        (security.run_as_user, security.run_as_non_root),
        (Some(2102), Some(true))
    );
    let env: BTreeMap<_, _> = proxy
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert!(env.contains_key("FERRY_POD_NAME") && env.contains_key("FERRY_IDENTITY_TOKEN"));
    assert!(
        env.get("FERRY_APP_PROBES")
            .cloned()
            .flatten()
            .unwrap_or_default()
            .contains("/app-probe/app/readiness")
    );
    let app = spec
        .containers
        .iter()
        .find(|c| c.name == "app")
        .context("app container")?;
    let probe = app
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.clone())
        .context("app probe")?;
    assert_eq!(probe.path.as_deref(), Some("/app-probe/app/readiness"));
    let volumes = spec.volumes.clone().unwrap_or_default();
    let identity = volumes
        .iter()
        .find(|v| v.name == "ferry-identity")
        .context("identity volume")?;
    let token = identity
        .projected
        .as_ref()
        .and_then(|p| p.sources.clone())
        .unwrap_or_default();
    let audience = token
        .first()
        .and_then(|s| s.service_account_token.as_ref())
        .and_then(|t| t.audience.clone());
    assert_eq!(audience.as_deref(), Some("ferry"));
    assert!(volumes.iter().any(|v| v.name == "ferry-trust-anchors"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_down_the_failure_policy_decides() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: a remote apiserver cannot reach a webhook on this host's loopback");
        return Ok(());
    }
    // A port nobody listens on: the webhook is down.
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let url = format!("https://127.0.0.1:{port}/inject");
    let ca_pem = ferry_webhook::ServingCert::generate(&[], &["127.0.0.1".parse()?])?.ca_pem;
    let meshed = meshed_namespace(&cluster).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &meshed);

    // Fail: the user gets a clear error naming the webhook.
    ferry_webhook::apply_registration(cluster.client(), &args(&url, "fail"), &ca_pem).await?;
    let refused = create_until(&pods, "fail", |r| r.is_err()).await?;
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("inject.ferry.dev") && message.contains("failed calling webhook"),
        "{message}"
    );

    // Ignore: the pod is created, uninjected.
    ferry_webhook::apply_registration(cluster.client(), &args(&url, "ignore"), &ca_pem).await?;
    let created = create_until(&pods, "ignore", |r| r.is_ok()).await??;
    assert!(!injected(&created));
    assert_eq!(created.spec.as_ref().map(|s| s.containers.len()), Some(1));
    Ok(())
}

/// With `--webhook-registration ca-bundle` the installer (the Helm chart)
/// owns the configuration: the webhook sets only its caBundle, leaves every
/// other field as the installer wrote it, and creates nothing when the
/// installer's configuration is gone (uninstalled).
#[tokio::test]
async fn an_installer_owned_registration_gets_only_the_ca_bundle() -> Result<()> {
    let cluster = Cluster::start().await?;
    let api: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let ca_pem = ferry_webhook::ServingCert::generate(&[], &["127.0.0.1".parse()?])?.ca_pem;
    let mut args = args("https://127.0.0.1:1/inject", "ignore");
    args.registration = ferry_webhook::Registration::CaBundle;

    let missing = ferry_webhook::apply_registration(cluster.client(), &args, &ca_pem)
        .await
        .expect_err("nothing to patch");
    assert!(
        missing
            .to_string()
            .contains("ferry-injector: it does not exist"),
        "{missing}"
    );
    assert!(api.get_opt("ferry-injector").await?.is_none());

    // What an installer writes: its own policy and timeout, no caBundle.
    let installed: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": "ferry-injector" },
        "webhooks": [{
            "name": "inject.ferry.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 7,
            "clientConfig": { "service": {
                "name": "ferry-webhook", "namespace": "ferry-system", "path": "/inject", "port": 443
            } },
            "rules": [{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"] }],
        }],
    }))?;
    api.create(&PostParams::default(), &installed).await?;
    ferry_webhook::apply_registration(cluster.client(), &args, &ca_pem).await?;
    let patched = api.get("ferry-injector").await?;
    let hooks = patched.webhooks.unwrap_or_default();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(
        hook.client_config.ca_bundle,
        Some(ByteString(ca_pem.into_bytes()))
    );
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.timeout_seconds, Some(7));
    assert_eq!(
        hook.client_config.service.as_ref().map(|s| s.name.as_str()),
        Some("ferry-webhook")
    );
    Ok(())
}
