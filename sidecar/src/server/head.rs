//! Refuses HTTP/1 request heads whose lines end in a bare LF. RFC 9112
//! §2.2 lets a recipient accept them, and httparse (hyper's parser) does,
//! with no option to refuse; but a proxy that reads a message differently
//! from the parties beside it is how requests get smuggled. So the bytes
//! of each head are checked on their way to hyper: at the first bare LF of
//! a head, the connection's bytes end, and hyper is given a NUL and an
//! empty line instead, which its parser refuses with its 400 (the empty
//! line, because hyper re-parses a partial head only once one has come).
//!
//! Telling heads from bodies needs no second parser. The first head starts
//! the connection; a head ends at its empty line, and the bytes after it
//! are held back until hyper has dispatched the request, whose body
//! framing (no body, a `Content-Length`, chunked, or a tunnel after an
//! upgrade) the connection's service then publishes in [`Framing`]. A
//! length is skipped, chunks are followed by their size lines (accepting
//! exactly what hyper's chunked decoder accepts), and a tunnel is not
//! looked at again. When hyper reads past a head before dispatching it
//! (it never does), or a chunked body breaks hyper's rules (hyper closes
//! the connection then), the guard stops checking rather than guess.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use http::{Method, Request};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::hygiene::is_upgrade;

/// The body framing of the request hyper last dispatched on a connection,
/// published by the connection's service for its [`HeadGuard`].
#[derive(Debug)]
pub(crate) struct Framing(AtomicU64);

/// An HTTP/1 connection's reads, checked for bare LFs in request heads.
#[derive(Debug)]
pub(crate) struct HeadGuard<I> {
    io: I,
    framing: std::sync::Arc<Framing>,
    scan: Scan,
    /// Bytes read past the end of a head, delivered once the request's
    /// framing is known.
    held: BytesMut,
}

/// Where the guard is in the connection's byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// In a head: `line` bytes of the current line seen, the last one
    /// `last`; `started` once a line with content (the request line) has.
    Head {
        line: usize,
        last: u8,
        started: bool,
    },
    /// A head ended; the request's framing is not known yet.
    Dispatching,
    /// `remaining` bytes of a `Content-Length` body.
    Body { remaining: u64 },
    /// A chunked body.
    Chunked(Chunk),
    /// Not checking any more (a tunnel, or lost track).
    Off,
    /// A head had a bare LF: the client's bytes are dropped, `poisoned`
    /// bytes of [`POISON`] have been delivered, then the stream ends.
    Refused { poisoned: usize },
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line: the size so far; `digits` while still in them.
    Size { size: u64, digits: bool },
    /// After the size line's CR.
    SizeLf { size: u64 },
    /// `remaining` bytes of chunk data.
    Data { remaining: u64 },
    /// The CRLF after chunk data (`cr` once the CR is seen).
    DataEnd { cr: bool },
    /// A trailer line, or (`line_start`) the start of one or of the final
    /// empty line.
    Trailer { line_start: bool },
    /// After a CR in the trailers; `last` when it ended the body.
    TrailerLf { last: bool },
}

/// What hyper reads in place of a head's bare LF and all that follows: a
/// byte its parser refuses anywhere in a head, and the empty line it waits
/// for before parsing a head again.
const POISON: &[u8] = b"\0\r\n\r\n";

const UNSET: u64 = u64::MAX;
const CHUNKED: u64 = u64::MAX - 1;
const TUNNEL: u64 = u64::MAX - 2;

// === impl Framing ===

impl Framing {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(UNSET))
    }

    /// Publishes the framing of `req`, being dispatched.
    pub(crate) fn dispatched(&self, req: &Request<Incoming>) {
        let value = if is_upgrade(req.headers()) || req.method() == Method::CONNECT {
            TUNNEL
        } else if req.body().is_end_stream() {
            0
        } else {
            req.body()
                .size_hint()
                .exact()
                .filter(|n| *n < TUNNEL)
                .unwrap_or(CHUNKED)
        };
        self.0.store(value, Ordering::Release);
    }

    fn take(&self) -> Option<Scan> {
        match self.0.swap(UNSET, Ordering::AcqRel) {
            UNSET => None,
            TUNNEL => Some(Scan::Off),
            CHUNKED => Some(Scan::Chunked(Chunk::Size {
                size: 0,
                digits: true,
            })),
            0 => Some(Scan::HEAD),
            remaining => Some(Scan::Body { remaining }),
        }
    }
}

// === impl HeadGuard ===

