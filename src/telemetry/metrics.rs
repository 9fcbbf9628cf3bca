//! Every metric shadowtap exports: names, label sets, buckets, and pre-registered handles.
//!
//! Names live here and nowhere else (they are a public contract: dashboards depend on
//! them). Each proxy instance owns its own Prometheus recorder instead of the process-wide
//! global, so several instances (tests, `demo`) never mix their numbers. Handles are
//! resolved once per label set and cached, so the request path does an atomic add, not a
//! registry lookup.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::sync::{Arc, Mutex, OnceLock};

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
/// `shadowtap_build_info{version,rustc_version,git_commit}`: always 1; the labels say which
/// build runs (join on it in queries, as with Prometheus's own `*_build_info`).
pub const BUILD_INFO: &str = "shadowtap_build_info";
/// The standard process metrics, named as every Prometheus client library names them, read
/// from the OS (metrics-process) on each scrape ([`Metrics::collect_process`]).
pub const PROCESS_METRICS: [&str; 8] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
];
/// `shadowtap_http1_handovers_total{reason}`: client connections the native HTTP/1.1 engine
/// handed to hyper, by what the first request it did not serve needed.
pub const HTTP1_HANDOVERS_TOTAL: &str = "shadowtap_http1_handovers_total";
/// `shadowtap_task_panics_total{task}`: data-path tasks that panicked (caught, logged at
/// ERROR, and ended; see [`crate::supervise`]).
pub const TASK_PANICS_TOTAL: &str = "shadowtap_task_panics_total";

/// `shadowtap_tls_handshakes_total{listener,version,alpn}`: TLS handshakes completed on a
/// listener, by protocol version (`TLSv1.2`, `TLSv1.3`) and ALPN outcome (`h2`, `http/1.1`,
/// `none`).
pub const TLS_HANDSHAKES_TOTAL: &str = "shadowtap_tls_handshakes_total";
/// `shadowtap_tls_handshake_errors_total{listener,reason}`: TLS handshakes that failed, by
/// [`TlsHandshakeError`].
pub const TLS_HANDSHAKE_ERRORS_TOTAL: &str = "shadowtap_tls_handshake_errors_total";
/// `shadowtap_tls_certificate_expiry_timestamp_seconds{listener,server_name}`: the notAfter
/// of each served leaf certificate (`server_name="default"` for the default certificate), so
/// an alert can fire before it lapses.
pub const TLS_CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS: &str =
    "shadowtap_tls_certificate_expiry_timestamp_seconds";
/// `shadowtap_tls_reloads_total{listener,result}`: changed certificate files taken in
/// (`success`) or refused, the old certificate kept (`failure`).
pub const TLS_RELOADS_TOTAL: &str = "shadowtap_tls_reloads_total";

/// `shadowtap_config_last_reload_successful`: 1 when the last config reload (or the start)
/// succeeded, 0 when it was refused and the previous config stayed in force.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "shadowtap_config_last_reload_successful";
/// `shadowtap_config_last_reload_success_timestamp_seconds`: Unix time of the last config
/// that took effect (the start, or a successful reload).
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: &str =
    "shadowtap_config_last_reload_success_timestamp_seconds";
/// `shadowtap_config_reloads_total{result}`: config reloads, `success` or `failure`.
pub const CONFIG_RELOADS_TOTAL: &str = "shadowtap_config_reloads_total";

/// `shadowtap_mirror_requests_total{route,shadow,outcome}`: what became of each request
/// sampled for a shadow; every sampled request ends in exactly one outcome.
pub const MIRROR_REQUESTS_TOTAL: &str = "shadowtap_mirror_requests_total";
/// `shadowtap_mirror_queue_depth{shadow}`: jobs waiting for a shadow.
pub const MIRROR_QUEUE_DEPTH: &str = "shadowtap_mirror_queue_depth";
/// `shadowtap_mirror_in_flight{shadow}`: shadow requests under way.
pub const MIRROR_IN_FLIGHT: &str = "shadowtap_mirror_in_flight";
/// `shadowtap_mirror_circuit_state{shadow}`: 0 closed, 1 open, 2 half-open.
pub const MIRROR_CIRCUIT_STATE: &str = "shadowtap_mirror_circuit_state";
/// `shadowtap_mirror_buffered_bytes`: bytes of bodies the mirror side holds now, against
/// `mirror.max_buffered_bytes`.
pub const MIRROR_BUFFERED_BYTES: &str = "shadowtap_mirror_buffered_bytes";
/// `shadowtap_mirror_loop_guard_total{route}`: requests that arrived carrying the shadow
/// marker and so were served but not mirrored again.
pub const MIRROR_LOOP_GUARD_TOTAL: &str = "shadowtap_mirror_loop_guard_total";
/// `shadowtap_mirror_pairs_total{route,shadow,result}`: completed shadow requests handed on
/// for comparison (`complete`) or not, because the primary's answer could not be kept
/// (`primary_unavailable`: the primary failed or its answer was cut short).
pub const MIRROR_PAIRS_TOTAL: &str = "shadowtap_mirror_pairs_total";
/// `shadowtap_mirror_paused{route,shadow}`: 1 while mirroring from a route (by its name) to
/// a shadow is paused at runtime (`PUT /api/v1/mirror`), globally, for the route or for the
/// shadow; 0 otherwise.
pub const MIRROR_PAUSED: &str = "shadowtap_mirror_paused";
/// `shadowtap_admin_unauthorized_total{endpoint}`: admin requests refused with a 401 for a
/// missing or wrong bearer token, by the endpoint asked for (a fixed set).
pub const ADMIN_UNAUTHORIZED_TOTAL: &str = "shadowtap_admin_unauthorized_total";

