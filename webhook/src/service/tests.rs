//! The admission endpoint through `oneshot`: verdicts, patches, metrics,
//! malformed input, limits and timeouts. No socket, no cluster.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::AdmissionService;
use crate::config::FailurePolicy;
use crate::metrics::{Metrics, Outcome};

fn make(failure_policy: FailurePolicy) -> (AdmissionService, Metrics) {
    let metrics = Metrics::unregistered();
    let config = ferry_injector::InjectConfig::new("0.1.0");
    let service = AdmissionService::new(
        config,
        failure_policy,
        metrics.clone(),
        Duration::from_secs(4),
    );
    (service, metrics)
}

fn review_for(object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": object,
            "dryRun": false
        }
    })
}

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    })
}

async fn post(service: &AdmissionService, body: impl Into<Bytes>) -> (StatusCode, Value) {
    let request = Request::post("/inject")
        .body(Full::new(body.into()))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn patch_of(review: &Value) -> Value {
    // base64, as the API documents `patch`.
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(review["response"]["patch"].clone()).unwrap();
    serde_json::from_slice(&bytes.0).unwrap()
}

#[tokio::test]
async fn a_pod_gets_a_patch_with_its_uid() {
    let (service, metrics) = make(FailurePolicy::Ignore);
    let (status, review) = post(&service, review_for(pod(json!({}))).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = patch_of(&review).to_string();
    assert!(
        patch.contains("ferry-proxy") && patch.contains("ferry.dev~1injected"),
        "{patch}"
    );
    assert_eq!(metrics.count(Outcome::Injected, "injected"), 1);
}

#[tokio::test]
async fn opted_out_and_non_pod_requests_pass_unchanged() {
    let (service, metrics) = make(FailurePolicy::Fail);
    let (status, review) = post(
        &service,
        review_for(pod(json!({"ferry.dev/inject": "disabled"}))).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
    assert_eq!(metrics.count(Outcome::Skipped, "opted_out"), 1);

    let mut not_a_pod = review_for(json!({"apiVersion": "v1", "kind": "ConfigMap"}));
    not_a_pod["request"]["kind"]["kind"] = json!("ConfigMap");
    let (_, review) = post(&service, not_a_pod.to_string()).await;
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
}

#[tokio::test]
async fn an_invalid_annotation_denies_the_pod_with_the_reason() {
    let (service, metrics) = make(FailurePolicy::Ignore);
    let bad = pod(json!({"ferry.dev/proxy-cpu-limit": "lots"}));
    let (status, review) = post(&service, review_for(bad).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ferry.dev/proxy-cpu-limit") && message.contains("lots"),
        "{message}"
    );
    assert_eq!(metrics.count(Outcome::Denied, "invalid_annotation"), 1);
}

#[tokio::test]
async fn malformed_reviews_get_400_with_a_message() {
    let (service, metrics) = make(FailurePolicy::Fail);
    let cases: [&[u8]; 5] = [
        b"",
        b"not json",
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
        b"{\"request\":{\"uid\":42}}",
        b"[1,2,3]",
    ];
    for body in cases {
        let (status, review) = post(&service, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(review["response"]["allowed"], false);
        let message = review["response"]["status"]["message"].as_str().unwrap();
        assert!(message.starts_with("ferry: "), "{message}");
    }
    assert_eq!(metrics.count(Outcome::Malformed, "malformed"), 5);
}

#[tokio::test]
async fn every_truncation_of_a_review_is_answered_without_panic() {
    let body = review_for(pod(json!({"ferry.dev/opaque-ports": "6379"}))).to_string();
    for end in (0..body.len()).step_by(7) {
        let reviewed = crate::review(
            &body.as_bytes()[..end],
            &ferry_injector::InjectConfig::new("0"),
            FailurePolicy::Fail,
        );
        assert!(matches!(
            reviewed.status,
            StatusCode::OK | StatusCode::BAD_REQUEST
        ));
    }
}

#[tokio::test]
async fn an_undecodable_pod_follows_the_failure_policy() {
    let broken = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "nope"}});
    let (service, _) = make(FailurePolicy::Fail);
    let (status, review) = post(&service, review_for(broken.clone()).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("does not decode")
    );

    let (service, _) = make(FailurePolicy::Ignore);
    let (_, review) = post(&service, review_for(broken).to_string()).await;
    assert_eq!(review["response"]["allowed"], true);
    assert!(
        review["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not injected")
    );
}

#[tokio::test]
async fn routes_methods_and_size_limit() {
    let (service, _) = make(FailurePolicy::Ignore);
    let call = |method: Method, path: &str, body: Bytes| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(body))
            .unwrap();
        service.clone().oneshot(request)
    };
    let status = |r: Result<http::Response<Full<Bytes>>, _>| r.map(|r| r.status()).unwrap();
    assert_eq!(
        status(call(Method::GET, "/healthz", Bytes::new()).await),
        StatusCode::OK
    );
    assert_eq!(
        status(call(Method::GET, "/inject", Bytes::new()).await),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        status(call(Method::POST, "/mutate", Bytes::new()).await),
        StatusCode::NOT_FOUND
    );
    let huge = Bytes::from(vec![b' '; super::MAX_BODY_BYTES + 1]);
    assert_eq!(
        status(call(Method::POST, "/inject", huge).await),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// A body whose bytes never come.
struct Stalled;

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out() {
    let (service, metrics) = make(FailurePolicy::Ignore);
    let request = Request::post("/inject").body(Stalled).unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(metrics.count(Outcome::Malformed, "timeout"), 1);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_are_answered_without_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
    ) {
        let reviewed = crate::review(&bytes, &ferry_injector::InjectConfig::new("0"), FailurePolicy::Fail);
        proptest::prop_assert_eq!(reviewed.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn mutated_reviews_are_answered_without_panic(position in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
        let mut body = review_for(pod(json!({"ferry.dev/skip-inbound-ports": "22"}))).to_string().into_bytes();
        let index = position % body.len();
        body[index] = byte;
        let reviewed = crate::review(&body, &ferry_injector::InjectConfig::new("0"), FailurePolicy::Fail);
        proptest::prop_assert!(matches!(reviewed.status, StatusCode::OK | StatusCode::BAD_REQUEST));
        let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
        proptest::prop_assert!(answer["response"]["allowed"].is_boolean());
    }
}
