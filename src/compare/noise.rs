//! Telling regressions from noise.
//!
//! Three sources, in order of authority:
//! 1. **pins**, from config or set at runtime ([`super::pins`]): a field pinned `signal` is
//!    never noise, one pinned `noise` always is;
//! 2. **secondary** (Diffy's method): when a second primary-build upstream answers the same
//!    requests, a difference that also shows between primary and secondary is noise — in
//!    that pair, and for the field from then on once primary and secondary have differed
//!    there in at least a tenth as many pairs as primary and shadow (a field two instances
//!    of the same build disagree on is not deterministic, even when they happen to agree);
//! 3. **learned**: per *endpoint* (`GET /users/{id}`, named by the caller through
//!    [`crate::router::shape::EndpointNamer`]), a field that differs in most of the pairs in
//!    which it is present and whose values look volatile (timestamps, UUIDs, epoch numbers,
//!    large counters, random tokens) is learned as noise. "Most" is a test, not a running
//!    share: after at least `learn_after` observations, the lower bound of the 99 % Wilson
//!    interval of the field's difference rate must reach `learn_ratio` (docs/NOISE.md says
//!    why, with the figures). Learned fields are listed by the
//!    admin API with their counts — never hidden silently — and a pin overrides them.
//!
//! Learning per endpoint, over the pairs in which a field is present, is what makes it work
//! behind a catch-all route: a timestamp that only one endpoint's answers carry is a small
//! share of the route's pairs, but nearly all of that endpoint's.
//!
//! Fields are keyed as `status`, `header:<name>`, or the body's JSON field pattern
//! (`/items/*/updated_at`, `""` for a whole body).

// `Pin` lives with the pins; re-exported where readers of the noise model look for it.
pub use super::pins::Pin;
use super::pins::{PinSource, Pins};
use super::{DiffKind, Difference};
use crate::message::pair::CapturedResponse;
use crate::router::shape::Endpoint;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Why a difference counts as noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseReason {
    /// Pinned as noise in config.
    Pinned,
    /// The secondary differed from the primary the same way.
    Secondary,
    /// Learned from traffic.
    Learned,
}

/// Learning settings.
#[derive(Debug, Clone, Copy)]
pub struct LearnSettings {
    /// Pairs in which a field must have been present before it may be learned (0 disables
    /// learning).
    pub learn_after: u64,
    /// Difference rate a field must reach, with 99 % confidence, to be learned.
    pub learn_ratio: f64,
    /// Fields tracked per endpoint; beyond it new fields are not tracked (bounded memory).
    pub max_fields: usize,
    /// Endpoints learned apart; pairs of further endpoints share one overflow learner.
    pub max_endpoints: usize,
}

/// Share of a field's differences whose values must look volatile to learn it.
const VOLATILE_SHARE: f64 = 0.8;

/// A field is secondary noise once primary/secondary differences reach 1/N of its
/// primary/shadow differences.
const SECONDARY_SHARE_INVERSE: u64 = 10;

/// The normal quantile of the one-sided 99 % bound used by [`learned`].
const CONFIDENCE_Z: f64 = 2.326;

#[derive(Debug, Default, Clone)]
struct FieldStats {
    /// Pairs in which the field was, or may have been, present on either side.
    present_pairs: u64,
    differing_pairs: u64,
    volatile_pairs: u64,
    secondary_pairs: u64,
    /// The body field's segments (`None` for status and headers), parsed once.
    pattern: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct Learner {
    pairs: u64,
    fields: HashMap<String, FieldStats>,
    untracked: u64,
}

/// What a pair showed, so that a field absent from both answers is told apart from one
/// present and equal.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The primary's answer.
    pub primary: &'a CapturedResponse,
    /// The shadow's answer.
    pub shadow: &'a CapturedResponse,
    /// Both bodies as parsed JSON, when the comparison parsed them (bodies that differ);
    /// otherwise a body field counts as present (the cautious side: fewer fields learned).
    pub documents: Option<(&'a Value, &'a Value)>,
}

/// A field the API reports.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseField {
    /// The endpoint (`GET /users/{id}`), or `null` for a pin, which holds for all of them.
    pub endpoint: Option<String>,
    /// The field key.
    pub field: String,
    /// `secondary_noise`, `learned`, `pinned_noise`, `pinned_signal`, or `candidate`
    /// (tracked, not noise).
    pub state: &'static str,
    /// For a pin: `config` or `runtime` (`PUT /api/v1/noise`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<PinSource>,
    /// Pairs in which primary and shadow differed there.
    pub differing_pairs: u64,
    /// Pairs in which the field was present (or may have been) on either side.
    pub present_pairs: u64,
    /// Pairs in which primary and secondary differed there.
    pub secondary_pairs: u64,
    /// Of those, pairs whose values looked volatile.
    pub volatile_pairs: u64,
    /// Pairs the endpoint has compared (for a pin: the route label).
    pub endpoint_pairs: u64,
    /// Pairs the route label has compared.
    pub route_pairs: u64,
}

