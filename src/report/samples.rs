//! Divergent samples a person can browse: the record (shared with the JSONL diff log), its
//! redaction, and a store bounded per route and in total.
//!
//! Redaction happens when the record is built — before it is stored, logged or served — so
//! no later path can leak a secret: the always-redacted headers (`Authorization`,
//! `Proxy-Authorization`, `Cookie`, `Set-Cookie`), configured headers, and configured JSON
//! Pointers in bodies and in the differences themselves.

use crate::compare::json::PointerPattern;
use crate::compare::{DiffKind, Difference};
use crate::message::pair::CapturedResponse;
use bytes::Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// What replaces a body (or text diff) that redaction pointers cannot be applied to.
pub const WITHHELD: &str =
    "[WITHHELD: not parseable as JSON, so redact_pointers cannot be applied]";

/// The `change` values of body differences whose `primary`/`shadow` are JSON values (the
/// others carry counts or descriptions).
const VALUE_CHANGES: [&str; 4] = ["added", "removed", "changed", "type_changed"];

/// Headers redacted whatever the config says.
pub const ALWAYS_REDACTED_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// One divergent pair as stored, served by the API and written to the diff log.
#[derive(Debug, Clone, Serialize)]
pub struct DivergentPair {
    /// RFC 3339 time the pair was compared.
    pub time: String,
    /// Route label (template).
    pub route: String,
    /// Shadow upstream.
    pub shadow: String,
    /// Request method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `x-request-id` both upstreams saw.
    pub request_id: String,
    /// `diverged` (samples hold divergent pairs only).
    pub result: &'static str,
    /// Every difference, noise ones marked.
    pub differences: Vec<Difference>,
    /// Latencies in milliseconds.
    pub latency_ms: LatencyPair,
    /// The request (redacted).
    pub request: MessageExcerpt,
    /// The primary's answer (redacted).
    pub primary: MessageExcerpt,
    /// The shadow's answer (redacted).
    pub shadow_response: MessageExcerpt,
}

/// Primary and shadow latency.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyPair {
    /// Primary, ms.
    pub primary: f64,
    /// Shadow, ms.
    pub shadow: f64,
}

/// A message's head and the start of its body.
#[derive(Debug, Clone, Serialize)]
pub struct MessageExcerpt {
    /// Status, for responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers (multi-values joined with ", "), redacted.
    pub headers: BTreeMap<String, String>,
    /// The body's first bytes as text (lossy UTF-8), redacted.
    pub body: String,
    /// The body is longer than the excerpt.
    pub body_truncated: bool,
}

/// What to hide.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Lowercase header names.
    pub headers: BTreeSet<String>,
    /// JSON Pointer patterns.
    pub pointers: Vec<PointerPattern>,
}

impl Redactor {
    /// A route's rules: the always-secret headers, the `[compare]` section's
    /// `redact_headers`, and the route's `redact_pointers` (one rule set for samples, the
    /// diff log and recordings).
    pub fn for_route(
        route: &crate::config::RouteConfig,
        compare: &crate::config::CompareConfig,
    ) -> Redactor {
        let mut headers: BTreeSet<String> = ALWAYS_REDACTED_HEADERS
            .iter()
            .map(|h| h.to_string())
            .collect();
        headers.extend(compare.redact_headers.iter().cloned());
        Redactor {
            headers,
            pointers: route
                .compare
                .redact_pointers
                .iter()
                .filter_map(|p| PointerPattern::parse(p).ok())
                .collect(),
        }
    }

