//! The connector hyper's client dials upstreams with: TCP (hyper-util's `HttpConnector`),
//! then, for an `https://` upstream, the TLS handshake with the upstream's one rustls
//! client (`tls::client::UpstreamTls`, shared with its HTTP/1 pools, so one session cache).
//!
//! Why our own and not hyper-rustls: it is a few lines over tokio-rustls, and hyper-rustls
//! would bring aws-lc-rs by default and a second way to build the client config.

use crate::tls::client::{UpstreamTls, ALPN_H2};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Why hyper's client could not connect over TLS. A type, so the error can be classified
/// (`upstream_tls`) by finding it in the chain rather than by its message.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// The TCP connect failed.
    #[error("cannot connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The TLS handshake failed; rustls' reason is the inner error.
    #[error("TLS handshake failed")]
    Handshake(#[source] io::Error),
    /// TCP and handshake together took longer than the upstream's `connect_timeout`.
    #[error("connect and TLS handshake timed out after {0:?}")]
    TimedOut(Duration),
}

/// hyper's connector for an `https://` upstream: TCP, then TLS, both within `timeout`.
#[derive(Clone)]
pub struct TlsConnector {
    tcp: HttpConnector,
    tls: UpstreamTls,
    timeout: Duration,
}

impl TlsConnector {
    /// Dials with `tcp` (which must accept `https` URIs), handshakes with `tls`.
    pub fn new(tcp: HttpConnector, tls: UpstreamTls, timeout: Duration) -> TlsConnector {
        TlsConnector { tcp, tls, timeout }
    }
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = TlsConnectError;
    // One allocation per new connection, not per request.
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, TlsConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp
            .poll_ready(cx)
            .map_err(|error| TlsConnectError::Connect(Box::new(error)))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let dial = async move {
                let tcp = connecting
                    .await
                    .map_err(|error| TlsConnectError::Connect(Box::new(error)))?;
                tls.handshake(tcp.into_inner())
                    .await
                    .map(|stream| TlsIo(TokioIo::new(stream)))
                    .map_err(TlsConnectError::Handshake)
            };
            match tokio::time::timeout(timeout, dial).await {
                Ok(result) => result,
                Err(_) => Err(TlsConnectError::TimedOut(timeout)),
            }
        })
    }
}

/// A TLS connection as hyper's client reads and writes it; it tells hyper whether the
/// upstream chose h2 by ALPN.
pub struct TlsIo(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        let (tcp, session) = self.0.inner().get_ref();
        let connected = tcp.connected();
        if session.alpn_protocol() == Some(ALPN_H2) {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl Read for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for TlsIo {
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
