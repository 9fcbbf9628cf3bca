//! What both engines know of a client connection, and of a request not yet answered.
//!
//! The listener fills a [`ConnectionInfo`] once per connection and hands it to whichever
//! engine serves the connection (the native HTTP/1 engine or hyper's); the connection's
//! supervisor keeps it for the log line of a panic. `Unanswered` counts a request whose
//! future was dropped before it was answered, the same way on both engines. Both sit below
//! the engines so neither has to reach into the other for them.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::headers;
use crate::telemetry::Metrics;
use http::header::HeaderValue;
use std::net::SocketAddr;
use std::time::Instant;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The listener's address (for the log line of a panic in the connection's task).
    pub listener: Option<SocketAddr>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as an `X-Forwarded-For` element, formatted once per connection.
    pub client_address: HeaderValue,
    /// `http`, or `https` on a TLS listener.
    pub proto: &'static str,
    /// Keep incoming `X-Forwarded-Proto`/`-Host`.
    pub trust_forwarded_headers: bool,
    /// The listener's `client_body_timeout`: the longest pause a request body may make.
    pub client_body_timeout: std::time::Duration,
    /// The listener's `Via` elements (`None`: `via = false`), made once per listener.
    pub via: Option<headers::Via>,
    /// A TLS listener's `client_subject_header` and this client's verified subject. Boxed:
    /// every plaintext connection carries the `None`, and it should cost one word.
    pub client_subject: Option<Box<headers::ClientSubject>>,
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

    /// Whether the request was counted already (answered, failed, or abandoned).
    #[inline]
    pub(crate) fn is_settled(&self) -> bool {
        self.settled
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
