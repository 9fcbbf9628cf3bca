//! TOML text -> [`RawConfig`], reporting every shape error with its key path.
//!
//! A plain `toml::from_str::<RawConfig>` stops at the first error. Instead the file is read
//! as a generic table and each section (each list element, each named upstream) is
//! deserialised on its own, so one run lists all misspelled keys and wrong types.

use super::error::Problems;
use super::raw::{RawConfig, RawListener, RawRoute, RawUpstream};
use serde::de::DeserializeOwned;

/// Parses config text. Shape problems are added to `problems`; what could be read is returned.
pub(crate) fn parse_toml(text: &str, problems: &mut Problems) -> RawConfig {
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(err) => {
            let at = err
                .span()
                .map(|span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "file".to_string());
            problems.push(at, format!("not valid TOML: {}", err.message()));
            return RawConfig::default();
        }
    };

    let mut raw = RawConfig::default();
    for (key, value) in table {
        match key.as_str() {
            "listeners" => raw.listeners = parse_list::<RawListener>("listeners", value, problems),
            "routes" => raw.routes = parse_list::<RawRoute>("routes", value, problems),
            "upstreams" => match value {
                toml::Value::Table(upstreams) => {
                    for (name, value) in upstreams {
                        let path = format!("upstreams.{name}");
                        if let Some(upstream) = parse_value::<RawUpstream>(&path, value, problems) {
                            raw.upstreams.insert(name, upstream);
                        }
                    }
                }
                other => problems.push(
                    "upstreams",
                    format!("expected a table of named upstreams, found {}", other.type_str()),
                ),
            },
            "admin" => raw.admin = parse_value(&key, value, problems),
            "runtime" => raw.runtime = parse_value(&key, value, problems),
            "shutdown" => raw.shutdown = parse_value(&key, value, problems),
            "logging" => raw.logging = parse_value(&key, value, problems),
            "mirror" => raw.mirror = parse_value(&key, value, problems),
            "compare" => raw.compare = parse_value(&key, value, problems),
            "verdict" => raw.verdict = parse_value(&key, value, problems),
            "record" => raw.record = parse_value(&key, value, problems),
            _ => problems.push(
                key.as_str(),
                "unknown key (expected one of: listeners, admin, upstreams, routes, mirror, compare, verdict, record, runtime, shutdown, logging)",
            ),
        }
    }
    raw
}

fn parse_list<T: DeserializeOwned>(
    path: &str,
    value: toml::Value,
    problems: &mut Problems,
) -> Vec<T> {
    match value {
        toml::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(index, item)| parse_value(&format!("{path}[{index}]"), item, problems))
            .collect(),
        other => {
            problems.push(
                path,
                format!(
                    "expected an array of tables ([[{path}]]), found {}",
                    other.type_str()
                ),
            );
            Vec::new()
        }
    }
}

/// Deserialises one section. serde stops at the first bad key and drops the whole section,
/// which would hide every other problem in it (a misspelled key next to a bad address would
/// only report the key). So each bad key is reported, removed, and the rest tried again.
fn parse_value<T: DeserializeOwned>(
    path: &str,
    mut value: toml::Value,
    problems: &mut Problems,
) -> Option<T> {
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return Some(parsed),
            Err(err) => err,
        };
        let inner = err.path().to_string();
        let full = if inner == "." || inner.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        let culprit = match err.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => None,
        };
        problems.push(full, clean_serde_message(&err.into_inner().to_string()));
        let removed = match (&mut value, culprit) {
            (toml::Value::Table(table), Some(key)) => table.remove(&key).is_some(),
            _ => false,
        };
        if !removed {
            return None;
        }
    }
}

/// serde's messages are good but toml appends a newline and sometimes a span; keep one line.
fn clean_serde_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    if let Some(rest) = first.strip_prefix("unknown field ") {
        format!("unknown key {rest}")
    } else {
        first.to_string()
    }
}
