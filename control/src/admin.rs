//! The admin server: `/live`, `/ready` (every watch listed once, and
//! nothing permanent keeps this replica from leading) and `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin endpoints report on.
#[derive(Clone, Debug)]
pub struct Admin {
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    /// Why this replica can never lead (the election's permanent error).
    blocked: Option<watch::Receiver<Option<String>>>,
}

// === impl Admin ===

impl Admin {
    /// Reports `ready` and the metrics of `registry`.
    pub fn new(registry: Arc<Registry>, ready: watch::Receiver<bool>) -> Self {
        Self {
            registry,
            ready,
            blocked: None,
        }
    }

    /// Also reports not ready, with the reason, while `blocked` holds one.
    pub fn with_blocked(self, blocked: watch::Receiver<Option<String>>) -> Self {
        Self {
            blocked: Some(blocked),
            ..self
        }
    }

    /// Answers one request.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let (status, body) = match request.uri().path() {
            "/live" => (StatusCode::OK, "live\n".to_string()),
            "/ready" => match self.blocked.as_ref().and_then(|b| b.borrow().clone()) {
                Some(reason) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("leader election failing, no status is written: {reason}\n"),
                ),
                None if *self.ready.borrow() => (StatusCode::OK, "ready\n".to_string()),
                None => (StatusCode::SERVICE_UNAVAILABLE, "not synced\n".to_string()),
            },
            "/metrics" => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
                    Ok(()) => (StatusCode::OK, body),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                }
            }
            _ => (StatusCode::NOT_FOUND, String::new()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    }

    /// Serves HTTP/1 on `listener` forever.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let handler = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = admin.handle(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler)
                    .await
                {
                    tracing::debug!(%error, "Admin connection ended with an error");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
        use http_body_util::BodyExt as _;
        let response = admin.handle(&Request::get(path).body(()).unwrap());
        let status = response.status();
        let body = futures_util::FutureExt::now_or_never(response.into_body().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn ready_follows_sync_and_metrics_are_served() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.status_write("HTTPRoute", true);
        let (tx, rx) = watch::channel(false);
        let admin = Admin::new(Arc::new(registry), rx);
        assert_eq!(get(&admin, "/live").0, StatusCode::OK);
        assert_eq!(get(&admin, "/ready").0, StatusCode::SERVICE_UNAVAILABLE);
        tx.send_replace(true);
        assert_eq!(get(&admin, "/ready").0, StatusCode::OK);
        let (status, body) = get(&admin, "/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(r#"ferry_control_status_writes_total{kind="HTTPRoute",result="ok"} 1"#),
            "{body}"
        );
        assert_eq!(get(&admin, "/nope").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_blocked_election_is_not_ready_and_says_why() {
        let (_synced, ready) = watch::channel(true);
        let (blocked_tx, blocked) = watch::channel(Some("namespace x does not exist".into()));
        let admin = Admin::new(Arc::default(), ready).with_blocked(blocked);
        let (status, body) = get(&admin, "/ready");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("namespace x does not exist"), "{body}");
        blocked_tx.send_replace(None);
        assert_eq!(get(&admin, "/ready").0, StatusCode::OK);
    }
}