/// `shadowtap_comparisons_total{route,shadow,result}`: compared pairs by `match`,
/// `diverged`, `noise_only` or `unjudged` (nothing differs but the bodies could not be judged).
pub const COMPARISONS_TOTAL: &str = "shadowtap_comparisons_total";
/// `shadowtap_divergences_total{route,shadow,kind}`: diverged pairs by what differed
/// (`status`, `header`, `body`, `latency`; a pair counts once per kind).
pub const DIVERGENCES_TOTAL: &str = "shadowtap_divergences_total";
/// `shadowtap_latency_delta_seconds{route,shadow}`: shadow latency minus primary latency.
pub const LATENCY_DELTA_SECONDS: &str = "shadowtap_latency_delta_seconds";
/// `shadowtap_compare_dropped_total{reason}`: pairs not compared (`queue_full`: the
/// comparison workers fell behind).
pub const COMPARE_DROPPED_TOTAL: &str = "shadowtap_compare_dropped_total";
/// Recorded exchanges by result: written, dropped_* (by reason), error.
pub const RECORD_ENTRIES_TOTAL: &str = "shadowtap_record_entries_total";
/// Bytes appended to the recording.
pub const RECORD_BYTES_TOTAL: &str = "shadowtap_record_bytes_total";
/// `shadowtap_compare_body_skipped_total{route,shadow,reason}`: pairs whose bodies could not
/// be judged (`body_truncated`, `memory_budget`, `decompression_bomb`, `corrupt_encoding`).
pub const COMPARE_BODY_SKIPPED_TOTAL: &str = "shadowtap_compare_body_skipped_total";

/// `shadowtap_upgrades_total{route,protocol}`: connections switched to another protocol
/// (`101`, or an HTTP/2 extended CONNECT answered `200`), by [`UpgradeProtocol`].
pub const UPGRADES_TOTAL: &str = "shadowtap_upgrades_total";
/// `shadowtap_upgraded_connections{route}`: upgraded connections open now.
pub const UPGRADED_CONNECTIONS: &str = "shadowtap_upgraded_connections";
/// `shadowtap_upgraded_bytes_total{route,direction}`: bytes spliced through upgraded
/// connections, `to_upstream` or `to_client`.
pub const UPGRADED_BYTES_TOTAL: &str = "shadowtap_upgraded_bytes_total";
/// `shadowtap_upgraded_connections_closed_total{route,reason}`: upgraded connections closed,
/// by [`UpgradeClosed`] (`shutdown`: still open when the shutdown grace period ran out).
pub const UPGRADED_CONNECTIONS_CLOSED_TOTAL: &str = "shadowtap_upgraded_connections_closed_total";

/// Latency-delta buckets in seconds, symmetric around zero (shadow faster is negative).
pub const DELTA_BUCKETS: &[f64] = &[
    -5.0, -1.0, -0.5, -0.25, -0.1, -0.05, -0.025, -0.01, -0.005, -0.001, 0.0, 0.001, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

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

/// The `method` label of methods not in [`METHODS`] by name (its last entry).
pub const OTHER_METHOD: &str = "other";

/// Index of a method in [`METHODS`] (a method spelt `other` is counted as `other` anyway).
pub fn method_index(method: &http::Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

/// The `status_class` label values: the status's class, or `client_closed` for a request
/// whose client closed its connection before the response head (nginx's 499).
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "client_closed"];

/// Index of `client_closed` in [`STATUS_CLASSES`].
const CLIENT_CLOSED_CLASS: usize = 5;

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
    /// The TLS handshake with the upstream failed: its certificate was not trusted or not for
    /// the verification name, or it refused ours (502).
    UpstreamTls,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The upstream failed in some other way, e.g. closed the connection (502).
    UpstreamError,
    /// The upstream's body broke after the status was sent (the client sees a cut stream).
    UpstreamBodyError,
    /// The client paused its request body longer than `client_body_timeout` (408).
    ClientTimeout,
    /// The client's request body failed mid-upload: it closed, reset or broke its framing
    /// (400; usually nobody is left to read it).
    ClientAborted,
    /// The client closed its connection (or reset its stream) while the request waited on
    /// the upstream: the upstream request was abandoned and nothing was answered (nginx's 499).
    ClientClosed,
}

impl ErrorReason {
    /// Every reason, in label-index order.
    pub const ALL: [ErrorReason; 10] = [
        ErrorReason::BadRequest,
        ErrorReason::NoRoute,
        ErrorReason::UpstreamUnreachable,
        ErrorReason::UpstreamTls,
        ErrorReason::UpstreamTimeout,
        ErrorReason::UpstreamError,
        ErrorReason::UpstreamBodyError,
        ErrorReason::ClientTimeout,
        ErrorReason::ClientAborted,
        ErrorReason::ClientClosed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::BadRequest => "bad_request",
            ErrorReason::NoRoute => "no_route",
            ErrorReason::UpstreamUnreachable => "upstream_unreachable",
            ErrorReason::UpstreamTls => "upstream_tls",
            ErrorReason::UpstreamTimeout => "upstream_timeout",
            ErrorReason::UpstreamError => "upstream_error",
            ErrorReason::UpstreamBodyError => "upstream_body_error",
            ErrorReason::ClientTimeout => "client_timeout",
            ErrorReason::ClientAborted => "client_aborted",
            ErrorReason::ClientClosed => "client_closed",
        }
    }
}

/// What became of a request sampled for a shadow (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// The shadow answered (any status) within the deadline.
    Completed,
    /// The shadow request failed: refused, reset, protocol error.
    Error,
    /// The shadow did not finish within `mirror.timeout` (queue wait included).
    Timeout,
    /// The shadow's queue was full; the copy was dropped without waiting.
    DroppedQueueFull,
    /// The request body passed the route's `max_body_bytes`.
    DroppedBodyTooLarge,
    /// The client went away (closed, reset, paused past `client_body_timeout`, broke its
    /// framing) before its request body was whole.
    DroppedClientAborted,
    /// The primary failed (unreachable, reset, timed out) or answered without reading the
    /// whole request body while it was still arriving: the copy could not be completed.
    DroppedPrimaryFailed,
    /// The request body did not fit `mirror.max_buffered_bytes` with what the mirror already held.
    DroppedMemoryBudget,
    /// The method is not mirrored by this shadow (the side-effect policy).
    SkippedMethod,
    /// The shadow's circuit breaker is open.
    SkippedCircuitOpen,
    /// Mirroring is paused at runtime (`PUT /api/v1/mirror`) for this route or shadow.
    SkippedPaused,
    /// The request asked for a protocol upgrade (WebSocket and others): a stateful stream
    /// cannot be replayed safely, so it is never mirrored.
    SkippedUpgrade,
}