/// One route label's noise model: a learner per endpoint.
pub struct NoiseModel {
    pins: Arc<Pins>,
    settings: LearnSettings,
    learners: Mutex<Learners>,
}

#[derive(Debug, Default)]
struct Learners {
    /// By endpoint id, with the endpoint's name.
    by_endpoint: Vec<(Arc<str>, Learner)>,
    /// Endpoints past `max_endpoints`, or whose id another name holds (two routes that share
    /// a label share this model, not their namers), learned together.
    overflow: Learner,
    pairs: u64,
}

/// The key noise rules and pins use for a difference.
pub fn field_key(difference: &Difference) -> String {
    match difference.kind {
        DiffKind::Status => "status".to_string(),
        DiffKind::Header => format!("header:{}", difference.field),
        DiffKind::Body => difference.field.clone(),
        DiffKind::Latency => "latency".to_string(),
    }
}

/// The learning decision for a field present in `present` pairs, differing in `differing`
/// of them: at least `learn_after` observations, and the lower bound of the one-sided 99 %
/// Wilson score interval of its difference rate at least `learn_ratio`. A plain share would
/// often learn a field that differs in a minority of pairs, hiding a real regression; the
/// bound almost never does, and still learns an always-differing field after a handful of
/// observations (the figures, and how to reproduce them: docs/NOISE.md).
pub fn learned(present: u64, differing: u64, settings: &LearnSettings) -> bool {
    settings.learn_after > 0
        && present >= settings.learn_after
        && wilson_lower_bound(differing.min(present), present) >= settings.learn_ratio
}

/// Lower bound of the Wilson score interval for `successes` out of `trials`.
fn wilson_lower_bound(successes: u64, trials: u64) -> f64 {
    if trials == 0 {
        return 0.0;
    }
    let n = trials as f64;
    let share = successes as f64 / n;
    let z2 = CONFIDENCE_Z * CONFIDENCE_Z;
    let centre = share + z2 / (2.0 * n);
    let spread = CONFIDENCE_Z * (share * (1.0 - share) / n + z2 / (4.0 * n * n)).sqrt();
    (centre - spread) / (1.0 + z2 / n)
}

impl NoiseModel {
    /// A model with config pins.
    pub fn new(pins: BTreeMap<String, Pin>, settings: LearnSettings) -> NoiseModel {
        NoiseModel::with_pins(Arc::new(Pins::new(pins)), settings)
    }

    /// A model reading a route's pins, which the route's other models share and which can
    /// change at runtime.
    pub fn with_pins(pins: Arc<Pins>, settings: LearnSettings) -> NoiseModel {
        NoiseModel {
            pins,
            settings,
            learners: Mutex::new(Learners::default()),
        }
    }

    /// Marks each difference of a pair of `endpoint` that is noise, then learns from the
    /// pair. `secondary` holds the differences between primary and secondary, when one
    /// answered; `observed` tells which tracked fields the pair carried at all.
    pub fn classify(
        &self,
        endpoint: &Endpoint,
        differences: &mut [Difference],
        secondary: Option<&[Difference]>,
        observed: Option<&Observed<'_>>,
    ) {
        let Ok(mut learners) = self.learners.lock() else {
            return;
        };
        learners.pairs = learners.pairs.saturating_add(1);
        let learners = &mut *learners;
        if endpoint.id >= learners.by_endpoint.len() && endpoint.id < self.settings.max_endpoints {
            // Ids come in the order the namer gave them, but workers may classify a later
            // one first: the slots before it wait, unnamed, for their own pairs.
            learners
                .by_endpoint
                .resize_with(endpoint.id.saturating_add(1), || {
                    (Arc::from(""), Learner::default())
                });
        }
        let learner = match learners.by_endpoint.get_mut(endpoint.id) {
            Some((name, learner))
                if Arc::ptr_eq(name, &endpoint.name) || *name == endpoint.name =>
            {
                learner
            }
            Some((name, learner)) if name.is_empty() => {
                *name = endpoint.name.clone();
                learner
            }
            _ => &mut learners.overflow,
        };
        self.classify_in(learner, differences, secondary, observed);
    }

