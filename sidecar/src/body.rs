//! The one body type used on the request path: boxed, streamed, never
//! buffered whole.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// An error from any body on the path.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of a [`Body`]. A named type rather than a bare boxed trait
/// object, so futures holding a body are `Send` for any lifetime.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BodyError(pub BoxError);

/// A streamed request or response body.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

/// Boxes any body into a [`Body`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|e| BodyError(e.into())).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    boxed(Empty::<Bytes>::new())
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(Full::new(bytes.into()))
}
