//! A body tee: frames pass through untouched while a capped copy of the data is kept.
//!
//! The live body is never delayed or changed: each data frame is forwarded as soon as it
//! arrives, and the copy only clones the frame's `Bytes` handle (no byte copy). Past the cap
//! the copy is abandoned — its memory released at once — and the stream goes on. When the
//! stream ends, errors, or is dropped early, the sink hears exactly one [`TeeResult`].

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// How a teed body ended, from the copy's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeResult {
    /// The whole body, concatenated.
    Complete(Bytes),
    /// The body passed the cap; no copy was kept.
    TooLarge,
    /// The stream failed or was dropped before its end; the copy is incomplete.
    Incomplete,
}

/// Receives the copy once the body is over.
pub trait TeeSink {
    /// Called exactly once.
    fn finish(self, result: TeeResult);
}

/// A capped copy under construction.
#[derive(Debug)]
struct Copy {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
}

impl Copy {
    /// Adds a chunk; `false` once the cap is passed.
    fn push(&mut self, chunk: &Bytes) -> bool {
        self.len += chunk.len();
        if self.len > self.cap {
            self.chunks = Vec::new();
            return false;
        }
        if !chunk.is_empty() {
            self.chunks.push(chunk.clone());
        }
        true
    }

    fn into_bytes(mut self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        }
    }
}

/// The copying half of a tee, separate from the body so response bodies (an enum) can embed it.
pub struct Tee<S: TeeSink> {
    copy: Option<Copy>,
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
            }),
            sink: Some(sink),
        }
    }

    /// Sees one polled frame (before it is passed on) and whether the body is now at its end.
    pub fn observe<E>(&mut self, polled: &Poll<Option<Result<Frame<Bytes>, E>>>, at_end: bool) {
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(copy)) = (frame.data_ref(), self.copy.as_mut()) {
                    if !copy.push(data) {
                        self.copy = None;
                        self.finish(TeeResult::TooLarge);
                        return;
                    }
                }
                if at_end {
                    self.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(TeeResult::Incomplete),
            Poll::Ready(None) => self.complete(),
            Poll::Pending => {}
        }
    }

    /// Copies a slice of the body (for bodies read into a reused buffer, not as `Bytes`).
    /// Past the cap the copy is dropped without copying what overflowed.
    pub fn push_slice(&mut self, data: &[u8]) {
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        if copy.len + data.len() > copy.cap {
            self.copy = None;
            self.finish(TeeResult::TooLarge);
            return;
        }
        if !data.is_empty() {
            copy.push(&Bytes::copy_from_slice(data));
        }
    }

    /// The body turned out to be empty before any poll (e.g. GET): completes at once.
    pub fn complete(&mut self) {
        match self.copy.take() {
            Some(copy) => self.finish(TeeResult::Complete(copy.into_bytes())),
            None => self.finish(TeeResult::TooLarge),
        }
    }

    fn finish(&mut self, result: TeeResult) {
        if let Some(sink) = self.sink.take() {
            sink.finish(result);
        }
    }
}

impl<S: TeeSink> Drop for Tee<S> {
    fn drop(&mut self) {
        // Dropped before the end: the stream was abandoned (client gone, upstream failed).
        self.finish(TeeResult::Incomplete);
    }
}

/// A body wrapped in an optional tee. With no tee it is a plain pass-through.
pub struct TeeBody<B, S: TeeSink> {
    inner: B,
    tee: Option<Tee<S>>,
}

impl<B: Body, S: TeeSink> TeeBody<B, S> {
    /// Wraps `inner`; a `tee` of `None` costs one branch per frame.
    pub fn new(inner: B, tee: Option<Tee<S>>) -> TeeBody<B, S> {
        let mut body = TeeBody { inner, tee };
        if body.inner.is_end_stream() {
            if let Some(tee) = body.tee.as_mut() {
                tee.complete();
            }
        }
        body
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
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<TeeResult>>>);

    impl TeeSink for Recorder {
        fn finish(self, result: TeeResult) {
            self.0.lock().unwrap().push(result);
        }
    }

    /// A body that yields the given chunks (or errors) one per poll.
    struct Chunks(std::collections::VecDeque<Result<&'static str, std::io::Error>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let next = self.get_mut().0.pop_front();
            Poll::Ready(
                next.map(|chunk| {
                    chunk.map(|text| Frame::data(Bytes::from_static(text.as_bytes())))
                }),
            )
        }
    }

    fn stream(chunks: Vec<Result<&'static str, std::io::Error>>) -> Chunks {
        Chunks(chunks.into())
    }

    #[tokio::test]
    async fn passes_every_byte_and_keeps_a_copy() {
        let recorder = Recorder::default();
        let body = TeeBody::new(
            stream(vec![Ok("hello "), Ok("world")]),
            Some(Tee::new(64, recorder.clone())),
        );
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(out, "hello world");
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![TeeResult::Complete(Bytes::from("hello world"))]
        );
    }

    #[tokio::test]
    async fn past_the_cap_the_copy_is_dropped_but_the_stream_goes_on() {
        let recorder = Recorder::default();
        let body = TeeBody::new(
            stream(vec![Ok("12345"), Ok("67890"), Ok("x")]),
            Some(Tee::new(8, recorder.clone())),
        );
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(out, "1234567890x");
        assert_eq!(*recorder.0.lock().unwrap(), vec![TeeResult::TooLarge]);
    }

    #[tokio::test]
    async fn an_error_or_early_drop_is_incomplete_exactly_once() {
        let recorder = Recorder::default();
        let body = TeeBody::new(
            stream(vec![Ok("abc"), Err(std::io::Error::other("reset"))]),
            Some(Tee::new(64, recorder.clone())),
        );
        assert!(body.collect().await.is_err());
        let recorder2 = Recorder::default();
        let body = TeeBody::new(
            stream(vec![Ok("abc"), Ok("def")]),
            Some(Tee::new(64, recorder2.clone())),
        );
        drop(body);
        assert_eq!(*recorder.0.lock().unwrap(), vec![TeeResult::Incomplete]);
        assert_eq!(*recorder2.0.lock().unwrap(), vec![TeeResult::Incomplete]);
    }

    #[tokio::test]
    async fn an_empty_body_completes_without_a_poll() {
        let recorder = Recorder::default();
        let _body = TeeBody::new(
            http_body_util::Empty::<Bytes>::new(),
            Some(Tee::new(64, recorder.clone())),
        );
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![TeeResult::Complete(Bytes::new())]
        );
    }
}
