//! A short, bounded history per (route, shadow): one bucket a minute for the last
//! `compare.history_minutes`, so a person sees a trend (the web page's sparklines,
//! `GET /api/v1/routes/{route}/history`) without a Prometheus.
//!
//! Memory is fixed in advance: at most `compare.history_series` series, each a ring of
//! `history_minutes` buckets of fixed size ([`History::bytes_bound`]); a series past the cap
//! is not tracked and counted in `untracked_pairs`. Latencies go into a small log-scaled
//! histogram per bucket (a third of an octave per bin), whose percentiles are exact to the
//! bin.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::telemetry::metrics::MirrorOutcome;
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Seconds per bucket.
pub const BUCKET_SECONDS: u64 = 60;
/// Bins of a bucket's latency histogram.
const LATENCY_BINS: usize = 56;
/// The upper edge of the first bin, in microseconds; each next bin is 2^(1/3) wider.
const FIRST_BIN_MICROS: f64 = 50.0;
/// Bins per doubling of latency.
const BINS_PER_OCTAVE: f64 = 3.0;

/// A latency histogram of fixed size: bin `i` holds latencies up to
/// `FIRST_BIN_MICROS * 2^(i/3)`; the last bin also holds everything longer.
#[derive(Debug, Clone, Copy)]
struct LatencyBins([u32; LATENCY_BINS]);

impl LatencyBins {
    fn bin(latency: Duration) -> usize {
        let micros = latency.as_secs_f64() * 1e6;
        if micros <= FIRST_BIN_MICROS {
            return 0;
        }
        let bin = ((micros / FIRST_BIN_MICROS).log2() * BINS_PER_OCTAVE).ceil();
        (bin as usize).min(LATENCY_BINS - 1)
    }

    /// The upper edge of bin `index`, in milliseconds.
    fn upper_ms(index: usize) -> f64 {
        FIRST_BIN_MICROS * (index as f64 / BINS_PER_OCTAVE).exp2() / 1000.0
    }

    fn record(&mut self, latency: Duration) {
        if let Some(count) = self.0.get_mut(Self::bin(latency)) {
            *count = count.saturating_add(1);
        }
    }

    /// The upper edge of the bin holding quantile `q` (0 when empty).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.0.iter().map(|count| u64::from(*count)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.0.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                return Self::upper_ms(index);
            }
        }
        Self::upper_ms(LATENCY_BINS - 1)
    }
}

/// One minute of one series.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Minutes since the Unix epoch this bucket counts (stale when older than the window).
    minute: u64,
    pairs: u32,
    diverged: u32,
    noise_only: u32,
    primary: LatencyBins,
    shadow: LatencyBins,
    mirror: [u32; MirrorOutcome::ALL.len()],
}

impl Bucket {
    fn empty(minute: u64) -> Bucket {
        Bucket {
            minute,
            pairs: 0,
            diverged: 0,
            noise_only: 0,
            primary: LatencyBins([0; LATENCY_BINS]),
            shadow: LatencyBins([0; LATENCY_BINS]),
            mirror: [0; MirrorOutcome::ALL.len()],
        }
    }
}

/// A ring of buckets, indexed by minute modulo its length; allocated once.
#[derive(Debug)]
struct Series {
    buckets: Box<[Bucket]>,
    /// The mirror outcome counters' totals when last sampled (see [`History::observe_mirror`]).
    mirror_seen: [u64; MirrorOutcome::ALL.len()],
}

impl Series {
    fn new(minutes: usize) -> Series {
        Series {
            buckets: vec![Bucket::empty(0); minutes.max(1)].into_boxed_slice(),
            mirror_seen: [0; MirrorOutcome::ALL.len()],
        }
    }

    /// The bucket of `minute`, emptied first if it still holds an older minute.
    fn bucket(&mut self, minute: u64) -> Option<&mut Bucket> {
        let len = self.buckets.len() as u64;
        let bucket = self.buckets.get_mut((minute % len) as usize)?;
        if bucket.minute != minute {
            *bucket = Bucket::empty(minute);
        }
        Some(bucket)
    }

    fn held(&self, minute: u64) -> Option<&Bucket> {
        let len = self.buckets.len() as u64;
        self.buckets
            .get((minute % len) as usize)
            .filter(|bucket| bucket.minute == minute)
    }
}

/// What a compared pair adds to its minute.
#[derive(Debug, Clone, Copy)]
pub struct PairPoint {
    /// The pair diverged.
    pub diverged: bool,
    /// The pair's differences were all noise.
    pub noise_only: bool,
    /// The primary's latency.
    pub primary: Duration,
    /// The shadow's latency.
    pub shadow: Duration,
}

/// The bounded history of every (route, shadow).
#[derive(Debug)]
pub struct History {
    minutes: usize,
    max_series: usize,
    series: HashMap<(Arc<str>, Arc<str>), Series, foldhash::fast::RandomState>,
    /// Pairs of series past `max_series`, not tracked.
    untracked_pairs: u64,
}

impl History {
    /// Keeps `minutes` one-minute buckets for at most `max_series` (route, shadow) series.
    pub fn new(minutes: usize, max_series: usize) -> History {
        History {
            minutes: minutes.max(1),
            max_series,
            series: HashMap::default(),
            untracked_pairs: 0,
        }
    }

    /// The most memory the buckets can take: series times minutes times one bucket.
    pub fn bytes_bound(minutes: usize, max_series: usize) -> usize {
        minutes.max(1) * max_series * std::mem::size_of::<Bucket>()
    }

