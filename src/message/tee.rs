//! A body tee: frames pass through untouched while a capped copy of the data is kept.
//!
//! The live body is never delayed or changed: each data frame is forwarded as soon as it
//! arrives, and the copy only clones the frame's `Bytes` handle (no byte copy). Past the cap
//! the copy is abandoned — its memory released at once — and the stream goes on. A copy
//! whose sink names a byte budget ([`TeeSink::budget`]) holds what it has kept so far as it
//! grows, and is abandoned the same way when the next chunk does not fit: a capture in
//! progress is bounded by the budget, not only by the number of requests in flight. A sink
//! that asks for it ([`TeeSink::digests`], the primary's answer) gets, in place of an
//! abandoned copy, the length and running hash of the whole body ([`BodyDigest`]): the kept
//! prefix is hashed once, then each further frame, and no byte is held. When the stream
//! ends, errors, or is dropped early, the sink hears exactly one [`TeeResult`]; a body cut
//! short says which side cut it ([`Cutoff`]): an error from the stream is its source's, a
//! drop before the end its reader's.
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::digest::{BodyDigest, Digester};
use crate::message::budget::{Budget, Held};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How a teed body ended, from the copy's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeResult {
    /// The whole body, concatenated, and what it holds against the budget (nothing when the
    /// copy was not charged to one).
    Complete(Bytes, Held),
    /// The body passed the cap; no copy was kept.
    TooLarge,
    /// The copy did not fit the byte budget with what the mirror side already held; it was
    /// dropped when it stopped fitting.
    OverBudget,
    /// The stream failed or was dropped before its end; the copy is incomplete. Which side
    /// ended it decides what the copy's loss is counted as.
    Incomplete(Cutoff),
    /// The copy passed the cap (or, with `over_budget`, the budget) and was dropped, but the
    /// sink asked for a digest: the whole body's length and hash.
    Digested {
        /// Length and hash of the whole body.
        digest: BodyDigest,
        /// Dropped for the byte budget rather than the cap.
        over_budget: bool,
    },
}

/// Which side of a teed body ended it before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// The body's source failed: the stream returned an error, or its engine saw the sender
    /// go (a request body: the client closed, reset, paused too long or broke its framing).
    Source,
    /// The reader let the body go unfinished, dropping it before its end (a request body:
    /// the primary failed, timed out, or answered without reading it all).
    Reader,
}

/// Receives the copy once the body is over.
pub trait TeeSink {
    /// Called exactly once.
    fn finish(self, result: TeeResult);

    /// The byte budget the copy is charged to as it grows; none by default.
    fn budget(&self) -> Option<&Arc<Budget>> {
        None
    }

    /// Whether a copy abandoned for the cap or the budget goes on as a digest of the whole
    /// body ([`TeeResult::Digested`]); no by default.
    fn digests(&self) -> bool {
        false
    }

    /// The body's trailer fields, seen while the copy is still kept (before [`finish`]).
    /// Ignored by default: only a request copy sends them on.
    ///
    /// [`finish`]: TeeSink::finish
    fn trailers(&mut self, _trailers: &HeaderMap) {}
}

/// A capped copy under construction.
struct Copy {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    /// What the copy holds against its sink's budget.
    held: Held,
}

impl Copy {
    /// Makes room for `len` more bytes, within the cap and `budget`; the reason the copy
    /// must be abandoned otherwise.
    fn admit(&mut self, len: usize, budget: Option<&Arc<Budget>>) -> Result<(), TeeResult> {
        if self.len + len > self.cap {
            return Err(TeeResult::TooLarge);
        }
        if let Some(budget) = budget {
            if !self.held.try_grow(budget, len) {
                return Err(TeeResult::OverBudget);
            }
        }
        self.len += len;
        Ok(())
    }

    fn into_result(mut self) -> TeeResult {
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        TeeResult::Complete(body, self.held)
    }
}

/// The copying half of a tee, separate from the body so response bodies (an enum) can embed it.
pub struct Tee<S: TeeSink> {
    copy: Option<Copy>,
    /// The digest that took over from an abandoned copy, and whether the budget (not the
    /// cap) abandoned it.
    digest: Option<(Digester, bool)>,
    sink: Option<S>,
}

impl<S: TeeSink> Tee<S> {
    /// Starts a copy capped at `cap` bytes.
    pub fn new(cap: usize, sink: S) -> Tee<S> {
        Tee {
            copy: Some(Copy {
                chunks: Vec::new(),
                len: 0,
                cap,
                held: Held::nothing(),
            }),
            digest: None,
            sink: Some(sink),
        }
    }

