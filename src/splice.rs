//! Splices two byte streams both ways: what an upgraded connection (WebSocket, any protocol
//! after a `101`, an HTTP/2 extended CONNECT stream) becomes once the proxy has passed the
//! switch on.
//!
//! Why our own and not `tokio::io::copy_bidirectional`: an upgraded connection must also
//! end when nothing moves either way for the route's `upgrade_idle_timeout`, and its bytes
//! are counted as they pass, not once at the end, so a long-lived WebSocket shows up in the
//! metrics while it lives. Each direction holds one fixed buffer: a slow reader stops this
//! side reading from the fast writer (backpressure), so memory per connection is bounded.
//! A side that ends its sending (EOF) has the other side's writing shut down (half-close),
//! while the other direction carries on until it ends too.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use metrics::Counter;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes buffered per direction of a spliced connection.
pub const BUFFER_BYTES: usize = 16 * 1024;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// Both sides ended their sending, and each end was passed on.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
}

/// Carries bytes from `client` to `upstream` and back until both directions end, one fails
/// (its error returned, both dropped) or nothing moves for `idle`. The bytes each side
/// receives are counted into `to_upstream` and `to_client` as they are written.
pub async fn splice<C, U>(
    mut client: C,
    mut upstream: U,
    idle: Duration,
    to_upstream: &Counter,
    to_client: &Counter,
) -> io::Result<Spliced>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Pipe::new(to_upstream);
    let mut down = Pipe::new(to_client);
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    poll_fn(|cx| {
        let mut moved = false;
        let up_done = up.poll_pump(cx, &mut client, &mut upstream, &mut moved)?;
        let down_done = down.poll_pump(cx, &mut upstream, &mut client, &mut moved)?;
        if up_done.is_ready() && down_done.is_ready() {
            return Poll::Ready(Ok(Spliced::Closed));
        }
        if moved {
            timer.as_mut().reset(Instant::now() + idle);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(Spliced::Idle)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// One direction: bytes read from one side, held in a fixed buffer until the other side
/// took them.
struct Pipe<'c> {
    buf: Box<[u8]>,
    /// The unwritten bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Written since the last flush (a TLS stream holds a record until flushed).
    unflushed: bool,
    /// The reading side ended its sending.
    eof: bool,
    /// The end was passed on: the writing side was shut down.
    done: bool,
    counter: &'c Counter,
}

impl<'c> Pipe<'c> {
    fn new(counter: &'c Counter) -> Pipe<'c> {
        Pipe {
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            unflushed: false,
            eof: false,
            done: false,
            counter,
        }
    }

    /// Moves what it can from `from` to `to`; ready once the end was passed on. `moved` is
    /// set when any byte was read or written.
    fn poll_pump<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        moved: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.start < self.end {
                let pending = self.buf.get(self.start..self.end).unwrap_or_default();
                match Pin::new(&mut *to).poll_write(cx, pending) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(written)) => {
                        self.start += written;
                        self.unflushed = true;
                        *moved = true;
                        self.counter.increment(written as u64);
                        if self.start >= self.end {
                            self.start = 0;
                            self.end = 0;
                        }
                        continue;
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.unflushed {
                match Pin::new(&mut *to).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.eof {
                return match Pin::new(&mut *to).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        self.done = true;
                        Poll::Ready(Ok(()))
                    }
                    // The other side may already be gone: the end is passed on either way.
                    Poll::Ready(Err(_)) => {
                        self.done = true;
                        Poll::Ready(Ok(()))
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            let mut read = ReadBuf::new(&mut self.buf);
            match Pin::new(&mut *from).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled().len();
                    if filled == 0 {
                        self.eof = true;
                    } else {
                        self.end = filled;
                        *moved = true;
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn counters() -> (Counter, Counter) {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let up = metrics::Recorder::register_counter(
            &recorder,
            &metrics::Key::from_name("up"),
            &metrics::Metadata::new("t", metrics::Level::INFO, None),
        );
        let down = metrics::Recorder::register_counter(
            &recorder,
            &metrics::Key::from_name("down"),
            &metrics::Metadata::new("t", metrics::Level::INFO, None),
        );
        (up, down)
    }

    #[tokio::test]
    async fn both_ways_with_half_close() {
        let (mut client, client_side) = tokio::io::duplex(64);
        let (upstream_side, mut upstream) = tokio::io::duplex(64);
        let (up, down) = counters();
        let splicing = tokio::spawn(async move {
            splice(
                client_side,
                upstream_side,
                Duration::from_secs(5),
                &up,
                &down,
            )
            .await
        });
        // More than both the duplex and the splice buffer: backpressure, not loss.
        let big = vec![7u8; 3 * BUFFER_BYTES + 5];
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, big, "the client's bytes, then its end");
        let mut client = writer.await.unwrap();
        // The other direction still works after the client's half-close.
        upstream.write_all(b"still here").await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"still here");
        assert_eq!(splicing.await.unwrap().unwrap(), Spliced::Closed);
    }

    #[tokio::test]
    async fn idle_connections_end() {
        let (_client, client_side) = tokio::io::duplex(64);
        let (upstream_side, _upstream) = tokio::io::duplex(64);
        let (up, down) = counters();
        let idle = Duration::from_millis(100);
        let ended = splice(client_side, upstream_side, idle, &up, &down).await;
        assert_eq!(ended.unwrap(), Spliced::Idle);
    }
}