impl MirrorOutcome {
    /// Every outcome, in label-index order.
    pub const ALL: [MirrorOutcome; 12] = [
        MirrorOutcome::Completed,
        MirrorOutcome::Error,
        MirrorOutcome::Timeout,
        MirrorOutcome::DroppedQueueFull,
        MirrorOutcome::DroppedBodyTooLarge,
        MirrorOutcome::DroppedClientAborted,
        MirrorOutcome::DroppedPrimaryFailed,
        MirrorOutcome::DroppedMemoryBudget,
        MirrorOutcome::SkippedMethod,
        MirrorOutcome::SkippedCircuitOpen,
        MirrorOutcome::SkippedPaused,
        MirrorOutcome::SkippedUpgrade,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorOutcome::Completed => "completed",
            MirrorOutcome::Error => "error",
            MirrorOutcome::Timeout => "timeout",
            MirrorOutcome::DroppedQueueFull => "dropped_queue_full",
            MirrorOutcome::DroppedBodyTooLarge => "dropped_body_too_large",
            MirrorOutcome::DroppedClientAborted => "dropped_client_aborted",
            MirrorOutcome::DroppedPrimaryFailed => "dropped_primary_failed",
            MirrorOutcome::DroppedMemoryBudget => "dropped_memory_budget",
            MirrorOutcome::SkippedMethod => "skipped_method",
            MirrorOutcome::SkippedCircuitOpen => "skipped_circuit_open",
            MirrorOutcome::SkippedPaused => "skipped_paused",
            MirrorOutcome::SkippedUpgrade => "skipped_upgrade",
        }
    }

    fn index(self) -> usize {
        MirrorOutcome::ALL
            .iter()
            .position(|o| *o == self)
            .unwrap_or(0)
    }
}

/// The `protocol` label of `shadowtap_upgrades_total`, decided by the header rulebook.
pub use crate::header_rules::UpgradeProtocol;

/// Why an upgraded connection closed: the `reason` label of
/// `shadowtap_upgraded_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeClosed {
    /// Both sides ended their sending (each end passed on to the other).
    Ended,
    /// Nothing moved either way for the route's `upgrade_idle_timeout`.
    Idle,
    /// A side failed (reset, or a side never switched).
    Error,
    /// Still open when the shutdown grace period ran out: closed by the proxy.
    Shutdown,
}

impl UpgradeClosed {
    /// Every reason, in the order of [`UpgradeMeter`]'s counters.
    const ALL: [UpgradeClosed; 4] = [
        UpgradeClosed::Ended,
        UpgradeClosed::Idle,
        UpgradeClosed::Error,
        UpgradeClosed::Shutdown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeClosed::Ended => "ended",
            UpgradeClosed::Idle => "idle",
            UpgradeClosed::Error => "error",
            UpgradeClosed::Shutdown => "shutdown",
        }
    }
}

/// The handles of one upgraded connection: registered when it opens (upgrades are rare next
/// to requests, so a registry lookup there costs nothing on the request path); when it is
/// dropped the gauge is given back and the close counted, as `shutdown` unless
/// [`UpgradeMeter::closed`] said why (a meter dropped unsaid was dropped with its aborted
/// task, at the end of the grace period).
pub struct UpgradeMeter {
    open: Gauge,
    /// Bytes from the client to the upstream.
    pub to_upstream: Counter,
    /// Bytes from the upstream to the client.
    pub to_client: Counter,
    /// `shadowtap_upgraded_connections_closed_total`, in [`UpgradeClosed::ALL`] order.
    closes: [Counter; 4],
    reason: Option<UpgradeClosed>,
}

impl UpgradeMeter {
    /// Says why the connection closed, counted when the meter is dropped.
    pub fn closed(&mut self, reason: UpgradeClosed) {
        self.reason = Some(reason);
    }
}

impl Drop for UpgradeMeter {
    fn drop(&mut self) {
        let reason = match self.reason {
            Some(reason) => reason,
            // Unwinding from a panic in the splice: not the shutdown's doing.
            None if std::thread::panicking() => UpgradeClosed::Error,
            None => UpgradeClosed::Shutdown,
        };
        let at = UpgradeClosed::ALL
            .iter()
            .position(|known| *known == reason)
            .unwrap_or(0);
        if let Some(counter) = self.closes.get(at) {
            counter.increment(1);
        }
        // Last: a reader that sees the gauge back down sees the close counted.
        self.open.decrement(1.0);
    }
}

/// Whether a completed shadow request could be paired with the primary's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairResult {
    /// Both answers were kept and handed on.
    Complete,
    /// The primary's answer was not available (failed, aborted, or too large to keep).
    PrimaryUnavailable,
}

impl PairResult {
    fn as_str(self) -> &'static str {
        match self {
            PairResult::Complete => "complete",
            PairResult::PrimaryUnavailable => "primary_unavailable",
        }
    }
}

/// Gauges of one shadow upstream.
pub struct ShadowGauges {
    /// Jobs queued.
    pub queue_depth: Gauge,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Breaker state (0/1/2).
    pub circuit_state: Gauge,
}

