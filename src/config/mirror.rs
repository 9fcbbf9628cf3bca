//! Mirroring config: the global `[mirror]` limits and each route's `[routes.mirror]` policy.
//!
//! Kept apart from the live-path config so each half reads on its own; the raw types,
//! defaults and checks for mirroring all live here.

use super::check::{duration, header_name, positive};
use super::error::Problems;
use super::upstreams::{UpstreamNames, UpstreamRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Defaults for mirroring, named once.
pub(crate) mod defaults {
    pub const QUEUE_CAPACITY: usize = 1024;
    pub const MAX_IN_FLIGHT: usize = 256;
    pub const TIMEOUT: &str = "5s";
    pub const MAX_RESPONSE_BODY_BYTES: usize = 1024 * 1024;
    /// An ordinary upload (an 8 MiB file in a multipart form is a little over 8 MiB) is
    /// mirrored; `MAX_BUFFERED_BYTES` still bounds all copies together, eight of these.
    pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
    pub const MAX_BUFFERED_BYTES: usize = 128 * 1024 * 1024;
    pub const MARKER_HEADER: &str = "x-shadowtap-shadow";
    pub const MARKER_VALUE: &str = "1";
    pub const BREAKER_WINDOW: &str = "10s";
    pub const BREAKER_MIN_REQUESTS: u32 = 20;
    pub const BREAKER_ERROR_RATIO: f64 = 0.5;
    pub const BREAKER_INITIAL_COOLDOWN: &str = "1s";
    pub const BREAKER_COOLDOWN: &str = "10s";
    pub const BREAKER_PROBES: u32 = 5;
    /// The side-effect policy: only these are mirrored unless a route opts in to more.
    pub const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];
}

// ---- raw (as written) ----

/// `[mirror]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub queue_capacity: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub timeout: Option<String>,
    pub max_response_body_bytes: Option<usize>,
    pub max_buffered_bytes: Option<usize>,
    pub marker_header: Option<String>,
    pub marker_value: Option<String>,
    pub circuit_breaker: Option<RawBreaker>,
}

/// `[mirror.circuit_breaker]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub window: Option<String>,
    pub min_requests: Option<u32>,
    pub error_ratio: Option<f64>,
    pub initial_cooldown: Option<String>,
    pub cooldown: Option<String>,
    pub probes: Option<u32>,
}

/// `[routes.mirror]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteMirror {
    pub max_body_bytes: Option<usize>,
    pub secondary: Option<String>,
    #[serde(default)]
    pub shadows: Vec<RawShadow>,
}

/// `methods = "all"` or a list of method names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMethods {
    All(String),
    List(Vec<String>),
}

/// One `[[routes.mirror.shadows]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    pub upstream: Option<String>,
    pub percent: Option<f64>,
    pub sticky: Option<RawSticky>,
    pub methods: Option<RawMethods>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub require_headers: Vec<String>,
    #[serde(default)]
    pub add_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub remove_headers: Vec<String>,
    pub host_rewrite: Option<String>,
    pub path_rewrite: Option<RawPathRewrite>,
}

/// `sticky = { header = "x-user" }` (or `cookie`, or `query`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
}

/// `path_rewrite = { prefix = "/v1/", replacement = "/v2/" }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPathRewrite {
    pub prefix: Option<String>,
    pub replacement: Option<String>,
}

// ---- typed (validated) ----

/// Global mirroring limits. Every shadow-side buffer and queue is bounded by these.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorConfig {
    /// Jobs waiting per shadow upstream; beyond it a job is dropped (`dropped_queue_full`).
    pub queue_capacity: usize,
    /// Shadow requests in flight per shadow upstream.
    pub max_in_flight: usize,
    /// Deadline for one shadow request, from dispatch to the end of its body.
    #[serde(with = "super::duration_str")]
    pub timeout: Duration,
    /// Response bodies (primary and shadow) kept for comparison up to this size.
    pub max_response_body_bytes: usize,
    /// Bytes of bodies the mirror side holds at once, all shadows together: captured request
    /// bodies (`dropped_memory_budget` when one does not fit) and the answers kept for
    /// comparison (their bodies not compared, `memory_budget`). The counts above bound how
    /// many; this bounds how much, whatever the bodies' sizes.
    pub max_buffered_bytes: usize,
    /// Header set on every shadow request, and the loop guard: requests that carry it are
    /// served but never mirrored.
    pub marker_header: String,
    /// Value of the marker header.
    pub marker_value: String,
    /// Per-shadow circuit breaker.
    pub circuit_breaker: BreakerSettings,
}

