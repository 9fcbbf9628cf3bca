#![allow(clippy::unwrap_used, clippy::expect_used)]
//! How long a shadow that comes back after an outage waits for full mirroring again, with
//! the breaker's default settings: a real shadow that fails every request (connections
//! dropped unanswered) for a while, then answers again, under a steady load.
//!
//! The time from the shadow's recovery to the breaker closing is what a user reads as lost
//! coverage. It is at most what is left of the current cooldown (which doubles from
//! `initial_cooldown` only while probes keep failing) plus the half-open ramp (1/8, 1/4, 1/2
//! of the copies, `probes` successes each). Figures: run with `--nocapture`; the outage
//! length is `SHADOWTAP_OUTAGE_MS` (default 2000), the load one request every 5 ms.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::shadow::*;
use support::*;

fn state(metrics: &str) -> f64 {
    shadow_gauge(metrics, "circuit_state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_shadow_gets_full_mirroring_back_within_the_last_cooldown_and_a_short_ramp() {
    let outage = Duration::from_millis(
        std::env::var("SHADOWTAP_OUTAGE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(2_000),
    );
    let primary = echo_primary().await;
    let (shadow, down, answered, _task) = crashing_shadow().await;
    down.store(false, Ordering::SeqCst);
    // The breaker's defaults (initial_cooldown 1 s, cooldown 10 s, probes 5, window 10 s,
    // min_requests 20, error_ratio 0.5).
    let proxy = mirrored(primary.addr, shadow, &Policy::default()).await;

    // A steady load: one request every 5 ms, each on its own task.
    let url = proxy.url("/load");
    let load = tokio::spawn(async move {
        let client = http1_client();
        let mut ticks = tokio::time::interval(Duration::from_millis(5));
        loop {
            ticks.tick().await;
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let reply = send(&client, get_request(&url)).await.expect("served");
                assert_eq!(reply.status, 200, "the client never sees the shadow");
            });
        }
    });

    tokio::time::sleep(Duration::from_millis(500)).await;
    down.store(true, Ordering::SeqCst);
    let opened = Instant::now();
    eventually(&proxy, "the breaker to open", |m| state(m) == 1.0).await;
    tokio::time::sleep(outage.saturating_sub(opened.elapsed())).await;
    down.store(false, Ordering::SeqCst);
    let recovered = Instant::now();
    let answered_at_recovery = answered.load(Ordering::SeqCst);

    // Generous: what is left of the last cooldown (at most the longest, 10 s, and here at
    // most about the outage) plus the ramp.
    let limit = outage.min(Duration::from_secs(10)) + Duration::from_secs(10);
    let full = loop {
        if state(&proxy.metrics().await) == 0.0 {
            break recovered.elapsed();
        }
        assert!(recovered.elapsed() < limit, "not closed after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let during_ramp = answered.load(Ordering::SeqCst) - answered_at_recovery;

    // Closed: every copy goes again (200 per second at this load).
    let before = answered.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = answered.load(Ordering::SeqCst) - before;
    load.abort();
    println!(
        "outage {outage:?}: full mirroring {full:?} after the shadow recovered \
         ({during_ramp} copies answered meanwhile); then {after} copies in 500 ms"
    );
    assert!(full < limit, "{full:?}");
    assert!(
        after >= 50,
        "full mirroring after closing: {after} copies in 500 ms"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(state(&metrics), 0.0, "stays closed");
}
