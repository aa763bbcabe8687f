//! One AdmissionReview in, one AdmissionReview out: decoding, the call to
//! the injector, and the answer. Synchronous and free of I/O, so the HTTP
//! layer, the tests and the benchmark share it.

use ferry_injector::{InjectConfig, InjectError, Injection};
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use tracing::{debug, warn};

use crate::config::FailurePolicy;
use crate::metrics::Outcome;

/// The HTTP answer to one review, with what happened for the metrics.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// 200 for every decodable review (the verdict is inside), 400 otherwise.
    pub status: StatusCode,
    /// JSON AdmissionReview carrying the response.
    pub body: Vec<u8>,
    /// How the admission ended.
    pub outcome: Outcome,
    /// Short machine-readable reason (`injected`, `opted_out`, …).
    pub reason: &'static str,
}

/// Answers the AdmissionReview in `body`. A body that is not an
/// AdmissionReview with a request gets a 400 whose body is an
/// AdmissionReview with `allowed: false` and a message; it never panics.
pub fn review(body: &[u8], config: &InjectConfig, failure_policy: FailurePolicy) -> Reviewed {
    let mut request: AdmissionRequest<DynamicObject> =
        match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
            Ok(review) => match review.try_into() {
                Ok(request) => request,
                Err(_) => return malformed("AdmissionReview has no request".to_owned()),
            },
            Err(error) => return malformed(format!("body is not an AdmissionReview: {error}")),
        };
    let (response, outcome, reason) = admit(&mut request, config, failure_policy);
    answer(StatusCode::OK, response, outcome, reason)
}

fn admit(
    request: &mut AdmissionRequest<DynamicObject>,
    config: &InjectConfig,
    failure_policy: FailurePolicy,
) -> (AdmissionResponse, Outcome, &'static str) {
    let allow = AdmissionResponse::from(&*request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create || request.sub_resource.is_some() {
        return (allow, Outcome::Skipped, "not_a_pod_create");
    }
    let pod = match request.object.take().map(DynamicObject::try_parse::<Pod>) {
        Some(Ok(pod)) => pod,
        Some(Err(error)) => {
            return undecodable(
                allow,
                failure_policy,
                format!("pod does not decode: {error}"),
            );
        }
        None => return undecodable(allow, failure_policy, "request has no object".to_owned()),
    };
    let name = pod
        .metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref());
    match ferry_injector::inject(&pod, config) {
        Ok(Injection::Patch(patch)) => match allow.clone().with_patch(patch) {
            Ok(response) => {
                debug!(namespace = ?request.namespace, pod = ?name, "Injected pod");
                (response, Outcome::Injected, "injected")
            }
            Err(error) => undecodable(
                allow,
                failure_policy,
                format!("patch does not serialize: {error}"),
            ),
        },
        Ok(Injection::Skip(reason)) => {
            debug!(namespace = ?request.namespace, pod = ?name, reason = reason.as_str(), "Skipped pod");
            (allow, Outcome::Skipped, reason.as_str())
        }
        Err(error @ InjectError::InvalidAnnotation { .. }) => {
            debug!(namespace = ?request.namespace, pod = ?name, %error, "Denied pod");
            (
                allow.deny(format!("ferry: {error}")),
                Outcome::Denied,
                "invalid_annotation",
            )
        }
        Err(error) => undecodable(allow, failure_policy, format!("injection failed: {error}")),
    }
}

/// A pod the injector cannot handle: denied under `Fail`, let through
/// uninjected with a warning under `Ignore`, mirroring what the apiserver
/// does when the webhook itself is down.
fn undecodable(
    allow: AdmissionResponse,
    failure_policy: FailurePolicy,
    message: String,
) -> (AdmissionResponse, Outcome, &'static str) {
    warn!(%message, ?failure_policy, "Cannot inject pod");
    match failure_policy {
        FailurePolicy::Fail => (
            allow.deny(format!("ferry: {message}")),
            Outcome::Denied,
            "undecodable",
        ),
        FailurePolicy::Ignore => {
            let mut response = allow;
            response.warnings = Some(vec![format!("ferry: pod not injected: {message}")]);
            (response, Outcome::Skipped, "undecodable")
        }
    }
}

fn malformed(message: String) -> Reviewed {
    debug!(%message, "Malformed AdmissionReview");
    let response = AdmissionResponse::invalid(format!("ferry: {message}"));
    answer(
        StatusCode::BAD_REQUEST,
        response,
        Outcome::Malformed,
        "malformed",
    )
}

fn answer(
    status: StatusCode,
    response: AdmissionResponse,
    outcome: Outcome,
    reason: &'static str,
) -> Reviewed {
    match serde_json::to_vec(&response.into_review()) {
        Ok(body) => Reviewed {
            status,
            body,
            outcome,
            reason,
        },
        // An AdmissionReview of plain strings and bytes always serializes;
        // answer 500 rather than panic if that ever changes.
        Err(error) => Reviewed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: format!("ferry: failed to encode the AdmissionReview: {error}").into_bytes(),
            outcome: Outcome::Malformed,
            reason: "encode_failed",
        },
    }
}
