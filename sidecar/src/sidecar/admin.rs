//! Sidecar mode's admin server: `/live`, `/ready` (once both listeners are
//! bound), `/metrics`, `/config` and the app's probes under `/app-probe/`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ferry_core::model::Endpoint;
use serde_json::json;

use http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::SidecarSettings;
use super::targets::{TargetState, Targets};
use crate::admin::{metrics_response, text, with_type};
use crate::body::{self, Body};
use crate::identity::{CredentialsRx, summary};
use crate::server::ADMIN_HEADER_READ_TIMEOUT;

/// Path prefix of the app's probes (the injector's `APP_PROBE_PREFIX`).
pub const APP_PROBE_PREFIX: &str = "/app-probe/";

/// What the admin server shows.
#[derive(Clone)]
pub struct SidecarAdmin {
    settings: Arc<SidecarSettings>,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    targets: Option<Targets>,
    credentials: Option<CredentialsRx>,
}

// === impl SidecarAdmin ===

impl SidecarAdmin {
    /// An admin server for `settings`, with the metrics of `registry`; not
    /// ready until [`SidecarAdmin::set_ready`].
    pub fn new(settings: Arc<SidecarSettings>, registry: Arc<Registry>) -> Self {
        Self {
            settings,
            registry,
            ready: Arc::default(),
            targets: None,
            credentials: None,
        }
    }

    /// Shows the outbound targets (when discovery is on) and the proxy's
    /// certificate on `/config`.
    pub fn with_outbound(mut self, targets: Option<Targets>, credentials: CredentialsRx) -> Self {
        self.targets = targets;
        self.credentials = Some(credentials);
        self
    }

    /// Marks the proxy ready (its listeners are bound).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Serves connections from `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept admin connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(&req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(ADMIN_HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(tcp), service);
                if let Err(error) = conn.await {
                    tracing::debug!(%error, "Admin connection failed");
                }
            });
        }
    }

    /// Answers one admin request.
    pub async fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let path = req.uri().path();
        if path.starts_with(APP_PROBE_PREFIX) {
            return match self.settings.app_probes.get(path) {
                Some(probe) => {
                    let status = probe.check(self.settings.probe_timeout).await;
                    text(status, &format!("app answered {}\n", status.as_u16()))
                }
                None => text(StatusCode::NOT_FOUND, "no such app probe\n"),
            };
        }
        match path {
            "/live" => text(StatusCode::OK, "live\n"),
            "/ready" if self.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "listeners not bound yet\n"),
            "/config" => self.config(),
            "/metrics" => self.metrics(),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// What sidecar mode applies: the listeners, the outbound targets with
    /// their routes and endpoints, and the proxy's certificate.
    fn config(&self) -> Response<Body> {
        let s = &self.settings;
        let view = serde_json::json!({
            "mode": "sidecar",
            "inbound": {"listen": s.inbound.to_string(), "forward": "127.0.0.1:<original port>, opaque TCP"},
            "outbound": {
                "listen": s.outbound.to_string(),
                "discovery": s.discovery.as_ref().map(|d| serde_json::json!({
                    "addr": d.addr,
                    "namespace": d.namespace,
                })),
                "opaquePorts": s.opaque_ports,
                "targets": self.targets.as_ref().map(targets_json).unwrap_or_default(),
            },
            "identity": self.credentials.as_ref().map(|c| summary(c.borrow().as_deref(), SystemTime::now())),
            "appProbes": s.app_probes.0.keys().collect::<Vec<_>>(),
        });
        match serde_json::to_vec_pretty(&view) {
            Ok(json) => with_type(Response::new(body::full(json)), "application/json"),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }

    fn metrics(&self) -> Response<Body> {
        metrics_response(&self.registry)
    }
}

/// Each subscribed target: what discovery said, the routes, and every
/// backend's endpoints with the identity expected of them.
fn targets_json(targets: &Targets) -> Vec<serde_json::Value> {
    targets
        .snapshot()
        .iter()
        .map(|target| {
            let view = match target.state() {
                TargetState::Pending => return json!({"target": target.addr, "state": "pending"}),
                TargetState::Unavailable(error) => {
                    return json!({
                        "target": target.addr,
                        "state": "unavailable (retrying; forwarded untouched meanwhile)",
                        "error": &*error,
                    });
                }
                TargetState::Passthrough => {
                    return json!({"target": target.addr, "state": "passthrough"});
                }
                TargetState::Service(view) => view,
            };
            let backends: Vec<_> = view
                .config
                .backends
                .iter()
                .map(|(id, backend)| {
                    let endpoints: Vec<_> = backend
                        .endpoints
                        .iter()
                        .map(|endpoint| {
                            let identity = match endpoint {
                                Endpoint::Addr(addr) => view.identities.0.get(addr),
                                Endpoint::Dns { .. } => None,
                            };
                            json!({
                                "endpoint": endpoint,
                                "identity": identity.map(ToString::to_string),
                            })
                        })
                        .collect();
                    json!({"backend": id.to_string(), "protocol": backend.protocol, "endpoints": endpoints})
                })
                .collect();
            json!({
                "target": target.addr,
                "state": "service",
                "service": view.service.to_string(),
                "version": view.version,
                "protocolHint": view.protocol_hint,
                "routes": view.config.ports.first().map(|p| &p.routes),
                "backends": backends,
            })
        })
        .collect()
}