/// Handles for one (route label, shadow) pair.
struct ShadowRouteMetrics {
    shadow: String,
    /// Comparison counters by (metric, label value), registered on first use: the values
    /// come from fixed enums, so the list stays a few dozen entries long.
    compared: Mutex<HandleCache<(&'static str, &'static str), Counter>>,
    /// Comparison histograms by metric name.
    compared_histograms: Mutex<HandleCache<&'static str, Histogram>>,
    outcomes: [OnceLock<Counter>; MirrorOutcome::ALL.len()],
    duration: OnceLock<Histogram>,
    pairs: [OnceLock<Counter>; 2],
}

/// Metric handles by a small key, found by a linear scan. Why not a `HashMap`: the keys are
/// a handful of static strings, and hashing them (SipHash) cost more per comparison than
/// the scan does (see docs/PERFORMANCE.md, "What bought what", cebecee).
struct HandleCache<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for HandleCache<K, V> {
    fn default() -> Self {
        HandleCache {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq, V> HandleCache<K, V> {
    /// The handle for `key`, made by `make` the first time.
    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> Option<&V> {
        let index = match self.entries.iter().position(|(known, _)| *known == key) {
            Some(index) => index,
            None => {
                self.entries.push((key, make()));
                self.entries.len().saturating_sub(1)
            }
        };
        self.entries.get(index).map(|(_, handle)| handle)
    }
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Handles for one `route` label value, registered lazily so unused combinations are not
/// exported as zeros.
pub struct RouteMetrics {
    route: Arc<str>,
    requests: [[OnceLock<Counter>; STATUS_CLASSES.len()]; METHODS.len()],
    errors: [OnceLock<Counter>; ErrorReason::ALL.len()],
    primary_duration: OnceLock<Histogram>,
    shadows: Vec<ShadowRouteMetrics>,
    loop_guard: OnceLock<Counter>,
}

/// A proxy instance's metrics: its recorder, the handle that renders `/metrics`, and the
/// per-route handles.
pub struct Metrics {
    /// Shared by every route table of this instance ([`Metrics::with_routes`]): one registry.
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    routes: Vec<Vec<RouteMetrics>>,
    no_route: RouteMetrics,
    connections_active: Gauge,
    connections_total: Counter,
    handovers: [Counter; Handover::ALL.len()],
    mirror_buffered_bytes: Gauge,
    process: metrics_process::Collector,
    task_panics: [Counter; Task::ALL.len()],
}

/// A kind of supervised data-path task (the `task` label of `shadowtap_task_panics_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A client connection (either engine).
    Connection,
    /// A shadow request.
    Shadow,
    /// A comparison of one pair (on a comparison worker).
    Compare,
}

impl Task {
    /// Every kind, in label order.
    pub const ALL: [Task; 3] = [Task::Connection, Task::Shadow, Task::Compare];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Connection => "connection",
            Task::Shadow => "shadow",
            Task::Compare => "compare",
        }
    }
}

/// Why the native HTTP/1.1 engine handed a connection to hyper (the `reason` label of
/// `shadowtap_http1_handovers_total`). A bounded set: one per shape the engine leaves to hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// No route matched (hyper's path answers the 404).
    NoRoute,
    /// The HTTP/2 connection preface (h2c).
    H2c,
    /// An HTTP/1.0 request.
    Http10,
    /// A body framed by `Transfer-Encoding` (chunked uploads, and every smuggling shape
    /// that carries one).
    TransferEncoding,
    /// `Expect: 100-continue`.
    Expect,
    /// `Upgrade`, or `Connection` naming fields other than keep-alive/close.
    ConnectionOptions,
    /// A head the parser refused, or with more fields than the engine takes.
    Unparsable,
    /// A head larger than `max_header_bytes` (hyper answers 431).
    HeadTooLarge,
    /// Any other shape: absolute-form or non-ASCII targets, a missing or repeated `Host`, an
    /// odd `Content-Length`, CONNECT, an h2c upstream.
    Other,
}

impl Handover {
    /// Every reason, in label order.
    pub const ALL: [Handover; 9] = [
        Handover::NoRoute,
        Handover::H2c,
        Handover::Http10,
        Handover::TransferEncoding,
        Handover::Expect,
        Handover::ConnectionOptions,
        Handover::Unparsable,
        Handover::HeadTooLarge,
        Handover::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Handover::NoRoute => "no_route",
            Handover::H2c => "h2c",
            Handover::Http10 => "http10",
            Handover::TransferEncoding => "transfer_encoding",
            Handover::Expect => "expect",
            Handover::ConnectionOptions => "connection_options",
            Handover::Unparsable => "unparsable",
            Handover::HeadTooLarge => "head_too_large",
            Handover::Other => "other",
        }
    }
}

/// Why a TLS handshake failed (the `reason` label of `shadowtap_tls_handshake_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsHandshakeError {
    /// Not done within the listener's `handshake_timeout`.
    Timeout,
    /// The first bytes were not a TLS ClientHello (plaintext HTTP, garbage, SSLv2).
    NotTls,
    /// The SNI matched no certificate and the listener has no default one.
    UnknownServerName,
    /// A client certificate was required and missing, or failed verification.
    ClientCertificate,
    /// Any other TLS failure (no common version or cipher suite, a bad message, an alert).
    Protocol,
    /// The connection failed or closed during the handshake.
    Io,
}

impl TlsHandshakeError {
    /// Every reason, in label order.
    pub const ALL: [TlsHandshakeError; 6] = [
        TlsHandshakeError::Timeout,
        TlsHandshakeError::NotTls,
        TlsHandshakeError::UnknownServerName,
        TlsHandshakeError::ClientCertificate,
        TlsHandshakeError::Protocol,
        TlsHandshakeError::Io,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsHandshakeError::Timeout => "timeout",
            TlsHandshakeError::NotTls => "not_tls",
            TlsHandshakeError::UnknownServerName => "unknown_server_name",
            TlsHandshakeError::ClientCertificate => "client_certificate",
            TlsHandshakeError::Protocol => "protocol",
            TlsHandshakeError::Io => "io",
        }
    }
}