impl<I> HeadGuard<I> {
    pub(crate) fn new(io: I, framing: std::sync::Arc<Framing>) -> Self {
        Self {
            io,
            framing,
            scan: Scan::HEAD,
            held: BytesMut::new(),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for HeadGuard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.scan == Scan::Dispatching {
            // Hyper reads again after dispatching the request the head
            // opened; reading before would be a surprise.
            this.scan = this.framing.take().unwrap_or(Scan::Off);
        }
        if let Scan::Refused { poisoned } = &mut this.scan {
            let n = (POISON.len() - *poisoned).min(buf.remaining());
            buf.put_slice(&POISON[*poisoned..*poisoned + n]);
            *poisoned += n;
            return Poll::Ready(Ok(()));
        }
        if !this.held.is_empty() {
            let n = this.held.len().min(buf.remaining());
            let deliver = this.scan.scan(&this.held[..n]);
            buf.put_slice(&this.held[..deliver]);
            this.held.advance(deliver);
        } else {
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            if this.scan == Scan::Off {
                return Poll::Ready(Ok(()));
            }
            let end = buf.filled().len();
            let deliver = this.scan.scan(&buf.filled()[start..end]);
            if start + deliver < end {
                if this.scan == Scan::Dispatching {
                    this.held
                        .extend_from_slice(&buf.filled()[start + deliver..end]);
                }
                buf.set_filled(start + deliver);
            }
        }
        if let Scan::Refused { poisoned } = &mut this.scan {
            this.held.clear();
            let n = POISON.len().min(buf.remaining());
            buf.put_slice(&POISON[..n]);
            *poisoned = n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadGuard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// === impl Scan ===

impl Scan {
    const HEAD: Self = Self::Head {
        line: 0,
        last: 0,
        started: false,
    };

    /// Follows `bytes`, the next ones of the connection. Returns how many
    /// may be delivered now: fewer when a head ends inside them (the rest
    /// waits for the request's framing) or has a bare LF (the rest is
    /// dropped, the state is [`Scan::Refused`]).
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match self {
                Self::Off => return bytes.len(),
                Self::Dispatching | Self::Refused { .. } => return i,
                Self::Body { remaining } => {
                    let skip =
                        (bytes.len() - i).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    i += skip;
                    *remaining -= skip as u64;
                    if *remaining == 0 {
                        *self = Self::HEAD;
                    }
                }
                Self::Chunked(Chunk::Data { remaining }) => {
                    let skip =
                        (bytes.len() - i).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    i += skip;
                    *remaining -= skip as u64;
                    if *remaining == 0 {
                        *self = Self::Chunked(Chunk::DataEnd { cr: false });
                    }
                }
                Self::Chunked(chunk) => {
                    *self = chunk.next(bytes[i]);
                    i += 1;
                }
                Self::Head {
                    line,
                    last,
                    started,
                } => {
                    let Some(at) = bytes[i..].iter().position(|&b| b == b'\n') else {
                        *line += bytes.len() - i;
                        *last = bytes[bytes.len() - 1];
                        return bytes.len();
                    };
                    let lf = i + at;
                    let before = if at > 0 { bytes[lf - 1] } else { *last };
                    let length = *line + at;
                    if length == 0 || before != b'\r' {
                        *self = Self::Refused { poisoned: 0 };
                        return lf;
                    }
                    i = lf + 1;
                    *line = 0;
                    *last = b'\n';
                    match (length, *started) {
                        // The empty line ending the head.
                        (1, true) => *self = Self::Dispatching,
                        // An empty line before the request line (ignored).
                        (1, false) => {}
                        _ => *started = true,
                    }
                }
            }
        }
        bytes.len()
    }
}

// === impl Chunk ===

impl Chunk {
    /// The state after `byte`; [`Scan::Off`] where hyper's chunked decoder
    /// fails (and closes the connection).
    fn next(self, byte: u8) -> Scan {
        let chunk = match (self, byte) {
            (Self::Size { size, digits: true }, b) if b.is_ascii_hexdigit() => {
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(size) => Self::Size { size, digits: true },
                    None => return Scan::Off,
                }
            }
            (Self::Size { size, .. }, b'\r') => Self::SizeLf { size },
            (Self::Size { .. }, b'\n') => return Scan::Off,
            (Self::Size { size, .. }, _) => Self::Size {
                size,
                digits: false,
            },
            (Self::SizeLf { size: 0 }, b'\n') => Self::Trailer { line_start: true },
            (Self::SizeLf { size }, b'\n') => Self::Data { remaining: size },
            (Self::DataEnd { cr: false }, b'\r') => Self::DataEnd { cr: true },
            (Self::DataEnd { cr: true }, b'\n') => Self::Size {
                size: 0,
                digits: true,
            },
            (Self::Trailer { line_start }, b'\r') => Self::TrailerLf { last: line_start },
            (Self::Trailer { .. }, _) => Self::Trailer { line_start: false },
            (Self::TrailerLf { last: true }, b'\n') => return Scan::HEAD,
            (Self::TrailerLf { last: false }, b'\n') => Self::Trailer { line_start: true },
            _ => return Scan::Off,
        };
        Scan::Chunked(chunk)
    }
}

#[cfg(test)]
mod tests;
