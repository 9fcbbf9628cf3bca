//! The byte stream of an upstream connection: a TCP socket, or TLS over one.
//!
//! Why an enum and not a trait object: the plaintext live path calls the socket's own
//! methods exactly as before (one `match` on two variants per call, no allocation, no
//! dynamic dispatch), and the TLS variant is boxed so an idle plaintext connection stays
//! small.
//!
//! The exchange code uses tokio's readiness API on the socket besides `AsyncRead` /
//! `AsyncWrite`: whether it may have something to read (`poll_read_ready`, `readable`), and
//! reads and writes that never wait (`try_read_buf`, `try_write_vectored`). Over TLS they
//! are `crate::tls::io`'s, which says what they mean there (plaintext held in rustls is
//! readable; rustls' pending output is pushed on before every read-side call).

use crate::tls::io as tls_io;
use bytes::BufMut;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
            UpstreamStream::Tls(tls) => tls_io::poll_read_ready(tls.as_mut(), cx),
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
            UpstreamStream::Tls(tls) => tls_io::poll_write_ready(tls.as_mut(), cx),
        }
    }

    /// Reads what is there into `buf` without waiting: `WouldBlock` when nothing is.
    pub fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.try_read_buf(buf),
            UpstreamStream::Tls(tls) => tls_io::try_read_buf(tls.as_mut(), buf),
        }
    }

    /// Writes what the stream takes now without waiting: `WouldBlock` when it takes nothing.
    pub fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.try_write_vectored(slices),
            UpstreamStream::Tls(tls) => tls_io::try_write_vectored(tls.as_mut(), slices),
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

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            UpstreamStream::Tls(tls) => tls_io::poll_read(tls.as_mut(), cx, buf),
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
