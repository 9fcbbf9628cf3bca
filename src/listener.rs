//! Accepting client connections: HTTP/1.1 and h2c on one port, with the limits that keep a
//! proxy standing under hostile clients (connection cap, header size/count, header-read
//! timeout), and graceful draining on shutdown.

use crate::config::ListenerConfig;
use crate::proxy::{ConnectionInfo, Proxy};
use crate::telemetry::logging::ErrorChain;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
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
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    if !config.http2 {
        builder = builder.http1_only();
    }
    builder
}

/// Accepts connections until `shutdown` flips to true, then lets open connections finish
/// their in-flight requests for up to `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    config: ListenerConfig,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let builder = Arc::new(connection_builder(&config));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let local = listener.local_addr().ok();
    // Flipped when the grace period is over: connections still open are then dropped.
    let (force_close, force_closed) = watch::channel(false);
    loop {
        // Wait for a free slot first: past the cap, new connections queue in the kernel
        // backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = crate::shutdown::flagged(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = crate::shutdown::flagged(&mut shutdown) => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "set_nodelay failed");
        }
        let info = ConnectionInfo {
            peer,
            proto: "http",
            trust_forwarded_headers: config.trust_forwarded_headers,
        };
        let handler = proxy.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(request, info).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = proxy.metrics().clone();
        metrics.connection_opened();
        let span = tracing::debug_span!("connection", %peer);
        let mut force_closed = force_closed.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    result = connection => if let Err(error) = result {
                        // Client-side resets and timeouts land here; they are routine for a proxy.
                        tracing::debug!(error = %error, "connection ended with an error");
                    },
                    _ = crate::shutdown::flagged(&mut force_closed) => {
                        tracing::debug!("connection closed at the end of the grace period");
                    }
                }
                metrics.connection_closed();
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracing::info!(listener = ?local, "stopped accepting; draining connections");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = ?local, grace = ?grace, "grace period over; closing remaining connections");
        let _ = force_close.send(true);
    }
}
