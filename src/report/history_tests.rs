use super::*;

fn key(text: &str) -> Arc<str> {
    Arc::from(text)
}

fn pair(diverged: bool, primary_ms: u64, shadow_ms: u64) -> PairPoint {
    PairPoint {
        diverged,
        noise_only: false,
        primary: Duration::from_millis(primary_ms),
        shadow: Duration::from_millis(shadow_ms),
    }
}

#[test]
fn pairs_land_in_their_minute_and_old_minutes_fall_out_of_the_window() {
    let mut history = History::new(3, 10);
    let (route, shadow) = (key("/a"), key("canary"));
    history.record_pair(&route, &shadow, 100, pair(true, 10, 20));
    history.record_pair(&route, &shadow, 100, pair(false, 10, 20));
    history.record_pair(&route, &shadow, 102, pair(false, 10, 20));
    let view = history.view(Some("/a"), 102);
    assert_eq!(view.series.len(), 1);
    let counts: Vec<(u64, u32, u32)> = view.series[0]
        .buckets
        .iter()
        .map(|b| (b.start, b.pairs, b.diverged))
        .collect();
    assert_eq!(counts, vec![(6000, 2, 1), (6060, 0, 0), (6120, 1, 0)]);
    // Minute 103 reuses minute 100's slot: its counts must not carry over.
    history.record_pair(&route, &shadow, 103, pair(true, 10, 20));
    let view = history.view(None, 103);
    let pairs: Vec<u32> = view.series[0].buckets.iter().map(|b| b.pairs).collect();
    assert_eq!(pairs, vec![0, 1, 1]);
    assert!(history.view(Some("/other"), 103).series.is_empty());
}

#[test]
fn series_past_the_cap_are_counted_not_kept() {
    let mut history = History::new(60, 2);
    for route in ["/a", "/b", "/c", "/c"] {
        history.record_pair(&key(route), &key("s"), 1, pair(false, 1, 1));
    }
    let view = history.view(None, 1);
    assert_eq!(view.series.len(), 2);
    assert_eq!(view.untracked_pairs, 2);
    assert_eq!(
        History::bytes_bound(60, 2),
        120 * std::mem::size_of::<Bucket>()
    );
    // 520 since a bucket counts one mirror outcome more (`dropped_primary_failed`).
    assert_eq!(std::mem::size_of::<Bucket>(), 520, "the size README states");
}

#[test]
fn latency_percentiles_are_exact_to_their_bin() {
    let mut history = History::new(60, 10);
    let (route, shadow) = (key("/a"), key("s"));
    for i in 0..100 {
        let slow = if i == 99 { 900 } else { 20 };
        history.record_pair(&route, &shadow, 7, pair(false, 10, slow));
    }
    let view = history.view(None, 7);
    let latency = &view.series[0].buckets.last().expect("a bucket").latency_ms;
    let within_bin = |value: f64, truth: f64| value >= truth && value < truth * 1.26;
    assert!(within_bin(latency.primary.p50, 10.0), "{latency:?}");
    assert!(within_bin(latency.primary.p99, 10.0), "{latency:?}");
    assert!(within_bin(latency.shadow.p50, 20.0), "{latency:?}");
    assert!(within_bin(latency.shadow.p99, 20.0), "{latency:?}");
    // The slowest pair is above p99 of 100 pairs; p100 would find it.
    let series = history.series.values().next().expect("series");
    let minute_seven = series.held(7).expect("minute 7 held");
    assert!(within_bin(minute_seven.shadow.quantile_ms(1.0), 900.0));
    // Beyond the last bin, latencies are clamped into it.
    assert_eq!(
        LatencyBins::bin(Duration::from_secs(3600)),
        LATENCY_BINS - 1
    );
    assert_eq!(LatencyBins::bin(Duration::ZERO), 0);
}

#[test]
fn mirror_outcomes_count_what_the_counters_grew_by() {
    let mut history = History::new(60, 10);
    let (route, shadow) = (key("/a"), key("s"));
    let mut totals = [0u64; MirrorOutcome::ALL.len()];
    totals[0] = 5;
    history.observe_mirror(&route, &shadow, 10, &totals);
    totals[0] = 8;
    totals[3] = 2;
    history.observe_mirror(&route, &shadow, 11, &totals);
    history.observe_mirror(&route, &shadow, 11, &totals);
    let view = history.view(None, 11);
    let buckets = &view.series[0].buckets;
    let last = buckets.last().expect("minute 11");
    assert_eq!(last.mirror.get("completed"), Some(&3));
    assert_eq!(last.mirror.get("dropped_queue_full"), Some(&2));
    let before = &buckets[buckets.len() - 2];
    assert_eq!(before.mirror.get("completed"), Some(&5));
    assert_eq!(before.pairs, 0);
}
