//! Per (route, shadow) running statistics: results, kinds, top diverging fields, latency
//! percentiles. All bounded: the top-field table is a space-saving sketch of fixed size.

use crate::compare::DiffKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Highest latency tracked, in microseconds (longer ones are clamped): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// A fixed-size "space-saving" top-K counter (Metwally et al.): it keeps `capacity` entries;
/// a new key replaces the smallest one and inherits its count, so heavy hitters are never
/// lost and memory never grows. Counts are upper bounds, exact while nothing was evicted.
#[derive(Debug)]
pub struct TopFields {
    capacity: usize,
    counts: HashMap<String, u64>,
}

impl TopFields {
    /// Tracks at most `capacity` fields.
    pub fn new(capacity: usize) -> TopFields {
        TopFields {
            capacity: capacity.max(1),
            counts: HashMap::new(),
        }
    }

    /// Counts one occurrence.
    pub fn add(&mut self, field: &str) {
        if let Some(count) = self.counts.get_mut(field) {
            *count += 1;
            return;
        }
        if self.counts.len() < self.capacity {
            self.counts.insert(field.to_string(), 1);
            return;
        }
        let smallest = self
            .counts
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(key, count)| (key.clone(), *count));
        if let Some((key, count)) = smallest {
            self.counts.remove(&key);
            self.counts.insert(field.to_string(), count + 1);
        }
    }

    /// The `n` most frequent fields, most frequent first.
    pub fn top(&self, n: usize) -> Vec<FieldCount> {
        let mut all: Vec<FieldCount> = self
            .counts
            .iter()
            .map(|(field, count)| FieldCount {
                field: field.clone(),
                count: *count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.field.cmp(&b.field)));
        all.truncate(n);
        all
    }
}

/// A field and how many diverged pairs it differed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCount {
    /// The field key (`/items/*/price`, `header:etag`, `status`).
    pub field: String,
    /// Diverged pairs in which it differed (not noise).
    pub count: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

/// A latency histogram that also takes negative values (the delta): magnitudes of negative
/// and positive values are kept in two histograms, so both keep 3 significant digits.
#[derive(Debug)]
pub struct LatencyHistogram {
    negative: Option<Histogram<u64>>,
    positive: Option<Histogram<u64>>,
}

fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).ok()
}

impl LatencyHistogram {
    /// For durations (non-negative).
    pub fn durations() -> LatencyHistogram {
        LatencyHistogram {
            negative: None,
            positive: histogram(),
        }
    }

    /// For signed deltas.
    pub fn deltas() -> LatencyHistogram {
        LatencyHistogram {
            negative: histogram(),
            positive: histogram(),
        }
    }

    /// Records microseconds (negative values only count in a delta histogram).
    pub fn record(&mut self, micros: i64) {
        let magnitude = micros.unsigned_abs().clamp(1, MAX_LATENCY_US);
        let side = if micros < 0 {
            self.negative.as_mut()
        } else {
            self.positive.as_mut()
        };
        if let Some(histogram) = side {
            let _ = histogram.record(magnitude);
        }
    }

    /// The value at quantile `q`, in microseconds, across both sides.
    fn value_at(&self, q: f64) -> Option<f64> {
        let count = |h: &Option<Histogram<u64>>| h.as_ref().map_or(0, |h| h.len());
        let (negatives, positives) = (count(&self.negative), count(&self.positive));
        let total = negatives + positives;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        if rank < negatives as f64 {
            // Ascending order starts with the largest negative magnitude.
            let within = 1.0 - rank / negatives as f64;
            let magnitude = self
                .negative
                .as_ref()?
                .value_at_quantile(within.clamp(0.0, 1.0));
            Some(-(magnitude as f64))
        } else {
            let within = (rank - negatives as f64) / positives.max(1) as f64;
            let value = self
                .positive
                .as_ref()?
                .value_at_quantile(within.clamp(0.0, 1.0));
            Some(value as f64)
        }
    }

