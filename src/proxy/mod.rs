//! The live path: one request in, one response out, streamed from the primary upstream.
//!
//! The life of a request, in order:
//! 1. **check** framing (smuggling shapes are refused before anything is forwarded);
//! 2. **route** by host and path to a route and its metric label;
//! 3. **rewrite** headers: hop-by-hop removed, `X-Forwarded-*` set, request id ensured,
//!    Host kept (or rewritten when the route says so);
//! 4. **forward** over the upstream's pooled client, with the response-head timeout, through
//!    the [`MirrorLayer`] (which tees a sampled request for its
//!    shadows and captures the primary's answer for comparison);
//! 5. **respond** with the upstream's head and its body streamed through, or with exactly
//!    one error response (400/404/405/502/504) when a step failed.
//!
//! An upgrade (WebSocket and others, HTTP/2 extended CONNECT) leaves this path after step 3
//! for [`upgrade`]: never mirrored, its `101` passed on and the connection spliced.
//!
//! The handler never fails outward: every outcome is a response, counted and logged once.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod body;
pub mod upgrade;

use crate::connection::{ConnectionInfo, Unanswered};
use crate::context::Context;
use crate::error::ProxyError;
use crate::forward::client_body::{BodyWatch, ClientBody};
use crate::forward::{ForwardError, UpstreamBody, UpstreamClient};
use crate::headers;
use crate::layer::{MirrorLayer, MirroredBody, TeedRequestBody};
use crate::router::{request_host, RouteMatch};
use crate::telemetry::metrics::method_index;
use body::{Completion, ResponseBody};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The body sent upstream: the client's, streamed, with a capped copy when mirrored.
pub type RequestBody = TeedRequestBody<ClientBody>;

/// What the primary returned, its body captured for comparison when the request is mirrored.
type Forwarded = Response<MirroredBody<UpstreamBody>>;

/// The hyper engine: the request handler shared by all connections of all listeners, for
/// the requests the native engine hands over (h2c, and HTTP/1 it does not serve itself).
pub struct Proxy {
    context: Arc<Context>,
    /// One client per upstream, in id order.
    upstreams: Vec<Arc<UpstreamClient<RequestBody>>>,
    /// Mirrors the requests sent to the primary and captures its answers.
    mirroring: MirrorLayer,
}

impl Proxy {
    /// The hyper engine over `context`, sending through `upstreams` (one client per
    /// upstream, in `config.upstreams` order, sharing the context's HTTP/1 pools).
    pub fn new(context: Arc<Context>, upstreams: Vec<Arc<UpstreamClient<RequestBody>>>) -> Proxy {
        let mirroring =
            MirrorLayer::new(context.mirror().clone(), context.max_response_body_bytes());
        Proxy {
            context,
            upstreams,
            mirroring,
        }
    }

