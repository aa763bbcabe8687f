//! Smoke tests: each one fails unless a real apiserver answers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferry_harness::Cluster;
use futures_util::{StreamExt as _, TryStreamExt as _};
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::json;

fn service(name: &str) -> Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "selector": { "app": name }, "ports": [{ "name": "http", "port": 9080 }] },
    }))?)
}

fn route_to_service(name: &str, parent: &str) -> Result<HttpRoute> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": name },
        "spec": {
            "parentRefs": [{ "group": "", "kind": "Service", "name": parent, "port": 9080 }],
            "rules": [{ "backendRefs": [
                { "name": format!("{parent}-v1"), "port": 9080, "weight": 90 },
                { "name": format!("{parent}-v2"), "port": 9080, "weight": 10 },
            ]}],
        },
    }))?)
}

#[tokio::test]
async fn server_is_kube_1_20_and_validates() -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start().await?;
    eprintln!("cluster ready in {:?}", started.elapsed());

    if cluster.is_local() {
        assert_eq!(cluster.server_version().minor, "20");
        assert!(
            !cluster
                .serves("discovery.k8s.io/v1", "endpointslices")
                .await?
        );
        assert!(
            cluster
                .serves("discovery.k8s.io/v1beta1", "endpointslices")
                .await?
        );
    }
    assert!(
        cluster
            .serves("gateway.networking.k8s.io/v1", "httproutes")
            .await?
    );
    assert!(cluster.serves("v1", "services").await?);

    // The CRD's OpenAPI schema is enforced: parentRefs[].name has minLength 1.
    let routes: Api<HttpRoute> = Api::namespaced(cluster.client(), cluster.namespace());
    let bad = route_to_service("bad", "")?;
    let err = routes
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.is_invalid()),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn route_with_service_parent_is_stored_and_watched() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let services: Api<Service> = Api::namespaced(cluster.client(), ns);
    let routes: Api<HttpRoute> = Api::namespaced(cluster.client(), ns);

    // Watch first, and create only once the initial list is done, so the
    // route can only arrive as a watch event.
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let mut events = watcher(routes.clone(), watcher::Config::default()).boxed();
    let watch = tokio::spawn(async move {
        let mut listed_tx = Some(listed_tx);
        while let Some(event) = events.try_next().await? {
            match event {
                Event::InitDone => drop(listed_tx.take().map(|tx| tx.send(()))),
                Event::Apply(route) if route.metadata.name.as_deref() == Some("reviews") => {
                    return Ok(route);
                }
                _ => {}
            }
        }
        anyhow::bail!("watch ended without the route")
    });
    tokio::time::timeout(Duration::from_secs(30), listed).await??;

    let svc = services
        .create(&PostParams::default(), &service("reviews")?)
        .await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no clusterIP allocated")?;
    assert!(
        ip.starts_with("10.0."),
        "clusterIP {ip} from the server's allocator"
    );

    routes
        .create(
            &PostParams::default(),
            &route_to_service("reviews", "reviews")?,
        )
        .await?;
    let stored = routes.get("reviews").await?;
    let parent = &stored.spec.parent_refs.as_ref().context("parentRefs")?[0];
    assert_eq!(
        parent.group.as_deref(),
        Some(""),
        "empty group survives the round trip"
    );
    assert_eq!(parent.kind.as_deref(), Some("Service"));
    assert!(stored.metadata.uid.is_some() && stored.metadata.resource_version.is_some());

    let seen = tokio::time::timeout(Duration::from_secs(30), watch).await???;
    assert_eq!(seen.metadata.uid, stored.metadata.uid);
    Ok(())
}

#[tokio::test]
async fn route_status_is_a_subresource() -> Result<()> {
    let cluster = Cluster::start().await?;
    let routes: Api<HttpRoute> = Api::namespaced(cluster.client(), cluster.namespace());
    routes
        .create(
            &PostParams::default(),
            &route_to_service("reviews", "reviews")?,
        )
        .await?;

    let status = json!({ "status": { "parents": [{
        "controllerName": "ferry.dev/control",
        "parentRef": { "group": "", "kind": "Service", "name": "reviews", "port": 9080 },
        "conditions": [{
            "type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
            "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1,
        }],
    }]}});
    let pp = PatchParams::default();
    routes
        .patch_status("reviews", &pp, &Patch::Merge(&status))
        .await?;
    let read = routes.get_status("reviews").await?;
    let parents = read.status.context("status")?.parents;
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0].controller_name, "ferry.dev/control");
    assert_eq!(parents[0].conditions[0].reason, "Accepted");

    // A write to the main resource cannot touch status, nor a status write the spec.
    let clear = json!({ "status": { "parents": [] }, "metadata": { "labels": { "a": "b" } } });
    routes.patch("reviews", &pp, &Patch::Merge(&clear)).await?;
    let spec = json!({ "spec": { "hostnames": ["changed.example"] } });
    routes
        .patch_status("reviews", &pp, &Patch::Merge(&spec))
        .await?;
    let read = routes.get("reviews").await?;
    assert_eq!(read.status.context("status")?.parents.len(), 1);
    assert_eq!(read.spec.hostnames, None);
    assert_eq!(read.metadata.generation, Some(1));
    Ok(())
}

#[tokio::test]
async fn controller_manager_runs_controllers() -> Result<()> {
    let cluster = Cluster::builder().with_controller_manager().start().await?;
    // The root CA publisher puts kube-root-ca.crt into every namespace.
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    let deadline = Instant::now() + Duration::from_secs(60);
    while maps.get_opt("kube-root-ca.crt").await?.is_none() {
        assert!(
            Instant::now() < deadline,
            "no kube-root-ca.crt\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
