//! Accepting client connections: HTTP/1.1 and h2c on one port (or, on a TLS listener,
//! HTTP/1.1 and h2 by ALPN after the handshake in [`tls`], whose certificates [`reload`]
//! rotates), with the limits that keep a proxy standing under hostile clients (connection
//! cap, header size/count, header-read timeout), and graceful draining on shutdown.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod reload;
pub mod set;
pub mod tls;

use crate::config::{Http1Engine, ListenerConfig};
use crate::connection::ConnectionInfo;
use crate::generation::Current;
use crate::headers::{ClientSubject, FramingError, HeadScanner};
use crate::native::client_stream::{ClientStream, TlsClient};
use crate::native::Ended;
use crate::pause::PauseTimer;
use crate::telemetry::logging::ErrorChain;
use bytes::{Buf, Bytes};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tls::{Established, TlsListener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Pause after an accept error (e.g. out of file descriptors) before trying again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Builds the connection protocol settings from a listener's config.
fn connection_builder(config: &ListenerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes)
        .max_headers(config.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        // RFC 8441: WebSocket over HTTP/2 by extended CONNECT (`:protocol`).
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    if !config.http2 {
        builder = builder.http1_only();
    }
    builder
}

/// Accepts connections until `shutdown` flips to true, then lets open connections finish
/// their in-flight requests for up to `grace`, and returns.
///
/// `retire` flips when a reload removes the listener (or replaces its settings, when a new
/// task takes over the same socket): it stops accepting, and its open connections carry on
/// until they close (or until shutdown's grace period).
pub async fn serve(
    listener: Arc<TcpListener>,
    config: ListenerConfig,
    current: Arc<Current>,
    tls: Option<Arc<TlsListener>>,
    mut shutdown: watch::Receiver<bool>,
    mut retire: watch::Receiver<bool>,
    grace: Duration,
) {
    let builder = Arc::new(connection_builder(&config));
    // Connection counts and panics are instance-wide: any generation's handles count them.
    let metrics = current.load().metrics().clone();
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let local = listener.local_addr().ok();
    let via = config.via.pseudonym().and_then(crate::headers::Via::new);
    let proto = if tls.is_some() { "https" } else { "http" };
    // The open connections' tasks: finished ones are reaped as they end; those still open
    // when the grace period is over are aborted. (Not a flag each connection selects on:
    // that would be polled at every wake-up of every connection, several per request.)
    let mut connections = JoinSet::new();
    loop {
        // Wait for a free slot first: past the cap, new connections queue in the kernel
        // backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                reaped(joined, &metrics, local);
                continue;
            }
            _ = crate::shutdown::flagged(&mut shutdown) => break,
            _ = crate::shutdown::flagged(&mut retire) => break,
        };
        let (stream, peer) = tokio::select! {
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                reaped(joined, &metrics, local);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = crate::shutdown::flagged(&mut shutdown) => break,
            _ = crate::shutdown::flagged(&mut retire) => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "set_nodelay failed");
        }
        let info = Arc::new(ConnectionInfo {
            listener: local,
            peer,
            client_address: crate::headers::client_address_value(peer.ip()),
            proto,
            trust_forwarded_headers: config.trust_forwarded_headers,
            client_body_timeout: config.client_body_timeout,
            via: via.clone(),
            client_subject: None,
        });
        let span = tracing::debug_span!("connection", %peer);
        let connection = Connection {
            open: OpenConnection::new(metrics.clone(), permit),
            current: current.clone(),
            info: info.clone(),
            config: config.clone(),
            builder: builder.clone(),
            shutdown: shutdown.clone(),
        };
        // Supervised: a panic in the connection's task is logged with the listener and the
        // peer, and counted; only that connection ends. One check per connection decides
        // between plaintext and TLS; the plaintext task is the same as without TLS support.
        match &tls {
            None => connections.spawn(
                crate::supervise::connection(connection.serve(stream), metrics.clone(), info)
                    .instrument(span),
            ),
            Some(tls) => {
                let tls = tls.clone();
                connections.spawn(
                    crate::supervise::connection(
                        async move {
                            if let Some(established) = tls.accept(stream).await {
                                connection.serve_tls(established, &tls).await;
                            }
                        },
                        metrics.clone(),
                        info,
                    )
                    .instrument(span),
                )
            }
        };
    }
    drop(listener);
    tracing::info!(
        listener = local.map(tracing::field::display),
        "stopped accepting; draining connections"
    );
    if !*shutdown.borrow() {
        // Retired by a reload: the connections end on their own, unless shutdown comes first.
        tokio::select! {
            () = reap_all(&mut connections, &metrics, local) => return,
            _ = crate::shutdown::flagged(&mut shutdown) => {}
        }
    }
    let drained = reap_all(&mut connections, &metrics, local);
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            listener = local.map(tracing::field::display),
            grace = ?grace,
            remaining = connections.len(),
            "grace period over; closing remaining connections"
        );
        // Aborted tasks drop their connection (and its `OpenConnection`) where they are.
        connections.shutdown().await;
    }
}

