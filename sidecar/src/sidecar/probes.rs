//! The app's own HTTP probes, served on the admin port.
//!
//! The injector rewrites each HTTP probe of the app to
//! `GET /app-probe/<container>/<kind>` on the admin port and passes the
//! original in `FERRY_APP_PROBES` (contract in the ferry-injector crate
//! doc). The proxy sends `GET <scheme>://127.0.0.1:<port><path>` with the
//! original headers (HTTPS without certificate verification, as the kubelet
//! does) and answers with the app's status code, 503 if the app cannot be
//! reached, 404 for a path that is not listed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The original probes, keyed by the rewritten path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AppProbes(pub BTreeMap<String, AppProbe>);

/// One original HTTP probe of the app.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProbe {
    /// The app's port.
    pub port: u16,
    /// Path and query, `/` at least.
    pub path: String,
    /// `HTTP` or `HTTPS`.
    #[serde(default = "http_scheme")]
    pub scheme: Scheme,
    /// Headers to send (`Host` among them, if the probe set one).
    #[serde(default)]
    pub http_headers: Vec<ProbeHeader>,
}

/// The scheme of an [`AppProbe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Scheme {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS, certificate not verified.
    Https,
}

/// A header of an [`AppProbe`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProbeHeader {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Accepts any server certificate: probes check the app is up, not who it
/// is, and the kubelet does the same.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

fn http_scheme() -> Scheme {
    Scheme::Http
}

// === impl AppProbes ===

impl AppProbes {
    /// Parses `FERRY_APP_PROBES`.
    pub fn from_json(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    /// The probe served at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&AppProbe> {
        self.0.get(path)
    }
}

// === impl AppProbe ===

impl AppProbe {
    /// Runs the probe against the app on loopback; the status to answer the
    /// kubelet with.
    pub async fn check(&self, timeout: Duration) -> StatusCode {
        match tokio::time::timeout(timeout, self.send()).await {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => {
                tracing::debug!(port = self.port, path = %self.path, %error, "App probe failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Err(_) => {
                tracing::debug!(port = self.port, path = %self.path, "App probe timed out");
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    async fn send(&self) -> Result<StatusCode, crate::body::BoxError> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        match self.scheme {
            Scheme::Http => self.request(tcp).await,
            Scheme::Https => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth();
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from("localhost")?;
                self.request(connector.connect(name, tcp).await?).await
            }
        }
    }

    async fn request<T>(&self, io: T) -> Result<StatusCode, crate::body::BoxError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        let mut req = Request::get(self.path.as_str());
        let has_host = self
            .http_headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("host"));
        if !has_host {
            req = req.header(http::header::HOST, format!("127.0.0.1:{}", self.port));
        }
        req = req.header(http::header::USER_AGENT, "ferry-proxy/app-probe");
        for header in &self.http_headers {
            req = req.header(header.name.as_str(), header.value.as_str());
        }
        let rsp = sender
            .send_request(req.body(Empty::<Bytes>::new())?)
            .await?;
        Ok(rsp.status())
    }
}

// === impl AnyCertificate ===

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