/// Circuit breaker settings (see `shadow::breaker`).
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSettings {
    /// Counting window.
    #[serde(with = "super::duration_str")]
    pub window: Duration,
    /// Requests needed in a window before it can open.
    pub min_requests: u32,
    /// Error/timeout share that opens it.
    pub error_ratio: f64,
    /// The first pause before probing, in an outage.
    #[serde(with = "super::duration_str")]
    pub initial_cooldown: Duration,
    /// The longest pause: each failed probe doubles the last one, up to this.
    #[serde(with = "super::duration_str")]
    pub cooldown: Duration,
    /// Successful probes in a row, half-open, that double the share admitted.
    pub probes: u32,
}

/// A route's mirroring policy.
#[derive(Debug, Clone, Serialize)]
pub struct RouteMirror {
    /// Request bodies larger than this are not mirrored (`dropped_body_too_large`).
    pub max_body_bytes: usize,
    /// The shadows, each with its own sampling and filters.
    pub shadows: Vec<ShadowPolicy>,
    /// An upstream running the primary's build that receives every mirrored request too;
    /// differences it shares with the primary are noise (Diffy's method).
    pub secondary: Option<UpstreamRef>,
}

/// Which methods a shadow receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MethodSet {
    /// Every method (explicit opt-in with `methods = "all"`).
    All(AllMethods),
    /// Only these (uppercase).
    List(Vec<String>),
}

/// Serialises as the string `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMethods {
    /// All methods.
    All,
}

/// Where a sticky sampling key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StickySource {
    /// A request header.
    Header(String),
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
}

/// A path prefix rewrite applied to shadow requests only.
#[derive(Debug, Clone, Serialize)]
pub struct PathRewrite {
    /// Prefix to replace.
    pub prefix: String,
    /// What replaces it.
    pub replacement: String,
}

/// One shadow of a route.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowPolicy {
    /// The shadow upstream (its name is the `shadow` metric label).
    pub upstream: UpstreamRef,
    /// Share of requests mirrored, 0–100 (fractional).
    pub percent: f64,
    /// Make sampling deterministic per key.
    pub sticky: Option<StickySource>,
    /// Methods mirrored (the side-effect policy).
    pub methods: MethodSet,
    /// Only paths with this prefix are mirrored.
    pub path_prefix: Option<String>,
    /// Only requests carrying all of these headers are mirrored.
    pub require_headers: Vec<String>,
    /// Headers set on the shadow request.
    pub add_headers: BTreeMap<String, String>,
    /// Headers removed from the shadow request.
    pub remove_headers: Vec<String>,
    /// Host sent to the shadow (default: the client's Host, unchanged).
    pub host_rewrite: Option<String>,
    /// Path prefix rewrite for the shadow.
    pub path_rewrite: Option<PathRewrite>,
}

