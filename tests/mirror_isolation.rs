#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Isolation: whatever the shadow does — stall, never answer, refuse connections, reset
//! mid-body, answer with 100 MiB — the client gets the same answer, no slower than with
//! mirroring off (measured in the same test, interleaved, on the unmirrored `/plain/` route
//! to the same primary). Each failure is counted under its outcome, and the shadow's queue
//! and in-flight gauges stay within their limits and drain back to 0.

mod support;

use http::Request;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::shadow::*;
use support::*;

/// Requests of each kind (GET, POST with a body) sent through the mirrored route.
const ROUNDS: usize = 10;
/// The generous bound: a mirrored request may take this much longer than the slowest
/// unmirrored one before we call it slowed down by its shadow.
const SLACK: Duration = Duration::from_millis(500);

/// Every shadow gets POSTs too, so the request-body tee is on the path being timed.
const METHODS_ALL: &str = r#"methods = "all""#;

async fn timed(client: &TestClient, request: Request<Body>) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = send(client, request).await.expect("client request");
    (reply, started.elapsed())
}

/// Sends ROUNDS GETs and ROUNDS POSTs through the mirrored route, each right after the same
/// request on the unmirrored route; checks the answers are the primary's and no mirrored
/// request is slower than the slowest unmirrored one plus [`SLACK`]. Returns how many
/// requests were mirrored.
async fn drive_and_compare(proxy: &Shadowtap) -> u64 {
    let client = http1_client();
    let body = vec![b'b'; 64 * 1024];
    let mut baseline = Duration::ZERO;
    let mut mirrored = Vec::new();
    for i in 0..ROUNDS {
        let (plain, took) = timed(&client, get_request(&proxy.url(&format!("/plain/{i}")))).await;
        assert_eq!(plain.status, 200);
        baseline = baseline.max(took);
        let (reply, took) = timed(&client, get_request(&proxy.url(&format!("/item/{i}")))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("primary: GET /item/{i} 0 bytes"));
        mirrored.push((format!("GET /item/{i}"), took));

        let (plain, took) = timed(
            &client,
            post_request(&proxy.url(&format!("/plain/{i}")), body.clone()),
        )
        .await;
        assert_eq!(plain.status, 200);
        baseline = baseline.max(took);
        let (reply, took) = timed(
            &client,
            post_request(&proxy.url(&format!("/item/{i}")), body.clone()),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("primary: POST /item/{i} 65536 bytes"));
        mirrored.push((format!("POST /item/{i}"), took));
    }
    for (what, took) in &mirrored {
        assert!(
            *took <= baseline + SLACK,
            "{what} took {took:?}; unmirrored requests took at most {baseline:?}"
        );
    }
    mirrored.len() as u64
}

/// The gauges right after the burst: within their limits.
async fn gauges_within(proxy: &Shadowtap, max_in_flight: f64, queue_capacity: f64) {
    let metrics = proxy.metrics().await;
    let in_flight = shadow_gauge(&metrics, "in_flight");
    let queued = shadow_gauge(&metrics, "queue_depth");
    assert!(
        (0.0..=max_in_flight).contains(&in_flight),
        "in flight {in_flight}"
    );
    assert!(
        (0.0..=queue_capacity).contains(&queued),
        "queue depth {queued}"
    );
}

async fn start(shadow: SocketAddr, global: &'static str) -> (Upstream, Shadowtap) {
    let primary = echo_primary().await;
    let policy = Policy {
        global,
        route: "",
        shadow: METHODS_ALL,
    };
    let proxy = mirrored(primary.addr, shadow, &policy).await;
    (primary, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_stalls_two_seconds_slows_no_client() {
    let shadow = healthy_shadow(Duration::from_secs(2)).await;
    let (_primary, proxy) = start(shadow.addr, "").await;
    let sent = drive_and_compare(&proxy).await;
    gauges_within(&proxy, 256.0, 1024.0).await;
    let metrics = proxy.metrics().await;
    assert!(
        shadow_gauge(&metrics, "in_flight") >= 1.0,
        "the stalled requests show as in flight"
    );

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], sent, "{counts:?}");
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
    assert_eq!(shadow.count() as u64, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_never_answers_times_out_within_its_limits() {
    let shadow = upstream().hang().start().await;
    // Small limits so the burst overflows them; a breaker that never opens so every
    // request is one of the two outcomes below.
    let global = r#"
timeout = "1s"
max_in_flight = 4
queue_capacity = 8
[mirror.circuit_breaker]
min_requests = 1000
"#;
    let (_primary, proxy) = start(shadow.addr, global).await;
    let started = Instant::now();
    let sent = drive_and_compare(&proxy).await;
    let burst_within_timeout = started.elapsed() < Duration::from_secs(1);
    gauges_within(&proxy, 4.0, 8.0).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    if burst_within_timeout {
        // No slot freed during the burst: 4 went out, 8 waited, the rest were dropped.
        assert_eq!(counts["timeout"], 4 + 8, "{counts:?}");
    }
    assert!(counts["timeout"] >= 4, "{counts:?}");
    assert_eq!(
        counts["timeout"] + counts["dropped_queue_full"],
        sent,
        "{counts:?}"
    );
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_refuses_connections_is_counted_as_errors() {
    let refusing = closed_port().await;
    let global = "[mirror.circuit_breaker]\nmin_requests = 1000";
    let (_primary, proxy) = start(refusing, global).await;
    let sent = drive_and_compare(&proxy).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["error"], sent, "{counts:?}");
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_resets_mid_body_is_counted_as_errors() {
    let shadow = reset_mid_body(1000, b"partial").await;
    let global = "[mirror.circuit_breaker]\nmin_requests = 1000";
    let (_primary, proxy) = start(shadow.addr, global).await;
    let sent = drive_and_compare(&proxy).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["error"], sent, "{counts:?}");
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
    assert_eq!(shadow.count() as u64, sent, "each copy reached the shadow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_answering_100_mib_is_read_only_up_to_the_cap() {
    const HUGE: u64 = 100 * 1024 * 1024;
    let (shadow, produced) = huge_body_shadow(HUGE).await;
    let (_primary, proxy) = start(shadow.addr, "").await;
    let sent = drive_and_compare(&proxy).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], sent, "{counts:?}");
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
    // Each answer is kept to the 1 MiB cap, then hashed only until it is longer than the
    // primary's answer, and its connection dropped: the server can only have pushed about
    // the cap plus what the socket buffers hold, far from 100 MiB.
    let per_request = produced.load(std::sync::atomic::Ordering::SeqCst) / sent;
    assert!(
        per_request < 32 * 1024 * 1024,
        "{per_request} bytes produced per request: the shadow's body was read past the cap"
    );
}
