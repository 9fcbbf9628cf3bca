#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Under load the books balance: 1,000 concurrent requests all answered, every sampled
//! request ends in exactly one outcome, and the shadow received exactly the copies counted
//! as sent; with a deliberately tiny queue the overflow is dropped and counted, never waited on.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::shadow::*;
use support::*;

/// Fires `n` GETs at once (one task each) and checks every client got the primary's 200.
async fn burst(proxy: &Shadowtap, n: usize) {
    let client = Arc::new(http1_client());
    let base = proxy.url("");
    let statuses = run_concurrently(n, n, move |i| {
        let client = client.clone();
        let url = format!("{base}/load/{i}");
        async move { send(&client, get_request(&url)).await.map(|r| r.status) }
    })
    .await;
    for (i, status) in statuses.iter().enumerate() {
        match status {
            Ok(status) => assert_eq!(*status, 200, "request {i}"),
            Err(error) => panic!("request {i} failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_are_all_answered_and_accounted_for() {
    const N: usize = 1000;
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::from_millis(5)).await;
    // 1,000 connects at once can overflow the test primary's accept queue on a busy 2-core
    // machine: the kernel then resends the SYN after 1 s and 3 s, past the default 2 s
    // connect timeout, and that request is rightly a 502. This test is about the books, so
    // the primary is given time to accept.
    let app = format!("url = \"http://{}\"\n", primary.addr);
    let toml = mirror_toml(primary.addr, shadow.addr, &Policy::default())
        .replace(&app, &format!("{app}connect_timeout = \"10s\"\n"));
    assert!(toml.contains("connect_timeout = \"10s\""), "{toml}");
    let proxy = Shadowtap::start(config(&toml)).await;
    burst(&proxy, N).await;
    assert_eq!(primary.count(), N);

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    // percent defaults to 100: every request was sampled, so every one has an outcome.
    assert_eq!(sampled(&metrics), N as u64, "{counts:?}");
    assert_eq!(counts["skipped_method"], 0, "{counts:?}");
    assert_eq!(counts["skipped_circuit_open"], 0, "{counts:?}");
    assert!(counts["completed"] > 0, "{counts:?}");
    // The upstream records a request before it answers, so every completed copy was
    // received; a copy can also have arrived and then timed out (or failed) on our side.
    // Nothing else reaches the shadow.
    let received = shadow.count() as u64;
    assert!(
        (counts["completed"]..=counts["completed"] + counts["timeout"] + counts["error"])
            .contains(&received),
        "shadow received {received}; {counts:?}"
    );
    // Each completed shadow request is handed on for pairing, once. A pair is counted after
    // its shadow request has left the in-flight gauge (it first waits for the primary's
    // answer), so wait for the count rather than read it at the instant the gauges settled.
    let pairs = |metrics: &str| {
        metric_sum(
            metrics,
            "shadowtap_mirror_pairs_total",
            &[("route", "default"), ("shadow", "shadow")],
        ) as u64
    };
    let completed = counts["completed"];
    let metrics = eventually(&proxy, "every completed copy to be paired", |metrics| {
        pairs(metrics) >= completed
    })
    .await;
    assert_eq!(pairs(&metrics), completed, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_queue_drops_the_overflow_and_counts_it() {
    const N: usize = 100;
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::from_millis(300)).await;
    let policy = Policy {
        global: "queue_capacity = 1\nmax_in_flight = 1\ntimeout = \"5s\"",
        ..Policy::default()
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    burst(&proxy, N).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert!(counts["dropped_queue_full"] > 0, "{counts:?}");
    assert_eq!(
        counts["completed"] + counts["timeout"] + counts["dropped_queue_full"] + counts["error"],
        N as u64,
        "{counts:?}"
    );
    assert_eq!(sampled(&metrics), N as u64, "{counts:?}");
    assert_eq!(shadow.count() as u64, counts["completed"], "{counts:?}");
}
