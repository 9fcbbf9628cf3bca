//! A request on its way up: writes to the upstream that listen to it at the same time.
//!
//! Why: an upstream may answer before it has read the whole request body — a size limit
//! (413), a refused credential (401) — and then stop reading, or close. A proxy that only
//! writes waits on a socket that takes no more bytes (until a timeout, then 504) or fails on
//! the reset (502), and the upstream's real answer is lost. Both engines upload through
//! [`write_listening`]: before each write it reads what the upstream already sent (once the
//! upstream resets, unread answer bytes are gone), and while the socket takes no more it
//! waits on writability *or* readability. The caller decides, with its `hear` function,
//! when what was read is an answer.

use super::exchange::Sent;
use super::pool::UpstreamConn;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// Read size while listening to the upstream.
const READ_SIZE: usize = 16 * 1024;

/// How a listening write ended well.
pub(crate) enum Wrote<T> {
    /// Every byte was written.
    All,
    /// The upstream answered first; what `hear` found.
    Answered(T),
}

/// Why a listening write failed.
pub(crate) enum WriteFailure<E> {
    /// `hear` failed: the upstream closed, failed or sent garbage without an answer.
    Heard(E),
    /// Writing failed and nothing answering had been sent.
    Io(io::Error),
    /// The upstream took no byte and said nothing for the stall limit.
    Stalled,
}

/// Writes every slice to the upstream; between writes, and while the socket takes no more,
/// calls `hear` whenever the upstream has sent something. `hear` returns `Some` once an
/// answer is complete (the write stops there), `None` while there is none yet. With a
/// `stall` limit, a socket that takes nothing for that long (and the upstream silent) fails
/// with [`WriteFailure::Stalled`]; each byte taken starts the limit again.
pub(crate) async fn write_listening<T, E>(
    conn: &mut UpstreamConn,
    mut slices: &mut [IoSlice<'_>],
    stall: Option<Duration>,
    mut hear: impl FnMut(&mut UpstreamConn) -> Result<Option<T>, E>,
) -> Result<Wrote<T>, WriteFailure<E>> {
    IoSlice::advance_slices(&mut slices, 0);
    // Armed only when the socket is full; an upload that never waits never allocates it.
    let mut limit: Option<Pin<Box<tokio::time::Sleep>>> = None;
    while !slices.is_empty() {
        // Read what came before writing more: once the upstream resets the connection,
        // what it sent and was not read yet is gone.
        if conn.stream.read_ready() {
            if let Some(answer) = hear(conn).map_err(WriteFailure::Heard)? {
                return Ok(Wrote::Answered(answer));
            }
        }
        match conn.stream.try_write_vectored(slices) {
            Ok(0) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(written) => {
                IoSlice::advance_slices(&mut slices, written);
                limit = None;
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            // A reset after an early answer: the answer, when it came, is still readable.
            Err(error) => {
                return match hear(conn) {
                    Ok(Some(answer)) => Ok(Wrote::Answered(answer)),
                    _ => Err(WriteFailure::Io(error)),
                }
            }
        }
        if limit.is_none() {
            limit = stall.map(|after| Box::pin(tokio::time::sleep(after)));
        }
        let event = poll_fn(|cx| {
            if conn.stream.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Some(true));
            }
            if conn.stream.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Some(false));
            }
            match limit.as_mut() {
                Some(sleep) => sleep.as_mut().poll(cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        match event {
            None => return Err(WriteFailure::Stalled),
            Some(true) => {
                if let Some(answer) = hear(conn).map_err(WriteFailure::Heard)? {
                    return Ok(Wrote::Answered(answer));
                }
            }
            Some(false) => {}
        }
    }
    Ok(Wrote::All)
}

/// The first write of a request on a socket: the upstream has had nothing to answer yet,
/// so the bytes go at once when the socket takes them all (the usual case: a head and a
/// small body; no readiness check, no system call beyond the write), and only what is left
/// goes through [`write_listening`]. A failure says how far the request got: nothing, when
/// that first write failed outright (for the retry rule of [`super::exchange::Retries`]);
/// otherwise, conservatively, some of it.
pub(crate) async fn write_request<T, E>(
    conn: &mut UpstreamConn,
    mut slices: &mut [IoSlice<'_>],
    stall: Option<Duration>,
    hear: impl FnMut(&mut UpstreamConn) -> Result<Option<T>, E>,
) -> Result<Wrote<T>, (WriteFailure<E>, Sent)> {
    IoSlice::advance_slices(&mut slices, 0);
    match conn.stream.try_write_vectored(slices) {
        Ok(written) => IoSlice::advance_slices(&mut slices, written),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
        Err(error) => return Err((WriteFailure::Io(error), Sent::Nothing)),
    }
    if slices.is_empty() {
        return Ok(Wrote::All);
    }
    write_listening(conn, slices, stall, hear)
        .await
        .map_err(|failure| (failure, Sent::Request))
}

/// How the upstream's side of the socket stood after [`read_available`].
pub(crate) enum Heard {
    /// Open: everything sent so far is in the buffer.
    Open,
    /// The upstream closed its side.
    Closed,
    /// Reading failed (a reset).
    Failed(io::Error),
}

/// Reads what the upstream has sent into the connection's buffer, without waiting, until
/// the socket has no more or the buffer holds `limit` bytes (the caller then treats what it
/// has as too large, so the socket is not left readable and asked again).
pub(crate) fn read_available(conn: &mut UpstreamConn, limit: usize) -> Heard {
    while conn.buf.len() < limit {
        conn.buf.reserve(READ_SIZE);
        match conn.stream.try_read_buf(&mut conn.buf) {
            Ok(0) => return Heard::Closed,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Heard::Open,
            Err(error) => return Heard::Failed(error),
        }
    }
    Heard::Open
}
