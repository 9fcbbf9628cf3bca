//! What a source found for one (route, shadow): the counts and latencies a verdict is
//! judged on, in one shape whichever source (one instance's API, a fleet's Prometheus)
//! they came from.

use serde::Serialize;
use std::collections::BTreeMap;

/// Outcomes of `shadowtap_mirror_requests_total` that count as a shadow error.
pub const ERROR_OUTCOMES: [&str; 2] = ["error", "timeout"];
/// Outcomes that count as a shadow request sent (the error ratio's denominator): the shadow
/// was asked and answered, failed or ran out of time. Drops and skips never reached it.
pub const SENT_OUTCOMES: [&str; 3] = ["completed", "error", "timeout"];

/// The evidence of one (route, shadow).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Route label (a template, or the route's name).
    pub route: String,
    /// Shadow upstream name.
    pub shadow: String,
    /// Compared pairs (every `result`).
    pub pairs: u64,
    /// Pairs with a difference that is not noise.
    pub diverged: u64,
    /// Diverged pairs by kind (`status`, `header`, `body`, `latency`).
    pub divergences_by_kind: BTreeMap<String, u64>,
    /// Shadow requests sent (completed, failed or timed out).
    pub shadow_requests: u64,
    /// Shadow requests that failed or timed out.
    pub shadow_errors: u64,
    /// p99 of shadow minus primary latency, in seconds, when known.
    pub latency_delta_p99_seconds: Option<f64>,
    /// p99 of the primary's latency, in seconds, when known.
    pub primary_p99_seconds: Option<f64>,
}

impl Evidence {
    /// Empty evidence of `(route, shadow)`.
    pub fn new(route: &str, shadow: &str) -> Evidence {
        Evidence {
            route: route.to_string(),
            shadow: shadow.to_string(),
            ..Evidence::default()
        }
    }

    /// Counts one `shadowtap_comparisons_total` result.
    pub fn add_comparisons(&mut self, result: &str, count: u64) {
        self.pairs += count;
        if result == "diverged" {
            self.diverged += count;
        }
    }

    /// Counts one `shadowtap_mirror_requests_total` outcome.
    pub fn add_mirror_outcome(&mut self, outcome: &str, count: u64) {
        if SENT_OUTCOMES.contains(&outcome) {
            self.shadow_requests += count;
        }
        if ERROR_OUTCOMES.contains(&outcome) {
            self.shadow_errors += count;
        }
    }
}

/// Evidence by (route, shadow), filled in by a source one series at a time.
#[derive(Debug, Default)]
pub struct Book(BTreeMap<(String, String), Evidence>);

impl Book {
    /// The evidence of `(route, shadow)`, made empty the first time.
    pub fn entry(&mut self, route: &str, shadow: &str) -> &mut Evidence {
        self.0
            .entry((route.to_string(), shadow.to_string()))
            .or_insert_with(|| Evidence::new(route, shadow))
    }

    /// The evidence of `(route, shadow)`, if any was found.
    pub fn get_mut(&mut self, route: &str, shadow: &str) -> Option<&mut Evidence> {
        self.0.get_mut(&(route.to_string(), shadow.to_string()))
    }

    /// Every (route, shadow), sorted.
    pub fn into_vec(self) -> Vec<Evidence> {
        self.0.into_values().collect()
    }
}
