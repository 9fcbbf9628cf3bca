//! The live path: one request in, one response out, streamed from the primary upstream.
//!
//! The life of a request, in order:
//! 1. **check** framing (smuggling shapes are refused before anything is forwarded);
//! 2. **route** by host and path to a route and its metric label;
//! 3. **rewrite** headers: hop-by-hop removed, `X-Forwarded-*` set, request id ensured,
//!    Host kept (or rewritten when the route says so);
//! 4. **forward** over the upstream's pooled client, with the response-head timeout, through
//!    the [`MirrorLayer`](crate::layer::MirrorLayer) (which tees a sampled request for its
//!    shadows and captures the primary's answer for comparison);
//! 5. **respond** with the upstream's head and its body streamed through, or with exactly
//!    one error response (400/404/405/502/504) when a step failed.
//!
//! The handler never fails outward: every outcome is a response, counted and logged once.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod body;
pub mod client_body;
pub mod forward;
pub mod headers;

use crate::config::Config;
use crate::error::ProxyError;
use crate::h1::NativeUpstream;
use crate::layer::{MirrorLayer, MirroredBody, TeedRequestBody};
use crate::router::{request_host, RouteMatch, Router};
use crate::shadow::Mirror;
use crate::telemetry::metrics::method_index;
use crate::telemetry::Metrics;
use body::{Completion, ResponseBody};
use client_body::{BodyWatch, ClientBody};
use forward::{ForwardError, UpstreamBody, UpstreamClient};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub(crate) use crate::router::{routing_host, strip_port};

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The listener's address (for the log line of a panic in the connection's task).
    pub listener: Option<SocketAddr>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as an `X-Forwarded-For` element, formatted once per connection.
    pub client_address: HeaderValue,
    /// `http` (TLS listeners will say `https`).
    pub proto: &'static str,
    /// Keep incoming `X-Forwarded-Proto`/`-Host`.
    pub trust_forwarded_headers: bool,
    /// The listener's `client_body_timeout`: the longest pause a request body may make.
    pub client_body_timeout: std::time::Duration,
    /// The listener's `Via` elements (`None`: `via = false`), made once per listener.
    pub via: Option<headers::Via>,
}

/// Per-route settings the handler needs on every request, resolved once at start.
struct RouteTarget {
    upstream: usize,
    host_rewrite: Option<HeaderValue>,
}

/// The body sent upstream: the client's, streamed, with a capped copy when mirrored.
pub type RequestBody = TeedRequestBody<ClientBody>;

/// What the primary returned, its body captured for comparison when the request is mirrored.
type Forwarded = Response<MirroredBody<UpstreamBody>>;

/// The request handler shared by all connections of all listeners.
pub struct Proxy {
    router: Router,
    routes: Vec<RouteTarget>,
    upstreams: Vec<UpstreamClient<RequestBody>>,
    /// The same upstreams for the native engine; `None` for h2c upstreams (hyper's).
    native_upstreams: Vec<Option<NativeUpstream>>,
    metrics: Arc<Metrics>,
    /// Mirrors the requests sent to the primary and captures its answers.
    mirroring: MirrorLayer,
}

impl Proxy {
    /// Builds the handler: the router, one pooled client per upstream, and the metric handles.
    pub fn new(config: &Config) -> Proxy {
        let router = Router::new(&config.routes);
        let metrics = Arc::new(Metrics::new(
            router.labels(),
            &Mirror::route_shadow_names(config),
        ));
        let mirror = Arc::new(Mirror::new(config, metrics.clone()));
        let mirroring = MirrorLayer::new(mirror, config.mirror.max_response_body_bytes);
        let upstreams: Vec<UpstreamClient<RequestBody>> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| UpstreamClient::new(name, upstream))
            .collect();
        // Both engines use one set of idle sockets per HTTP/1 upstream.
        let native_upstreams = config
            .upstreams
            .iter()
            .zip(&upstreams)
            .map(|((name, upstream), client)| {
                client
                    .native_pool()
                    .map(|pool| NativeUpstream::new(name, upstream, pool.clone()))
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|route| RouteTarget {
                // `upstreams` was built in `config.upstreams` order: the order ids index.
                upstream: route.primary.id().index(),
                host_rewrite: route
                    .host_rewrite
                    .as_deref()
                    .and_then(|host| HeaderValue::from_str(host).ok()),
            })
            .collect();
        Proxy {
            router,
            routes,
            upstreams,
            native_upstreams,
            metrics,
            mirroring,
        }
    }

    /// The mirroring engine (its dispatchers are started by the app).
    pub fn mirror(&self) -> &Arc<Mirror> {
        self.mirroring.mirror()
    }

    /// The router (the native engine routes with it too).
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// For the native engine: the upstream index and Host rewrite of a route it may serve
    /// itself — one towards an HTTP/1 upstream.
    pub(crate) fn native_target(&self, route: usize) -> Option<(usize, Option<&[u8]>)> {
        let target = self.routes.get(route)?;
        self.native_upstreams.get(target.upstream)?.as_ref()?;
        Some((
            target.upstream,
            target.host_rewrite.as_ref().map(HeaderValue::as_bytes),
        ))
    }

    /// Cap on the primary response body kept for comparison.
    pub(crate) fn max_response_body_bytes(&self) -> usize {
        self.mirroring.max_response_body_bytes()
    }

    /// The native engine's view of an upstream.
    pub(crate) fn native_upstream(&self, upstream: usize) -> Option<&NativeUpstream> {
        self.native_upstreams.get(upstream)?.as_ref()
    }

