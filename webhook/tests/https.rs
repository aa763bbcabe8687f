//! The real listener: TLS with the generated certificate (IP SAN), then
//! AdmissionReviews good and malformed over a kept-alive connection. No
//! cluster needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use ferry_injector::InjectConfig;
use ferry_webhook::{AdmissionService, FailurePolicy, Metrics, ServerTimeouts, ServingCert};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

async fn connect(addr: SocketAddr, ca_pem: &str) -> Result<SendRequest<Full<Bytes>>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::from(addr.ip()), tcp)
        .await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn post(sender: &mut SendRequest<Full<Bytes>>, body: String) -> Result<(u16, Value)> {
    sender.ready().await?;
    let request = Request::post("/inject")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

#[tokio::test]
async fn reviews_over_tls_good_and_malformed() -> Result<()> {
    let cert = ServingCert::generate(&["localhost".to_owned()], &["127.0.0.1".parse()?])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = AdmissionService::new(
        InjectConfig::new("0.1.0"),
        FailurePolicy::Ignore,
        Metrics::unregistered(),
        Duration::from_secs(4),
    );
    let timeouts = ServerTimeouts {
        handshake: Duration::from_secs(4),
        header_read: Duration::from_secs(4),
    };
    tokio::spawn(ferry_webhook::serve(
        listener,
        cert.server_config()?,
        service,
        timeouts,
        std::future::pending(),
    ));

    let mut sender = connect(addr, &cert.ca_pem).await?;
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "operation": "CREATE", "namespace": "shop",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                       "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        }
    });
    let (status, answer) = post(&mut sender, review.to_string()).await?;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    // The same connection survives malformed reviews, each answered with a message.
    for body in ["{", "{\"kind\":\"AdmissionReview\"}", "\u{0}\u{1}binary"] {
        let (status, answer) = post(&mut sender, body.to_owned()).await?;
        assert_eq!(status, 400, "{body:?}");
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.starts_with("ferry: "), "{answer}");
    }
    let (status, _) = post(&mut sender, review.to_string()).await?;
    assert_eq!(status, 200);
    Ok(())
}
