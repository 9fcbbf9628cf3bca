//! Comparison and reporting config: the global `[compare]` budget and each route's
//! `[routes.compare]` rules.

use super::check::{header_name, positive};
use super::error::Problems;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Defaults, named once.
pub(crate) mod defaults {
    pub const WORKERS: usize = 1;
    pub const QUEUE_CAPACITY: usize = 1024;
    pub const MAX_DECODED_BYTES: usize = 8 * 1024 * 1024;
    pub const MAX_DIFFERENCES: usize = 100;
    pub const LEARN_AFTER: u64 = 10;
    pub const ENDPOINTS_PER_ROUTE: usize = 100;
    pub const LEARN_RATIO: f64 = 0.5;
    pub const SAMPLES_PER_ROUTE: usize = 20;
    pub const SAMPLES_TOTAL: usize = 200;
    pub const TOP_FIELDS: usize = 10;
    pub const BODY_EXCERPT_BYTES: usize = 2048;
    pub const DIFF_LOG_MAX_BYTES: u64 = 100 * 1024 * 1024;
    pub const DIFF_LOG_MAX_FILES: usize = 5;
    pub const HISTORY_MINUTES: usize = 60;
    pub const HISTORY_SERIES: usize = 256;
}

/// `[compare]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    pub workers: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub max_decoded_bytes: Option<usize>,
    pub max_differences: Option<usize>,
    pub learn_after: Option<u64>,
    pub learn_ratio: Option<f64>,
    pub endpoints_per_route: Option<usize>,
    pub samples_per_route: Option<usize>,
    pub samples_total: Option<usize>,
    pub top_fields: Option<usize>,
    pub body_excerpt_bytes: Option<usize>,
    #[serde(default)]
    pub redact_headers: Vec<String>,
    pub diff_log: Option<String>,
    pub diff_log_max_bytes: Option<u64>,
    pub diff_log_max_files: Option<usize>,
    pub history_minutes: Option<usize>,
    pub history_series: Option<usize>,
}

/// `[routes.compare]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCompare {
    #[serde(default)]
    pub ignore_headers: Vec<String>,
    pub default_ignored_headers: Option<bool>,
    #[serde(default)]
    pub ignore: Vec<String>,
    pub unordered_arrays: Option<bool>,
    #[serde(default)]
    pub unordered_paths: Vec<String>,
    pub numeric_tolerance: Option<f64>,
    #[serde(default)]
    pub redact_pointers: Vec<String>,
    #[serde(default)]
    pub noise: BTreeMap<String, String>,
    pub latency: Option<RawLatency>,
    pub protobuf_descriptor_set: Option<String>,
}

/// `[routes.compare] latency = { max_delta = "50ms", max_ratio = 2.0 }` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLatency {
    pub max_delta: Option<String>,
    pub max_ratio: Option<f64>,
}

/// The comparison budget and reporting limits.
#[derive(Debug, Clone, Serialize)]
pub struct CompareConfig {
    /// Threads comparing pairs (off the async runtime, so diffs never delay live traffic).
    pub workers: usize,
    /// Pairs waiting for a worker; beyond it pairs are dropped and counted.
    pub queue_capacity: usize,
    /// Decoded bodies larger than this are not compared (decompression bombs).
    pub max_decoded_bytes: usize,
    /// Differences kept per pair.
    pub max_differences: usize,
    /// Pairs of an endpoint in which a field was present before it may be learned as
    /// noise (0: never learn).
    pub learn_after: u64,
    /// Difference rate a field must reach, with 99 % confidence, to be learned as noise.
    pub learn_ratio: f64,
    /// Endpoints (path shapes) told apart per route label; the rest share `<route>:other`.
    pub endpoints_per_route: usize,
    /// Divergent samples kept per route.
    pub samples_per_route: usize,
    /// Divergent samples kept in all.
    pub samples_total: usize,
    /// Diverging fields listed per route by the API.
    pub top_fields: usize,
    /// Bytes of each body kept in a sample.
    pub body_excerpt_bytes: usize,
    /// Headers redacted in samples, logs and the API (besides the four always redacted).
    pub redact_headers: Vec<String>,
    /// JSONL file of divergent pairs, if any.
    pub diff_log: Option<String>,
    /// Rotate the diff log past this size.
    pub diff_log_max_bytes: u64,
    /// Rotated files kept (`FILE.1` … `FILE.N`).
    pub diff_log_max_files: usize,
    /// One-minute buckets of history kept per (route, shadow) (at most a day).
    pub history_minutes: usize,
    /// (route, shadow) series with a history; further ones are counted, not kept.
    pub history_series: usize,
}

