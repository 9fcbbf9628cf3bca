//! The mirror as a tower layer: [`MirrorLayer`] wraps any `tower::Service<http::Request<B>>`
//! and does, around it, everything the proxy does around its primary upstream.
//!
//! For each request the layer
//! 1. finds its route: a [`RouteMatch`] the caller already made (an argument, or a request
//!    extension), or else its own [`Router`];
//! 2. asks the route's [`Mirror::plan`] whether to mirror it (sampling, filters, breaker);
//!    a route that mirrors nothing costs one check;
//! 3. when sampled, tees the request body — a capped copy taken while the body streams to the
//!    inner service — and the shadow jobs are queued once the copy is complete;
//! 4. when the inner service answers, captures the answer's head at once and its body as it
//!    streams back ([`MirroredBody`]), and publishes it for comparison when the body ends.
//!
//! The live request and answer pass through unchanged and are never delayed by a shadow:
//! shadows are dispatched and compared off the live path by [`crate::shadow`] and
//! [`crate::report`]. The proxy's hyper path uses this layer with the route it already
//! found; [`Shadowing`](crate::shadowing::Shadowing) builds the whole mirror side from a
//! config for a Rust service (axum, tonic) that shadows its own traffic in-process.
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::message::budget::Budget;
use crate::message::fields::Fields;
use crate::message::pair::{PrimarySink, PrimarySlot};
use crate::message::tee::{Tee, TeeBody};
use crate::router::{request_host, RouteMatch, Router};
use crate::shadow::{Mirror, RequestHead, RequestTee};

use http::{Request, Response};
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

/// The request id field whose value the shadow copy and the comparison carry.
const REQUEST_ID: &str = "x-request-id";

/// The body the inner service receives: the request's own, with a capped copy taken for the
/// shadows when the request is mirrored.
pub type TeedRequestBody<B> = TeeBody<B, RequestTee>;

/// Mirrors the requests of the service it wraps to the shadows of their route, and compares
/// the service's answers with theirs, as the proxy does for its primary upstream.
///
/// Cloning is cheap (two shared handles), as tower expects of a layer.
#[derive(Clone)]
pub struct MirrorLayer {
    mirror: Arc<Mirror>,
    /// Routes requests that arrive without a [`RouteMatch`]; `None`: those are not mirrored.
    router: Option<Arc<Router>>,
    max_response_body_bytes: usize,
}

impl MirrorLayer {
    /// A layer over `mirror`, keeping at most `max_response_body_bytes` of each answer for
    /// comparison (a longer one is compared by length and hash). It mirrors only requests
    /// whose route the caller gives ([`MirrorLayer::mirror_request`], or a [`RouteMatch`]
    /// request extension), for a stack that routes before it, like the proxy.
    pub fn new(mirror: Arc<Mirror>, max_response_body_bytes: usize) -> MirrorLayer {
        MirrorLayer {
            mirror,
            router: None,
            max_response_body_bytes,
        }
    }

    /// Routes requests that carry no [`RouteMatch`] with `router` (host and path, as the
    /// proxy does), for a stack that has no shadowtap routing of its own.
    pub fn with_router(mut self, router: Arc<Router>) -> MirrorLayer {
        self.router = Some(router);
        self
    }

    /// The mirroring engine (its dispatchers are started by whoever built it).
    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.mirror
    }

    /// Cap on the answer body kept for comparison.
    pub fn max_response_body_bytes(&self) -> usize {
        self.max_response_body_bytes
    }

    /// The layer's work on one request whose route the caller knows (`None`: not routed,
    /// not mirrored): tees the body when the plan samples the request, passes the request to
    /// `send` — the inner service — and captures its answer for comparison.
    ///
    /// The request is mirrored as it is given: a caller that rewrites headers (the proxy's
    /// `X-Forwarded-*`, Via) does so before, so the shadow copy carries what the primary got.
    pub fn mirror_request<B, F, Fut>(
        &self,
        route: Option<RouteMatch>,
        request: Request<B>,
        send: F,
    ) -> MirrorFuture<Fut>
    where
        B: Body,
        F: FnOnce(Request<TeedRequestBody<B>>) -> Fut,
    {
        let (request, capture) = self.begin(route, request);
        MirrorFuture {
            inner: send(request),
            capture,
        }
    }

    /// The first half of [`MirrorLayer::mirror_request`], for a caller that sends the request
    /// itself (the proxy awaits its upstream inside its own future, so no second future is
    /// built and moved around on every request): the request with its body teed when
    /// sampled, and the [`AnswerCapture`] to give the answer to.
    pub fn begin<B: Body>(
        &self,
        route: Option<RouteMatch>,
        request: Request<B>,
    ) -> (Request<TeedRequestBody<B>>, AnswerCapture) {
        let (parts, body) = request.into_parts();
        let (body, slot) = self.tee_request(route, &parts, body);
        // The answer's latency for comparison is measured like a shadow's: from sending.
        let capture = slot.map(|slot| Capture {
            slot,
            sent: Instant::now(),
            budget: self.mirror.budget().clone(),
            cap: self.max_response_body_bytes,
        });
        (Request::from_parts(parts, body), AnswerCapture { capture })
    }

    /// Wraps the request body in a tee when the request is mirrored (the plan decides), so
    /// the shadow copy is taken while the body streams to the inner service.
    fn tee_request<B: Body>(
        &self,
        route: Option<RouteMatch>,
        parts: &http::request::Parts,
        body: B,
    ) -> (TeedRequestBody<B>, Option<PrimarySlot>) {
        let Some(found) = route.filter(|found| self.mirror.route_mirrors(found.route)) else {
            return (TeeBody::new(body, None), None);
        };
        let plan = self.mirror.plan(
            found.route,
            (found.route, found.label),
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        );
        let Some((plan, slot)) = plan else {
            return (TeeBody::new(body, None), None);
        };
        // Sampled: only now are the fields copied out of the map.
        let head = RequestHead {
            method: parts.method.clone(),
            version: parts.version,
            path_and_query: parts.uri.path_and_query().cloned(),
            headers: Fields::from_map(&parts.headers),
            request_id: parts
                .headers
                .get(REQUEST_ID)
                .and_then(|id| id.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        };
        let tee = Tee::new(
            self.mirror.max_body_bytes(found.route),
            RequestTee::new(self.mirror.clone(), plan, head),
        );
        (TeeBody::new(body, Some(tee)), Some(slot))
    }

    /// The route of a request that reaches the layer as a tower service: the caller's
    /// [`RouteMatch`] extension, or the layer's own router.
    fn route_of<B>(&self, request: &Request<B>) -> Option<RouteMatch> {
        if let Some(found) = request.extensions().get::<RouteMatch>() {
            return Some(*found);
        }
        let router = self.router.as_ref()?;
        router.find(request_host(request).as_deref(), request.uri().path())
    }
}