    /// One lookup per pair: the entry is found, or made while under `max_series`.
    fn series(&mut self, route: &Arc<str>, shadow: &Arc<str>) -> Option<&mut Series> {
        let held = self.series.len();
        match self.series.entry((route.clone(), shadow.clone())) {
            Entry::Occupied(found) => Some(found.into_mut()),
            Entry::Vacant(room) if held < self.max_series => {
                Some(room.insert(Series::new(self.minutes)))
            }
            Entry::Vacant(_) => None,
        }
    }

    /// Adds a compared pair to `minute` (minutes since the Unix epoch).
    pub fn record_pair(
        &mut self,
        route: &Arc<str>,
        shadow: &Arc<str>,
        minute: u64,
        pair: PairPoint,
    ) {
        let Some(bucket) = self.series(route, shadow).and_then(|s| s.bucket(minute)) else {
            self.untracked_pairs += 1;
            return;
        };
        bucket.pairs = bucket.pairs.saturating_add(1);
        bucket.diverged = bucket.diverged.saturating_add(u32::from(pair.diverged));
        bucket.noise_only = bucket.noise_only.saturating_add(u32::from(pair.noise_only));
        bucket.primary.record(pair.primary);
        bucket.shadow.record(pair.shadow);
    }

    /// Adds to `minute` what the mirror outcome counters of (route, shadow) grew by since the
    /// last call: `totals` are the counters' values since the process started. A series not
    /// tracked yet starts being tracked here (its first growth is attributed to `minute`).
    pub fn observe_mirror(
        &mut self,
        route: &Arc<str>,
        shadow: &Arc<str>,
        minute: u64,
        totals: &[u64; MirrorOutcome::ALL.len()],
    ) {
        let Some(series) = self.series(route, shadow) else {
            return;
        };
        let grown: Vec<u64> = series
            .mirror_seen
            .iter()
            .zip(totals)
            .map(|(seen, total)| total.saturating_sub(*seen))
            .collect();
        series.mirror_seen = *totals;
        if let Some(bucket) = series.bucket(minute) {
            for (count, grown) in bucket.mirror.iter_mut().zip(grown) {
                *count = count.saturating_add(u32::try_from(grown).unwrap_or(u32::MAX));
            }
        }
    }

    /// The history of `route` (every shadow; all routes with `None`), oldest minute first,
    /// ending with `minute`.
    pub fn view(&self, route: Option<&str>, minute: u64) -> HistoryView {
        let first = (minute + 1).saturating_sub(self.minutes as u64);
        let mut series: Vec<SeriesView> = self
            .series
            .iter()
            .filter(|((name, _), _)| route.is_none_or(|route| &**name == route))
            .map(|((route, shadow), series)| SeriesView {
                route: route.to_string(),
                shadow: shadow.to_string(),
                buckets: (first..=minute)
                    .map(|minute| bucket_view(minute, series.held(minute)))
                    .collect(),
            })
            .collect();
        series.sort_by(|a, b| (&a.route, &a.shadow).cmp(&(&b.route, &b.shadow)));
        HistoryView {
            bucket_seconds: BUCKET_SECONDS,
            minutes: self.minutes,
            untracked_pairs: self.untracked_pairs,
            series,
        }
    }
}

fn bucket_view(minute: u64, bucket: Option<&Bucket>) -> BucketView {
    let empty = Bucket::empty(minute);
    let bucket = bucket.unwrap_or(&empty);
    let latency = |bins: &LatencyBins| QuantilesMs {
        p50: bins.quantile_ms(0.5),
        p99: bins.quantile_ms(0.99),
    };
    BucketView {
        start: minute * BUCKET_SECONDS,
        pairs: bucket.pairs,
        diverged: bucket.diverged,
        noise_only: bucket.noise_only,
        latency_ms: SidesMs {
            primary: latency(&bucket.primary),
            shadow: latency(&bucket.shadow),
        },
        mirror: MirrorOutcome::ALL
            .iter()
            .zip(bucket.mirror)
            .filter(|(_, count)| *count > 0)
            .map(|(outcome, count)| (outcome.as_str(), count))
            .collect(),
    }
}

/// Minutes since the Unix epoch, now.
pub fn current_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / BUCKET_SECONDS)
}

/// `GET /api/v1/routes/{route}/history` (and `/api/v1/history` for every route).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// Seconds per bucket (60).
    pub bucket_seconds: u64,
    /// Buckets per series (`compare.history_minutes`).
    pub minutes: usize,
    /// Pairs of (route, shadow) series past `compare.history_series`, not tracked.
    pub untracked_pairs: u64,
    /// One per (route, shadow), sorted.
    pub series: Vec<SeriesView>,
}

/// One (route, shadow)'s minutes.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    /// Route label.
    pub route: String,
    /// Shadow upstream.
    pub shadow: String,
    /// Oldest first; the last is the current (partial) minute.
    pub buckets: Vec<BucketView>,
}

/// One minute.
#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    /// Unix seconds at which the minute starts.
    pub start: u64,
    /// Compared pairs.
    pub pairs: u32,
    /// Of which diverged.
    pub diverged: u32,
    /// Of which noise only.
    pub noise_only: u32,
    /// Latency percentiles of the compared pairs (the upper edge of their bin).
    pub latency_ms: SidesMs,
    /// Requests sampled for the shadow, by mirror outcome (outcomes seen only).
    pub mirror: BTreeMap<&'static str, u32>,
}

/// Primary and shadow percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct SidesMs {
    /// The primary.
    pub primary: QuantilesMs,
    /// The shadow.
    pub shadow: QuantilesMs,
}

/// p50 and p99 in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct QuantilesMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