/// The `version` label values of `shadowtap_tls_handshakes_total`.
pub const TLS_VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];
/// The `alpn` label values of `shadowtap_tls_handshakes_total`.
pub const TLS_ALPN: [&str; 3] = ["h2", "http/1.1", "none"];

/// One TLS listener's counters, registered when the listener starts so that a failure
/// counter exists at 0 and can be alerted on.
pub struct TlsListenerMetrics {
    handshakes: [[Counter; TLS_ALPN.len()]; TLS_VERSIONS.len()],
    errors: [Counter; TlsHandshakeError::ALL.len()],
    /// `success`, `failure`.
    reloads: [Counter; 2],
}

impl TlsListenerMetrics {
    /// A handshake completed; `tls13` and `alpn` say what was negotiated.
    pub fn handshake(&self, tls13: bool, alpn: Option<&[u8]>) {
        let alpn = match alpn {
            Some(b"h2") => 0,
            Some(b"http/1.1") => 1,
            _ => 2,
        };
        let version = usize::from(tls13);
        if let Some(counter) = self.handshakes.get(version).and_then(|row| row.get(alpn)) {
            counter.increment(1);
        }
    }

    /// A handshake failed.
    pub fn handshake_failed(&self, reason: TlsHandshakeError) {
        let index = TlsHandshakeError::ALL.iter().position(|r| *r == reason);
        if let Some(counter) = index.and_then(|index| self.errors.get(index)) {
            counter.increment(1);
        }
    }

    /// A changed certificate was taken in (`true`) or refused (`false`).
    pub fn reloaded(&self, success: bool) {
        let [taken, refused] = &self.reloads;
        if success { taken } else { refused }.increment(1);
    }
}

impl Metrics {
    /// Registers the TLS counters of the listener labelled `listener`.
    pub fn tls_listener(&self, listener: &str) -> TlsListenerMetrics {
        let counter = |name, labels: &[(&'static str, &str)]| {
            let mut all = vec![("listener", listener)];
            all.extend_from_slice(labels);
            self.recorder.register_counter(&key(name, &all), &METADATA)
        };
        TlsListenerMetrics {
            handshakes: TLS_VERSIONS.map(|version| {
                TLS_ALPN.map(|alpn| {
                    counter(
                        TLS_HANDSHAKES_TOTAL,
                        &[("version", version), ("alpn", alpn)],
                    )
                })
            }),
            errors: TlsHandshakeError::ALL
                .map(|reason| counter(TLS_HANDSHAKE_ERRORS_TOTAL, &[("reason", reason.as_str())])),
            reloads: ["success", "failure"]
                .map(|result| counter(TLS_RELOADS_TOTAL, &[("result", result)])),
        }
    }

    /// Records a config reload's result (`true` also for the config the process started with,
    /// which counts no reload).
    pub fn config_reloaded(&self, success: bool, counted: bool) {
        let gauge = |name: &'static str| {
            self.recorder
                .register_gauge(&Key::from_name(name), &METADATA)
        };
        gauge(CONFIG_LAST_RELOAD_SUCCESSFUL).set(if success { 1.0 } else { 0.0 });
        if success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64());
            gauge(CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS).set(now);
        }
        for result in ["success", "failure"] {
            let counter = self.counter(CONFIG_RELOADS_TOTAL, &[("result", result)]);
            if counted && (result == "success") == success {
                counter.increment(1);
            }
        }
    }

    /// The expiry gauge of the certificate served for `server_name` on `listener`.
    pub fn tls_certificate_expiry(&self, listener: &str, server_name: &str) -> Gauge {
        self.recorder.register_gauge(
            &key(
                TLS_CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS,
                &[("listener", listener), ("server_name", server_name)],
            ),
            &METADATA,
        )
    }
}