    /// Sees one polled frame (before it is passed on) and whether the body is now at its end.
    pub fn observe<E>(&mut self, polled: &Poll<Option<Result<Frame<Bytes>, E>>>, at_end: bool) {
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.take(data, Bytes::clone);
                }
                if let (Some(trailers), Some(_), Some(sink)) =
                    (frame.trailers_ref(), &self.copy, self.sink.as_mut())
                {
                    sink.trailers(trailers);
                }
                // A trailers frame is a body's last: its consumer may stop polling there,
                // so the copy is complete now, not at an end of stream that may never be
                // polled (it would be dropped as incomplete).
                if at_end || frame.is_trailers() {
                    self.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => self.source_failed(),
            Poll::Ready(None) => self.complete(),
            Poll::Pending => {}
        }
    }

    /// Copies a slice of the body (for bodies read into a reused buffer, not as `Bytes`).
    /// Past the cap or the budget the copy is dropped without copying what overflowed.
    pub fn push_slice(&mut self, data: &[u8]) {
        self.take(&data, |data: &&[u8]| Bytes::copy_from_slice(data));
    }

    /// Keeps (`keep` makes the copy's handle), digests, or ignores the next piece of data.
    fn take<D: AsRef<[u8]>>(&mut self, data: &D, keep: impl FnOnce(&D) -> Bytes) {
        if let Some((digester, _)) = self.digest.as_mut() {
            digester.update(data.as_ref());
            return;
        }
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        let len = data.as_ref().len();
        let budget = self.sink.as_ref().and_then(TeeSink::budget);
        match copy.admit(len, budget) {
            Ok(()) if len > 0 => copy.chunks.push(keep(data)),
            Ok(()) => {}
            Err(abandoned) => self.abandon(abandoned, data.as_ref()),
        }
    }

    /// The copy stops here (`why`): dropped, its budget given back, and either reported now
    /// or, when the sink wants a digest, replaced by one of everything so far and `data`.
    fn abandon(&mut self, why: TeeResult, data: &[u8]) {
        let copy = self.copy.take();
        if !self.sink.as_ref().is_some_and(TeeSink::digests) {
            return self.finish(why);
        }
        let mut digester = Digester::new();
        for chunk in copy.iter().flat_map(|copy| copy.chunks.iter()) {
            digester.update(chunk);
        }
        digester.update(data);
        self.digest = Some((digester, why == TeeResult::OverBudget));
    }

    /// The body ended (or turned out empty before any poll, e.g. GET): the sink gets the
    /// copy. A copy already abandoned was reported when it was.
    pub fn complete(&mut self) {
        match (self.copy.take(), self.digest.take()) {
            (Some(copy), _) => self.finish(copy.into_result()),
            (None, Some((digester, over_budget))) => self.finish(TeeResult::Digested {
                digest: digester.finish(),
                over_budget,
            }),
            (None, None) => self.finish(TeeResult::TooLarge),
        }
    }

    /// The body's source failed before its end (for an engine that reads the source itself
    /// and sees it fail): the copy is incomplete, and the source's fault.
    pub fn source_failed(&mut self) {
        self.finish(TeeResult::Incomplete(Cutoff::Source));
    }

    fn finish(&mut self, result: TeeResult) {
        if let Some(sink) = self.sink.take() {
            sink.finish(result);
        }
    }
}

impl<S: TeeSink> Drop for Tee<S> {
    fn drop(&mut self) {
        // Dropped before the end, no error seen from the source: its reader let it go (the
        // upstream failed or answered first). A source that failed said so before.
        self.finish(TeeResult::Incomplete(Cutoff::Reader));
    }
}

/// A body wrapped in an optional tee. With no tee it is a plain pass-through.
pub struct TeeBody<B, S: TeeSink> {
    /// Declared (so dropped) before the tee: a body's own drop may record how its source
    /// ended, which the sink then reads when the tee reports (`RequestTee::watch_source`).
    inner: B,
    /// Boxed: the body is moved with its request or response through every layer, and a
    /// tee (a sampled request's copy) is far larger than the pointer most requests carry.
    tee: Option<Box<Tee<S>>>,
}

impl<B: Body, S: TeeSink> TeeBody<B, S> {
    /// Wraps `inner`; a `tee` of `None` costs one branch per frame.
    pub fn new(inner: B, tee: Option<Tee<S>>) -> TeeBody<B, S> {
        let mut body = TeeBody {
            inner,
            tee: tee.map(Box::new),
        };
        if body.inner.is_end_stream() {
            if let Some(tee) = body.tee.as_mut() {
                tee.complete();
            }
        }
        body
    }

    /// The tee's sink while the copy is still open, for a caller that has more to tell it
    /// than the body does (the hyper path's watch on the client's body).
    pub fn sink_mut(&mut self) -> Option<&mut S> {
        self.tee.as_mut().and_then(|tee| tee.sink.as_mut())
    }

    /// The body and its tee, for a caller that streams the body inside a type of its own
    /// (the proxy's response body) and feeds the tee itself.
    pub fn into_parts(self) -> (B, Option<Box<Tee<S>>>) {
        (self.inner, self.tee)
    }
}

impl<B, S> Body for TeeBody<B, S>
where
    B: Body<Data = Bytes> + Unpin,
    S: TeeSink + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(tee) = this.tee.as_mut() {
            tee.observe(&polled, this.inner.is_end_stream());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "tee_tests.rs"]
mod tests;