/// Waits for every connection task to end, looking at how each ended.
async fn reap_all(
    connections: &mut JoinSet<()>,
    metrics: &crate::telemetry::Metrics,
    local: Option<std::net::SocketAddr>,
) {
    while let Some(joined) = connections.join_next().await {
        reaped(joined, metrics, local);
    }
}

/// Looks at how a connection's task ended: a panic that escaped its supervisor (one in a
/// destructor run while it unwound, say) is still logged and counted, without the peer.
fn reaped(
    joined: Result<(), tokio::task::JoinError>,
    metrics: &crate::telemetry::Metrics,
    local: Option<std::net::SocketAddr>,
) {
    if let Err(error) = joined {
        if error.is_panic() {
            let payload = error.into_panic();
            let task = crate::telemetry::metrics::Task::Connection;
            let context = crate::supervise::Listener(local);
            crate::supervise::report(metrics, task, &context, &*payload);
        }
    }
}

/// A connection counted as open, holding its slot under the connection cap, until its socket
/// is dropped however it ends: served to the end, aborted when the grace period is over, or,
/// once it switched protocols, when its splice ends (the socket goes with hyper's upgrade).
struct OpenConnection {
    metrics: Arc<crate::telemetry::Metrics>,
    _slot: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(metrics: Arc<crate::telemetry::Metrics>, slot: OwnedSemaphorePermit) -> Self {
        metrics.connection_opened();
        OpenConnection {
            metrics,
            _slot: slot,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// One accepted client connection and what serving it needs.
struct Connection {
    /// Its count and slot, kept with its socket from the hyper path on.
    open: OpenConnection,
    /// The current config generation: each request is served by the one current when it
    /// starts.
    current: Arc<Current>,
    info: Arc<ConnectionInfo>,
    config: Arc<ListenerConfig>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection: with the native engine while its requests allow, then (or
    /// from the start, with `http1_engine = "hyper"`) with hyper. Generic over the client
    /// stream, so a plaintext connection's engine is compiled for `TcpStream` alone.
    async fn serve<S: ClientStream>(self, stream: S) {
        let (stream, read) = match self.config.http1_engine {
            Http1Engine::Native => {
                let mut stream = stream;
                let mut read = bytes::BytesMut::new();
                loop {
                    // A run of requests on one generation, until a reload makes another current.
                    let generation = self.current.load();
                    let watch = crate::native::Reload {
                        current: &self.current,
                        number: generation.number(),
                    };
                    match crate::native::serve(
                        stream,
                        read,
                        generation.context(),
                        &self.info,
                        &self.config,
                        &self.shutdown,
                        watch,
                    )
                    .await
                    {
                        Ended::Closed => return,
                        Ended::Fallback(rest, unread) => break (rest, unread.freeze()),
                        Ended::Reloaded(rest, unread) => (stream, read) = (rest, unread),
                    }
                }
            }
            Http1Engine::Hyper => (stream, Bytes::new()),
        };
        // Boxed: hyper's connection state is large, and the task of every connection would
        // carry it, touched or not, while the native engine serves it (see docs/PERFORMANCE.md,
        // "Memory" and "What bought what", 4164bc1).
        Box::pin(self.serve_hyper(stream, read)).await;
    }

    /// Serves a TLS connection after its handshake: h2 (chosen by ALPN; the client then
    /// starts with the HTTP/2 preface) with hyper, HTTP/1.1 (by ALPN, or with none) as a
    /// plaintext connection is served, the native engine first when it is the listener's.
    async fn serve_tls(mut self, established: Established, tls: &TlsListener) {
        if let Some(header) = tls.client_subject_header() {
            let mut info = (*self.info).clone();
            info.client_subject = Some(Box::new(ClientSubject {
                header: header.clone(),
                value: established.client_subject,
            }));
            self.info = Arc::new(info);
        }
        let h2 = established.stream.get_ref().1.alpn_protocol() == Some(b"h2");
        if h2 {
            Box::pin(self.serve_hyper(established.stream, Bytes::new())).await;
        } else {
            self.serve(TlsClient(established.stream)).await;
        }
    }

    /// Serves the rest of the connection with hyper; `read` are bytes already read from it.
    async fn serve_hyper<S>(self, stream: S, read: Bytes)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            open,
            current,
            info,
            config,
            builder,
            mut shutdown,
        } = self;
        let state = Arc::new(ConnectionState::default());
        let seen = state.clone();
        let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            let generation = current.load();
            let info = info.clone();
            seen.first_request.store(true, Ordering::Release);
            if let Some(hidden) = seen.ambiguous_framing.get() {
                request.extensions_mut().insert(*hidden);
            }
            // Only an HTTP/1 request asking for an upgrade can switch the connection.
            let may_switch = (request.version() <= http::Version::HTTP_11
                && request.headers().contains_key(http::header::UPGRADE))
            .then(|| seen.clone());
            async move {
                let response = generation.proxy().handle(request, &info).await;
                if let Some(state) = may_switch {
                    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                        // What follows is the new protocol's bytes, not HTTP/1 heads.
                        state.switched.store(true, Ordering::Release);
                    }
                }
                Ok::<_, Infallible>(response)
            }
        });
        let io = Watched {
            stream: Rewind { read, stream },
            scanner: HeadScanner::default(),
            state: state.clone(),
            send_stall: SendStall::new(config.client_send_timeout),
            _open: open,
        };
        // With upgrades: a `101` (or an extended CONNECT's `200`) hands the connection to the
        // proxy's splice (`proxy::upgrade`).
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let first_request_deadline = {
            let timeout = config.header_read_timeout;
            async move {
                tokio::time::sleep(timeout).await;
                if state.first_request.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::pin!(connection);
        tokio::pin!(first_request_deadline);
        let mut draining = *shutdown.borrow();
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        // Client-side resets and timeouts land here; they are routine for a proxy.
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                    return;
                }
                _ = crate::shutdown::flagged(&mut shutdown), if !draining => {
                    // Finish the in-flight request, then close.
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = first_request_deadline.as_mut() => {
                    tracing::debug!("no request within the header read timeout; closing");
                    return;
                }
            }
        }
    }
}

