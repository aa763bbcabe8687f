//! Protocol detection of an outbound connection: reads the app's first
//! bytes (for at most a short timeout) and says whether they open an
//! HTTP/1 request, the HTTP/2 prior-knowledge preface, or anything else
//! (TLS, a server-first protocol that sends nothing, binary data), which is
//! forwarded as opaque TCP. The bytes read are handed back so the caller
//! replays them ([`Prefixed`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface a prior-knowledge client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest request line looked at; a longer one is treated as opaque.
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// What an outbound connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 prior-knowledge preface.
    Http2,
    /// Anything else: forwarded byte for byte.
    Opaque,
}

/// An I/O stream whose first bytes were already read: they are read again
/// first, then the stream itself.
#[derive(Debug)]
pub struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

/// Reads from `io` until its first bytes decide the protocol, for at most
/// `timeout` (then, or at end of stream, it is opaque). Returns the verdict
/// and the bytes read, to be replayed.
pub async fn detect<I>(io: &mut I, timeout: Duration) -> io::Result<(Detected, Bytes)>
where
    I: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if let Some(verdict) = classify(&buf) {
                return Ok::<_, io::Error>(verdict);
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Ok(Detected::Opaque);
            }
        }
    };
    let verdict = match tokio::time::timeout(timeout, read).await {
        Ok(result) => result?,
        Err(_) => Detected::Opaque,
    };
    Ok((verdict, buf.freeze()))
}

/// The protocol `bytes` (a connection's first bytes) open, or `None` while
/// more bytes are needed to tell.
pub fn classify(bytes: &[u8]) -> Option<Detected> {
    if bytes.is_empty() {
        return None;
    }
    let n = bytes.len().min(H2_PREFACE.len());
    if bytes[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Detected::Http2);
    }
    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
        // No full line yet: keep reading while it still looks like a
        // request line.
        let plausible = bytes.len() < MAX_REQUEST_LINE && request_line_prefix_ok(bytes);
        return if plausible {
            None
        } else {
            Some(Detected::Opaque)
        };
    };
    let line = bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]);
    Some(if is_http1_request_line(line) {
        Detected::Http1
    } else {
        Detected::Opaque
    })
}

/// `METHOD SP target SP HTTP/1.x`.
fn is_http1_request_line(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    is_token(method)
        && !target.is_empty()
        && target.iter().all(|b| b.is_ascii_graphic())
        && version.len() == 8
        && version.starts_with(b"HTTP/1.")
        && version[7].is_ascii_digit()
}

/// Whether an incomplete line may still become a request line: a method
/// token, then (after a space) printable characters.
fn request_line_prefix_ok(bytes: &[u8]) -> bool {
    match bytes.iter().position(|&b| b == b' ') {
        None => is_token(bytes),
        Some(space) => {
            is_token(&bytes[..space])
                && bytes[space + 1..]
                    .iter()
                    .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\r')
        }
    }
}

/// An RFC 9110 token (methods are tokens).
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

// === impl Prefixed ===

impl<I> Prefixed<I> {
    /// `io`, with `prefix` read first.
    pub fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[test]
    fn request_lines_preface_and_other_bytes_are_told_apart() {
        let cases: &[(&[u8], Option<Detected>)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Some(Detected::Http1)),
            (b"POST /x?y=1 HTTP/1.0\n", Some(Detected::Http1)),
            (b"M-SEARCH * HTTP/1.1\r\n", Some(Detected::Http1)),
            (H2_PREFACE, Some(Detected::Http2)),
            (b"PRI * HTTP/2.0\r\n", None),
            (b"GET /inde", None),
            (b"GE", None),
            (b"", None),
            (b"\x16\x03\x01\x02\x00\x01", Some(Detected::Opaque)),
            (b"hello world\n", Some(Detected::Opaque)),
            (b"GET / HTTP/2.0\r\n", Some(Detected::Opaque)),
            (b"GET /a b HTTP/1.1\r\n", Some(Detected::Opaque)),
            (b"\x00\x00\x00\x01", Some(Detected::Opaque)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                classify(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [b"GET /".as_slice(), &[b'a'; MAX_REQUEST_LINE]].concat();
        assert_eq!(classify(&long), Some(Detected::Opaque));
    }

    #[tokio::test]
    async fn split_request_line_is_read_until_decided_and_replayed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            client.write_all(b"GET /a").await.unwrap();
            tokio::task::yield_now().await;
            client
                .write_all(b" HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            client
        });
        let (verdict, prefix) = detect(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(verdict, Detected::Http1);
        drop(writer.await.unwrap());
        let mut replayed = Vec::new();
        Prefixed::new(prefix, server)
            .read_to_end(&mut replayed)
            .await
            .unwrap();
        assert_eq!(replayed, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_client_is_opaque_after_the_timeout() {
        let (_client, mut server) = tokio::io::duplex(64);
        let (verdict, prefix) = detect(&mut server, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!((verdict, prefix.len()), (Detected::Opaque, 0));
    }

    #[tokio::test]
    async fn closed_client_is_opaque() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET").await.unwrap();
        drop(client);
        let (verdict, prefix) = detect(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!((verdict, &prefix[..]), (Detected::Opaque, &b"GET"[..]));
    }
}
