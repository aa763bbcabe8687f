//! `RequestMirror`: copies a sampled share of requests to another backend.
//! The copy's body is teed from the real one through a small channel; a
//! mirror that falls behind is cut off rather than slowing the real
//! request, and its answer is ignored. The copy carries the identities
//! expected of meshed endpoints, so a mirror to a meshed pod goes over mTLS
//! like the real request. Upgrade requests (WebSocket) are not mirrored: a
//! copy of the handshake would open a tunnel that nothing feeds.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::model::{Mirror, ProxyConfig};
use http::Request;
use http_body::{Body as _, Frame, SizeHint};
use rand::Rng;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::body::{self, Body, BodyError};
use crate::mesh::client::EndpointIdentities;
use crate::proxy::hygiene::is_upgrade;
use crate::proxy::{Forward, Target};

/// Frames a mirror may lag behind the real request before it is cut off.
const MIRROR_BUFFER: usize = 16;

/// Longest a mirror may take to answer; its request is dropped after that.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// The real request's body, copying frames to a mirror.
struct Tee {
    inner: Body,
    tx: Option<mpsc::Sender<Frame<Bytes>>>,
    complete: Arc<AtomicBool>,
}

/// The mirror's body, fed by a [`Tee`].
struct Copy {
    rx: mpsc::Receiver<Frame<Bytes>>,
    complete: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("mirrored request body was cut off")]
struct CutOff;

/// Sends a copy of `req` to the mirror's backend, if sampled.
pub(super) fn spawn(
    mirror: &Mirror,
    req: &mut Request<Body>,
    config: Arc<ProxyConfig>,
    forward: &Forward,
) {
    let Some(id) = &mirror.target else {
        return;
    };
    if is_upgrade(req.headers()) {
        return;
    }
    if mirror.percent < 100.0 && rand::rng().random::<f64>() * 100.0 >= mirror.percent {
        return;
    }
    let copy_body = if req.body().is_end_stream() {
        body::empty()
    } else {
        let (tx, rx) = mpsc::channel(MIRROR_BUFFER);
        let complete = Arc::new(AtomicBool::new(false));
        let real = std::mem::replace(req.body_mut(), body::empty());
        *req.body_mut() = body::boxed(Tee {
            inner: real,
            tx: Some(tx),
            complete: complete.clone(),
        });
        body::boxed(Copy { rx, complete })
    };
    let mut copy = Request::new(copy_body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy.extensions_mut().insert(Target {
        config,
        id: id.clone(),
    });
    if let Some(identities) = req.extensions().get::<EndpointIdentities>() {
        copy.extensions_mut().insert(identities.clone());
    }
    let forward = forward.clone();
    let backend = id.to_string();
    tokio::spawn(async move {
        match tokio::time::timeout(MIRROR_TIMEOUT, forward.oneshot(copy)).await {
            Ok(Ok(rsp)) => {
                tracing::trace!(%backend, status = rsp.status().as_u16(), "Mirror answered")
            }
            Ok(Err(error)) => tracing::debug!(%backend, %error, "Mirror failed"),
            Err(_) => tracing::debug!(%backend, "Mirror timed out"),
        }
    });
}

// === impl Tee ===

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(tx) = &this.tx {
                    let copy = match (frame.data_ref(), frame.trailers_ref()) {
                        (Some(data), _) => Some(Frame::data(data.clone())),
                        (None, Some(trailers)) => Some(Frame::trailers(trailers.clone())),
                        (None, None) => None,
                    };
                    if copy.is_some_and(|copy| tx.try_send(copy).is_err()) {
                        this.tx = None;
                    }
                }
                // The server may stop polling once the body says it ended.
                if this.inner.is_end_stream() {
                    this.complete.store(true, Ordering::Release);
                    this.tx = None;
                }
            }
            Some(Err(_)) => this.tx = None,
            None => {
                this.complete.store(true, Ordering::Release);
                this.tx = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl Copy ===

impl http_body::Body for Copy {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match ready!(self.rx.poll_recv(cx)) {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None if self.complete.load(Ordering::Acquire) => Poll::Ready(None),
            None => Poll::Ready(Some(Err(BodyError(Box::new(CutOff))))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use ferry_core::model::BackendId;
    use tower::util::BoxCloneService;

    use super::*;

    /// A mirror that records the identities each copy carries.
    fn recording_forward() -> (Forward, mpsc::UnboundedReceiver<Option<EndpointIdentities>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let forward: Forward =
            BoxCloneService::new(tower::service_fn(move |req: Request<Body>| {
                let _ = tx.send(req.extensions().get::<EndpointIdentities>().cloned());
                async { Ok(http::Response::new(body::empty())) }
            }));
        (forward, rx)
    }

    fn shadow() -> Mirror {
        Mirror {
            target: Some(BackendId {
                namespace: "shop".into(),
                name: "reviews-shadow".into(),
                port: 9080,
            }),
            percent: 100.0,
        }
    }

    /// A mirrored request to a meshed pod must go over mTLS too: the copy
    /// carries the identities the real request carries.
    #[tokio::test]
    async fn the_copy_carries_the_expected_identities() {
        let (forward, mut rx) = recording_forward();
        let endpoint: SocketAddr = "10.1.0.9:9080".parse().unwrap();
        let identity = "spiffe://cluster.local/ns/shop/sa/reviews".parse().unwrap();
        let identities = EndpointIdentities(Arc::new(HashMap::from([(endpoint, identity)])));
        let mut req = Request::new(body::empty());
        req.extensions_mut().insert(identities);
        let config = Arc::new(ProxyConfig::default());
        spawn(&shadow(), &mut req, config, &forward);
        let copied = rx.recv().await.expect("the mirror was sent");
        let copied = copied.expect("the copy has no identities");
        assert_eq!(
            copied.0[&endpoint].to_string(),
            "spiffe://cluster.local/ns/shop/sa/reviews"
        );
    }

    #[tokio::test]
    async fn upgrade_requests_are_not_mirrored() {
        let (forward, mut rx) = recording_forward();
        let config = Arc::new(ProxyConfig::default());
        let mut upgrade = Request::get("/chat")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(body::empty())
            .unwrap();
        spawn(&shadow(), &mut upgrade, config.clone(), &forward);
        let mut plain = Request::get("/books").body(body::empty()).unwrap();
        spawn(&shadow(), &mut plain, config, &forward);
        // Only the plain request's copy arrives.
        rx.recv().await.expect("the plain request was mirrored");
        drop(forward);
        assert!(rx.recv().await.is_none(), "the upgrade was mirrored");
    }
}