/// What a connection's reads have shown, shared between its IO and its request service.
#[derive(Default)]
struct ConnectionState {
    /// A request has been dispatched. Until then hyper's own header-read timeout may not be
    /// running: with HTTP/2 enabled, hyper-util first reads until it can tell the h2c preface
    /// from HTTP/1 and waits without a deadline, so a client that connects and sends nothing
    /// (or part of the preface) would hold a connection slot for ever.
    first_request: AtomicBool,
    /// A request head with framing fields hyper resolves away was read (both Content-Length
    /// and Transfer-Encoding, or Content-Length twice); see [`HeadScanner`]. Every request
    /// on the connection from then on is refused, and the 400 closes the connection.
    ambiguous_framing: std::sync::OnceLock<FramingError>,
    /// The connection switched protocols (a `101` was answered): its bytes are no longer
    /// HTTP/1 and are not scanned.
    switched: AtomicBool,
}

/// The client socket, with every byte read passed through a [`HeadScanner`].
struct Watched<S> {
    stream: Rewind<S>,
    /// Fed until the connection switches protocols (`ConnectionState::switched`).
    scanner: HeadScanner,
    state: Arc<ConnectionState>,
    send_stall: SendStall,
    /// Dropped with the socket: after a switch of protocols the splice holds it, so an
    /// upgraded connection keeps its slot under `max_connections` and is counted open.
    _open: OpenConnection,
}

/// The listener's `client_send_timeout` on hyper's writes: a write that stays pending (the
/// client takes no byte) for that long fails with `TimedOut`, and hyper closes the
/// connection. A write that goes through costs one branch.
struct SendStall(PauseTimer);

impl SendStall {
    fn new(timeout: Duration) -> SendStall {
        SendStall(PauseTimer::new(timeout))
    }

    /// Passes a write's outcome on, timing how long it has been pending.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.0.progressed();
            return polled;
        }
        if !self.0.expired(cx) {
            return Poll::Pending;
        }
        tracing::info!(after = ?self.0.limit(), "client stopped reading its response; closing");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took nothing of its response for client_send_timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if !this.state.switched.load(Ordering::Acquire) {
                if let Some(found) = this
                    .scanner
                    .feed(buf.filled().get(before..).unwrap_or_default())
                {
                    let _ = this.state.ambiguous_framing.set(found);
                }
            }
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream.stream).poll_write(cx, buf);
        this.send_stall.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream.stream).poll_write_vectored(cx, bufs);
        this.send_stall.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream.stream).poll_flush(cx);
        this.send_stall.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream.stream).poll_shutdown(cx)
    }
}

/// A client socket with bytes already read from it (by the native engine) to be read first.
struct Rewind<S> {
    read: Bytes,
    stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let piece = crate::h1::chunked::prefix(&this.read, buf.remaining() as u64);
            buf.put_slice(piece);
            let taken = piece.len();
            this.read.advance(taken);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}