    /// `(name, value)` fields (names in any case) as a lowercase name -> value map with
    /// secrets replaced; repeated fields joined with ", ".
    pub fn fields<'a>(
        &self,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in fields {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let text = if self.headers.contains(&name) {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            out.entry(name)
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&text);
                })
                .or_insert(text);
        }
        out
    }

    /// A body excerpt: JSON bodies have redacted pointers replaced first; at most `max` bytes.
    /// When pointers are configured but the body does not parse as JSON (cut at the capture
    /// cap, still encoded, or not JSON at all), they cannot be applied, so the body is
    /// withheld rather than shown raw.
    pub fn body(&self, body: &Bytes, max: usize) -> (String, bool) {
        let text = if self.pointers.is_empty() {
            String::from_utf8_lossy(body).into_owned()
        } else if body.is_empty() {
            String::new()
        } else {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(mut value) => {
                    redact_value(&mut value, &self.pointers, &mut Vec::new());
                    value.to_string()
                }
                Err(_) => return (WITHHELD.to_string(), false),
            }
        };
        if text.len() <= max {
            return (text, false);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (text[..end].to_string(), true)
    }

    /// Differences with secret values replaced (redacted headers, redacted pointers).
    pub fn differences(&self, differences: &[Difference]) -> Vec<Difference> {
        differences
            .iter()
            .map(|difference| {
                let secret = match difference.kind {
                    DiffKind::Header => self.headers.contains(&difference.path),
                    DiffKind::Body => self.pointers.iter().any(|p| p.covers(&difference.path)),
                    DiffKind::Status | DiffKind::Latency => false,
                };
                let mut difference = difference.clone();
                if secret {
                    difference.primary = difference.primary.map(|_| REDACTED.to_string());
                    difference.shadow = difference.shadow.map(|_| REDACTED.to_string());
                    difference.excerpt = None;
                } else if difference.kind == DiffKind::Body && !self.pointers.is_empty() {
                    // A value reported *above* a redacted pointer (an object removed whole,
                    // an array element added) holds the secret inside it.
                    if self.pointers.iter().any(|p| p.is_below(&difference.path))
                        && VALUE_CHANGES.contains(&difference.change)
                    {
                        let path = &difference.path;
                        difference.primary = difference.primary.map(|v| self.inside(path, &v));
                        difference.shadow = difference.shadow.map(|v| self.inside(path, &v));
                    }
                    // A text diff of the bodies cannot have pointers applied to it.
                    if difference.excerpt.is_some() {
                        difference.excerpt = Some(WITHHELD.to_string());
                    }
                }
                difference
            })
            .collect()
    }

    /// A reported JSON value at `pointer` with the redacted pointers below it replaced; the
    /// whole value when it does not parse (reported values are cut at 200 characters).
    fn inside(&self, pointer: &str, value: &str) -> String {
        let Ok(mut parsed) = serde_json::from_str::<serde_json::Value>(value) else {
            return REDACTED.to_string();
        };
        // `pointer` is already escaped, segment by segment, as `redact_value` builds them.
        let mut path: Vec<String> = pointer.split('/').skip(1).map(str::to_string).collect();
        redact_value(&mut parsed, &self.pointers, &mut path);
        parsed.to_string()
    }

    /// A response excerpt. A gRPC answer whose messages were decoded for comparison
    /// (`decoded`) is shown decoded, as JSON, redacted like a JSON body.
    pub fn response(
        &self,
        response: &CapturedResponse,
        decoded: Option<&serde_json::Value>,
        max: usize,
    ) -> MessageExcerpt {
        let decoded = decoded
            .filter(|_| crate::compare::grpc::is_grpc(&response.headers))
            .and_then(|value| serde_json::to_vec(value).ok());
        let (body, cut) = match decoded {
            Some(json) => self.body(&Bytes::from(json), max),
            None => self.body(&response.body, max),
        };
        MessageExcerpt {
            status: Some(response.status.as_u16()),
            headers: self.fields(response.headers.iter()),
            body,
            body_truncated: cut || response.truncated || response.over_budget,
        }
    }
}

fn redact_value(
    value: &mut serde_json::Value,
    patterns: &[PointerPattern],
    path: &mut Vec<String>,
) {
    let pointer: String = path.iter().map(|segment| format!("/{segment}")).collect();
    if patterns.iter().any(|pattern| pattern.covers(&pointer)) {
        *value = serde_json::Value::String(REDACTED.to_string());
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.replace('~', "~0").replace('/', "~1"));
                redact_value(item, patterns, path);
                path.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                redact_value(item, patterns, path);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Recent divergent pairs, newest last, bounded per route and in total.
#[derive(Debug)]
pub struct SampleStore {
    per_route: usize,
    total: usize,
    routes: BTreeMap<String, VecDeque<(u64, DivergentPair)>>,
    stored: usize,
    sequence: u64,
}

impl SampleStore {
    /// A store keeping `per_route` per route label and `total` in all.
    pub fn new(per_route: usize, total: usize) -> SampleStore {
        SampleStore {
            per_route,
            total,
            routes: BTreeMap::new(),
            stored: 0,
            sequence: 0,
        }
    }

    /// Adds a sample, evicting the route's oldest past `per_route` and the globally oldest
    /// past `total`.
    pub fn push(&mut self, sample: DivergentPair) {
        if self.per_route == 0 || self.total == 0 {
            return;
        }
        self.sequence += 1;
        let ring = self.routes.entry(sample.route.clone()).or_default();
        ring.push_back((self.sequence, sample));
        self.stored += 1;
        if ring.len() > self.per_route {
            ring.pop_front();
            self.stored -= 1;
        }
        while self.stored > self.total {
            let oldest = self
                .routes
                .iter()
                .filter_map(|(route, ring)| ring.front().map(|(seq, _)| (*seq, route.clone())))
                .min();
            let Some((_, route)) = oldest else { break };
            if let Some(ring) = self.routes.get_mut(&route) {
                ring.pop_front();
                self.stored -= 1;
            }
        }
    }

    /// Newest first, optionally for one route, at most `limit`.
    pub fn recent(&self, route: Option<&str>, limit: usize) -> Vec<DivergentPair> {
        let mut all: Vec<&(u64, DivergentPair)> = self
            .routes
            .iter()
            .filter(|(label, _)| route.is_none_or(|want| want == label.as_str()))
            .flat_map(|(_, ring)| ring.iter())
            .collect();
        all.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        all.into_iter()
            .take(limit)
            .map(|(_, sample)| sample.clone())
            .collect()
    }

    /// Samples held now.
    pub fn len(&self) -> usize {
        self.stored
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.stored == 0
    }
}

#[cfg(test)]
#[path = "samples_tests.rs"]
mod tests;
