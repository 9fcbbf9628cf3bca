//! Value checks that every config section shares. Each adds a problem with its key path
//! and returns a usable value, so validation goes on and reports every mistake in one run.

use super::error::Problems;
use std::time::Duration;

/// A humantime duration greater than zero; `default` when the key is absent.
pub(crate) fn duration(
    path: &str,
    value: Option<&str>,
    default: &str,
    problems: &mut Problems,
) -> Duration {
    let text = value.unwrap_or(default);
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => duration,
        Ok(_) => {
            problems.push(path, "must be greater than zero");
            Duration::from_secs(1)
        }
        Err(_) => {
            problems.push(
                path,
                format!("{text:?} is not a duration (e.g. \"250ms\", \"10s\", \"1m\")"),
            );
            Duration::from_secs(1)
        }
    }
}

/// A count that must be at least 1; `default` when the key is absent (or wrong).
pub(crate) fn positive(
    path: &str,
    value: Option<usize>,
    default: usize,
    problems: &mut Problems,
) -> usize {
    match value {
        Some(0) => {
            problems.push(path, "must be at least 1");
            default
        }
        Some(value) => value,
        None => default,
    }
}

/// A valid HTTP field name.
pub(crate) fn header_name(path: &str, name: &str, problems: &mut Problems) {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        problems.push(path, format!("{name:?} is not a valid header name"));
    }
}