    /// The metrics this proxy records into (rendered by the admin port).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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
        let found = self.router.find(host.as_deref(), request.uri().path());
        let route_key = found.map(|m| (m.route, m.label));
        let route_label = found
            .and_then(|m| self.router.labels().get(m.route)?.get(m.label))
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
        // Counts the request if hyper drops this future before it is answered: the client
        // closed its connection or reset its stream meanwhile.
        let mut pending = Pending {
            unanswered: Unanswered::new(&self.metrics, route_key, method, started),
            request_id: None,
        };
        // Boxed: the forwarding state machine is large, and hyper moves the handler's future
        // several times; moving a pointer is cheaper than moving the state (see
        // docs/PERFORMANCE.md, "What bought what", 4e36b76).
        let forwarding =
            Box::pin(self.forward(request, found, connection, &span, &mut pending.request_id));
        let result = forwarding.instrument(span.clone()).await;
        pending.unanswered.settle();
        let request_id = pending.request_id.take();
        let route_metrics = self.metrics.route(route_key);
        let completion = Some(Completion::new(self.metrics.clone(), route_key, started));
        match result {
            Ok(mut response) => {
                self.metrics
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
                let status = error.status();
                self.metrics.record_request(route_metrics, method, status);
                self.metrics.record_error(route_metrics, error.reason());
                let request_id = request_id
                    .as_ref()
                    .and_then(|id: &HeaderValue| id.to_str().ok())
                    .unwrap_or("-");
                span.in_scope(|| {
                    error.log_failed(request_method.as_str(), route_label, request_id)
                });
                let mut response =
                    Response::new(ResponseBody::full(error.client_message(), completion));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                if status == http::StatusCode::BAD_REQUEST {
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
        request: Request<Incoming>,
        route: Option<RouteMatch>,
        connection: &ConnectionInfo,
        span: &tracing::Span,
        request_id_out: &mut Option<HeaderValue>,
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
        if request.method() == Method::CONNECT {
            return Err(ProxyError::Unsupported("CONNECT is not supported\n"));
        }
        let found = route.ok_or(ProxyError::NoRoute)?;
        let target = self.routes.get(found.route).ok_or(ProxyError::NoRoute)?;
        let upstream = self
            .upstreams
            .get(target.upstream)
            .ok_or(ProxyError::NoRoute)?;

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
            },
        );
        if let Ok(id) = request_id.to_str() {
            span.record("request_id", id);
        }
        *request_id_out = Some(request_id);
        let (body, watch) = ClientBody::new(body, connection.client_body_timeout);
        // The layer tees the request as it stands now (routed here, not again) and captures
        // the answer; the request target becomes the upstream's only after the copy is planned.
        // Its two halves around our own await, so no second future is built and moved.
        let (request, capture) = self
            .mirroring
            .begin(Some(found), Request::from_parts(parts, body));
        let (mut parts, body) = request.into_parts();
        parts.uri = upstream
            .uri_for(parts.uri.path_and_query())
            .map_err(|_| ProxyError::Unsupported("bad request target\n"))?;
        let response = match upstream.send(Request::from_parts(parts, body)).await {
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

/// A request that reached the router and has not been counted yet. Settled when it is
/// counted with its status; dropped unsettled — its future was dropped before an answer:
/// hyper drops the handler when the client closes its connection or resets its stream
/// while the upstream is still thinking, and a connection still busy when the shutdown
/// grace period ends is aborted — it counts the request once as `client_closed` (nginx's
/// 499) and logs it at `info`. The upstream request, owned by the same future, is abandoned
/// with it. Kept small: it lives in every native connection's task.
pub(crate) struct Unanswered<'a> {
    metrics: &'a Metrics,
    route: Option<(u32, u32)>,
    started: Instant,
    method: u8,
    settled: bool,
}

impl<'a> Unanswered<'a> {
    /// A request of `method` (index in [`METHODS`](crate::telemetry::metrics::METHODS))
    /// on `route`, under way since `started`.
    #[inline]
    pub(crate) fn new(
        metrics: &'a Metrics,
        route: Option<(usize, usize)>,
        method: usize,
        started: Instant,
    ) -> Unanswered<'a> {
        Unanswered {
            metrics,
            route: route.and_then(|(route, label)| {
                Some((u32::try_from(route).ok()?, u32::try_from(label).ok()?))
            }),
            started,
            method: u8::try_from(method).unwrap_or(u8::MAX),
            settled: false,
        }
    }

    /// When the request started.
    #[inline]
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The request is counted elsewhere (answered, or failed with a status).
    #[inline]
    pub(crate) fn settle(&mut self) {
        self.settled = true;
    }

    /// Counts and logs the request as `client_closed`, once (`request_id` for the log).
    #[cold]
    pub(crate) fn abandoned(&mut self, request_id: &str) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let key = self
            .route
            .map(|(route, label)| (route as usize, label as usize));
        let route = self.metrics.route(key);
        let method = usize::from(self.method);
        self.metrics.record_client_closed(route, method);
        let waited = self.started.elapsed();
        if key.is_some() {
            self.metrics
                .record_primary_duration(route, waited.as_secs_f64());
        }
        let methods = &crate::telemetry::metrics::METHODS;
        let method = methods.get(method).copied().unwrap_or("other");
        crate::error::log_client_closed(method, route.label(), request_id, waited);
    }
}

impl Drop for Unanswered<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.settled {
            self.abandoned("-");
        }
    }
}

/// The hyper path's [`Unanswered`], with the request id once it is known (for the log).
struct Pending<'a> {
    unanswered: Unanswered<'a>,
    request_id: Option<HeaderValue>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.unanswered.settled {
            let id = self.request_id.as_ref().and_then(|id| id.to_str().ok());
            self.unanswered.abandoned(id.unwrap_or("-"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
