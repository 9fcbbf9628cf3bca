//! Idle keep-alive connections to one HTTP/1.1 upstream, as raw sockets for the native engine.
//!
//! The native engine speaks HTTP/1.1 to the upstream itself, so a pooled connection is just a
//! socket and its read buffer: no connection task, no channel between a request and the task
//! that owns the socket. A connection is checked out for one exchange and checked in by the
//! engine only when the response was read exactly to its end with keep-alive allowed.
//!
//! A connection the upstream closed while it sat idle is noticed for free: tokio clears a
//! socket's read readiness when a read comes back short, so an idle socket that shows
//! readable again has received something — a FIN, a reset or stray bytes — and is dropped
//! (one `read` confirms it). What slips through (a close racing the next request) is retried
//! by the exchange's one rule (`exchange::Retries`).
//!
//! Idle connections are also let go when nobody asks for them: a reaper task, started with
//! the pool's first idle connection, wakes every `pool_idle_timeout` and closes those idle
//! that long or closed by the upstream, so a quiet upstream is not held open (nor its
//! closed sockets kept in CLOSE_WAIT) until the next request. It ends with the pool.

use super::stream::UpstreamStream;
use crate::tls::client::UpstreamTls;
use bytes::BytesMut;
use http::uri::Authority;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Read buffer of an upstream connection: one read takes a 16 KiB response whole.
const READ_BUFFER: usize = 32 * 1024;

