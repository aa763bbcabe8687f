//! ferry-injector owns what Ferry adds to a pod: `(Pod, InjectConfig) ->`
//! RFC 6902 JSON patch ([`inject`]), and the same injection applied offline
//! to multi-document YAML of Pods, pod-template workloads and Lists
//! ([`inject_manifests`], for `kubectl gateway inject`). It is pure: no
//! sockets, no async runtime, no Kubernetes client. The admission webhook
//! (`ferry-webhook`) and the kubectl plugin wrap it.
//!
//! # What an injected pod gets
//!
//! * `ferry-init`, the first init container: `ferry-proxy init
//!   --inbound-port 4143 --outbound-port 4140 --proxy-uid 2102
//!   --exclude-inbound-ports 4191[,…] [--exclude-outbound-ports …]` (the
//!   image's entrypoint is `ferry-proxy`, so only `args` are set). It runs as
//!   UID 0 with capabilities NET_ADMIN and NET_RAW only (ALL dropped). The
//!   admin port 4191 is always excluded from inbound interception so the
//!   kubelet reaches the proxy's own probes.
//! * `ferry-proxy`, args `--mode sidecar`, UID 2102 (skipped by the rules),
//!   non-root, read-only root filesystem, no privilege escalation, ports
//!   4143 (`ferry-inbound`) and 4191 (`ferry-admin`), readiness `GET /ready`
//!   and liveness `GET /live` on 4191, and the env of the proxy contract
//!   (`FERRY_POD_NAME`, `FERRY_POD_NAMESPACE`, `FERRY_POD_IP`,
//!   `FERRY_SERVICE_ACCOUNT`, `FERRY_DISCOVERY_ADDR` (with
//!   `FERRY_IDENTITY_ADDR`, both ferry-control's `https://` address, when
//!   the install gives one), `FERRY_TRUST_DOMAIN`,
//!   `FERRY_TRACING_ENDPOINT` when configured, `FERRY_LOG`,
//!   `FERRY_IDENTITY_TOKEN`, `FERRY_TRUST_ANCHORS`, `FERRY_OPAQUE_PORTS`
//!   when annotated, `FERRY_INBOUND_PORT`, `FERRY_OUTBOUND_PORT`,
//!   `FERRY_ADMIN_ADDR`, and `FERRY_APP_PROBES` below).
//!   * [`SidecarMode::Native`] (Kubernetes 1.29+): an init container with
//!     `restartPolicy: Always`, right after `ferry-init` and before the
//!     app's own init containers, with a startup probe on `/ready`, so the
//!     app's init containers and containers start only once the proxy is
//!     ready, and Jobs complete.
//!   * [`SidecarMode::Classic`]: the first regular container, with a
//!     `postStart` hook `ferry-proxy await --admin-port 4191 --timeout
//!     <secs>s`. The kubelet starts containers in order and waits for each
//!     `postStart`, so the app starts once the proxy is ready. **Contract
//!     for the proxy:** `await` polls `http://127.0.0.1:<admin-port>/ready`
//!     until it answers 200 (exit 0) or the timeout passes (exit non-zero).
//! * Volumes `ferry-identity` (projected ServiceAccount token, audience
//!   `ferry`, 3600 s, at `/var/run/secrets/ferry/identity/token`) and
//!   `ferry-trust-anchors` (ConfigMap `ferry-trust-anchors`, key `ca.pem`, at
//!   `/var/run/ferry/trust/ca.pem`). The ConfigMap must exist in the pod's
//!   namespace; the control plane keeps a copy in every meshed namespace.
//! * Annotation `ferry.dev/injected: <version>`.
//!
//! Resources and log level come from [`InjectConfig`], overridden entry by
//! entry by the `ferry.dev/proxy-*` annotations; port lists from
//! `ferry.dev/skip-inbound-ports`, `skip-outbound-ports` and `opaque-ports`;
//! `ferry.dev/inbound-policy` (`permissive` | `strict`) becomes the proxy's
//! `FERRY_INBOUND_POLICY`, `ferry.dev/inbound-identity-header` (`true` |
//! `false`) its `FERRY_INBOUND_IDENTITY_HEADER`.
//! Invalid annotation values are an error ([`InjectError::InvalidAnnotation`])
//! so the user sees it at admission instead of a broken pod.
//!
//! Pods already injected, with `hostNetwork`, annotated `ferry.dev/inject:
//! disabled` or labelled `app.kubernetes.io/part-of: ferry` are skipped
//! ([`SkipReason`]); injecting twice is therefore a no-op.
//!
//! # App probes under interception
//!
//! The kubelet probes the pod IP; with inbound interception its request
//! would reach the proxy, which under strict mTLS refuses plaintext. Instead
//! of excluding the probed ports (which would un-mesh the app's serving port
//! whenever it also serves health checks, the common case), the injector
//! rewrites each HTTP probe (`httpGet` without `host`, on a port not skipped)
//! of the app's containers and native sidecars to
//! `GET http://<pod>:4191/app-probe/<container>/<liveness|readiness|startup>`,
//! keeping the probe's timings, and passes the originals to the proxy.
//!
//! **Contract for the proxy:** `FERRY_APP_PROBES` is a JSON object keyed by
//! those paths; each value is `{"port": u16, "path": "/healthz", "scheme":
//! "HTTP"|"HTTPS", "httpHeaders": [{"name", "value"}]}` (`httpHeaders`
//! omitted when empty). On `GET` of a listed path on the admin port, the
//! proxy sends `GET <scheme>://127.0.0.1:<port><path>` with those headers
//! (HTTPS without certificate verification, as the kubelet does; its own UID
//! and loopback are not intercepted) and answers with the app's status code,
//! or 503 if the app cannot be reached. Unlisted `/app-probe/` paths answer
//! 404. TCP and gRPC probes are left as they are.
#![warn(missing_docs)]