    /// The context this engine serves with (shared with the native engine).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Serves one request. Always returns a response; never panics on input.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: &ConnectionInfo,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = method_index(request.method());
        let host = request_host(&request);
        let found = self
            .context
            .router()
            .find(host.as_deref(), request.uri().path());
        let route_key = found.map(|m| (m.route, m.label));
        let route_label = found
            .and_then(|m| self.context.router().labels().get(m.route)?.get(m.label))
            .map_or(crate::telemetry::metrics::NO_ROUTE_LABEL, String::as_str);
        // The span is at DEBUG: at the default INFO level an enabled per-request span is
        // formatted on creation by the fmt layer, a fifth of the path's cost then (see
        // docs/PERFORMANCE.md, "What bought what", 705582e). The one INFO+ event of a
        // request, its failure, carries the same fields itself.
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            route = route_label,
            request_id = tracing::field::Empty,
        );
        let request_method = request.method().clone();
        // A failed gRPC call is answered in gRPC's terms (crate::grpc), not with an HTTP error page.
        let grpc = crate::grpc::is_grpc(request.headers());
        // Counts the request if hyper drops this future before it is answered: the client
        // closed its connection or reset its stream meanwhile.
        let mut pending = Pending {
            unanswered: Unanswered::new(self.context.metrics(), route_key, method, started),
            request_id: None,
        };
        // Boxed: the forwarding state machine is large, and hyper moves the handler's future
        // several times; moving a pointer is cheaper than moving the state (see
        // docs/PERFORMANCE.md, "What bought what", 4e36b76).
        let forwarding = Box::pin(self.forward(
            request,
            found,
            connection,
            &span,
            &mut pending.request_id,
            grpc,
        ));
        let result = forwarding.instrument(span.clone()).await;
        pending.unanswered.settle();
        let request_id = pending.request_id.take();
        let route_metrics = self.context.metrics().route(route_key);
        let completion = Some(Completion::new(
            self.context.metrics().clone(),
            route_key,
            started,
        ));
        match result {
            Ok(mut response) => {
                self.context
                    .metrics()
                    .record_request(route_metrics, method, response.status());
                // After the layer captured the primary's fields: the shadow's answer carries
                // no Via of ours, and comparing one would be a false difference.
                if let Some(via) = &connection.via {
                    let version = match response.extensions().get::<headers::ReceivedAsHttp10>() {
                        Some(_) => http::Version::HTTP_10,
                        None => response.version(),
                    };
                    headers::append_via(response.headers_mut(), via.element(version));
                }
                response.map(|body| ResponseBody::upstream(body, completion))
            }
            Err(error) => {
                let mut response = Response::new(ResponseBody::full(
                    match grpc {
                        true => "",
                        false => error.client_message(),
                    },
                    completion,
                ));
                let status = match grpc {
                    true => crate::grpc::error_head(&error, response.headers_mut()),
                    false => error.status(),
                };
                self.context
                    .metrics()
                    .record_request(route_metrics, method, status);
                self.context
                    .metrics()
                    .record_error(route_metrics, error.reason());
                let request_id = request_id
                    .as_ref()
                    .and_then(|id: &HeaderValue| id.to_str().ok())
                    .unwrap_or("-");
                span.in_scope(|| {
                    error.log_failed(request_method.as_str(), route_label, request_id)
                });
                *response.status_mut() = status;
                if !grpc {
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                if error.status() == http::StatusCode::BAD_REQUEST {
                    // The framing was ambiguous: the rest of the connection cannot be trusted.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        }
    }

    async fn forward(
        &self,
        mut request: Request<Incoming>,
        route: Option<RouteMatch>,
        connection: &ConnectionInfo,
        span: &tracing::Span,
        request_id_out: &mut Option<HeaderValue>,
        grpc: bool,
    ) -> Result<Forwarded, ProxyError> {
        // The listener marks requests whose raw head had a conflict hyper resolved away.
        if let Some(hidden) = request.extensions().get::<headers::FramingError>() {
            return Err((*hidden).into());
        }
        headers::check_framing(request.version(), request.headers())?;
        // RFC 9112 §3.2: one valid Host (on HTTP/1.1, exactly one); the target's authority,
        // when it has one, wins over it for the forwarded Host as it did for routing.
        let (original_host, host_from_target) =
            headers::forwarded_host(request.version(), request.uri(), request.headers())?;
        let asked = upgrade::asked(&request);
        if request.method() == Method::CONNECT && asked.is_none() {
            return Err(ProxyError::Unsupported("CONNECT is not supported\n"));
        }
        let found = route.ok_or(ProxyError::NoRoute)?;
        let target = self.context.route(found.route).ok_or(ProxyError::NoRoute)?;
        let upstream = self
            .upstreams
            .get(target.upstream)
            .ok_or(ProxyError::NoRoute)?;
        // An upgrade goes to an HTTP/1 primary on a socket of its own; towards an h2 one the
        // request is an ordinary one (its `Upgrade` removed), which the client sees refused.
        let upgrading = match asked {
            Some(asked) => match self.context.native_upstream(target.upstream) {
                Some(native) => Some((asked, native, hyper::upgrade::on(&mut request))),
                None if request.method() == Method::CONNECT => {
                    return Err(ProxyError::Unsupported(
                        "extended CONNECT needs an HTTP/1.1 primary\n",
                    ))
                }
                None => None,
            },
            None => None,
        };

        let (mut parts, body) = request.into_parts();
        // Before the tee: the shadow copy carries the same fields (and Via) as the primary's.
        let request_id = headers::forward_request_headers(
            &mut parts.headers,
            headers::Forwarding {
                client_address: &connection.client_address,
                proto: connection.proto,
                trust_forwarded_headers: connection.trust_forwarded_headers,
                via: connection
                    .via
                    .as_ref()
                    .map(|via| via.element(parts.version)),
                host: original_host,
                host_from_target,
                host_rewrite: target.host_rewrite.as_ref(),
                client_subject: connection.client_subject.as_deref(),
            },
        );
        if let Ok(id) = request_id.to_str() {
            span.record("request_id", id);
        }
        *request_id_out = Some(request_id);
        if let Some((asked, native, client)) = upgrading {
            return self
                .upgrade(asked, parts, client, found, target, native)
                .await;
        }
        let (body, watch) = ClientBody::new(body, connection.client_body_timeout);
        // The layer tees the request as it stands now (routed here, not again) and captures
        // the answer; the request target becomes the upstream's only after the copy is planned.
        // Its two halves around our own await, so no second future is built and moved.
        let (mut request, capture) = self
            .mirroring
            .begin(Some(found), Request::from_parts(parts, body));
        // A sampled request's copy learns how the client's body failed, even when it is
        // dropped without polling it again (see `RequestTee::watch_source`).
        if let (Some(watch), Some(copy)) = (&watch, request.body_mut().sink_mut()) {
            copy.watch_source(watch.clone());
        }
        *request.uri_mut() = upstream
            .uri_for(request.uri().path_and_query())
            .map_err(|_| ProxyError::Unsupported("bad request target\n"))?;
        // A gRPC call's own deadline bounds the wait when it is the shorter one.
        let deadline = match grpc {
            true => crate::grpc::deadline(request.headers()),
            false => None,
        };
        let response = match upstream.send_within(request, deadline).await {
            Ok(response) => capture.answered(response),
            Err(error) => match watch.as_ref().and_then(BodyWatch::failure) {
                Some(failure) => {
                    return Err(ForwardError::after_client_failure(failure, error).into())
                }
                None => return Err(error.into()),
            },
        };
        tracing::debug!(
            upstream = upstream.name(),
            status = response.status().as_u16(),
            "primary answered"
        );
        Ok(response)
    }
}

impl Proxy {
    /// An upgrade request, its fields rewritten, towards the HTTP/1 primary `native`: never
    /// mirrored (counted `skipped_upgrade` for each shadow that samples it), its answer passed
    /// on, and on a switch the connection spliced ([`upgrade::forward`]).
    async fn upgrade(
        &self,
        asked: upgrade::Asked,
        parts: http::request::Parts,
        client: hyper::upgrade::OnUpgrade,
        found: RouteMatch,
        target: &crate::context::RouteTarget,
        native: &crate::context::NativeUpstream,
    ) -> Result<Forwarded, ProxyError> {
        let metrics = self.context.metrics();
        let route_metrics = metrics.route(Some((found.route, found.label)));
        self.context.mirror().upgrade_not_mirrored(
            found.route,
            (found.route, found.label),
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        );
        let target = upgrade::Target {
            upstream: native,
            idle: target.upgrade_idle_timeout,
            metrics: metrics.clone(),
            splices: self.context.splices(),
        };
        let meter = |protocol| metrics.upgraded(route_metrics, protocol);
        let response = upgrade::forward(asked, parts, client, target, meter).await?;
        Ok(crate::layer::AnswerCapture::default().answered(response))
    }
}

/// The hyper path's [`Unanswered`], with the request id once it is known (for the log).
struct Pending<'a> {
    unanswered: Unanswered<'a>,
    request_id: Option<HeaderValue>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.unanswered.is_settled() {
            let id = self.request_id.as_ref().and_then(|id| id.to_str().ok());
            self.unanswered.abandoned(id.unwrap_or("-"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::router::strip_port;

    #[test]
    fn strip_port_never_panics() {
        assert_eq!(strip_port("a:80"), "a");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        // No closing bracket: left whole (the Host check refuses it); this used to panic.
        assert_eq!(strip_port("[::1"), "[::1");
        assert_eq!(strip_port("["), "[");
    }
}