impl<S> tower::Layer<S> for MirrorLayer {
    type Service = MirrorService<S>;

    fn layer(&self, inner: S) -> MirrorService<S> {
        MirrorService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service wrapped in a [`MirrorLayer`]: it answers exactly as the inner service does,
/// while sampled requests are mirrored and the answers compared.
#[derive(Clone)]
pub struct MirrorService<S> {
    inner: S,
    layer: MirrorLayer,
}

impl<S> MirrorService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, RB> tower::Service<Request<B>> for MirrorService<S>
where
    S: tower::Service<Request<TeedRequestBody<B>>, Response = Response<RB>>,
    B: Body,
    RB: Body,
{
    type Response = Response<MirroredBody<RB>>;
    type Error = S::Error;
    type Future = MirrorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> MirrorFuture<S::Future> {
        let route = self.layer.route_of(&request);
        let inner = &mut self.inner;
        self.layer
            .mirror_request(route, request, |request| inner.call(request))
    }
}

/// What a mirrored request needs to capture its answer.
struct Capture {
    /// Where the answer is published for the shadows' comparison.
    slot: PrimarySlot,
    /// When the request was handed to the inner service.
    sent: Instant,
    budget: Arc<Budget>,
    cap: usize,
}

pin_project_lite::pin_project! {
    /// The inner service's answer, its body wrapped so a mirrored request's answer is
    /// captured as it streams. An error is passed on as it is (the shadows' comparison is
    /// then told there is no answer).
    pub struct MirrorFuture<F> {
        #[pin]
        inner: F,
        capture: AnswerCapture,
    }
}

impl<F, RB, E> Future for MirrorFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Body,
{
    type Output = Result<Response<MirroredBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = ready!(this.inner.poll(cx));
        // Taken either way: on an error the capture is dropped now, publishing "no answer".
        let capture = std::mem::take(this.capture);
        let response = answered?;
        Poll::Ready(Ok(capture.answered(response)))
    }
}

/// The second half of a mirrored exchange ([`MirrorLayer::begin`]): given the answer, it
/// captures its head at once and its body as it streams. Dropped without an answer (the
/// inner service failed), it publishes "no answer" to the shadows' comparison. The default
/// captures nothing (a request that was not mirrored).
#[derive(Default)]
pub struct AnswerCapture {
    capture: Option<Capture>,
}

impl AnswerCapture {
    /// The answer, its body wrapped so a mirrored request's answer is captured as it
    /// streams. Its fields are taken as given: a caller that adds its own (the proxy's Via)
    /// does so after, and the shadow's answer carries none of them.
    pub fn answered<RB: Body>(self, response: Response<RB>) -> Response<MirroredBody<RB>> {
        let capture = self.capture.map(|capture| {
            let sink = PrimarySink::new(
                capture.slot,
                response.status(),
                Fields::from_map(response.headers()),
                capture.sent,
                capture.budget,
            );
            Tee::new(capture.cap, sink)
        });
        response.map(|body| MirroredBody::new(body, capture))
    }
}

/// An answer's body on its way back through the layer: passed on frame by frame, and, when
/// the request was mirrored, copied (capped, charged to the mirror's byte budget) for
/// comparison. The same tee as the request body's, with the primary's sink.
pub type MirroredBody<B> = TeeBody<B, PrimarySink>;
