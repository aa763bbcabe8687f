//! The HTTPS listener: TLS handshakes and HTTP/1.1 connections with
//! timeouts, each request handed to the [`AdmissionService`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::service::AdmissionService;

/// Timeouts of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerTimeouts {
    /// Time for a client to finish the TLS handshake.
    pub handshake: Duration,
    /// Time for a client to send a request's headers (the body has the
    /// service's own timeout).
    pub header_read: Duration,
}

/// Serves `service` over TLS on `listener` until `shutdown` resolves.
/// Connections already accepted finish on their own tasks.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: AdmissionService,
    timeouts: ServerTimeouts,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!(%error, "Failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let handler = service_fn(move |request| service.clone().oneshot(request));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header_read)
                .serve_connection(TokioIo::new(tls), handler);
            if let Err(error) = connection.await {
                debug!(%peer, %error, "Connection ended with an error");
            }
        });
    }
}