/// A route's comparison rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteCompare {
    /// Extra headers not compared.
    pub ignore_headers: Vec<String>,
    /// Keep the built-in list of volatile headers (`false` replaces it with `ignore_headers`).
    pub default_ignored_headers: bool,
    /// JSON Pointer patterns not compared (`*` matches one segment).
    pub ignore: Vec<String>,
    /// Compare all arrays as unordered.
    pub unordered_arrays: bool,
    /// Arrays at these patterns are compared unordered.
    pub unordered_paths: Vec<String>,
    /// Numbers this close are equal.
    pub numeric_tolerance: f64,
    /// JSON Pointer patterns whose values are redacted before storing or logging.
    pub redact_pointers: Vec<String>,
    /// Pins: field -> `noise` or `signal`.
    pub noise: BTreeMap<String, String>,
    /// A pair whose shadow is slower than this diverges with kind `latency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyConfig>,
    /// The descriptor set file gRPC messages are decoded with (by field name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protobuf_descriptor_set: Option<String>,
    /// That file, loaded when the config was validated (the comparison wraps it).
    #[serde(skip)]
    pub protobuf: Option<prost_reflect::DescriptorPool>,
}

/// A route's latency rule: breached when either limit set is exceeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyConfig {
    /// Largest allowed shadow latency minus primary latency.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub max_delta: Option<Duration>,
    /// Largest allowed shadow latency over primary latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
}

/// An optional duration, printed as a humantime string.
pub(super) mod optional_duration {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::super::duration_str::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// `{path}.latency`: each limit, when set, must be greater than zero; at least one is set.
fn validate_latency(
    path: &str,
    raw: Option<RawLatency>,
    problems: &mut Problems,
) -> Option<LatencyConfig> {
    let raw = raw?;
    let max_delta = raw.max_delta.as_deref().and_then(|text| {
        let key = format!("{path}.latency.max_delta");
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                problems.push(key, format!("{text:?} must be greater than zero"));
                None
            }
            Err(_) if text.trim_start().starts_with('-') => {
                problems.push(key, format!("{text:?} must be greater than zero"));
                None
            }
            Err(_) => {
                problems.push(
                    key,
                    format!("{text:?} is not a duration (e.g. \"50ms\", \"1s\")"),
                );
                None
            }
        }
    });
    let max_ratio = raw.max_ratio.filter(|ratio| {
        let valid = ratio.is_finite() && *ratio > 0.0;
        if !valid {
            problems.push(
                format!("{path}.latency.max_ratio"),
                format!(
                    "{ratio} must be a number greater than zero (shadow latency / primary latency)"
                ),
            );
        }
        valid
    });
    if raw.max_delta.is_none() && raw.max_ratio.is_none() {
        problems.push(
            format!("{path}.latency"),
            "set max_delta, max_ratio or both",
        );
    }
    (max_delta.is_some() || max_ratio.is_some()).then_some(LatencyConfig {
        max_delta,
        max_ratio,
    })
}

