//! A small HTTP/1.1 client for checking demos: one keep-alive connection,
//! over TLS when given a CA, reporting which echo backend answered.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::echo::NAME_HEADER;

/// One connection to a gateway listener.
#[derive(Debug)]
pub struct DemoClient {
    sender: SendRequest<Empty<Bytes>>,
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// Response status.
    pub status: StatusCode,
    /// The echo backend that answered, if one did.
    pub backend: Option<String>,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body as text.
    pub body: String,
}

// === impl DemoClient ===

impl DemoClient {
    /// Connects to `addr`; with `tls`, does a TLS handshake for the given
    /// server name, trusting only the given CA (PEM).
    pub async fn connect(addr: SocketAddr, tls: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("failed to connect to {addr}"))?;
        let sender = match tls {
            None => handshake(tcp).await?,
            Some((server_name, ca_pem)) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
                    roots.add(cert?)?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from(server_name.to_string())?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {server_name} failed"))?;
                handshake(stream).await?
            }
        };
        Ok(Self { sender })
    }

    /// Sends `GET path` with `Host: host` and extra headers.
    pub async fn get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = Request::get(path).header(http::header::HOST, host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request.body(Empty::new())?)
            .await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            backend: parts
                .headers
                .get(NAME_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

async fn handshake<S>(stream: S) -> anyhow::Result<SendRequest<Empty<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