impl Metrics {
    /// Builds a recorder with this crate's buckets and describes every metric.
    /// `route_labels[route][label]` are the label values the router can produce.
    /// `route_shadows[route]` names the shadows of each route, in policy order.
    pub fn new(route_labels: &[Vec<String>], route_shadows: &[Vec<String>]) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_DURATION_SECONDS.into()),
                DURATION_BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(LATENCY_DELTA_SECONDS.into()),
                    DELTA_BUCKETS,
                )
            })
            // Only fails on an empty bucket list, which neither list is.
            .map_or_else(
                |_| PrometheusBuilder::new().build_recorder(),
                PrometheusBuilder::build_recorder,
            );
        describe(&recorder);
        let handle = recorder.handle();
        let routes = route_tables(route_labels, route_shadows);
        let connections_active =
            recorder.register_gauge(&Key::from_name(CONNECTIONS_ACTIVE), &METADATA);
        let connections_total =
            recorder.register_counter(&Key::from_name(CONNECTIONS_TOTAL), &METADATA);
        let mirror_buffered_bytes =
            recorder.register_gauge(&Key::from_name(MIRROR_BUFFERED_BYTES), &METADATA);
        recorder
            .register_gauge(
                &key(
                    BUILD_INFO,
                    &[
                        ("version", env!("CARGO_PKG_VERSION")),
                        ("rustc_version", env!("SHADOWTAP_RUSTC_VERSION")),
                        ("git_commit", env!("SHADOWTAP_GIT_COMMIT")),
                    ],
                ),
                &METADATA,
            )
            .set(1.0);
        // metrics-process records through the `metrics` facade; pointing the facade at this
        // instance's recorder for the call keeps its numbers in this registry.
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        let handovers = Handover::ALL.map(|reason| {
            recorder.register_counter(
                &key(HTTP1_HANDOVERS_TOTAL, &[("reason", reason.as_str())]),
                &METADATA,
            )
        });
        // Registered up front: a panic counter that exists at 0 can be alerted on.
        let task_panics = Task::ALL.map(|task| {
            recorder.register_counter(
                &key(TASK_PANICS_TOTAL, &[("task", task.as_str())]),
                &METADATA,
            )
        });
        Metrics {
            task_panics,
            recorder: Arc::new(recorder),
            handle,
            routes,
            no_route: RouteMetrics::new(NO_ROUTE_LABEL, &[]),
            connections_active,
            connections_total,
            handovers,
            mirror_buffered_bytes,
            process,
        }
    }

    /// The same registry with the route handles of another route table: a reloaded config's.
    /// Every series keeps counting where it was (a name and labels are one series, whichever
    /// table registered it); the routes a reload removes stop growing but stay exported, as
    /// Prometheus expects of counters.
    pub fn with_routes(
        &self,
        route_labels: &[Vec<String>],
        route_shadows: &[Vec<String>],
    ) -> Metrics {
        Metrics {
            recorder: self.recorder.clone(),
            handle: self.handle.clone(),
            routes: route_tables(route_labels, route_shadows),
            no_route: RouteMetrics::new(NO_ROUTE_LABEL, &[]),
            connections_active: self.connections_active.clone(),
            connections_total: self.connections_total.clone(),
            handovers: self.handovers.clone(),
            mirror_buffered_bytes: self.mirror_buffered_bytes.clone(),
            process: self.process.clone(),
            task_panics: self.task_panics.clone(),
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
        self.record_request_class(route, method, status_class_index(status));
    }

    /// Counts a request whose client closed its connection before its response head, once:
    /// `status_class="client_closed"` and `reason="client_closed"`.
    pub fn record_client_closed(&self, route: &RouteMetrics, method: usize) {
        self.record_request_class(route, method, CLIENT_CLOSED_CLASS);
        self.record_error(route, ErrorReason::ClientClosed);
    }

    fn record_request_class(&self, route: &RouteMetrics, method: usize, class: usize) {
        let method = method.min(METHODS.len() - 1);
        let class = class.min(STATUS_CLASSES.len() - 1);
        let (Some(counters), Some(name), Some(class_name)) = (
            route.requests.get(method),
            METHODS.get(method),
            STATUS_CLASSES.get(class),
        ) else {
            return;
        };
        let Some(counter) = counters.get(class) else {
            return;
        };
        counter
            .get_or_init(|| {
                let labels = [
                    ("route", &*route.route),
                    ("method", *name),
                    ("status_class", *class_name),
                ];
                self.counter(REQUESTS_TOTAL, &labels)
            })
            .increment(1);
    }

    /// Records how long a primary request took, first byte in to last byte out.
    pub fn record_primary_duration(&self, route: &RouteMetrics, seconds: f64) {
        route
            .primary_duration
            .get_or_init(|| {
                let labels = [("route", &*route.route), ("target", "primary")];
                self.histogram(REQUEST_DURATION_SECONDS, &labels)
            })
            .record(seconds);
    }

    /// Counts a response the proxy produced itself.
    pub fn record_error(&self, route: &RouteMetrics, reason: ErrorReason) {
        let index = ErrorReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        let Some(slot) = route.errors.get(index) else {
            return;
        };
        slot.get_or_init(|| {
            let labels = [("route", &*route.route), ("reason", reason.as_str())];
            self.counter(PROXY_ERRORS_TOTAL, &labels)
        })
        .increment(1);
    }

    /// Counts the outcome of one request sampled for the route's `shadow`-th shadow.
    pub fn record_mirror(&self, route: &RouteMetrics, shadow: usize, outcome: MirrorOutcome) {
        let Some(entry) = route.shadows.get(shadow) else {
            return;
        };
        let Some(slot) = entry.outcomes.get(outcome.index()) else {
            return;
        };
        slot.get_or_init(|| {
            let labels = [
                ("route", &*route.route),
                ("shadow", entry.shadow.as_str()),
                ("outcome", outcome.as_str()),
            ];
            self.counter(MIRROR_REQUESTS_TOTAL, &labels)
        })
        .increment(1);
    }

    /// Counts one connection upgraded on `route` and opens its meter (the gauge counts it
    /// until the meter is dropped).
    pub fn upgraded(&self, route: &RouteMetrics, protocol: UpgradeProtocol) -> UpgradeMeter {
        let label = &*route.route;
        self.counter(
            UPGRADES_TOTAL,
            &[("route", label), ("protocol", protocol.as_str())],
        )
        .increment(1);
        let open = self.gauge(UPGRADED_CONNECTIONS, &[("route", label)]);
        open.increment(1.0);
        UpgradeMeter {
            open,
            to_upstream: self.counter(
                UPGRADED_BYTES_TOTAL,
                &[("route", label), ("direction", "to_upstream")],
            ),
            to_client: self.counter(
                UPGRADED_BYTES_TOTAL,
                &[("route", label), ("direction", "to_client")],
            ),
            closes: UpgradeClosed::ALL.map(|reason| {
                self.counter(
                    UPGRADED_CONNECTIONS_CLOSED_TOTAL,
                    &[("route", label), ("reason", reason.as_str())],
                )
            }),
            reason: None,
        }
    }

    /// Records a shadow request's duration (dispatch to last body byte).
    pub fn record_shadow_duration(&self, route: &RouteMetrics, shadow: usize, seconds: f64) {
        let Some(entry) = route.shadows.get(shadow) else {
            return;
        };
        entry
            .duration
            .get_or_init(|| {
                // `shadow` too: two shadows of one route must not share a histogram.
                let labels = [
                    ("route", &*route.route),
                    ("target", "shadow"),
                    ("shadow", entry.shadow.as_str()),
                ];
                self.histogram(REQUEST_DURATION_SECONDS, &labels)
            })
            .record(seconds);
    }

    /// The counter `name{route, shadow, <label>=<value>}` of a (route label, shadow) pair,
    /// registered once and then served from a cache: the comparison workers record a few of
    /// these per pair, and registering by key costs allocations and hashing each time.
    /// `None` for an unknown shadow position.
    pub fn pair_counter(
        &self,
        route: &RouteMetrics,
        shadow: usize,
        name: &'static str,
        label: (&'static str, &'static str),
    ) -> Option<Counter> {
        let entry = route.shadows.get(shadow)?;
        let mut cache = entry.compared.lock().ok()?;
        let counter = cache.get_or_insert_with((name, label.1), || {
            self.counter(
                name,
                &[
                    ("route", &*route.route),
                    ("shadow", entry.shadow.as_str()),
                    label,
                ],
            )
        })?;
        Some(counter.clone())
    }

    /// The histogram `name{route, shadow}` of a (route label, shadow) pair, cached like
    /// [`Metrics::pair_counter`].
    pub fn pair_histogram(
        &self,
        route: &RouteMetrics,
        shadow: usize,
        name: &'static str,
    ) -> Option<Histogram> {
        let entry = route.shadows.get(shadow)?;
        let mut cache = entry.compared_histograms.lock().ok()?;
        let histogram = cache.get_or_insert_with(name, || {
            self.histogram(
                name,
                &[("route", &*route.route), ("shadow", entry.shadow.as_str())],
            )
        })?;
        Some(histogram.clone())
    }

    /// Counts a completed shadow request by whether it could be paired with the primary.
    pub fn record_pair(&self, route: &RouteMetrics, shadow: usize, result: PairResult) {
        let Some(entry) = route.shadows.get(shadow) else {
            return;
        };
        let index = usize::from(result == PairResult::PrimaryUnavailable);
        let Some(slot) = entry.pairs.get(index) else {
            return;
        };
        slot.get_or_init(|| {
            let labels = [
                ("route", &*route.route),
                ("shadow", entry.shadow.as_str()),
                ("result", result.as_str()),
            ];
            self.counter(MIRROR_PAIRS_TOTAL, &labels)
        })
        .increment(1);
    }

    /// Counts a request not mirrored because it already carried the shadow marker.
    pub fn record_loop_guard(&self, route: &RouteMetrics) {
        route
            .loop_guard
            .get_or_init(|| self.counter(MIRROR_LOOP_GUARD_TOTAL, &[("route", &*route.route)]))
            .increment(1);
    }

    /// Registers the gauges of one shadow upstream.
    pub fn shadow_gauges(&self, shadow: &str) -> ShadowGauges {
        let gauge = |name: &'static str| {
            self.recorder.register_gauge(
                &Key::from_parts(name, vec![Label::new("shadow", shadow.to_string())]),
                &METADATA,
            )
        };
        ShadowGauges {
            queue_depth: gauge(MIRROR_QUEUE_DEPTH),
            in_flight: gauge(MIRROR_IN_FLIGHT),
            circuit_state: gauge(MIRROR_CIRCUIT_STATE),
        }
    }

    /// Registers (or finds) a counter by name and labels. For off-path reporters that cache
    /// their own handles; the live path uses the pre-resolved handles above.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// Registers (or finds) a gauge by name and labels (see [`Metrics::counter`]).
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// Registers (or finds) a histogram by name and labels (see [`Metrics::counter`]).
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// A client connection opened.
    pub fn connection_opened(&self) {
        self.connections_total.increment(1);
        self.connections_active.increment(1.0);
    }

    /// The native engine handed a connection to hyper.
    pub fn record_handover(&self, reason: Handover) {
        let index = Handover::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(Handover::ALL.len() - 1);
        if let Some(counter) = self.handovers.get(index) {
            counter.increment(1);
        }
    }

    /// A supervised task of kind `task` panicked.
    pub fn record_task_panic(&self, task: Task) {
        let index = Task::ALL.iter().position(|t| *t == task);
        if let Some(counter) = index.and_then(|index| self.task_panics.get(index)) {
            counter.increment(1);
        }
    }

    /// The gauge of bytes the mirror side holds (`shadowtap_mirror_buffered_bytes`).
    pub fn mirror_buffered_bytes(&self) -> Gauge {
        self.mirror_buffered_bytes.clone()
    }

    /// A client connection closed.
    pub fn connection_closed(&self) {
        self.connections_active.decrement(1.0);
    }

    /// Reads the process's CPU time, memory, file descriptors, threads and start time into
    /// the `process_*` metrics. Called by each `/metrics` scrape, so an idle proxy reads
    /// nothing and a scrape always sees current values.
    pub fn collect_process(&self) {
        metrics::with_local_recorder(&self.recorder, || self.process.collect());
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
    /// The `route` label value.
    pub fn label(&self) -> &str {
        &self.route
    }

    /// The `route` label value as a shared string (cheap to hand to other threads).
    pub fn label_shared(&self) -> Arc<str> {
        self.route.clone()
    }

    fn new(route: &str, shadows: &[String]) -> RouteMetrics {
        RouteMetrics {
            route: Arc::from(route),
            requests: Default::default(),
            errors: Default::default(),
            primary_duration: OnceLock::new(),
            shadows: shadows
                .iter()
                .map(|shadow| ShadowRouteMetrics {
                    shadow: shadow.clone(),
                    compared: Mutex::default(),
                    compared_histograms: Mutex::default(),
                    outcomes: Default::default(),
                    duration: OnceLock::new(),
                    pairs: Default::default(),
                })
                .collect(),
            loop_guard: OnceLock::new(),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(label, value)| Label::new(*label, value.to_string()))
            .collect::<Vec<_>>(),
    )
}

