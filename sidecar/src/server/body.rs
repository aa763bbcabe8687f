//! A client's request body as the proxy reads it. Its failures are told
//! apart from the backend's ([`BodyWatch`], read by
//! [`crate::proxy::classify`]), and until the response starts it must keep
//! arriving ([`BodyLimits`]): a client that drips its body in would
//! otherwise hold a backend connection for as long as it likes.
//!
//! Only time spent waiting for the client counts: while the backend is not
//! reading (backpressure) the body is not polled, and no clock runs. Once
//! response headers are on their way the exchange is a stream in both
//! directions (gRPC, say) and the limits stop.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::BodyLimits;
use crate::body::BoxError;

/// What went wrong with a client's request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFailure {
    /// The body did not arrive within [`BodyLimits`].
    TimedOut,
    /// The body broke HTTP's framing (a chunk size that is not hex, say).
    Malformed,
    /// The client closed or reset the request before its body ended.
    Incomplete,
}

/// Shared by a request's body and the rest of its exchange: the body
/// records its failure, the server says when the response has started.
/// Requests with a body carry one in their extensions.
#[derive(Clone, Debug, Default)]
pub struct BodyWatch(Arc<WatchState>);

#[derive(Debug, Default)]
struct WatchState {
    responded: AtomicBool,
    /// A [`BodyFailure`] as `1 + its index`, 0 for none.
    failure: AtomicU8,
}

/// Why a [`RequestBody`] ended early.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// See [`BodyFailure::TimedOut`].
    #[error("request body did not arrive in time (waited {waited:?})")]
    TimedOut {
        /// The time spent waiting for the client, in total.
        waited: Duration,
    },
    /// Reading from the client failed.
    #[error("failed to read the request body")]
    Read(#[source] BoxError),
}

/// A client's request body under [`BodyLimits`].
#[derive(Debug)]
pub(crate) struct RequestBody<B> {
    inner: B,
    limits: BodyLimits,
    watch: BodyWatch,
    received: u64,
    /// Time spent waiting for the client before the current wait.
    waited: Duration,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl BodyFailure ===

impl BodyFailure {
    const ALL: [Self; 3] = [Self::TimedOut, Self::Malformed, Self::Incomplete];

    /// What a read error of the client's body means: hyper reports broken
    /// framing as `InvalidInput` or `InvalidData`; anything else (an early
    /// end, a reset stream) is the client going away.
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut source = Some(error);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                )
            {
                return Self::Malformed;
            }
            source = error.source();
        }
        Self::Incomplete
    }
}

// === impl BodyWatch ===

impl BodyWatch {
    /// How the body failed, if it did.
    pub fn failure(&self) -> Option<BodyFailure> {
        let code = self.0.failure.load(Ordering::Acquire);
        BodyFailure::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// The response has started: the body's limits stop.
    pub(crate) fn responded(&self) {
        self.0.responded.store(true, Ordering::Release);
    }

    fn has_responded(&self) -> bool {
        self.0.responded.load(Ordering::Acquire)
    }

    fn fail(&self, failure: BodyFailure) {
        let code = BodyFailure::ALL
            .iter()
            .position(|f| *f == failure)
            .map_or(0, |i| i as u8 + 1);
        let _ = self
            .0
            .failure
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }
}

// === impl RequestBody ===

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, limits: BodyLimits, watch: BodyWatch) -> Self {
        Self {
            inner,
            limits,
            watch,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    /// The client has sent nothing since the last poll: fails once the
    /// wait is over the limits, else arms the timer for when it will be.
    fn poll_limits(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let Some(timeout) = self.limits.timeout else {
            return Poll::Pending;
        };
        if self.watch.has_responded() {
            self.waiting_since = None;
            return Poll::Pending;
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let mut wait = timeout;
        if self.limits.min_rate > 0 {
            let earned =
                Duration::from_secs_f64(self.received as f64 / f64::from(self.limits.min_rate));
            wait = wait.min((timeout + earned).saturating_sub(self.waited));
        }
        let deadline = since + wait;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.watch.fail(BodyFailure::TimedOut);
        let waited = self.waited + since.elapsed();
        Poll::Ready(Some(Err(RequestBodyError::TimedOut { waited })))
    }
}

impl<B> http_body::Body for RequestBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error = error.into();
                this.watch.fail(BodyFailure::of(&*error));
                Poll::Ready(Some(Err(RequestBodyError::Read(error))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => this.poll_limits(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
