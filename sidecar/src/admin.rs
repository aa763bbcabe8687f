//! The admin server: `/live`, `/ready` (once a config is loaded and its
//! listeners bound),
//! `/config` (the applied config, its status, the last load errors and the
//! proxy's certificate when it has one, as JSON) and `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::config::{ConfigRx, ErrorsRx, Snapshot};
use crate::identity::{CredentialsRx, IdentitySummary, summary};
use crate::listeners::Applied;
use crate::server::ADMIN_HEADER_READ_TIMEOUT;

/// What the admin server shows.
#[derive(Clone)]
pub struct Admin {
    config: ConfigRx,
    errors: ErrorsRx,
    registry: Arc<Registry>,
    applied: Applied,
    credentials: Option<CredentialsRx>,
}

// === impl Admin ===

impl Admin {
    /// An admin view of `config`, `errors` and the metrics in `registry`;
    /// ready once the listeners have `applied` a config.
    pub fn new(
        config: ConfigRx,
        errors: ErrorsRx,
        registry: Arc<Registry>,
        applied: Applied,
    ) -> Self {
        Self {
            config,
            errors,
            registry,
            applied,
            credentials: None,
        }
    }

    /// Also shows the proxy's certificate (identity and expiry) on
    /// `/config`.
    pub fn with_credentials(self, credentials: CredentialsRx) -> Self {
        Self {
            credentials: Some(credentials),
            ..self
        }
    }

    /// Serves connections from `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept admin connection");
                    continue;
                }
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let rsp = admin.handle(&req);
                    async move { Ok::<_, Infallible>(rsp) }
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
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match req.uri().path() {
            "/live" => text(StatusCode::OK, "live\n"),
            "/ready" if self.applied.version() > 0 => text(StatusCode::OK, "ready\n"),
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet\n"),
            "/config" => self.config_json(),
            "/metrics" => self.metrics(),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn config_json(&self) -> Response<Body> {
        let snapshot = self.config.borrow().clone();
        let errors = self.errors.borrow().clone();
        let identity = self
            .credentials
            .as_ref()
            .map(|c| summary(c.borrow().as_deref(), SystemTime::now()));
        let view = config_view(snapshot.as_deref(), errors, identity);
        match view.and_then(|v| serde_json::to_vec_pretty(&v)) {
            Ok(json) => with_type(Response::new(body::full(json)), "application/json"),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }

    fn metrics(&self) -> Response<Body> {
        metrics_response(&self.registry)
    }
}

/// The `/config` document: listeners (ports with their routes), backends
/// keyed by `ns/name:port`, computed status, the last load errors and,
/// with a workload identity, the proxy's certificate.
fn config_view(
    snapshot: Option<&Snapshot>,
    errors: Vec<String>,
    identity: Option<IdentitySummary>,
) -> serde_json::Result<Value> {
    let mut view = Map::new();
    if let Some(identity) = identity {
        view.insert("identity".into(), serde_json::to_value(identity)?);
    }
    view.insert(
        "version".into(),
        Value::from(snapshot.map_or(0, |s| s.version)),
    );
    if let Some(snapshot) = snapshot {
        view.insert(
            "ports".into(),
            serde_json::to_value(&snapshot.config.ports)?,
        );
        let mut backends = Map::new();
        for (id, backend) in &snapshot.config.backends {
            backends.insert(id.to_string(), serde_json::to_value(backend)?);
        }
        view.insert("backends".into(), Value::Object(backends));
        view.insert("status".into(), snapshot.status.clone());
    }
    view.insert("errors".into(), Value::from(errors));
    Ok(Value::Object(view))
}

/// `registry` in the Prometheus text format, for `/metrics`.
pub(crate) fn metrics_response(registry: &Registry) -> Response<Body> {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => with_type(
            Response::new(body::full(out)),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
    }
}

/// A plain-text response with `status`.
pub(crate) fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut rsp = with_type(
        Response::new(body::full(message.to_string())),
        "text/plain; charset=utf-8",
    );
    *rsp.status_mut() = status;
    rsp
}

/// `rsp` with its `content-type`.
pub(crate) fn with_type(mut rsp: Response<Body>, content_type: &'static str) -> Response<Body> {
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::config::{Compiled, Publisher};

    async fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(()).unwrap();
        let rsp = admin.handle(&req);
        let status = rsp.status();
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn ready_after_listeners_apply_and_config_as_json() {
        let (mut publisher, config, errors) = Publisher::channel();
        let applied = Applied::default();
        let admin = Admin::new(config, errors, Arc::default(), applied.clone());
        assert_eq!(get(&admin, "/live").await.0, StatusCode::OK);
        assert_eq!(
            get(&admin, "/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        publisher.publish(Compiled {
            config: Default::default(),
            status: serde_json::json!({"routes": []}),
        });
        assert_eq!(
            get(&admin, "/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        applied.set(1);
        assert_eq!(get(&admin, "/ready").await.0, StatusCode::OK);
        publisher.fail(&[crate::config::LoadError::Parse {
            file: "a.yaml".into(),
            line: Some(3),
            message: "a.yaml:3: bad".into(),
        }]);
        let (status, json) = get(&admin, "/config").await;
        assert_eq!(status, StatusCode::OK);
        let json: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["errors"][0], "a.yaml:3: bad");
        assert_eq!(json["status"]["routes"], serde_json::json!([]));
        assert_eq!(get(&admin, "/metrics").await.0, StatusCode::OK);
        assert_eq!(get(&admin, "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(json.get("identity"), None, "no identity, no certificate");
    }

    #[tokio::test]
    async fn config_shows_the_certificate_of_a_proxy_with_an_identity() {
        let (_publisher, config, errors) = Publisher::channel();
        let (credentials_tx, credentials) = tokio::sync::watch::channel(None);
        let admin = Admin::new(config, errors, Arc::default(), Applied::default())
            .with_credentials(credentials);
        let json = |text: String| serde_json::from_str::<Value>(&text).unwrap();
        let waiting = json(get(&admin, "/config").await.1);
        assert_eq!(waiting["identity"]["identity"], Value::Null);

        let not_after = SystemTime::now() + std::time::Duration::from_secs(3600);
        credentials_tx.send_replace(Some(Arc::new(crate::identity::Credentials {
            identity: "spiffe://cluster.local/ns/edge/sa/web".parse().unwrap(),
            chain: Vec::new(),
            key: rustls::pki_types::PrivateKeyDer::Pkcs8(Vec::new().into()),
            roots: Vec::new(),
            not_after,
        })));
        let held = json(get(&admin, "/config").await.1);
        assert_eq!(
            held["identity"]["identity"],
            "spiffe://cluster.local/ns/edge/sa/web"
        );
        let expires_in = held["identity"]["expiresInSecs"].as_u64().unwrap();
        assert!((3500..=3600).contains(&expires_in), "{held}");
    }
}