/// One connection to the upstream, with the bytes read from it and not yet consumed.
pub struct UpstreamConn {
    /// The socket, or TLS over it.
    pub stream: UpstreamStream,
    /// Bytes read from the upstream that belong to the current response.
    pub buf: BytesMut,
    /// Came from the pool (so it may have been closed by the upstream meanwhile).
    pub reused: bool,
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connect call failed (refused, unreachable).
    #[error("cannot connect to {address}")]
    Failed {
        /// `host:port`.
        address: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed: the upstream's certificate was not trusted or not for the
    /// verification name, it refused our client certificate, or it does not speak TLS.
    #[error("TLS handshake with {address} failed")]
    Handshake {
        /// `host:port`.
        address: String,
        /// tokio-rustls' error, whose inner error is rustls' reason.
        #[source]
        source: io::Error,
    },
    /// The connect (and TLS handshake) did not finish within the upstream's `connect_timeout`.
    #[error("connect to {address} timed out after {after:?}")]
    TimedOut {
        /// `host:port`.
        address: String,
        /// The timeout that ran out.
        after: Duration,
    },
}

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// The idle connections of one upstream (LIFO: the warmest first).
pub struct RawPool {
    address: String,
    tls: Option<UpstreamTls>,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Arc<Mutex<Vec<Idle>>>,
    /// Whether the reaper task has been started (with the first idle connection).
    reaping: AtomicBool,
}

impl RawPool {
    /// A pool for `address` (`host:port`), over TLS when `tls` is given.
    pub fn new(
        address: String,
        tls: Option<UpstreamTls>,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> RawPool {
        RawPool {
            address,
            tls,
            connect_timeout,
            max_idle,
            idle_timeout,
            idle: Arc::default(),
            reaping: AtomicBool::new(false),
        }
    }

    /// The most recently used idle connection that is still usable, if any.
    pub fn check_out(&self) -> Option<UpstreamConn> {
        loop {
            let mut entry = self.idle.lock().ok()?.pop()?;
            if entry.since.elapsed() < self.idle_timeout && entry.conn.stream.still_open() {
                let mut conn = entry.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Gives back a connection whose last response was read exactly to its end.
    pub fn check_in(&self, mut conn: UpstreamConn) {
        conn.buf.clear();
        if self.max_idle == 0 {
            return;
        }
        if !self.reaping.load(Ordering::Relaxed) {
            self.start_reaper();
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() >= self.max_idle {
                // The oldest is the least likely to be needed again soon.
                idle.remove(0);
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Starts the task that closes idle connections nobody asked for (see the module docs);
    /// once per pool, from within the runtime that serves its exchanges.
    fn start_reaper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        runtime.spawn(reap(Arc::downgrade(&self.idle), self.idle_timeout));
    }

    /// Dials a new connection, TLS handshake included (both bounded by `connect_timeout`).
    pub async fn connect(&self) -> Result<UpstreamConn, ConnectError> {
        // Boxed: dialing (TCP, then TLS) is a large future, and every exchange's future
        // would carry its size (a shadow request's task is moved into a box whole), while a
        // new connection is rare next to the requests it then carries.
        let dialing = Box::pin(self.dial());
        let stream = match tokio::time::timeout(self.connect_timeout, dialing).await {
            Ok(dialed) => dialed?,
            Err(_) => {
                return Err(ConnectError::TimedOut {
                    address: self.address.clone(),
                    after: self.connect_timeout,
                })
            }
        };
        Ok(UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
            reused: false,
        })
    }

    async fn dial(&self) -> Result<UpstreamStream, ConnectError> {
        let tcp = TcpStream::connect(self.address.as_str())
            .await
            .map_err(|source| ConnectError::Failed {
                address: self.address.clone(),
                source,
            })?;
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(error = %error, "set_nodelay failed on an upstream connection");
        }
        let Some(tls) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        match tls.handshake(tcp).await {
            Ok(stream) => Ok(UpstreamStream::Tls(Box::new(stream))),
            Err(source) => Err(ConnectError::Handshake {
                address: self.address.clone(),
                source,
            }),
        }
    }
}

/// The reaper of one pool's idle connections: every `idle_timeout`, closes those idle that
/// long or closed by the upstream; ends when the pool is dropped.
async fn reap(idle: Weak<Mutex<Vec<Idle>>>, idle_timeout: Duration) {
    loop {
        tokio::time::sleep(idle_timeout).await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        // Closed outside the lock: a check-in or check-out never waits on a socket's close.
        let mut expired = Vec::new();
        if let Ok(mut idle) = idle.lock() {
            let mut kept = Vec::with_capacity(idle.len());
            for mut entry in idle.drain(..) {
                if entry.since.elapsed() < idle_timeout && entry.conn.stream.still_open() {
                    kept.push(entry);
                } else {
                    expired.push(entry);
                }
            }
            *idle = kept;
        }
        drop(expired);
    }
}

/// `host:port` to dial, with the scheme's default port (443 with TLS, else 80) when the
/// URL gave none.
pub(crate) fn socket_address(authority: &Authority, tls: bool) -> String {
    match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None if tls => format!("{}:443", authority.host()),
        None => format!("{}:80", authority.host()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn pool_and_server(max_idle: usize) -> (RawPool, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let pool = RawPool::new(
            address,
            None,
            Duration::from_secs(1),
            max_idle,
            Duration::from_secs(60),
        );
        (pool, listener)
    }

    #[tokio::test]
    async fn keeps_at_most_max_idle_and_none_when_zero() {
        let (pool, listener) = pool_and_server(0).await;
        let conn = pool.connect().await.unwrap();
        let _server_side = listener.accept().await.unwrap();
        pool.check_in(conn);
        assert!(pool.check_out().is_none(), "max_idle = 0 keeps nothing");

        let (pool, listener) = pool_and_server(1).await;
        let first = pool.connect().await.unwrap();
        let _a = listener.accept().await.unwrap();
        let second = pool.connect().await.unwrap();
        let _b = listener.accept().await.unwrap();
        pool.check_in(first);
        pool.check_in(second);
        let reused = pool.check_out().unwrap();
        assert!(reused.reused);
        assert!(pool.check_out().is_none(), "only one kept");
    }

    /// Found by the soak (issue 25): with no request after it, an idle connection was
    /// held open past `pool_idle_timeout` for good.
    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout_without_another_request() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let idle_timeout = Duration::from_millis(100);
        let pool = RawPool::new(address, None, Duration::from_secs(1), 4, idle_timeout);
        let conn = pool.connect().await.unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        pool.check_in(conn);
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), server_side.read(&mut byte))
            .await
            .expect("the idle connection is closed by the pool");
        assert_eq!(closed.unwrap(), 0, "closed, not written to");
        assert!(pool.check_out().is_none());
    }

    #[tokio::test]
    async fn a_socket_the_upstream_closed_while_idle_is_not_handed_out() {
        let (pool, listener) = pool_and_server(4).await;
        let conn = pool.connect().await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        pool.check_in(conn);
        drop(server_side);
        // Give the FIN time to arrive and the reactor time to see it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.check_out().is_none());
    }
}