    fn classify_in(
        &self,
        learner: &mut Learner,
        differences: &mut [Difference],
        secondary: Option<&[Difference]>,
        observed: Option<&Observed<'_>>,
    ) {
        if let Some(others) = secondary {
            let fields: BTreeSet<String> = others.iter().map(field_key).collect();
            for key in fields {
                if let Some(stats) = self.tracked(learner, key) {
                    stats.secondary_pairs += 1;
                }
            }
        }
        let pins = self.pins.read();
        for difference in differences.iter_mut() {
            let key = field_key(difference);
            difference.noise = match pins.get(&key) {
                Some(Pin::Signal) => None,
                Some(Pin::Noise) => Some(NoiseReason::Pinned),
                None => {
                    let by_secondary = secondary.is_some_and(|others| {
                        others.iter().any(|other| {
                            other.kind == difference.kind && other.path == difference.path
                        })
                    });
                    let stats = learner.fields.get(&key);
                    if by_secondary || stats.is_some_and(is_secondary_noise) {
                        Some(NoiseReason::Secondary)
                    } else if stats.is_some_and(|stats| self.is_learned(stats)) {
                        Some(NoiseReason::Learned)
                    } else {
                        None
                    }
                }
            };
        }
        drop(pins);
        if self.settings.learn_after == 0 {
            return;
        }
        // One observation per field per pair, however many array elements differ.
        let mut seen: HashMap<String, bool> = HashMap::new();
        for difference in differences.iter() {
            let volatile = looks_volatile(difference.primary.as_deref())
                && looks_volatile(difference.shadow.as_deref());
            let entry = seen.entry(field_key(difference)).or_insert(true);
            *entry &= volatile;
        }
        // Fields tracked before that did not differ now: present and equal, or absent.
        for (key, stats) in learner.fields.iter_mut() {
            if !seen.contains_key(key) && observed.is_none_or(|pair| present(key, stats, pair)) {
                stats.present_pairs += 1;
            }
        }
        for (key, volatile) in seen {
            if let Some(stats) = self.tracked(learner, key) {
                stats.present_pairs += 1;
                stats.differing_pairs += 1;
                stats.volatile_pairs += u64::from(volatile);
            }
        }
        learner.pairs += 1;
    }

    /// The stats of a field, created while there is room (bounded memory).
    fn tracked<'l>(&self, learner: &'l mut Learner, key: String) -> Option<&'l mut FieldStats> {
        if !learner.fields.contains_key(&key) && learner.fields.len() >= self.settings.max_fields {
            learner.untracked += 1;
            return None;
        }
        // A new field is assumed present, and equal, in every earlier pair of the endpoint:
        // the cautious side (a field that starts to differ late is learned late, not early).
        let earlier = learner.pairs;
        Some(
            learner
                .fields
                .entry(key)
                .or_insert_with_key(|key| FieldStats {
                    present_pairs: earlier,
                    pattern: body_pattern(key),
                    ..FieldStats::default()
                }),
        )
    }

    fn is_learned(&self, stats: &FieldStats) -> bool {
        learned(stats.present_pairs, stats.differing_pairs, &self.settings)
            && stats.volatile_pairs as f64 >= VOLATILE_SHARE * stats.differing_pairs as f64
    }

    /// Everything the model knows, for `GET /api/v1/noise`: pins, learned fields, and the
    /// most frequent candidates (at most `max_candidates` for the whole route label).
    pub fn report(&self, max_candidates: usize) -> Vec<NoiseField> {
        let Ok(learners) = self.learners.lock() else {
            return Vec::new();
        };
        let route_pairs = learners.pairs;
        let mut fields = Vec::new();
        let pins = self.pins.snapshot();
        for (key, (pin, source)) in &pins {
            let mut stats = FieldStats::default();
            for learner in learners.all() {
                if let Some(seen) = learner.1.fields.get(key) {
                    stats.differing_pairs += seen.differing_pairs;
                    stats.present_pairs += seen.present_pairs;
                    stats.volatile_pairs += seen.volatile_pairs;
                    stats.secondary_pairs += seen.secondary_pairs;
                }
            }
            fields.push(NoiseField {
                endpoint: None,
                field: key.clone(),
                state: match pin {
                    Pin::Noise => "pinned_noise",
                    Pin::Signal => "pinned_signal",
                },
                pinned_by: Some(*source),
                differing_pairs: stats.differing_pairs,
                present_pairs: stats.present_pairs,
                secondary_pairs: stats.secondary_pairs,
                volatile_pairs: stats.volatile_pairs,
                endpoint_pairs: route_pairs,
                route_pairs,
            });
        }
        let mut others: Vec<(&str, u64, &String, &FieldStats)> = learners
            .all()
            .flat_map(|(endpoint, learner)| {
                learner
                    .fields
                    .iter()
                    .filter(|(key, _)| !pins.contains_key(*key))
                    .map(move |(key, stats)| (endpoint, learner.pairs, key, stats))
            })
            .collect();
        others.sort_by(|a, b| {
            b.3.differing_pairs
                .cmp(&a.3.differing_pairs)
                .then(a.0.cmp(b.0))
                .then(a.2.cmp(b.2))
        });
        let mut candidates = 0;
        for (endpoint, endpoint_pairs, key, stats) in others {
            let learned = self.is_learned(stats);
            let secondary = is_secondary_noise(stats);
            if !learned && !secondary {
                if candidates >= max_candidates {
                    continue;
                }
                candidates += 1;
            }
            fields.push(NoiseField {
                endpoint: Some(endpoint.to_string()),
                field: key.clone(),
                pinned_by: None,
                state: if secondary {
                    "secondary_noise"
                } else if learned {
                    "learned"
                } else {
                    "candidate"
                },
                differing_pairs: stats.differing_pairs,
                present_pairs: stats.present_pairs,
                secondary_pairs: stats.secondary_pairs,
                volatile_pairs: stats.volatile_pairs,
                endpoint_pairs,
                route_pairs,
            });
        }
        fields
    }

    /// Fields learned as noise per endpoint (for the endpoint view of the admin API).
    pub fn learned_fields(&self) -> HashMap<Arc<str>, Vec<String>> {
        let Ok(learners) = self.learners.lock() else {
            return HashMap::new();
        };
        let pins = self.pins.read();
        learners
            .by_endpoint
            .iter()
            .map(|(endpoint, learner)| {
                let mut fields: Vec<String> = learner
                    .fields
                    .iter()
                    .filter(|(key, stats)| !pins.contains(key) && self.is_learned(stats))
                    .map(|(key, _)| key.clone())
                    .collect();
                fields.sort();
                (endpoint.clone(), fields)
            })
            .collect()
    }
}

