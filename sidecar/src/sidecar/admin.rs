//! Sidecar mode's admin server: `/live`, `/ready` (once both listeners are
//! bound), `/metrics`, `/config` and the app's probes under `/app-probe/`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::SidecarSettings;
use crate::body::{self, Body};

/// Path prefix of the app's probes (the injector's `APP_PROBE_PREFIX`).
pub const APP_PROBE_PREFIX: &str = "/app-probe/";

/// What the admin server shows.
#[derive(Clone)]
pub struct SidecarAdmin {
    settings: Arc<SidecarSettings>,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
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
        }
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
                    .header_read_timeout(Duration::from_secs(5))
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

    /// What sidecar mode applies: the listeners and the one behaviour it
    /// has so far (opaque passthrough both ways).
    fn config(&self) -> Response<Body> {
        let s = &self.settings;
        let view = serde_json::json!({
            "mode": "sidecar",
            "inbound": {"listen": s.inbound.to_string(), "forward": "127.0.0.1:<original port>, opaque TCP"},
            "outbound": {"listen": s.outbound.to_string(), "forward": "original destination, opaque TCP"},
            "appProbes": s.app_probes.0.keys().collect::<Vec<_>>(),
            "notYetBuilt": ["discovery", "routing by Service routes", "mTLS and identity", "protocol detection"],
        });
        match serde_json::to_vec_pretty(&view) {
            Ok(json) => with_type(Response::new(body::full(json)), "application/json"),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }

    fn metrics(&self) -> Response<Body> {
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            Ok(()) => with_type(
                Response::new(body::full(out)),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut rsp = with_type(
        Response::new(body::full(message.to_string())),
        "text/plain; charset=utf-8",
    );
    *rsp.status_mut() = status;
    rsp
}

fn with_type(mut rsp: Response<Body>, content_type: &'static str) -> Response<Body> {
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}
