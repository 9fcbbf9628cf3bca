//! Splices two byte streams both ways: what an upgraded connection (WebSocket, any protocol
//! after a `101`, an HTTP/2 extended CONNECT stream) becomes once the proxy has passed the
//! switch on.
//!
//! Why our own and not `tokio::io::copy_bidirectional`: an upgraded connection must also
//! end when nothing moves either way for the route's `upgrade_idle_timeout`, and its bytes
//! are counted while it lives, not once at the end, so a long-lived WebSocket shows up in
//! the metrics. Each direction holds one fixed buffer: a slow reader stops this side reading
//! from the fast writer (backpressure), so memory per connection is bounded. A side that
//! ends its sending (EOF) has the other side's writing shut down (half-close), while the
//! other direction carries on until it ends too.
//!
//! A message costs no clock read, timer update or shared counter update: movement sets a
//! flag, and a coarse tick (at most [`TICK`] apart) passes the bytes counted since the last
//! one to the metrics and ends the splice once the idle timeout has passed without movement.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use metrics::Counter;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes buffered per direction of a spliced connection.
pub const BUFFER_BYTES: usize = 16 * 1024;

/// The longest time between two ticks: how stale the byte counters of a spliced
/// connection may be, and how late past its idle timeout a quiet one may end.
pub const TICK: Duration = Duration::from_secs(5);

/// Bytes a direction counts locally before it passes them to its counter between ticks.
const COUNT_BATCH: u64 = 256 * 1024;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// Both sides ended their sending, and each end was passed on.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
}

/// Carries bytes from `client` to `upstream` and back until both directions end, one fails
/// (its error returned, both dropped) or nothing moves for `idle` (it ends between `idle`
/// and `idle` plus one tick after the last byte). The bytes each side receives are counted
/// into `to_upstream` and `to_client` at least every [`TICK`] while they pass.
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
    let (tick, quiet_ticks) = ticks(idle);
    let mut ticker = tokio::time::interval_at(Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut moved = false;
    let mut quiet = 0u32;
    poll_fn(|cx| {
        let up_done = up.poll_pump(cx, &mut client, &mut upstream, &mut moved)?;
        let down_done = down.poll_pump(cx, &mut upstream, &mut client, &mut moved)?;
        if up_done.is_ready() && down_done.is_ready() {
            return Poll::Ready(Ok(Spliced::Closed));
        }
        while ticker.poll_tick(cx).is_ready() {
            up.count();
            down.count();
            if std::mem::take(&mut moved) {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= quiet_ticks {
                    return Poll::Ready(Ok(Spliced::Idle));
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// The tick period for an idle timeout, and how many quiet ticks in a row make it idle:
/// at least `idle` in all, and a tick at most an eighth of it (so it ends at most an eighth
/// late) and at most [`TICK`].
fn ticks(idle: Duration) -> (Duration, u32) {
    let tick = (idle / 8).clamp(Duration::from_millis(1), TICK);
    let quiet = idle.as_nanos().div_ceil(tick.as_nanos()).max(1);
    (tick, u32::try_from(quiet).unwrap_or(u32::MAX))
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
    /// Bytes written and not yet added to `counter`.
    uncounted: u64,
    counter: &'c Counter,
}

impl Drop for Pipe<'_> {
    fn drop(&mut self) {
        self.count();
    }
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
            uncounted: 0,
            counter,
        }
    }

    /// Passes the bytes written since the last call to the counter.
    fn count(&mut self) {
        if self.uncounted > 0 {
            self.counter.increment(std::mem::take(&mut self.uncounted));
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
                        self.uncounted += written as u64;
                        if self.uncounted >= COUNT_BATCH {
                            self.count();
                        }
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
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A counter whose value a test can read.
    #[derive(Default)]
    struct Tally(AtomicU64);

    impl metrics::CounterFn for Tally {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::SeqCst);
        }
    }

    fn counters() -> (Counter, Counter) {
        let (up, down) = tallies();
        (Counter::from_arc(up), Counter::from_arc(down))
    }

    fn tallies() -> (Arc<Tally>, Arc<Tally>) {
        (Arc::default(), Arc::default())
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

    #[tokio::test]
    async fn bytes_are_counted_while_the_connection_lives_and_at_its_end() {
        let (mut client, client_side) = tokio::io::duplex(64);
        let (upstream_side, mut upstream) = tokio::io::duplex(64);
        let (up, down) = tallies();
        let (up_counter, down_counter) = (
            Counter::from_arc(up.clone()),
            Counter::from_arc(down.clone()),
        );
        // A tick every 50 ms.
        let idle = Duration::from_millis(400);
        let splicing = tokio::spawn(async move {
            splice(client_side, upstream_side, idle, &up_counter, &down_counter).await
        });
        client.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        upstream.read_exact(&mut got).await.unwrap();
        upstream.write_all(b"hi").await.unwrap();
        client.read_exact(&mut got[..2]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while up.0.load(Ordering::SeqCst) < 5 || down.0.load(Ordering::SeqCst) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "counted within a tick"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Bytes since the last tick are counted when it ends.
        client.write_all(b"bye").await.unwrap();
        client.shutdown().await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
        assert_eq!(splicing.await.unwrap().unwrap(), Spliced::Closed);
        assert_eq!(up.0.load(Ordering::SeqCst), 8);
        assert_eq!(down.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_ends_idle_between_its_timeout_and_one_tick_after_its_last_byte() {
        let (mut client, client_side) = tokio::io::duplex(64);
        let (upstream_side, mut upstream) = tokio::io::duplex(64);
        let (up, down) = counters();
        let idle = Duration::from_secs(80);
        let splicing =
            tokio::spawn(async move { splice(client_side, upstream_side, idle, &up, &down).await });
        // Bytes every 30 s keep it open well past the timeout.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            client.write_all(b"x").await.unwrap();
            let mut got = [0u8; 1];
            upstream.read_exact(&mut got).await.unwrap();
        }
        let last = tokio::time::Instant::now();
        assert!(!splicing.is_finished());
        assert_eq!(splicing.await.unwrap().unwrap(), Spliced::Idle);
        let quiet = last.elapsed();
        let (tick, _) = ticks(idle);
        assert!(
            quiet >= idle && quiet <= idle + tick,
            "ended after {quiet:?}"
        );
    }

    #[test]
    fn ticks_cover_the_idle_timeout_and_end_at_most_one_tick_late() {
        for millis in [1u64, 7, 8, 100, 999, 40_000, 3_600_000, 86_400_000] {
            let idle = Duration::from_millis(millis);
            let (tick, quiet) = ticks(idle);
            assert!(tick * quiet >= idle, "{idle:?}: {quiet} x {tick:?}");
            assert!(
                tick * (quiet - 1) < idle,
                "{idle:?}: no tick more than needed"
            );
            assert!(tick <= TICK && tick >= Duration::from_millis(1));
            assert!(tick <= (idle / 8).max(Duration::from_millis(1)));
        }
    }
}
