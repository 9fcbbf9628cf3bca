//! The byte stream of an upstream connection: a TCP socket, or TLS over one.
//!
//! Why an enum and not a trait object: the plaintext live path calls the socket's own
//! methods exactly as before (one `match` on two variants per call, no allocation, no
//! dynamic dispatch), and the TLS variant is boxed so an idle plaintext connection stays
//! small.
//!
//! The exchange code uses tokio's readiness API on the socket besides `AsyncRead` /
//! `AsyncWrite`: whether it may have something to read (`poll_read_ready`, `readable`), and
//! reads and writes that never wait (`try_read_buf`, `try_write_vectored`). Over TLS those
//! mean the same to the caller but not to the socket:
//! - rustls may hold decrypted bytes while the socket has nothing, so the stream is "ready
//!   to read" when rustls has plaintext (or the peer's close) as well as when the socket is;
//!   the socket may also be readable with no plaintext behind it (a session ticket, part of
//!   a record), which callers already treat as "may have something": their read finds
//!   nothing and they wait again.
//! - a write hands bytes to rustls, which encrypts them and sends what the socket takes;
//!   what it could not send waits in rustls. The bytes were taken (the caller must not send
//!   them again), so every read-side call first pushes rustls' pending output on: a caller
//!   that wrote a request and waits for its answer therefore also drives the rest of the
//!   request out.
//! - the non-waiting calls are tokio-rustls' `poll_fill_buf` / `poll_write_vectored` with a
//!   no-op waker: "would block" is their `Pending`.

use bytes::BufMut;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connection to an upstream: plaintext or TLS.
pub enum UpstreamStream {
    /// Plain TCP (`http://`).
    Plain(TcpStream),
    /// TLS over TCP (`https://`), handshake done.
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamStream {
    /// Whether the stream may have something to read, registering `cx` when not. Over TLS
    /// rustls' pending output is pushed on first (see the module's notes).
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.poll_read_ready(cx),
            UpstreamStream::Tls(tls) => {
                if let Poll::Ready(Err(error)) = push_pending(tls, cx) {
                    return Poll::Ready(Err(error));
                }
                let (tcp, session) = tls.get_ref();
                if !session.wants_read() {
                    // Plaintext (or the peer's close) waits in rustls.
                    return Poll::Ready(Ok(()));
                }
                tcp.poll_read_ready(cx)
            }
        }
    }

    /// Waits until [`Self::poll_read_ready`] is ready (`TcpStream::readable` in plaintext).
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.readable().await,
            UpstreamStream::Tls(_) => poll_fn(|cx| self.poll_read_ready(cx)).await,
        }
    }

    /// Whether the stream may have something to read, without registering for a wake-up
    /// (tokio's cached readiness in plaintext; no system call).
    pub fn read_ready(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_read_ready(&mut cx).is_ready()
    }

    /// Whether the stream may take more bytes, registering `cx` when not.
    pub fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.poll_write_ready(cx),
            UpstreamStream::Tls(tls) => match push_pending(tls, cx) {
                // rustls sent what it held: the socket takes more.
                Poll::Ready(Ok(())) => tls.get_ref().0.poll_write_ready(cx),
                other => other,
            },
        }
    }

    /// Reads what is there into `buf` without waiting: `WouldBlock` when nothing is.
    pub fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.try_read_buf(buf),
            UpstreamStream::Tls(tls) => {
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(Err(error)) = push_pending(tls, &mut cx) {
                    return Err(error);
                }
                match Pin::new(tls.as_mut()).poll_fill_buf(&mut cx) {
                    Poll::Ready(Ok(plaintext)) => {
                        let taken = plaintext.len().min(buf.chunk_mut().len());
                        buf.put_slice(plaintext.get(..taken).unwrap_or_default());
                        Pin::new(tls.as_mut()).consume(taken);
                        Ok(taken)
                    }
                    Poll::Ready(Err(error)) => Err(error),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes what the stream takes now without waiting: `WouldBlock` when it takes nothing.
    pub fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.try_write_vectored(slices),
            UpstreamStream::Tls(tls) => {
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(tls.as_mut()).poll_write_vectored(&mut cx, slices) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Whether an idle pooled connection is still usable: nothing arrived since its last
    /// read (a FIN, a reset, stray bytes), or what arrived was TLS' own (a session ticket).
    pub fn still_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            UpstreamStream::Plain(tcp) => {
                let mut cx = Context::from_waker(Waker::noop());
                match tcp.poll_read_ready(&mut cx) {
                    Poll::Pending => true,
                    Poll::Ready(Err(_)) => false,
                    Poll::Ready(Ok(())) => {
                        matches!(tcp.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
                    }
                }
            }
            UpstreamStream::Tls(_) => {
                if !self.read_ready() {
                    return true;
                }
                let mut probe = &mut probe[..];
                matches!(self.try_read_buf(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The protocol the upstream chose by ALPN (`None` in plaintext, or when it chose none).
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            UpstreamStream::Plain(_) => None,
            UpstreamStream::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }
}

/// Sends what rustls holds encrypted and unsent; `Pending` when the socket takes no more
/// (with `cx` registered for its write readiness).
fn push_pending(tls: &mut TlsStream<TcpStream>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if !tls.get_ref().1.wants_write() {
        return Poll::Ready(Ok(()));
    }
    Pin::new(tls).poll_flush(cx)
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            UpstreamStream::Tls(tls) => {
                if let Poll::Ready(Err(error)) = push_pending(tls, cx) {
                    return Poll::Ready(Err(error));
                }
                Pin::new(tls.as_mut()).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, slices),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, slices),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(tcp) => tcp.is_write_vectored(),
            UpstreamStream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "stream_tests.rs"]
mod tests;
