//! Telling regressions from noise.
//!
//! Three sources, in order of authority:
//! 1. **pins** from config: a field pinned `signal` is never noise, one pinned `noise` always is;
//! 2. **secondary** (Diffy's method): when a second primary-build upstream answers the same
//!    requests, a difference that also shows between primary and secondary is noise — in
//!    that pair, and for the field from then on once primary and secondary have differed
//!    there in at least a tenth as many pairs as primary and shadow (a field two instances
//!    of the same build disagree on is not deterministic, even when they happen to agree);
//! 3. **learned**: per route, a field that differs in most pairs (`learn_ratio` of at least
//!    `learn_after` pairs) and whose values look volatile (timestamps, UUIDs, epoch numbers,
//!    large counters, random tokens) is learned as noise. Learned fields are listed by the
//!    admin API with their counts — never hidden silently — and a pin overrides them.
//!
//! Fields are keyed as `status`, `header:<name>`, or the body's JSON field pattern
//! (`/items/*/updated_at`, `""` for a whole body).

use super::{DiffKind, Difference};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

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

/// A config pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Always noise.
    Noise,
    /// Never noise.
    Signal,
}

/// Learning settings.
#[derive(Debug, Clone, Copy)]
pub struct LearnSettings {
    /// Pairs a route must have seen before anything is learned (0 disables learning).
    pub learn_after: u64,
    /// Share of pairs in which a field must differ.
    pub learn_ratio: f64,
    /// Fields tracked per route; beyond it new fields are not tracked (bounded memory).
    pub max_fields: usize,
}

/// Share of a field's differences whose values must look volatile to learn it.
const VOLATILE_SHARE: f64 = 0.8;

/// A field is secondary noise once primary/secondary differences reach 1/N of its
/// primary/shadow differences.
const SECONDARY_SHARE_INVERSE: u64 = 10;

#[derive(Debug, Default, Clone, Serialize)]
struct FieldStats {
    differing_pairs: u64,
    volatile_pairs: u64,
    secondary_pairs: u64,
}

#[derive(Debug, Default)]
struct Learner {
    pairs: u64,
    fields: HashMap<String, FieldStats>,
    untracked: u64,
}

/// A field the API reports.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseField {
    /// The field key.
    pub field: String,
    /// `secondary_noise`, `learned`, `pinned_noise`, `pinned_signal`, or `candidate`
    /// (tracked, not noise).
    pub state: &'static str,
    /// Pairs in which primary and shadow differed there.
    pub differing_pairs: u64,
    /// Pairs in which primary and secondary differed there.
    pub secondary_pairs: u64,
    /// Of those, pairs whose values looked volatile.
    pub volatile_pairs: u64,
    /// Pairs the route has compared.
    pub route_pairs: u64,
}

/// One route's noise model.
pub struct NoiseModel {
    pins: BTreeMap<String, Pin>,
    settings: LearnSettings,
    learner: Mutex<Learner>,
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

impl NoiseModel {
    /// A model with config pins.
    pub fn new(pins: BTreeMap<String, Pin>, settings: LearnSettings) -> NoiseModel {
        NoiseModel {
            pins,
            settings,
            learner: Mutex::new(Learner::default()),
        }
    }