mod annotations;
mod config;
mod containers;
mod inject;
mod manifest;
mod probes;

pub use annotations::{
    INBOUND_IDENTITY_HEADER, INBOUND_POLICY, INJECT, INJECTED, OPAQUE_PORTS, PART_OF_LABEL,
    PROXY_CPU_LIMIT, PROXY_CPU_REQUEST, PROXY_LOG_LEVEL, PROXY_MEMORY_LIMIT, PROXY_MEMORY_REQUEST,
    SKIP_INBOUND_PORTS, SKIP_OUTBOUND_PORTS,
};
pub use config::{
    ADMIN_PORT, INBOUND_PORT, INIT_CONTAINER, InjectConfig, OUTBOUND_PORT, PROXY_CONTAINER,
    PROXY_UID, ProxyResources, SidecarMode, TOKEN_AUDIENCE, TRUST_ANCHORS_CONFIG_MAP,
};
pub use containers::{IDENTITY_VOLUME, TRUST_VOLUME};
pub use inject::{Injection, SkipReason, inject, skip_reason};
pub use manifest::{inject_manifests, inject_object};
pub use probes::{APP_PROBE_PREFIX, AppProbe, AppProbeHeader};

/// Errors of the injector.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A `ferry.dev/` annotation has a value the injector cannot use.
    #[error("invalid annotation {key}={value:?}: {expected}")]
    InvalidAnnotation {
        /// Annotation key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// Building the patch failed (a bug: every part is a typed value).
    #[error("failed to serialize the {what} of the injection patch")]
    Serialize {
        /// Which part.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The input of [`inject_manifests`] is not YAML.
    #[error("failed to parse the manifests as YAML")]
    ParseManifest {
        /// The cause.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A Pod or pod template in the manifests does not decode as a Pod.
    #[error("failed to decode the pod template of {kind} {name}")]
    DecodeTemplate {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The patch does not apply to the manifest's pod (a bug).
    #[error("failed to apply the injection patch to {kind} {name}")]
    ApplyPatch {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The cause.
        #[source]
        source: Box<json_patch::PatchError>,
    },
    /// Writing the injected manifests failed.
    #[error("failed to write the injected manifests as YAML")]
    WriteManifest {
        /// The cause.
        #[source]
        source: Box<serde_saphyr::SerializeError>,
    },
}