pub(crate) fn validate_global(
    raw: Option<RawCompare>,
    diff_log_flag: Option<&str>,
    problems: &mut Problems,
) -> CompareConfig {
    let raw = raw.unwrap_or_default();
    let learn_ratio = raw.learn_ratio.unwrap_or(defaults::LEARN_RATIO);
    if !(learn_ratio > 0.0 && learn_ratio <= 1.0) {
        problems.push(
            "compare.learn_ratio",
            format!("{learn_ratio} must be in (0, 1]"),
        );
    }
    for (i, name) in raw.redact_headers.iter().enumerate() {
        header_name(&format!("compare.redact_headers[{i}]"), name, problems);
    }
    let diff_log = diff_log_flag.map(str::to_string).or(raw.diff_log);
    if diff_log.as_deref() == Some("") {
        problems.push("compare.diff_log", "must be a file path");
    }
    CompareConfig {
        workers: positive("compare.workers", raw.workers, defaults::WORKERS, problems),
        queue_capacity: positive(
            "compare.queue_capacity",
            raw.queue_capacity,
            defaults::QUEUE_CAPACITY,
            problems,
        ),
        max_decoded_bytes: raw.max_decoded_bytes.unwrap_or(defaults::MAX_DECODED_BYTES),
        max_differences: positive(
            "compare.max_differences",
            raw.max_differences,
            defaults::MAX_DIFFERENCES,
            problems,
        ),
        learn_after: raw.learn_after.unwrap_or(defaults::LEARN_AFTER),
        learn_ratio,
        endpoints_per_route: positive(
            "compare.endpoints_per_route",
            raw.endpoints_per_route,
            defaults::ENDPOINTS_PER_ROUTE,
            problems,
        ),
        samples_per_route: raw.samples_per_route.unwrap_or(defaults::SAMPLES_PER_ROUTE),
        samples_total: raw.samples_total.unwrap_or(defaults::SAMPLES_TOTAL),
        top_fields: raw.top_fields.unwrap_or(defaults::TOP_FIELDS),
        body_excerpt_bytes: raw
            .body_excerpt_bytes
            .unwrap_or(defaults::BODY_EXCERPT_BYTES),
        redact_headers: raw
            .redact_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        diff_log,
        diff_log_max_bytes: raw
            .diff_log_max_bytes
            .unwrap_or(defaults::DIFF_LOG_MAX_BYTES)
            .max(1024),
        diff_log_max_files: raw
            .diff_log_max_files
            .unwrap_or(defaults::DIFF_LOG_MAX_FILES),
        history_minutes: history_minutes(raw.history_minutes, problems),
        history_series: raw.history_series.unwrap_or(defaults::HISTORY_SERIES),
    }
}

/// `compare.history_minutes`: from 1 to a day.
fn history_minutes(raw: Option<usize>, problems: &mut Problems) -> usize {
    let minutes = raw.unwrap_or(defaults::HISTORY_MINUTES);
    if !(1..=MAX_HISTORY_MINUTES).contains(&minutes) {
        problems.push(
            "compare.history_minutes",
            format!("{minutes} is not from 1 to {MAX_HISTORY_MINUTES}"),
        );
    }
    minutes.clamp(1, MAX_HISTORY_MINUTES)
}

/// The longest history: a day of minutes.
const MAX_HISTORY_MINUTES: usize = 24 * 60;