pub(crate) fn validate_global(raw: Option<RawMirror>, problems: &mut Problems) -> MirrorConfig {
    let raw = raw.unwrap_or_default();
    let queue_capacity = positive(
        "mirror.queue_capacity",
        raw.queue_capacity,
        defaults::QUEUE_CAPACITY,
        problems,
    );
    let max_in_flight = positive(
        "mirror.max_in_flight",
        raw.max_in_flight,
        defaults::MAX_IN_FLIGHT,
        problems,
    );
    let timeout = duration(
        "mirror.timeout",
        raw.timeout.as_deref(),
        defaults::TIMEOUT,
        problems,
    );
    let max_response_body_bytes = raw
        .max_response_body_bytes
        .unwrap_or(defaults::MAX_RESPONSE_BODY_BYTES);
    let max_buffered_bytes = positive(
        "mirror.max_buffered_bytes",
        raw.max_buffered_bytes,
        defaults::MAX_BUFFERED_BYTES,
        problems,
    );
    let marker_header = raw
        .marker_header
        .unwrap_or_else(|| defaults::MARKER_HEADER.to_string())
        .to_ascii_lowercase();
    if http::HeaderName::from_bytes(marker_header.as_bytes()).is_err() {
        problems.push(
            "mirror.marker_header",
            format!("{marker_header:?} is not a valid header name"),
        );
    }
    let marker_value = raw
        .marker_value
        .unwrap_or_else(|| defaults::MARKER_VALUE.to_string());
    if http::HeaderValue::from_str(&marker_value).is_err() {
        problems.push(
            "mirror.marker_value",
            format!("{marker_value:?} is not a valid header value"),
        );
    }
    let breaker = raw.circuit_breaker.unwrap_or_default();
    let error_ratio = breaker.error_ratio.unwrap_or(defaults::BREAKER_ERROR_RATIO);
    if !(error_ratio > 0.0 && error_ratio <= 1.0) {
        problems.push(
            "mirror.circuit_breaker.error_ratio",
            format!("{error_ratio} must be in (0, 1]"),
        );
    }
    let cooldown = duration(
        "mirror.circuit_breaker.cooldown",
        breaker.cooldown.as_deref(),
        defaults::BREAKER_COOLDOWN,
        problems,
    );
    // A config written before the backoff set only `cooldown`: when it is shorter than the
    // default first cooldown, it is the only one.
    let initial_cooldown = match breaker.initial_cooldown.as_deref() {
        None => duration(
            "mirror.circuit_breaker.initial_cooldown",
            None,
            defaults::BREAKER_INITIAL_COOLDOWN,
            problems,
        )
        .min(cooldown),
        Some(text) => {
            let initial = duration(
                "mirror.circuit_breaker.initial_cooldown",
                Some(text),
                defaults::BREAKER_INITIAL_COOLDOWN,
                problems,
            );
            if initial > cooldown {
                problems.push(
                    "mirror.circuit_breaker.initial_cooldown",
                    format!(
                        "{text:?} is longer than cooldown ({}), the longest a cooldown may grow",
                        humantime::format_duration(cooldown)
                    ),
                );
            }
            initial
        }
    };
    let circuit_breaker = BreakerSettings {
        window: duration(
            "mirror.circuit_breaker.window",
            breaker.window.as_deref(),
            defaults::BREAKER_WINDOW,
            problems,
        ),
        min_requests: breaker
            .min_requests
            .unwrap_or(defaults::BREAKER_MIN_REQUESTS)
            .max(1),
        error_ratio,
        initial_cooldown,
        cooldown,
        probes: breaker.probes.unwrap_or(defaults::BREAKER_PROBES).max(1),
    };
    MirrorConfig {
        queue_capacity,
        max_in_flight,
        timeout,
        max_response_body_bytes,
        max_buffered_bytes,
        marker_header,
        marker_value,
        circuit_breaker,
    }
}

pub(crate) fn validate_route_mirror(
    path: &str,
    raw: RawRouteMirror,
    upstreams: &UpstreamNames,
    problems: &mut Problems,
) -> RouteMirror {
    let mut seen = HashSet::new();
    let shadows = raw
        .shadows
        .into_iter()
        .enumerate()
        .filter_map(|(index, shadow)| {
            let path = format!("{path}.shadows[{index}]");
            let name = shadow
                .upstream
                .clone()
                .filter(|name| upstreams.is_known(name));
            let policy = validate_shadow(&path, shadow, upstreams, problems);
            if let Some(name) = name {
                if !seen.insert(name.clone()) {
                    problems.push(
                        format!("{path}.upstream"),
                        format!("{name:?} is already a shadow of this route"),
                    );
                }
            }
            policy
        })
        .collect();
    let secondary = raw.secondary.filter(|secondary| {
        let known = upstreams.is_known(secondary);
        if !known {
            problems.push(
                format!("{path}.secondary"),
                format!("unknown upstream {secondary:?}"),
            );
        } else if seen.contains(secondary) {
            problems.push(
                format!("{path}.secondary"),
                format!("{secondary:?} is already a shadow of this route"),
            );
        }
        known
    });
    RouteMirror {
        max_body_bytes: raw.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
        shadows,
        secondary: secondary.and_then(|name| upstreams.resolve(&name)),
    }
}

