//! The Helm chart (`charts/ferry`) with real Helm: `tests/chart/helm.py`
//! drives Helm v4's Go SDK (helm-python-sdk, installed by
//! `tests/chart/setup.sh`, which the first test runs). Lint, golden renders
//! (`FERRY_BLESS=1` rewrites `tests/chart/golden/`), and install, upgrade
//! and uninstall on the real kube-apiserver, with ferry-control's
//! permissions checked by the apiserver's own authorizer.

mod chart {
    pub(crate) mod golden;
    pub(crate) mod tools;
}

use anyhow::{Context, Result, ensure};
use ferry_harness::Cluster;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use chart::golden::{collapse_crds, diff};
use chart::tools::*;

// --- lint and golden renders ---------------------------------------------------

#[test]
fn lint_is_clean() -> Result<()> {
    // Fails on any warning or error (helm.py lint), for the default values
    // and for the variants.
    helm(&strings(&["lint", &chart()]))?;
    helm(&strings(&[
        "lint",
        &chart(),
        "-f",
        &values_file("restricted.yaml"),
    ]))?;
    helm(&strings(&[
        "lint",
        &chart(),
        "-f",
        &values_file("supplied-identity.yaml"),
    ]))?;
    Ok(())
}

#[test]
fn renders_match_the_golden_files() -> Result<()> {
    let supplied = values_file("supplied-identity.yaml");
    let restricted = values_file("restricted.yaml");
    let variants: [(&str, Vec<&str>); 6] = [
        ("default", vec![]),
        ("install-crds", vec!["--set", "gatewayAPI.installCRDs=true"]),
        ("supplied-identity", vec!["-f", &supplied]),
        ("fail-policy", vec!["--set", "webhook.failurePolicy=Fail"]),
        ("one-replica", vec!["--set", "control.replicas=1"]),
        ("restricted", vec!["-f", &restricted]),
    ];
    let bless = std::env::var_os("FERRY_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, args) in variants {
        let rendered =
            collapse_crds(&template(&args)?).with_context(|| format!("variant {name}"))?;
        let path = repo()
            .join("tests/chart/golden")
            .join(format!("{name}.yaml"));
        if bless {
            std::fs::write(&path, &rendered)?;
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .with_context(|| format!("{} missing: run with FERRY_BLESS=1", path.display()))?;
        if golden != rendered {
            failures.push(format!(
                "{name}: the render differs from {} (- golden, + now; FERRY_BLESS=1 accepts it):\n{}",
                path.display(),
                diff(&golden, &rendered)
            ));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn refuses_values_it_cannot_honour() -> Result<()> {
    for (args, expected) in [
        (
            vec!["--set", "webhook.failurePolicy=Never"],
            "failurePolicy must be Ignore or Fail",
        ),
        (vec!["--set", "identity.trustAnchorPEM=x"], "go together"),
        (vec!["--set", "control.replicas=0"], "at least 1"),
        (
            vec!["--set", "rbac.gatewaySecrets=some"],
            "cluster, namespaces or none",
        ),
        (
            vec![
                "--set",
                "gatewayAPI.installCRDs=true",
                "--set",
                "gatewayAPI.channel=experimental",
            ],
            "does not carry that channel",
        ),
    ] {
        let error = template(&args)
            .err()
            .with_context(|| format!("{args:?} rendered"))?;
        ensure!(
            format!("{error:#}").contains(expected),
            "{args:?}: {error:#}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn installs_upgrades_and_uninstalls_beside_existing_crds() -> Result<()> {
    let cluster = Cluster::start().await?;
    local_only(&cluster)?;
    let client = cluster.client();
    let other = cluster.namespace().to_owned();
    let crds_before = crd_versions(&cluster).await?;
    ensure!(crds_before.contains_key("httproutes.gateway.networking.k8s.io"));

    // installCRDs on a cluster that has them (the harness made them): Helm's
    // default server-side apply, and nothing of theirs changes.
    let installed = helm_on(
        &cluster,
        &[
            "install",
            RELEASE,
            &chart(),
            "--create-namespace",
            "--set",
            "gatewayAPI.installCRDs=true",
        ],
    )
    .await?;
    ensure!(
        installed.contains(
            "httproutes.gateway.networking.k8s.io (exists and is not managed by this release)"
        ),
        "NOTES should list the CRDs left alone:\n{installed}"
    );
    ensure!(
        crd_versions(&cluster).await? == crds_before,
        "install changed the existing CRDs"
    );

    // Every rendered object exists.
    let (manifest, count) = release_objects(&cluster).await?;
    let path = manifest.path().display().to_string();
    let out = kubectl(&cluster, &["get", "-f", &path, "-o", "name"]).await?;
    let found = String::from_utf8_lossy(&out.stdout).lines().count();
    ensure!(
        out.status.success() && found == count && count >= 11,
        "{found} of {count} objects found: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The webhook registration: the selectors ferry-control would apply, no caBundle.
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let hook = serde_json::to_value(hooks.get("ferry-injector").await?)?;
    let webhook = &hook["webhooks"][0];
    assert_eq!(webhook["name"], "inject.ferry.dev");
    assert_eq!(
        webhook["namespaceSelector"],
        json!({"matchLabels": {"ferry.dev/inject": "enabled"}})
    );
    assert_eq!(
        webhook["objectSelector"],
        json!({"matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "NotIn", "values": ["ferry"]}]})
    );
    assert_eq!(
        webhook["clientConfig"],
        json!({"service": {"name": "ferry-webhook", "namespace": NAMESPACE, "path": "/inject", "port": 443}})
    );
    assert_eq!(webhook["failurePolicy"], "Ignore");
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(webhook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(webhook["rules"][0]["operations"], json!(["CREATE"]));

    // What ferry-control may do, asked of the apiserver's RBAC authorizer.
    for (what, allowed) in [
        ("watch httproutes.gateway.networking.k8s.io -A", true),
        ("list gatewayclasses.gateway.networking.k8s.io", true),
        (
            "get gateways.gateway.networking.k8s.io --subresource=status -n x",
            true,
        ),
        (
            "patch httproutes.gateway.networking.k8s.io --subresource=status -n x",
            true,
        ),
        ("patch httproutes.gateway.networking.k8s.io -n x", false),
        ("list endpoints -A", true),
        ("watch endpointslices.discovery.k8s.io -A", true),
        ("create tokenreviews.authentication.k8s.io", true),
        ("create leases.coordination.k8s.io -n ferry-system", true),
        (
            "update leases.coordination.k8s.io/ferry-control -n ferry-system",
            true,
        ),
        (
            "update leases.coordination.k8s.io/other -n ferry-system",
            false,
        ),
        (
            "update leases.coordination.k8s.io/ferry-control -n x",
            false,
        ),
        ("get secrets/ferry-identity -n ferry-system", true),
        ("get secrets/ferry-webhook-cert -n ferry-system", true),
        ("create secrets -n ferry-system", true),
        ("update secrets/ferry-identity -n ferry-system", false),
        ("delete secrets/ferry-identity -n ferry-system", false),
        ("get secrets/other -n ferry-system", false),
        ("list secrets -n x", true),
        ("get secrets/tls -n x", false),
        ("create secrets -n x", false),
        ("patch secrets/tls -n x", false),
        ("delete secrets/tls -n x", false),
        ("patch configmaps/ferry-trust-anchors -n x", true),
        ("patch configmaps/other -n x", false),
        ("delete configmaps/ferry-trust-anchors -n x", false),
        ("patch deployments.apps/gw-ferry -n x", true),
        ("delete deployments.apps/gw-ferry -n x", false),
        ("create pods -n x", false),
        ("patch mutatingwebhookconfigurations/ferry-injector", true),
        ("delete mutatingwebhookconfigurations/ferry-injector", false),
        ("patch mutatingwebhookconfigurations/other", false),
        (
            "patch validatingwebhookconfigurations/ferry-injector",
            false,
        ),
        (
            "patch customresourcedefinitions/gateways.gateway.networking.k8s.io",
            false,
        ),
        ("create clusterrolebindings", false),
    ] {
        ensure!(
            control_can(&cluster, what).await? == allowed,
            "ferry-control {} `{what}`",
            if allowed {
                "must be allowed to"
            } else {
                "must not"
            }
        );
    }

    // Act as ferry-control: keep the caBundle (field manager ferry-webhook),
    // create the CA's Secret, publish trust anchors; and not more.
    let ca_bundle = "LS0tLS1CRUdJTiBURVNUIENBLS0tLS0K";
    apply_as_control(
        &cluster,
        "ferry-webhook",
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "ferry-injector"},
            "webhooks": [{"name": "inject.ferry.dev", "clientConfig": {"caBundle": ca_bundle}}],
        }),
    )
    .await?;
    let anchors = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": other},
            "data": {"ca.pem": "anchors"},
        })
    };
    apply_as_control(&cluster, "ferry-control", &anchors("ferry-trust-anchors")).await?;
    ensure!(
        apply_as_control(&cluster, "ferry-control", &anchors("not-ours"))
            .await
            .is_err(),
        "ferry-control could write another ConfigMap"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let identity: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ferry-identity"},
        "type": "kubernetes.io/tls",
        "data": {"ca.crt": "YQ==", "tls.crt": "YQ==", "tls.key": "YQ=="},
    }))?;
    let identity = secrets.create(&PostParams::default(), &identity).await?;

    // Upgrade with changed values: applied, and what ferry-control keeps
    // survives (the caBundle it owns, the Secret it made).
    helm_on(
        &cluster,
        &[
            "upgrade",
            RELEASE,
            &chart(),
            "--set",
            "gatewayAPI.installCRDs=true",
            "--set",
            "webhook.failurePolicy=Fail",
            "--set",
            "control.replicas=1",
        ],
    )
    .await?;
    let hook = serde_json::to_value(hooks.get("ferry-injector").await?)?;
    assert_eq!(hook["webhooks"][0]["failurePolicy"], "Fail");
    assert_eq!(
        hook["webhooks"][0]["clientConfig"]["caBundle"], ca_bundle,
        "upgrade dropped the caBundle"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let control = deployments.get("ferry-control").await?;
    assert_eq!(control.spec.and_then(|s| s.replicas), Some(1));
    let kept = secrets.get("ferry-identity").await?;
    assert_eq!(kept.metadata.uid, identity.metadata.uid);
    assert_eq!(
        kept.metadata.resource_version,
        identity.metadata.resource_version
    );
    ensure!(
        crd_versions(&cluster).await? == crds_before,
        "upgrade changed the existing CRDs"
    );

    // Uninstall: the release's objects go, the CRDs and ferry-control's own
    // Secret stay.
    let (manifest, _) = release_objects(&cluster).await?;
    helm_on(&cluster, &["uninstall", RELEASE]).await?;
    let path = manifest.path().display().to_string();
    let out = kubectl(
        &cluster,
        &["get", "-f", &path, "-o", "name", "--ignore-not-found"],
    )
    .await?;
    ensure!(
        out.status.success() && out.stdout.is_empty(),
        "left after uninstall: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        crd_versions(&cluster).await? == crds_before,
        "uninstall changed the CRDs"
    );
    secrets.get("ferry-identity").await?;
    Ok(())
}

#[tokio::test]
async fn installs_the_crds_and_keeps_them_on_uninstall() -> Result<()> {
    let cluster = Cluster::builder().without_gateway_api().start().await?;
    local_only(&cluster)?;
    ensure!(crd_versions(&cluster).await?.is_empty());
    // A 1.20 apiserver knows neither x-kubernetes-validations in its OpenAPI
    // (client-side validation) nor in its typed server-side apply: the CRDs
    // go in with a plain create there, as `kubectl create` would.
    let old_server = ["--server-side", "false", "--disable-openapi-validation"];
    let (chart, restricted) = (chart(), values_file("restricted.yaml"));
    let supplied = values_file("supplied-identity.yaml");
    // rbac.gatewaySecretNamespaces names it: it must exist.
    let out = kubectl(&cluster, &["create", "namespace", "edge"]).await?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec!["install", RELEASE, &chart, "--create-namespace"];
    args.extend(["--set", "gatewayAPI.installCRDs=true", "-f", &restricted]);
    args.extend(old_server);
    let installed = helm_on(&cluster, &args).await?;
    ensure!(
        installed.contains("GatewayClass ferry was not created"),
        "{installed}"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let httproutes = crds.get("httproutes.gateway.networking.k8s.io").await?;
    let annotations = httproutes.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    assert_eq!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some(RELEASE)
    );
    let ours = crd_versions(&cluster).await?;
    assert_eq!(ours.len(), 10, "{ours:?}");
    for name in ours.keys() {
        wait_established(&crds, name).await?;
    }

    // The narrow RBAC of the restricted values.
    for (what, allowed) in [
        ("list secrets -n edge", true),
        ("list secrets -n x", false),
        ("create tokenreviews.authentication.k8s.io", false),
        ("patch deployments.apps/gw-ferry -n x", false),
        ("get secrets/ferry-webhook-cert -n ferry-system", true),
        ("get secrets/ferry-identity -n ferry-system", false),
    ] {
        ensure!(
            control_can(&cluster, what).await? == allowed,
            "ferry-control: `{what}` should be {allowed}"
        );
    }

    // Now served, the GatewayClass comes with the next upgrade; the CRDs
    // this release owns are kept as they are. The supplied identity
    // Secret is rendered.
    let mut args = vec![
        "upgrade",
        RELEASE,
        &chart,
        "--reuse-values",
        "-f",
        &supplied,
    ];
    args.extend(old_server);
    args.extend(["--set", "identity.enabled=true"]);
    helm_on(&cluster, &args).await?;
    let out = kubectl(
        &cluster,
        &[
            "get",
            "gatewayclass",
            "ferry",
            "-o",
            "jsonpath={.spec.controllerName}",
        ],
    )
    .await?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ferry.dev/gateway-controller"
    );
    ensure!(
        crd_versions(&cluster).await? == ours,
        "the upgrade rewrote unchanged CRDs"
    );
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), NAMESPACE);
    let identity = secrets.get("ferry-identity").await?;
    let data = identity.data.unwrap_or_default();
    assert_eq!(
        data.get("ca.crt").map(|b| b.0.as_slice()),
        Some(&b"test trust anchor\n"[..])
    );

    // installCRDs off, identity no longer supplied: neither the CRDs nor
    // the Secret are deleted (keep), though the release stops rendering them.
    let mut args = vec![
        "upgrade",
        RELEASE,
        &chart,
        "--set",
        "gatewayAPI.installCRDs=false",
    ];
    args.extend(old_server);
    helm_on(&cluster, &args).await?;
    ensure!(
        crd_versions(&cluster).await? == ours,
        "turning installCRDs off changed the CRDs"
    );
    assert_eq!(
        secrets.get("ferry-identity").await?.metadata.uid,
        identity.metadata.uid
    );

    helm_on(&cluster, &["uninstall", RELEASE]).await?;
    ensure!(
        crd_versions(&cluster).await? == ours,
        "uninstall deleted or changed the CRDs"
    );
    let out = kubectl(
        &cluster,
        &[
            "get",
            "gatewayclass",
            "ferry",
            "--ignore-not-found",
            "-o",
            "name",
        ],
    )
    .await?;
    ensure!(out.stdout.is_empty(), "GatewayClass left after uninstall");
    Ok(())
}
