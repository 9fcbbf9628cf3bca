//! Every metric shadowtap exports: names, label sets, buckets, and pre-registered handles.
//!
//! Names live here and nowhere else (they are a public contract: dashboards depend on
//! them). Each proxy instance owns its own Prometheus recorder instead of the process-wide
//! global, so several instances (tests, `demo`) never mix their numbers. Handles are
//! resolved once per label set and cached, so the request path does an atomic add, not a
//! registry lookup.

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::sync::OnceLock;

/// `shadowtap_requests_total{route,method,status_class}`: live requests answered.
pub const REQUESTS_TOTAL: &str = "shadowtap_requests_total";
/// `shadowtap_request_duration_seconds{route,target}`: request start to last body byte.
pub const REQUEST_DURATION_SECONDS: &str = "shadowtap_request_duration_seconds";
/// `shadowtap_proxy_errors_total{route,reason}`: requests the proxy answered itself.
pub const PROXY_ERRORS_TOTAL: &str = "shadowtap_proxy_errors_total";
/// `shadowtap_connections_active`: open client connections.
pub const CONNECTIONS_ACTIVE: &str = "shadowtap_connections_active";
/// `shadowtap_connections_total`: client connections accepted.
pub const CONNECTIONS_TOTAL: &str = "shadowtap_connections_total";

/// Label value of `route` for requests no route matched.
pub const NO_ROUTE_LABEL: &str = "none";

/// Request-duration buckets in seconds: 100 µs (a loopback hop) to 30 s (a default timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The `method` label: the common methods by name, anything else as `other`, so a client
/// cannot grow the label set.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// Index of a method in [`METHODS`].
pub fn method_index(method: &http::Method) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

/// The `status_class` label values.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index of a status in [`STATUS_CLASSES`].
pub fn status_class_index(status: http::StatusCode) -> usize {
    (usize::from(status.as_u16() / 100)).clamp(1, 5) - 1
}

/// Why the proxy answered a request itself (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// The request was malformed or ambiguous (400).
    BadRequest,
    /// No route matched (404).
    NoRoute,
    /// The upstream could not be reached (502).
    UpstreamUnreachable,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The upstream failed in some other way, e.g. closed the connection (502).
    UpstreamError,
}

impl ErrorReason {
    /// Every reason, in label-index order.
    pub const ALL: [ErrorReason; 5] = [
        ErrorReason::BadRequest,
        ErrorReason::NoRoute,
        ErrorReason::UpstreamUnreachable,
        ErrorReason::UpstreamTimeout,
        ErrorReason::UpstreamError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::BadRequest => "bad_request",
            ErrorReason::NoRoute => "no_route",
            ErrorReason::UpstreamUnreachable => "upstream_unreachable",
            ErrorReason::UpstreamTimeout => "upstream_timeout",
            ErrorReason::UpstreamError => "upstream_error",
        }
    }
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Handles for one `route` label value, registered lazily so unused combinations are not
/// exported as zeros.
pub struct RouteMetrics {
    route: String,
    requests: [[OnceLock<Counter>; STATUS_CLASSES.len()]; METHODS.len()],
    errors: [OnceLock<Counter>; ErrorReason::ALL.len()],
    primary_duration: OnceLock<Histogram>,
}

/// A proxy instance's metrics: its recorder, the handle that renders `/metrics`, and the
/// per-route handles.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    routes: Vec<Vec<RouteMetrics>>,
    no_route: RouteMetrics,
    connections_active: Gauge,
    connections_total: Counter,
}