fn validate_shadow(
    path: &str,
    raw: RawShadow,
    upstreams: &UpstreamNames,
    problems: &mut Problems,
) -> Option<ShadowPolicy> {
    let upstream = match raw.upstream {
        Some(upstream) if upstreams.is_known(&upstream) => upstream,
        Some(upstream) => {
            problems.push(
                format!("{path}.upstream"),
                format!("unknown upstream {upstream:?}"),
            );
            return None;
        }
        None => {
            problems.push(
                format!("{path}.upstream"),
                "missing: name the shadow upstream",
            );
            return None;
        }
    };
    let percent = raw.percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        problems.push(
            format!("{path}.percent"),
            format!("{percent} must be between 0 and 100"),
        );
    }
    let sticky = raw
        .sticky
        .and_then(|sticky| validate_sticky(&format!("{path}.sticky"), sticky, problems));
    let methods = validate_methods(&format!("{path}.methods"), raw.methods, problems);
    if let Some(prefix) = &raw.path_prefix {
        if !prefix.starts_with('/') {
            problems.push(
                format!("{path}.path_prefix"),
                format!("{prefix:?} must start with '/'"),
            );
        }
    }
    for (i, name) in raw.require_headers.iter().enumerate() {
        header_name(&format!("{path}.require_headers[{i}]"), name, problems);
    }
    for (i, name) in raw.remove_headers.iter().enumerate() {
        header_name(&format!("{path}.remove_headers[{i}]"), name, problems);
    }
    for (name, value) in &raw.add_headers {
        let key = format!("{path}.add_headers.{name}");
        header_name(&key, name, problems);
        if http::HeaderValue::from_str(value).is_err() {
            problems.push(key, format!("{value:?} is not a valid header value"));
        }
    }
    if let Some(host) = &raw.host_rewrite {
        if host.is_empty() || http::HeaderValue::from_str(host).is_err() {
            problems.push(
                format!("{path}.host_rewrite"),
                format!("{host:?} is not a valid Host value"),
            );
        }
    }
    let path_rewrite = raw.path_rewrite.and_then(|rewrite| {
        let key = format!("{path}.path_rewrite");
        match (rewrite.prefix, rewrite.replacement) {
            (Some(prefix), Some(replacement))
                if prefix.starts_with('/') && replacement.starts_with('/') =>
            {
                Some(PathRewrite {
                    prefix,
                    replacement,
                })
            }
            (Some(_), Some(_)) => {
                problems.push(key, "prefix and replacement must both start with '/'");
                None
            }
            _ => {
                problems.push(key, "needs both prefix and replacement");
                None
            }
        }
    });
    Some(ShadowPolicy {
        // Checked last: a known upstream that failed its own checks still has every other
        // key of the shadow checked.
        upstream: upstreams.resolve(&upstream)?,
        percent,
        sticky,
        methods,
        path_prefix: raw.path_prefix,
        require_headers: raw
            .require_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        add_headers: raw.add_headers,
        remove_headers: raw
            .remove_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        host_rewrite: raw.host_rewrite,
        path_rewrite,
    })
}

/// Parses `"all"` or a list of methods; the default is the safe set.
pub(crate) fn validate_methods(
    path: &str,
    raw: Option<RawMethods>,
    problems: &mut Problems,
) -> MethodSet {
    match raw {
        None => MethodSet::List(
            defaults::SAFE_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
        ),
        Some(RawMethods::All(word)) if word.eq_ignore_ascii_case("all") => {
            MethodSet::All(AllMethods::All)
        }
        Some(RawMethods::All(word)) => {
            problems.push(
                path,
                format!("{word:?}: expected \"all\" or a list such as [\"GET\", \"POST\"]"),
            );
            MethodSet::List(Vec::new())
        }
        Some(RawMethods::List(list)) => {
            let mut methods = Vec::new();
            for method in list {
                let upper = method.to_ascii_uppercase();
                if http::Method::from_bytes(upper.as_bytes()).is_err() || upper.is_empty() {
                    problems.push(path, format!("{method:?} is not an HTTP method"));
                } else {
                    methods.push(upper);
                }
            }
            MethodSet::List(methods)
        }
    }
}

fn validate_sticky(path: &str, raw: RawSticky, problems: &mut Problems) -> Option<StickySource> {
    match (raw.header, raw.cookie, raw.query) {
        (Some(header), None, None) => {
            header_name(&format!("{path}.header"), &header, problems);
            Some(StickySource::Header(header.to_ascii_lowercase()))
        }
        (None, Some(cookie), None) if !cookie.is_empty() => Some(StickySource::Cookie(cookie)),
        (None, None, Some(query)) if !query.is_empty() => Some(StickySource::Query(query)),
        _ => {
            problems.push(
                path,
                "give exactly one non-empty key: header, cookie or query",
            );
            None
        }
    }
}