    /// Marks each difference that is noise, then learns from this pair.
    /// `secondary` holds the differences between primary and secondary, when one answered.
    pub fn classify(&self, differences: &mut [Difference], secondary: Option<&[Difference]>) {
        let Ok(mut learner) = self.learner.lock() else {
            return;
        };
        if let Some(others) = secondary {
            let fields: std::collections::BTreeSet<String> = others.iter().map(field_key).collect();
            for key in fields {
                if let Some(stats) = self.tracked(&mut learner, key) {
                    stats.secondary_pairs += 1;
                }
            }
        }
        for difference in differences.iter_mut() {
            let key = field_key(difference);
            difference.noise = match self.pins.get(&key) {
                Some(Pin::Signal) => None,
                Some(Pin::Noise) => Some(NoiseReason::Pinned),
                None => {
                    let by_secondary = secondary.is_some_and(|others| {
                        others.iter().any(|other| {
                            other.kind == difference.kind && other.path == difference.path
                        })
                    });
                    let field_nondeterministic = learner.fields.get(&key).is_some_and(|stats| {
                        stats.secondary_pairs > 0
                            && stats.secondary_pairs * SECONDARY_SHARE_INVERSE
                                >= stats.differing_pairs
                    });
                    if by_secondary || field_nondeterministic {
                        Some(NoiseReason::Secondary)
                    } else if self.is_learned(&learner, &key) {
                        Some(NoiseReason::Learned)
                    } else {
                        None
                    }
                }
            };
        }
        if self.settings.learn_after == 0 {
            return;
        }
        learner.pairs += 1;
        // One observation per field per pair, however many array elements differ.
        let mut seen: HashMap<String, bool> = HashMap::new();
        for difference in differences.iter() {
            let volatile = looks_volatile(difference.primary.as_deref())
                && looks_volatile(difference.shadow.as_deref());
            let entry = seen.entry(field_key(difference)).or_insert(true);
            *entry &= volatile;
        }
        for (key, volatile) in seen {
            if let Some(stats) = self.tracked(&mut learner, key) {
                stats.differing_pairs += 1;
                stats.volatile_pairs += u64::from(volatile);
            }
        }
    }

    /// The stats of a field, created while there is room (bounded memory).
    fn tracked<'l>(&self, learner: &'l mut Learner, key: String) -> Option<&'l mut FieldStats> {
        if !learner.fields.contains_key(&key) && learner.fields.len() >= self.settings.max_fields {
            learner.untracked += 1;
            return None;
        }
        Some(learner.fields.entry(key).or_default())
    }

    fn is_learned(&self, learner: &Learner, key: &str) -> bool {
        if self.settings.learn_after == 0 || learner.pairs < self.settings.learn_after {
            return false;
        }
        learner.fields.get(key).is_some_and(|stats| {
            stats.differing_pairs as f64 >= self.settings.learn_ratio * learner.pairs as f64
                && stats.volatile_pairs as f64 >= VOLATILE_SHARE * stats.differing_pairs as f64
        })
    }

    /// Everything the model knows, for `GET /api/v1/noise`: pins, learned fields, and the
    /// most frequent candidates.
    pub fn report(&self, max_candidates: usize) -> Vec<NoiseField> {
        let Ok(learner) = self.learner.lock() else {
            return Vec::new();
        };
        let mut fields = Vec::new();
        for (key, pin) in &self.pins {
            let stats = learner.fields.get(key).cloned().unwrap_or_default();
            fields.push(NoiseField {
                secondary_pairs: stats.secondary_pairs,
                field: key.clone(),
                state: match pin {
                    Pin::Noise => "pinned_noise",
                    Pin::Signal => "pinned_signal",
                },
                differing_pairs: stats.differing_pairs,
                volatile_pairs: stats.volatile_pairs,
                route_pairs: learner.pairs,
            });
        }
        let mut others: Vec<(&String, &FieldStats)> = learner
            .fields
            .iter()
            .filter(|(key, _)| !self.pins.contains_key(*key))
            .collect();
        others.sort_by(|a, b| {
            b.1.differing_pairs
                .cmp(&a.1.differing_pairs)
                .then(a.0.cmp(b.0))
        });
        let mut candidates = 0;
        for (key, stats) in others {
            let learned = self.is_learned(&learner, key);
            let secondary = stats.secondary_pairs > 0
                && stats.secondary_pairs * SECONDARY_SHARE_INVERSE >= stats.differing_pairs;
            if !learned && !secondary {
                if candidates >= max_candidates {
                    continue;
                }
                candidates += 1;
            }
            fields.push(NoiseField {
                field: key.clone(),
                state: if secondary {
                    "secondary_noise"
                } else if learned {
                    "learned"
                } else {
                    "candidate"
                },
                secondary_pairs: stats.secondary_pairs,
                differing_pairs: stats.differing_pairs,
                volatile_pairs: stats.volatile_pairs,
                route_pairs: learner.pairs,
            });
        }
        fields
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