    /// p50/p90/p99/p99.9 in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        let at = |q: f64| self.value_at(q).map_or(0.0, |us| us / 1000.0);
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
        }
    }
}

/// The numbers of one (route, shadow).
#[derive(Debug)]
pub struct PairStats {
    /// Pairs that matched.
    pub matched: u64,
    /// Pairs with at least one difference that is not noise.
    pub diverged: u64,
    /// Pairs whose differences were all noise.
    pub noise_only: u64,
    /// Pairs with no difference found but bodies that could not be judged.
    pub unjudged: u64,
    /// Pairs whose bodies were not compared.
    pub body_skipped: u64,
    /// Compared pairs whose primary answered other than 2xx.
    pub primary_non2xx: u64,
    /// Compared pairs whose shadow answered other than 2xx.
    pub shadow_non2xx: u64,
    /// Diverged pairs by kind (status, header, body, latency).
    pub kinds: [u64; DiffKind::ALL.len()],
    /// Diverging fields.
    pub fields: TopFields,
    /// Primary latency.
    pub primary: LatencyHistogram,
    /// Shadow latency.
    pub shadow: LatencyHistogram,
    /// Shadow minus primary.
    pub delta: LatencyHistogram,
}

impl PairStats {
    /// Empty stats tracking up to `field_capacity` fields.
    pub fn new(field_capacity: usize) -> PairStats {
        PairStats {
            matched: 0,
            diverged: 0,
            noise_only: 0,
            unjudged: 0,
            body_skipped: 0,
            primary_non2xx: 0,
            shadow_non2xx: 0,
            kinds: [0; DiffKind::ALL.len()],
            fields: TopFields::new(field_capacity),
            primary: LatencyHistogram::durations(),
            shadow: LatencyHistogram::durations(),
            delta: LatencyHistogram::deltas(),
        }
    }

    /// Records the latencies of one pair.
    pub fn record_latency(&mut self, primary: Duration, shadow: Duration) {
        let p = i64::try_from(primary.as_micros()).unwrap_or(i64::MAX / 4);
        let s = i64::try_from(shadow.as_micros()).unwrap_or(i64::MAX / 4);
        self.primary.record(p);
        self.shadow.record(s);
        self.delta.record(s - p);
    }

    /// Counts a diverged pair's kinds.
    pub fn record_kinds(&mut self, kinds: &[DiffKind]) {
        for kind in kinds {
            let index = DiffKind::ALL.iter().position(|k| k == kind);
            if let Some(count) = index.and_then(|index| self.kinds.get_mut(index)) {
                *count += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_fields_keep_heavy_hitters_within_capacity() {
        // Space-saving keeps every key whose count beats N / capacity, exactly when never evicted.
        let mut top = TopFields::new(10);
        for _ in 0..50 {
            top.add("/price");
        }
        for i in 0..100 {
            top.add(&format!("/rare/{i}"));
        }
        for _ in 0..20 {
            top.add("/name");
        }
        let best = top.top(2);
        assert_eq!(best[0].field, "/price");
        assert_eq!(best[0].count, 50);
        assert_eq!(best[1].field, "/name");
        assert!(best[1].count >= 20, "counts are upper bounds");
        assert!(top.counts.len() <= 10);
    }

    #[test]
    fn deltas_keep_their_sign() {
        let mut delta = LatencyHistogram::deltas();
        for _ in 0..10 {
            delta.record(-2000);
        }
        for _ in 0..90 {
            delta.record(5000);
        }
        let p = delta.percentiles();
        assert!((p.p50 - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p90 - 5.0).abs() < 0.01, "{p:?}");
        let mut early = LatencyHistogram::deltas();
        for micros in [-3000, -1000, 2000] {
            early.record(micros);
        }
        let p = early.percentiles();
        assert!((p.p50 + 1.0).abs() < 0.01, "{p:?}");
        assert!((p.p99 - 2.0).abs() < 0.01, "{p:?}");
    }
}
