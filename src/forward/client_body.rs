//! The client's request body on the hyper path, with the listener's `client_body_timeout`.
//!
//! hyper reads a request body only as fast as the upstream takes it and puts no limit on how
//! long a client may pause mid-body. [`ClientBody`] adds that limit, and its [`BodyWatch`]
//! records how the body failed, so that a forward that failed after it is answered 408 or
//! counted `client_aborted` instead of blaming the upstream with a 502/504. The upstream
//! clients report a failed request body as their own error (hyper's HTTP/2 client only as a
//! reset of its stream), so the watch, not the error, tells the client's fault apart.

use crate::pause::PauseTimer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Why the client's request body did not arrive in full.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// The client sent nothing of its body for `client_body_timeout`: 408.
    #[error("the client sent nothing of its request body for {after:?}")]
    TimedOut {
        /// The timeout that ran out.
        after: Duration,
    },
    /// Reading the body failed: the client closed or reset mid-body, or broke its framing.
    #[error("reading the client's request body failed")]
    Failed(#[source] hyper::Error),
}

/// A request body from hyper that fails with [`ClientBodyError::TimedOut`] when the client
/// pauses longer than the timeout between two frames ([`PauseTimer`]: no timer until the
/// body is waited for).
pub struct ClientBody {
    inner: Incoming,
    pause: PauseTimer,
    watch: Option<BodyWatch>,
}

impl ClientBody {
    /// Wraps `inner`; a pause of `timeout` between frames fails the body. The
    /// [`BodyWatch`] learns how it failed; a request without a body (which cannot fail)
    /// gets none and allocates nothing.
    pub fn new(inner: Incoming, timeout: Duration) -> (ClientBody, Option<BodyWatch>) {
        let watch = (!inner.is_end_stream()).then(|| BodyWatch {
            failure: Arc::new(AtomicU8::new(BodyWatch::NONE)),
            timeout,
        });
        let body = ClientBody {
            inner,
            pause: PauseTimer::new(timeout),
            watch: watch.clone(),
        };
        (body, watch)
    }

    fn failed(&self, error: ClientBodyError) -> ClientBodyError {
        if let Some(watch) = &self.watch {
            let kind = match error {
                ClientBodyError::TimedOut { .. } => BodyWatch::TIMED_OUT,
                ClientBodyError::Failed(_) => BodyWatch::FAILED,
            };
            watch.failure.store(kind, Ordering::Release);
        }
        error
    }
}

/// How a watched [`ClientBody`] failed, read after the exchange that consumed it failed.
#[derive(Clone)]
pub struct BodyWatch {
    failure: Arc<AtomicU8>,
    timeout: Duration,
}

impl BodyWatch {
    const NONE: u8 = 0;
    const TIMED_OUT: u8 = 1;
    const FAILED: u8 = 2;
    /// Found failed only when the body was dropped unread: told to the mirror's copy, never
    /// to the exchange (whose error, answered and counted, stays what it was).
    const FOUND_FAILED: u8 = 3;
    /// No failure yet, and a mirror's copy of the body wants to know of one found when the
    /// body is dropped unread ([`BodyWatch::watch_drop`]).
    const WATCHED: u8 = 4;
    /// The most frames a dropped body's look at its client passes over (what a stream's
    /// flow-control window lets the client have sent ahead).
    const PROBED_FRAMES: usize = 1024;

    /// Asks the body, should it be dropped unread, to look whether its client had failed
    /// (for a mirrored request's copy; other bodies are dropped without a look).
    pub fn watch_drop(&self) {
        let _ = self.failure.compare_exchange(
            BodyWatch::NONE,
            BodyWatch::WATCHED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Whether the client's body failed (timed out, or reading it failed), including a
    /// failure found only when the body was dropped unread (which [`BodyWatch::failure`]
    /// does not report).
    pub fn client_failed(&self) -> bool {
        matches!(
            self.failure.load(Ordering::Acquire),
            BodyWatch::TIMED_OUT | BodyWatch::FAILED | BodyWatch::FOUND_FAILED
        )
    }

    /// The client's failure, if its body failed; the exchange's error is then a consequence.
    pub fn failure(&self) -> Option<ClientBodyFailure> {
        match self.failure.load(Ordering::Acquire) {
            BodyWatch::TIMED_OUT => Some(ClientBodyFailure::TimedOut {
                after: self.timeout,
            }),
            BodyWatch::FAILED => Some(ClientBodyFailure::Failed),
            _ => None,
        }
    }
}

/// What a [`BodyWatch`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBodyFailure {
    /// The client paused for `client_body_timeout`.
    TimedOut {
        /// The timeout that ran out.
        after: Duration,
    },
    /// Reading the body failed.
    Failed,
}

/// A body let go before its end, by a reader that stopped polling it (the upstream failed or
/// answered first, or hyper dropped the request because the client reset its stream): one
/// look, without waiting, at whether the client's side had already failed, so that the
/// shadows' copy ([`crate::shadow::RequestTee`]) blames the client for its own reset rather
/// than the upstream. Only a watched body looks ([`BodyWatch::watch_drop`]), and the live
/// answer is not changed by it: [`BodyWatch::failure`] does not report what was found this
/// way. A body read to its end is not looked at again.
impl Drop for ClientBody {
    fn drop(&mut self) {
        let Some(watch) = &self.watch else {
            return;
        };
        if self.inner.is_end_stream() || watch.failure.load(Ordering::Acquire) != BodyWatch::WATCHED
        {
            return;
        }
        // What the client sent before it failed is read first (an HTTP/2 stream keeps the
        // frames it received until its reader takes them): passed over, as many as the
        // connection had taken, up to a bound.
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..BodyWatch::PROBED_FRAMES {
            match Pin::new(&mut self.inner).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(_))) => {
                    watch
                        .failure
                        .store(BodyWatch::FOUND_FAILED, Ordering::Release);
                    return;
                }
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                Poll::Ready(Some(Err(this.failed(ClientBodyError::Failed(error)))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.pause.progressed();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.pause.expired(cx) => {
                let after = this.pause.limit();
                Poll::Ready(Some(Err(this.failed(ClientBodyError::TimedOut { after }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
