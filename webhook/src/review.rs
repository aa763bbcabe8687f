//! One AdmissionReview in, one AdmissionReview out: decoding, the call to
//! the injector, and the answer. Synchronous and free of I/O, so the HTTP
//! layer, the tests and the benchmark share it.

use ferry_injector::{InjectConfig, InjectError, Injection};
use http::StatusCode;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Pod;
use kube::core::Status;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use serde::Serialize;
use tracing::{debug, warn};

use crate::config::FailurePolicy;
use crate::metrics::Outcome;

/// The AdmissionReview sent back. kube's own type serializes the patch as
/// an array of numbers, which Go accepts but which is four times the size
/// of the base64 string the API documents; this one writes base64.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

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
    // Fast path: a well-formed pod decodes straight into `Pod`, in one pass.
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<Pod>>(body)
        && let Ok(mut request) = TryInto::<AdmissionRequest<Pod>>::try_into(review)
    {
        let pod = request
            .object
            .take()
            .ok_or("request has no object".to_owned());
        let (response, outcome, reason) = admit(&request, pod, config, failure_policy);
        return answer(StatusCode::OK, response, outcome, reason);
    }
    // Anything else is decoded loosely, to answer with the request's uid
    // (other kinds, pods that do not decode) or to say what is wrong.
    let mut request: AdmissionRequest<DynamicObject> =
        match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
            Ok(review) => match review.try_into() {
                Ok(request) => request,
                Err(_) => return malformed("AdmissionReview has no request".to_owned()),
            },
            Err(error) => return malformed(format!("body is not an AdmissionReview: {error}")),
        };
    let pod = match request.object.take().map(DynamicObject::try_parse::<Pod>) {
        Some(Ok(pod)) => Ok(pod),
        Some(Err(error)) => Err(format!("pod does not decode: {error}")),
        None => Err("request has no object".to_owned()),
    };
    let (response, outcome, reason) = admit(&request, pod, config, failure_policy);
    answer(StatusCode::OK, response, outcome, reason)
}

fn admit<T: Resource>(
    request: &AdmissionRequest<T>,
    pod: Result<Pod, String>,
    config: &InjectConfig,
    failure_policy: FailurePolicy,
) -> (AdmissionResponse, Outcome, &'static str) {
    let allow = AdmissionResponse::from(request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create || request.sub_resource.is_some() {
        return (allow, Outcome::Skipped, "not_a_pod_create");
    }
    let pod = match pod {
        Ok(pod) => pod,
        Err(message) => return undecodable(allow, failure_policy, message),
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
    match serde_json::to_vec(&ReviewOut::from(&response)) {
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

// ReviewOut

impl<'a> From<&'a AdmissionResponse> for ReviewOut<'a> {
    fn from(response: &'a AdmissionResponse) -> Self {
        let types = &response.types;
        Self {
            api_version: if types.api_version.is_empty() {
                "admission.k8s.io/v1"
            } else {
                &types.api_version
            },
            kind: if types.kind.is_empty() {
                "AdmissionReview"
            } else {
                &types.kind
            },
            response: ResponseOut {
                uid: &response.uid,
                allowed: response.allowed,
                status: &response.result,
                patch: response.patch.clone().map(ByteString),
                patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
                warnings: response.warnings.as_deref(),
            },
        }
    }
}
