//! The response body shadowtap sends to clients.
//!
//! One concrete enum instead of a boxed trait object: no allocation per request, and the
//! upstream body is passed frame by frame (streaming, trailers included). The attached
//! [`Completion`] records the request's duration when the last frame has gone out — or when
//! the client went away and the body was dropped — so latency covers the whole response.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::forward::{BoxError, UpstreamBody};
use crate::layer::MirroredBody;
use crate::message::pair::PrimarySink;
use crate::message::tee::Tee;
use crate::telemetry::Metrics;

/// Records a request's duration exactly once, when its response body is finished or dropped.
pub struct Completion {
    metrics: Arc<Metrics>,
    route: Option<(usize, usize)>,
    started: Instant,
}

impl Completion {
    /// Starts the clock's owner for one request (the clock itself started at `started`).
    pub fn new(
        metrics: Arc<Metrics>,
        route: Option<(usize, usize)>,
        started: Instant,
    ) -> Completion {
        Completion {
            metrics,
            route,
            started,
        }
    }
}

impl Completion {
    /// Counts and logs an upstream body that broke mid-stream: the status already went out,
    /// so this counter is the only place the failure shows.
    fn body_failed(&self, error: &BoxError) {
        let route = self.metrics.route(self.route);
        self.metrics
            .record_error(route, crate::telemetry::ErrorReason::UpstreamBodyError);
        tracing::warn!(
            route = route.label(),
            error = %crate::telemetry::logging::ErrorChain(&**error),
            "upstream body failed mid-stream"
        );
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.route.is_some() {
            let route = self.metrics.route(self.route);
            self.metrics
                .record_primary_duration(route, self.started.elapsed().as_secs_f64());
        }
    }
}

/// A response body: streamed from the upstream, or a small one the proxy wrote itself.
// The large variant is the common one (every proxied response); boxing it would cost an
// allocation per request to save bytes on the rare error page.
#[allow(clippy::large_enum_variant)]
pub enum ResponseBody {
    /// The upstream's body, passed through as it arrives.
    Upstream {
        /// The upstream body (it gives its connection back at its end).
        body: UpstreamBody,
        /// Dropped (and so recorded) at the end of the stream.
        completion: Option<Completion>,
        /// A capped copy for comparison, when the request was mirrored.
        capture: Option<Box<Tee<PrimarySink>>>,
    },
    /// A complete body (error pages); `None` once sent.
    Full {
        /// The bytes still to send.
        data: Option<Bytes>,
        /// Dropped (and so recorded) once the bytes are sent.
        completion: Option<Completion>,
    },
}

impl ResponseBody {
    /// The upstream's body as the mirror layer passed it back, with its capture (when the
    /// request was mirrored) fed here, frame by frame, after a failure is counted.
    pub fn upstream(
        body: MirroredBody<UpstreamBody>,
        completion: Option<Completion>,
    ) -> ResponseBody {
        // An empty body's copy was completed by the layer: no frame may ever be polled.
        let (body, capture) = body.into_parts();
        ResponseBody::Upstream {
            body,
            completion,
            capture,
        }
    }

    /// A complete body written by the proxy.
    pub fn full(data: impl Into<Bytes>, completion: Option<Completion>) -> ResponseBody {
        let data = data.into();
        ResponseBody::Full {
            data: if data.is_empty() { None } else { Some(data) },
            completion,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Upstream {
                body,
                completion,
                capture,
            } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if let (Poll::Ready(Some(Err(error))), Some(completion)) =
                    (&polled, completion.as_ref())
                {
                    completion.body_failed(error);
                }
                let at_end = body.is_end_stream();
                if let Some(tee) = capture.as_mut() {
                    tee.observe(&polled, at_end);
                }
                if matches!(polled, Poll::Ready(None)) || at_end {
                    // The last frame: record now rather than wait for the next poll.
                    completion.take();
                }
                polled
            }
            ResponseBody::Full { data, completion } => {
                let frame = data.take().map(|data| Ok(Frame::data(data)));
                completion.take();
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { body, .. } => body.is_end_stream(),
            ResponseBody::Full { data, .. } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { body, .. } => body.size_hint(),
            ResponseBody::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}
