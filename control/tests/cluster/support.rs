//! Shared helpers: start ferry-control, apply YAML, wait for status.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ferry_control::leader::LeaseConfig;
use ferry_control::run::{Running, Settings, Source, start};
use ferry_core::objects::api::{
    ConfigMap, Gateway, GatewayClass, GrpcRoute, HttpRoute, Namespace, ReferenceGrant, Secret,
    Service,
};
use ferry_core::objects::{Object, load_yaml};
use ferry_harness::Cluster;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Starts ferry-control in-process against the cluster.
pub(crate) async fn start_control(
    cluster: &Cluster,
    lease: Option<LeaseConfig>,
) -> Result<Running> {
    let settings = Settings {
        discovery_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        lease,
        status_timeout: Duration::from_secs(10),
        trust_domain: "cluster.local".to_string(),
        identity: None,
        deploy: Some(ferry_control::deployer::render::DeploySettings {
            proxy_image: "ferry-proxy:test".to_string(),
            discovery: "ferry-control.ferry-system.svc:8090".to_string(),
            identity: Some(ferry_control::deployer::render::GatewayIdentity {
                trust_domain: "cluster.local".to_string(),
                control_tls: None,
            }),
        }),
    };
    Ok(start(
        Source::Cluster(cluster.client()),
        settings,
        Registry::default(),
    )
    .await?)
}

/// Creates (or replaces) every object of `yaml`, after replacing `{ns}`
/// with `ns`. Objects without a namespace go to `ns`.
pub(crate) async fn apply(client: &Client, ns: &str, yaml: &str) -> Result<()> {
    let yaml = yaml.replace("{ns}", ns);
    let loaded = load_yaml(&yaml, "test.yaml")?;
    for object in loaded.objects {
        match object {
            Object::GatewayClass(o) => put(Api::<GatewayClass>::all(client.clone()), o).await?,
            Object::Namespace(o) => put(Api::<Namespace>::all(client.clone()), o).await?,
            Object::Gateway(o) => put(namespaced::<Gateway>(client, ns, &o), o).await?,
            Object::HttpRoute(o) => put(namespaced::<HttpRoute>(client, ns, &o), o).await?,
            Object::GrpcRoute(o) => put(namespaced::<GrpcRoute>(client, ns, &o), o).await?,
            Object::ReferenceGrant(o) => {
                put(namespaced::<ReferenceGrant>(client, ns, &o), o).await?
            }
            Object::Service(o) => put(namespaced::<Service>(client, ns, &o), o).await?,
            Object::Secret(o) => put(namespaced::<Secret>(client, ns, &o), o).await?,
            Object::ConfigMap(o) => put(namespaced::<ConfigMap>(client, ns, &o), o).await?,
            Object::EndpointSlice(_) => bail!("create Endpoints on a 1.20 server"),
        }
    }
    Ok(())
}

fn namespaced<K>(client: &Client, ns: &str, object: &K) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    let ns = object.meta().namespace.as_deref().unwrap_or(ns);
    Api::namespaced(client.clone(), ns)
}

async fn put<K>(api: Api<K>, mut object: K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.meta().name.clone().context("name")?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            let current = api.get(&name).await?;
            object.meta_mut().resource_version = current.meta().resource_version.clone();
            api.replace(&name, &PostParams::default(), &object).await?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("failed to create {name}")),
    }
}

/// A Gateway API object as JSON.
pub(crate) async fn get(client: &Client, kind: &str, ns: &str, name: &str) -> Result<Value> {
    let plural = format!("{}s", kind.to_lowercase()).replace("classs", "classes");
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let api: Api<DynamicObject> = if kind == "GatewayClass" {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), ns, &resource)
    };
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// Polls an object until `done` holds for it, for at most 30 seconds.
pub(crate) async fn wait_for(
    client: &Client,
    kind: &str,
    ns: &str,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let object = get(client, kind, ns, name).await?;
        if done(&object) {
            return Ok(object);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{kind} {ns}/{name}: timed out waiting for {what}; last seen:\n{object:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ferry's entry in a route's `status.parents` for the parent named `parent`.
pub(crate) fn ferry_parent<'a>(route: &'a Value, parent: &str) -> Option<&'a Value> {
    route["status"]["parents"].as_array()?.iter().find(|p| {
        p["controllerName"] == ferry_core::attach::FERRY_CONTROLLER
            && p["parentRef"]["name"] == parent
    })
}

/// A condition of a status entry: (status, reason).
pub(crate) fn condition(entry: &Value, type_: &str) -> Option<(String, String)> {
    let c = entry["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

/// Waits until Ferry's entry for `parent` on HTTPRoute `name` has `type_`
/// with `status` and `reason`; returns the route.
pub(crate) async fn wait_route(
    client: &Client,
    ns: &str,
    name: &str,
    parent: &str,
    type_: &str,
    expected: (&str, &str),
) -> Result<Value> {
    let route = ("HTTPRoute", name);
    wait_route_of(client, ns, route, parent, type_, expected).await
}

/// [`wait_route`] for a route of any kind: `route` is (kind, name).
pub(crate) async fn wait_route_of(
    client: &Client,
    ns: &str,
    (kind, name): (&str, &str),
    parent: &str,
    type_: &str,
    expected: (&str, &str),
) -> Result<Value> {
    let what = format!("{type_}={} {} for parent {parent}", expected.0, expected.1);
    wait_for(client, kind, ns, name, &what, |route| {
        ferry_parent(route, parent).and_then(|p| condition(p, type_))
            == Some((expected.0.to_string(), expected.1.to_string()))
    })
    .await
}

/// The body of `GET path` on a plain HTTP/1 server.
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}
