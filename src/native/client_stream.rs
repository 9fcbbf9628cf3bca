//! The client connection the native engine serves: a TCP socket, or TLS over one.
//!
//! Why a trait and not an enum: the engine is generic over it, so a plaintext listener's
//! engine is compiled for `TcpStream` alone and makes exactly the socket calls it made
//! before TLS existed — no `match`, no box, no dynamic dispatch per call. A TLS listener's
//! engine is a second copy of the same code over [`TlsClient`], whose calls are
//! `crate::tls::io`'s (the same the upstream side uses): plaintext held in rustls counts as
//! readable, and rustls' pending output is pushed on before every read-side call, so a
//! response the socket did not take whole goes out while the engine waits for the next
//! request.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::tls::io as tls_io;
use bytes::BufMut;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// What the native engine does on a client connection besides `AsyncRead` / `AsyncWrite`:
/// tokio's readiness and non-waiting calls, as `TcpStream` offers them.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether the client may have sent something, registering `cx` when not.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Reads what is there into `buf` without waiting: `WouldBlock` when nothing is.
    fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize>;
    /// Writes what the connection takes now without waiting: `WouldBlock` when nothing.
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize>;
    /// [`Self::try_write`] for several slices in order.
    fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Waits until the connection may take more.
    fn writable(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

impl ClientStream for TcpStream {
    #[inline(always)]
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
    #[inline(always)]
    fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
    #[inline(always)]
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, bytes)
    }
    #[inline(always)]
    fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, slices)
    }
    #[inline(always)]
    fn writable(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::writable(self)
    }
}

/// A TLS client connection, handshake done, as the native engine reads and writes it.
pub struct TlsClient(pub TlsStream<TcpStream>);

impl ClientStream for TlsClient {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tls_io::poll_read_ready(&mut self.0, cx)
    }
    fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        tls_io::try_read_buf(&mut self.0, buf)
    }
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        tls_io::try_write_vectored(&mut self.0, &[IoSlice::new(bytes)])
    }
    fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        tls_io::try_write_vectored(&mut self.0, slices)
    }
    fn writable(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        poll_fn(|cx| tls_io::poll_write_ready(&mut self.0, cx))
    }
}

impl AsyncRead for TlsClient {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        tls_io::poll_read(&mut self.get_mut().0, cx, buf)
    }
}

impl AsyncWrite for TlsClient {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