/// Per route, per label: the lazily registered handles.
fn route_tables(
    route_labels: &[Vec<String>],
    route_shadows: &[Vec<String>],
) -> Vec<Vec<RouteMetrics>> {
    route_labels
        .iter()
        .enumerate()
        .map(|(route, labels)| {
            let shadows = route_shadows
                .get(route)
                .map(Vec::as_slice)
                .unwrap_or_default();
            labels
                .iter()
                .map(|label| RouteMetrics::new(label, shadows))
                .collect()
        })
        .collect()
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
        ADMIN_UNAUTHORIZED_TOTAL,
        None,
        "Admin requests refused for a missing or wrong bearer token, by endpoint.",
    );
    help(
        recorder,
        UPGRADES_TOTAL,
        None,
        "Connections switched to another protocol (101, or HTTP/2 extended CONNECT), by route and protocol (websocket, other).",
    );
    help(
        recorder,
        UPGRADED_BYTES_TOTAL,
        Some(Unit::Bytes),
        "Bytes spliced through upgraded connections, by route and direction (to_upstream, to_client).",
    );
    help(
        recorder,
        UPGRADED_CONNECTIONS_CLOSED_TOTAL,
        None,
        "Upgraded connections closed, by route and reason (ended, idle, error, shutdown: still open when the shutdown grace period ran out).",
    );
    recorder.describe_gauge(
        KeyName::from_const_str(UPGRADED_CONNECTIONS),
        None,
        SharedString::const_str("Upgraded connections open now, by route."),
    );
    help(
        recorder,
        REQUESTS_TOTAL,
        None,
        "Live requests, by route template, method and status class (client_closed: the client left before the response head).",
    );
    help(
        recorder,
        PROXY_ERRORS_TOTAL,
        None,
        "Requests answered by the proxy itself (400, 404, 405, 408, 502, 504), or abandoned because the client closed first (client_closed), by reason.",
    );
    help(
        recorder,
        TLS_HANDSHAKES_TOTAL,
        None,
        "TLS handshakes completed on a listener, by version and ALPN protocol.",
    );
    help(
        recorder,
        TLS_HANDSHAKE_ERRORS_TOTAL,
        None,
        "TLS handshakes that failed on a listener, by reason (timeout, not_tls, unknown_server_name, client_certificate, protocol, io).",
    );
    help(
        recorder,
        TLS_CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS,
        Some(Unit::Seconds),
        "Unix time at which each served certificate expires (its notAfter).",
    );
    help(
        recorder,
        CONFIG_LAST_RELOAD_SUCCESSFUL,
        None,
        "1 when the last config reload (or the start) succeeded, 0 when the last reload was refused.",
    );
    help(
        recorder,
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
        Some(Unit::Seconds),
        "Unix time of the last config that took effect (the start, or a successful reload).",
    );
    help(
        recorder,
        CONFIG_RELOADS_TOTAL,
        None,
        "Config reloads (SIGHUP, POST /api/v1/reload), by result (success, failure).",
    );
    help(
        recorder,
        TLS_RELOADS_TOTAL,
        None,
        "Changed certificate files taken in (success) or refused, the old certificate kept (failure).",
    );
    help(
        recorder,
        CONNECTIONS_TOTAL,
        None,
        "Client connections accepted.",
    );
    help(
        recorder,
        HTTP1_HANDOVERS_TOTAL,
        None,
        "Client connections the native HTTP/1.1 engine handed to hyper, by reason.",
    );
    help(
        recorder,
        TASK_PANICS_TOTAL,
        None,
        "Data-path tasks that panicked (caught, logged at ERROR, ended), by kind.",
    );
    help(
        recorder,
        MIRROR_REQUESTS_TOTAL,
        None,
        "Requests sampled for a shadow, by the one outcome each ended in.",
    );
    help(
        recorder,
        MIRROR_LOOP_GUARD_TOTAL,
        None,
        "Requests that already carried the shadow marker: served, not mirrored again.",
    );
    help(
        recorder,
        MIRROR_PAIRS_TOTAL,
        None,
        "Completed shadow requests, by whether the primary's answer was there to pair with.",
    );
    help(
        recorder,
        COMPARISONS_TOTAL,
        None,
        "Compared (primary, shadow) pairs by result: match, diverged, noise_only, unjudged.",
    );
    help(
        recorder,
        DIVERGENCES_TOTAL,
        None,
        "Diverged pairs by what differed: status, header, body, latency (once per kind per pair).",
    );
    help(
        recorder,
        COMPARE_DROPPED_TOTAL,
        None,
        "Pairs dropped before comparison, by reason.",
    );
    help(
        recorder,
        RECORD_ENTRIES_TOTAL,
        None,
        "Sampled exchanges for the recording, by result: written, dropped_queue_full, dropped_body_too_large, dropped_over_budget, dropped_client_aborted, dropped_primary_failed, dropped_no_answer, error.",
    );
    help(
        recorder,
        RECORD_BYTES_TOTAL,
        Some(Unit::Bytes),
        "Bytes appended to the recording.",
    );
    help(
        recorder,
        COMPARE_BODY_SKIPPED_TOTAL,
        None,
        "Pairs whose bodies could not be judged, by reason.",
    );
    recorder.describe_histogram(
        KeyName::from_const_str(LATENCY_DELTA_SECONDS),
        Some(Unit::Seconds),
        SharedString::const_str("Shadow latency minus primary latency for each compared pair."),
    );
    for (name, text) in [
        (MIRROR_QUEUE_DEPTH, "Mirror jobs waiting for a shadow."),
        (
            MIRROR_PAUSED,
            "1 while mirroring from the route (by name) to the shadow is paused at runtime.",
        ),
        (MIRROR_IN_FLIGHT, "Shadow requests under way."),
        (
            MIRROR_CIRCUIT_STATE,
            "Shadow circuit breaker: 0 closed, 1 open, 2 half-open.",
        ),
    ] {
        recorder.describe_gauge(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(text),
        );
    }
    recorder.describe_gauge(
        KeyName::from_const_str(MIRROR_BUFFERED_BYTES),
        Some(Unit::Bytes),
        SharedString::const_str(
            "Bytes of bodies the mirror side holds now (captured requests, answers kept for comparison), against mirror.max_buffered_bytes.",
        ),
    );
    recorder.describe_gauge(
        KeyName::from_const_str(BUILD_INFO),
        None,
        SharedString::const_str("Always 1; the labels name the running build."),
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
