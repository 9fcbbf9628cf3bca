//! `[record]` (or `--record FILE`): sampled live exchanges written as HAR entries, one per
//! line, for `shadowtap replay`. Every limit has a default, so a file name is enough.

use super::error::Problems;
use serde::{Deserialize, Serialize};

/// Defaults, named once.
pub mod defaults {
    /// Percentage of requests recorded.
    pub const SAMPLE: f64 = 100.0;
    /// Request body bytes kept; a longer body is not recorded (counted).
    pub const MAX_BODY_BYTES: usize = 64 * 1024;
    /// Response body bytes kept; a longer body is cut and the entry marked.
    pub const MAX_RESPONSE_BODY_BYTES: usize = 256 * 1024;
    /// One file's size before it is rotated.
    pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
    /// The recording's whole size on disk, rotated files included.
    pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
    /// Exchanges waiting for the writer; beyond it they are dropped (counted).
    pub const QUEUE_SIZE: usize = 1024;
}

/// `[record]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub file: Option<String>,
    pub sample: Option<f64>,
    pub routes: Option<Vec<String>>,
    pub max_body_bytes: Option<usize>,
    pub max_response_body_bytes: Option<usize>,
    pub max_file_bytes: Option<u64>,
    pub max_total_bytes: Option<u64>,
    pub queue_size: Option<usize>,
}

/// What is recorded, where, and within which limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordConfig {
    /// The file written; rotated ones get `.1`, `.2`, ... (newest first).
    pub file: String,
    /// Percentage of requests recorded (0-100, fractional), apart from mirror sampling.
    pub sample: f64,
    /// Route names recorded; empty: every route.
    pub routes: Vec<String>,
    /// Request body bytes kept; a request with a longer body is not recorded.
    pub max_body_bytes: usize,
    /// Response body bytes kept; a longer one is cut and the entry says so.
    pub max_response_body_bytes: usize,
    /// One file's size before rotation.
    pub max_file_bytes: u64,
    /// The cap on all files together: older rotated files are deleted past it.
    pub max_total_bytes: u64,
    /// Exchanges waiting for the writer, at most.
    pub queue_size: usize,
}

impl RecordConfig {
    /// How many rotated files are kept beside the current one within the total cap.
    pub fn rotated_files(&self) -> usize {
        let files = self.max_total_bytes / self.max_file_bytes.max(1);
        usize::try_from(files.saturating_sub(1)).unwrap_or(usize::MAX)
    }

    /// Whether a route (by name) is recorded.
    pub fn records_route(&self, name: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|route| route == name)
    }
}

/// The section with `--record FILE` and `--record-sample PERCENT` laid over it.
pub(crate) fn apply_overrides(
    raw: &mut Option<RawRecord>,
    file: Option<&str>,
    sample: Option<&str>,
    problems: &mut Problems,
) {
    if let Some(file) = file {
        raw.get_or_insert_with(RawRecord::default).file = Some(file.to_string());
    }
    if let Some(text) = sample {
        match text.trim().trim_end_matches('%').parse::<f64>() {
            Ok(percent) => raw.get_or_insert_with(RawRecord::default).sample = Some(percent),
            Err(_) => problems.push("--record-sample", format!("{text:?} is not a number")),
        }
    }
}

/// Validates `[record]`; `route_names` are the config's routes, which the filter must name.
pub(crate) fn validate(
    raw: Option<RawRecord>,
    route_names: &[String],
    problems: &mut Problems,
) -> Option<RecordConfig> {
    let raw = raw?;
    let file = match raw.file {
        Some(file) if !file.is_empty() => file,
        _ => {
            problems.push("record.file", "a file to record to is required");
            String::new()
        }
    };
    if !file.is_empty() {
        if let Err(reason) = super::writable::appendable(std::path::Path::new(&file)) {
            problems.push("record.file", reason);
        }
    }
    let sample = raw.sample.unwrap_or(defaults::SAMPLE);
    if !(0.0..=100.0).contains(&sample) {
        problems.push(
            "record.sample",
            format!("{sample} must be between 0 and 100"),
        );
    }
    let routes = raw.routes.unwrap_or_default();
    for route in &routes {
        if !route_names.contains(route) {
            problems.push("record.routes", format!("no route is named {route:?}"));
        }
    }
    let positive = |key: &str, value: u64, problems: &mut Problems| {
        if value == 0 {
            problems.push(format!("record.{key}"), "must be at least 1");
        }
    };
    let config = RecordConfig {
        file,
        sample,
        routes,
        max_body_bytes: raw.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
        max_response_body_bytes: raw
            .max_response_body_bytes
            .unwrap_or(defaults::MAX_RESPONSE_BODY_BYTES),
        max_file_bytes: raw.max_file_bytes.unwrap_or(defaults::MAX_FILE_BYTES),
        max_total_bytes: raw.max_total_bytes.unwrap_or(defaults::MAX_TOTAL_BYTES),
        queue_size: raw.queue_size.unwrap_or(defaults::QUEUE_SIZE),
    };
    positive("max_file_bytes", config.max_file_bytes, problems);
    positive("queue_size", config.queue_size as u64, problems);
    if config.max_total_bytes < config.max_file_bytes {
        problems.push(
            "record.max_total_bytes",
            "must be at least record.max_file_bytes",
        );
    }
    Some(config)
}
