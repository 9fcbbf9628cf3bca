//! tokio's socket calls — readiness, and reads and writes that never wait — over a rustls
//! stream, for both ends: an upstream connection (`h1::stream::UpstreamStream`) and a
//! client connection the native engine serves (`native::client_stream`).
//!
//! The HTTP/1 code asks a socket whether it may have something to read (`poll_read_ready`),
//! and reads and writes without waiting (`try_read_buf`, `try_write_vectored`). Over TLS
//! those mean the same to the caller but not to the socket:
//! - rustls may hold decrypted bytes while the socket has nothing, so the stream is "ready
//!   to read" when rustls has plaintext (or the peer's close) as well as when the socket is;
//!   the socket may also be readable with no plaintext behind it (a session ticket, part of
//!   a record), which callers already treat as "may have something": their read finds
//!   nothing and they wait again.
//! - a write hands bytes to rustls, which encrypts them and sends what the socket takes;
//!   what it could not send waits in rustls. The bytes were taken (the caller must not send
//!   them again), so every read-side call first pushes rustls' pending output on: a caller
//!   that wrote a message and waits for the peer's next one therefore also drives the rest
//!   of its own out.
//! - the non-waiting calls are tokio-rustls' `poll_fill_buf` / `poll_write_vectored` with a
//!   no-op waker: "would block" is their `Pending`.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use bytes::BufMut;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A rustls stream over a TCP socket, either end: what the calls below need of it.
pub trait TlsIo: AsyncBufRead + AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket under the TLS layer.
    fn tcp(&self) -> &TcpStream;
    /// rustls wants more TLS bytes before it can give plaintext (it holds none).
    fn wants_read(&self) -> bool;
    /// rustls holds encrypted bytes the socket has not taken yet.
    fn wants_write(&self) -> bool;
}

impl TlsIo for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn wants_read(&self) -> bool {
        self.get_ref().1.wants_read()
    }
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

impl TlsIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn wants_read(&self) -> bool {
        self.get_ref().1.wants_read()
    }
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// Sends what rustls holds encrypted and unsent; `Pending` when the socket takes no more
/// (with `cx` registered for its write readiness).
pub fn push_pending<T: TlsIo>(tls: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if !tls.wants_write() {
        return Poll::Ready(Ok(()));
    }
    Pin::new(tls).poll_flush(cx)
}

/// Whether the stream may have something to read, registering `cx` when not; rustls'
/// pending output is pushed on first.
pub fn poll_read_ready<T: TlsIo>(tls: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if let Poll::Ready(Err(error)) = push_pending(tls, cx) {
        return Poll::Ready(Err(error));
    }
    if !tls.wants_read() {
        // Plaintext (or the peer's close) waits in rustls.
        return Poll::Ready(Ok(()));
    }
    tls.tcp().poll_read_ready(cx)
}

/// Whether the stream may take more bytes, registering `cx` when not: rustls has sent what
/// it held, and the socket takes more.
pub fn poll_write_ready<T: TlsIo>(tls: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match push_pending(tls, cx) {
        Poll::Ready(Ok(())) => tls.tcp().poll_write_ready(cx),
        other => other,
    }
}

/// Reads the plaintext that is there into `buf` without waiting: `WouldBlock` when none is.
pub fn try_read_buf<T: TlsIo, B: BufMut>(tls: &mut T, buf: &mut B) -> io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(Err(error)) = push_pending(tls, &mut cx) {
        return Err(error);
    }
    match Pin::new(&mut *tls).poll_fill_buf(&mut cx) {
        Poll::Ready(Ok(plaintext)) => {
            let taken = plaintext.len().min(buf.chunk_mut().len());
            buf.put_slice(plaintext.get(..taken).unwrap_or_default());
            Pin::new(tls).consume(taken);
            Ok(taken)
        }
        Poll::Ready(Err(error)) => Err(error),
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Hands rustls what it takes now without waiting: `WouldBlock` when it takes nothing.
pub fn try_write_vectored<T: TlsIo>(tls: &mut T, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(tls).poll_write_vectored(&mut cx, slices) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// `AsyncRead::poll_read` with rustls' pending output pushed on first.
pub fn poll_read<T: TlsIo>(
    tls: &mut T,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    if let Poll::Ready(Err(error)) = push_pending(tls, cx) {
        return Poll::Ready(Err(error));
    }
    Pin::new(tls).poll_read(cx, buf)
}