impl Learners {
    /// Every learner with its endpoint name (`*` for the overflow learner).
    fn all(&self) -> impl Iterator<Item = (&str, &Learner)> {
        self.by_endpoint
            .iter()
            .filter(|(endpoint, _)| !endpoint.is_empty())
            .map(|(endpoint, learner)| (&**endpoint, learner))
            .chain((self.overflow.pairs > 0).then_some(("*", &self.overflow)))
    }
}

fn is_secondary_noise(stats: &FieldStats) -> bool {
    stats.secondary_pairs > 0
        && stats.secondary_pairs * SECONDARY_SHARE_INVERSE >= stats.differing_pairs
}

/// The segments of a body field key (`/items/*/at` -> `["items", "*", "at"]`, RFC 6901
/// escapes undone); `None` for status and header keys.
fn body_pattern(key: &str) -> Option<Vec<String>> {
    if key == "status" || key.starts_with("header:") {
        return None;
    }
    Some(
        key.split('/')
            .skip(1)
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Whether a tracked field was present, on either side, in this pair.
fn present(key: &str, stats: &FieldStats, pair: &Observed<'_>) -> bool {
    if key == "status" {
        return true;
    }
    if let Some(name) = key.strip_prefix("header:") {
        return pair.primary.headers.get(name).is_some() || pair.shadow.headers.get(name).is_some();
    }
    match (&stats.pattern, pair.documents) {
        (Some(pattern), Some((primary, shadow))) => {
            reaches(primary, pattern) || reaches(shadow, pattern)
        }
        // Not parsed (equal bodies, skipped bodies, not JSON): cannot tell, count it.
        _ => true,
    }
}

/// Whether a JSON document has a value at a field pattern (`*` is any array element).
fn reaches(value: &Value, pattern: &[String]) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return true;
    };
    match value {
        Value::Object(map) => map.get(first).is_some_and(|inner| reaches(inner, rest)),
        Value::Array(items) if first == "*" => items.iter().any(|inner| reaches(inner, rest)),
        _ => false,
    }
}

/// Whether a reported value looks like it changes on every response by nature.
pub fn looks_volatile(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let text = value.trim_matches('"');
    if text.is_empty() {
        return false;
    }
    is_uuid(text) || is_timestamp(text) || is_epoch_or_counter(text) || is_token(text)
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_timestamp(text: &str) -> bool {
    // ISO 8601 / RFC 3339 dates and date-times: 2026-11-22, 2026-11-22T10:00:00Z, ...
    let bytes = text.as_bytes();
    bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'-'
        && bytes[8..10].iter().all(u8::is_ascii_digit)
}

fn is_epoch_or_counter(text: &str) -> bool {
    // Epoch seconds or milliseconds, and large counters; small integers are data.
    match text.parse::<f64>() {
        Ok(number) => number.abs() >= 1000.0,
        Err(_) => false,
    }
}

fn is_token(text: &str) -> bool {
    let long_enough = text.len() >= 16;
    let charset = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'/' | b'.'));
    let digits = text.bytes().any(|b| b.is_ascii_digit());
    long_enough && charset && digits && !text.contains(' ')
}

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;