pub(crate) fn validate_route(
    path: &str,
    raw: Option<RawRouteCompare>,
    problems: &mut Problems,
) -> RouteCompare {
    let raw = raw.unwrap_or_default();
    let pointers = |key: &str, list: &[String], problems: &mut Problems| {
        for (i, pointer) in list.iter().enumerate() {
            if let Err(reason) = crate::pattern::pointer::parse(pointer) {
                problems.push(
                    format!("{path}.{key}[{i}]"),
                    format!("{pointer:?}: {reason}"),
                );
            }
        }
    };
    pointers("ignore", &raw.ignore, problems);
    pointers("unordered_paths", &raw.unordered_paths, problems);
    pointers("redact_pointers", &raw.redact_pointers, problems);
    for (i, name) in raw.ignore_headers.iter().enumerate() {
        header_name(&format!("{path}.ignore_headers[{i}]"), name, problems);
    }
    for (field, pin) in &raw.noise {
        if pin != "noise" && pin != "signal" {
            problems.push(
                format!("{path}.noise.{field}"),
                format!("{pin:?}: expected \"noise\" or \"signal\""),
            );
        }
    }
    let numeric_tolerance = raw.numeric_tolerance.unwrap_or(0.0);
    if !(numeric_tolerance >= 0.0 && numeric_tolerance.is_finite()) {
        problems.push(format!("{path}.numeric_tolerance"), "must be a number >= 0");
    }
    let protobuf = raw.protobuf_descriptor_set.as_deref().and_then(|file| {
        let key = format!("{path}.protobuf_descriptor_set");
        let loaded = std::fs::read(file)
            .map_err(|error| format!("{file:?}: {error}"))
            .and_then(|bytes| {
                prost_reflect::DescriptorPool::decode(&bytes[..])
                    .map_err(|error| format!("{file:?}: not a protobuf descriptor set ({error})"))
            });
        loaded.map_err(|problem| problems.push(key, problem)).ok()
    });
    RouteCompare {
        ignore_headers: raw
            .ignore_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        default_ignored_headers: raw.default_ignored_headers.unwrap_or(true),
        ignore: raw.ignore,
        unordered_arrays: raw.unordered_arrays.unwrap_or(false),
        unordered_paths: raw.unordered_paths,
        numeric_tolerance,
        redact_pointers: raw.redact_pointers,
        noise: raw.noise,
        latency: validate_latency(path, raw.latency, problems),
        protobuf_descriptor_set: raw.protobuf_descriptor_set,
        protobuf,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::{Config, Overrides};
    use std::time::Duration;

    fn with_latency(latency: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(
            &format!(
                "[upstreams.a]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprimary = \"a\"\n\
                 [routes.compare]\nlatency = {latency}\n"
            ),
            &Overrides::default(),
        )
    }

    fn problems(latency: &str) -> Vec<String> {
        match with_latency(latency) {
            Ok(_) => Vec::new(),
            Err(error) => error.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_descriptor_set_is_loaded_or_its_problem_named_by_key() {
        let pb = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos/echo.pb");
        let config = with_latency(&format!(
            "{{ max_ratio = 2.0 }}\nprotobuf_descriptor_set = {pb:?}"
        ))
        .unwrap();
        let rules = &config.routes[0].compare;
        assert_eq!(rules.protobuf_descriptor_set.as_deref(), Some(pb));
        assert!(rules.protobuf.is_some());
        let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos/echo.proto");
        for file in ["/nonexistent/api.pb", proto] {
            let found = problems(&format!(
                "{{ max_ratio = 2.0 }}\nprotobuf_descriptor_set = {file:?}"
            ));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].contains("routes[0].compare.protobuf_descriptor_set"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_latency_rule_takes_either_limit_or_both_and_round_trips() {
        let config = with_latency(r#"{ max_delta = "50ms", max_ratio = 2.5 }"#).unwrap();
        let rule = config.routes[0].compare.latency.unwrap();
        assert_eq!(rule.max_delta, Some(Duration::from_millis(50)));
        assert_eq!(rule.max_ratio, Some(2.5));
        // The printed config says the rule as it is written.
        let printed = config.to_toml().unwrap();
        assert!(
            printed.contains("[routes.compare.latency]\nmax_delta = \"50ms\"\nmax_ratio = 2.5\n"),
            "{printed}"
        );

        let only_ratio = with_latency("{ max_ratio = 3 }").unwrap();
        let rule = only_ratio.routes[0].compare.latency.unwrap();
        assert_eq!((rule.max_delta, rule.max_ratio), (None, Some(3.0)));
        let none = Config::from_toml(
            "[upstreams.a]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprimary = \"a\"\n",
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(none.routes[0].compare.latency, None);
        assert!(!none.to_toml().unwrap().contains("latency"));
    }

    #[test]
    fn history_minutes_are_from_one_to_a_day() {
        let with = |minutes: &str| {
            Config::from_toml(
                &format!(
                    "[upstreams.a]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprimary = \"a\"\n\
                     [compare]\nhistory_minutes = {minutes}\n"
                ),
                &Overrides::default(),
            )
        };
        assert_eq!(with("1440").unwrap().compare.history_minutes, 1440);
        for bad in ["0", "1441"] {
            let error = with(bad).unwrap_err();
            let problems: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with("compare.history_minutes: "),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn zero_negative_or_missing_limits_are_named_by_their_key() {
        let key = "routes[0].compare.latency";
        for (latency, path, reason) in [
            (r#"{ max_delta = "0ms" }"#, "max_delta", "greater than zero"),
            (
                r#"{ max_delta = "-50ms" }"#,
                "max_delta",
                "greater than zero",
            ),
            (r#"{ max_delta = "soon" }"#, "max_delta", "not a duration"),
            ("{ max_ratio = 0.0 }", "max_ratio", "greater than zero"),
            ("{ max_ratio = -2.0 }", "max_ratio", "greater than zero"),
            ("{ max_ratio = nan }", "max_ratio", "greater than zero"),
        ] {
            let found = problems(latency);
            assert!(
                found
                    .iter()
                    .any(|p| p.starts_with(&format!("{key}.{path}: ")) && p.contains(reason)),
                "{latency}: {found:?}"
            );
        }
        let found = problems("{}");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(&format!("{key}: ")) && p.contains("max_delta, max_ratio")),
            "{found:?}"
        );
        let found = problems(r#"{ max_slowdown = "1s" }"#);
        assert!(
            found.iter().any(|p| p.contains("max_slowdown")),
            "{found:?}"
        );
    }
}
