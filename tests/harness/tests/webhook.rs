//! The apiserver itself calls a mutating webhook registered by `url`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_harness::{Cluster, TestCa};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const ANNOTATION: &str = "ferry.dev/smoke-webhook";

/// Answers every AdmissionReview with "allowed" and a JSONPatch that adds
/// an annotation; counts the Pod reviews it saw.
async fn admit(req: Request<Incoming>, calls: Arc<AtomicUsize>) -> Result<Response<Full<Bytes>>> {
    let body = req.into_body().collect().await?.to_bytes();
    let review: Value = serde_json::from_slice(&body)?;
    let request = &review["request"];
    if request["kind"]["kind"] == "Pod" {
        calls.fetch_add(1, Ordering::SeqCst);
    }
    let patch = json!([{ "op": "add", "path": "/metadata/annotations",
                         "value": { ANNOTATION: "called" } }]);
    let patch = serde_json::to_vec(&patch)?;
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": request["uid"],
            "allowed": true,
            "patchType": "JSONPatch",
            "patch": ByteString(patch),
        },
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&answer)?)))?)
}

/// Serves [`admit`] over TLS on a free loopback port; returns the port.
async fn serve(ca: &TestCa, calls: Arc<AtomicUsize>) -> Result<u16> {
    let acceptor = TlsAcceptor::from(ca.issue(&["127.0.0.1"])?.server_config()?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, calls) = (acceptor.clone(), calls.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let calls = calls.clone();
                    async move {
                        Ok::<_, Infallible>(admit(req, calls).await.unwrap_or_else(|err| {
                            let mut bad = Response::new(Full::new(Bytes::from(err.to_string())));
                            *bad.status_mut() = hyper::StatusCode::BAD_REQUEST;
                            bad
                        }))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_calls_mutating_webhook_on_pod_create() -> Result<()> {
    let cluster = Cluster::start().await?;
    if !cluster.is_local() {
        eprintln!("skipped: a remote apiserver cannot reach a webhook on this host's loopback");
        return Ok(());
    }
    let ca = TestCa::new("smoke-webhook-ca")?;
    let calls = Arc::new(AtomicUsize::new(0));
    let port = serve(&ca, calls.clone()).await?;

    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": "ferry-smoke" },
        "webhooks": [{
            "name": "smoke.ferry.dev",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/mutate"),
                "caBundle": ByteString(ca.cert_pem().into_bytes()),
            },
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""],
                        "apiVersions": ["v1"], "resources": ["pods"] }],
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
        }],
    }))?;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    configs.create(&PostParams::default(), &config).await?;

    // The apiserver picks up new webhook configurations asynchronously:
    // create pods until one is admitted through the webhook.
    let pods: Api<Pod> = Api::namespaced(cluster.client(), cluster.namespace());
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0u32.. {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": format!("app-{attempt}") },
            "spec": { "containers": [{ "name": "app", "image": "app.invalid/app:1" }] },
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        let stored = pods.get(&format!("app-{attempt}")).await?;
        let annotations = stored.metadata.annotations.unwrap_or_default();
        if annotations.get(ANNOTATION).map(String::as_str) == Some("called") {
            assert!(calls.load(Ordering::SeqCst) >= 1);
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "the webhook was never called\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("pod names ran out")
}