impl Metrics {
    /// Builds a recorder with this crate's buckets and describes every metric.
    /// `route_labels[route][label]` are the label values the router can produce.
    pub fn new(route_labels: &[Vec<String>]) -> Metrics {
        let builder = PrometheusBuilder::new();
        let recorder = match builder.set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.into()),
            DURATION_BUCKETS,
        ) {
            Ok(builder) => builder.build_recorder(),
            // Only fails on an empty bucket list, which DURATION_BUCKETS is not.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        describe(&recorder);
        let handle = recorder.handle();
        let routes = route_labels
            .iter()
            .map(|labels| {
                labels
                    .iter()
                    .map(|label| RouteMetrics::new(label))
                    .collect()
            })
            .collect();
        let connections_active =
            recorder.register_gauge(&Key::from_name(CONNECTIONS_ACTIVE), &METADATA);
        let connections_total =
            recorder.register_counter(&Key::from_name(CONNECTIONS_TOTAL), &METADATA);
        Metrics {
            recorder,
            handle,
            routes,
            no_route: RouteMetrics::new(NO_ROUTE_LABEL),
            connections_active,
            connections_total,
        }
    }

    /// The handles for a route label, or the `none` bucket.
    pub fn route(&self, route: Option<(usize, usize)>) -> &RouteMetrics {
        route
            .and_then(|(route, label)| self.routes.get(route)?.get(label))
            .unwrap_or(&self.no_route)
    }

    /// Counts one finished request.
    pub fn record_request(&self, route: &RouteMetrics, method: usize, status: http::StatusCode) {
        let slot = &route.requests[method.min(METHODS.len() - 1)][status_class_index(status)];
        slot.get_or_init(|| {
            self.recorder.register_counter(
                &Key::from_parts(
                    REQUESTS_TOTAL,
                    vec![
                        Label::new("route", route.route.clone()),
                        Label::new("method", METHODS[method.min(METHODS.len() - 1)]),
                        Label::new("status_class", STATUS_CLASSES[status_class_index(status)]),
                    ],
                ),
                &METADATA,
            )
        })
        .increment(1);
    }

    /// Records how long a primary request took, first byte in to last byte out.
    pub fn record_primary_duration(&self, route: &RouteMetrics, seconds: f64) {
        route
            .primary_duration
            .get_or_init(|| {
                self.recorder.register_histogram(
                    &Key::from_parts(
                        REQUEST_DURATION_SECONDS,
                        vec![
                            Label::new("route", route.route.clone()),
                            Label::new("target", "primary"),
                        ],
                    ),
                    &METADATA,
                )
            })
            .record(seconds);
    }

    /// Counts a response the proxy produced itself.
    pub fn record_error(&self, route: &RouteMetrics, reason: ErrorReason) {
        let index = ErrorReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        route.errors[index]
            .get_or_init(|| {
                self.recorder.register_counter(
                    &Key::from_parts(
                        PROXY_ERRORS_TOTAL,
                        vec![
                            Label::new("route", route.route.clone()),
                            Label::new("reason", reason.as_str()),
                        ],
                    ),
                    &METADATA,
                )
            })
            .increment(1);
    }

    /// A client connection opened.
    pub fn connection_opened(&self) {
        self.connections_total.increment(1);
        self.connections_active.increment(1.0);
    }

    /// A client connection closed.
    pub fn connection_closed(&self) {
        self.connections_active.decrement(1.0);
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recent histogram samples into buckets; called periodically so idle scrapes stay cheap.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

impl RouteMetrics {
    fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            requests: Default::default(),
            errors: Default::default(),
            primary_duration: OnceLock::new(),
        }
    }
}

fn describe(recorder: &PrometheusRecorder) {
    let help = |recorder: &PrometheusRecorder,
                name: &'static str,
                unit: Option<Unit>,
                text: &'static str| {
        recorder.describe_counter(
            KeyName::from_const_str(name),
            unit,
            SharedString::const_str(text),
        );
    };
    help(
        recorder,
        REQUESTS_TOTAL,
        None,
        "Live requests answered, by route template, method and status class.",
    );
    help(
        recorder,
        PROXY_ERRORS_TOTAL,
        None,
        "Requests answered by the proxy itself (400, 404, 502, 504), by reason.",
    );
    help(
        recorder,
        CONNECTIONS_TOTAL,
        None,
        "Client connections accepted.",
    );
    recorder.describe_gauge(
        KeyName::from_const_str(CONNECTIONS_ACTIVE),
        None,
        SharedString::const_str("Client connections open now."),
    );
    recorder.describe_histogram(
        KeyName::from_const_str(REQUEST_DURATION_SECONDS),
        Some(Unit::Seconds),
        SharedString::const_str(
            "Time from request received to last response byte sent, by route and target.",
        ),
    );
}
