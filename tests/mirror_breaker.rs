#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The circuit breaker: a shadow that keeps timing out opens it (gauge 1, copies skipped and
//! counted `skipped_circuit_open`, clients unaffected); once the shadow recovers, probes
//! after the cooldown close it again (gauge 0) and copies flow as before.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::shadow::*;
use support::*;

/// Small numbers so the breaker moves within a test: four failures in a window open it,
/// 300 ms of cooldown, two good probes close it.
const POLICY: Policy = Policy {
    global: r#"
timeout = "200ms"
[mirror.circuit_breaker]
window = "10s"
min_requests = 4
error_ratio = 0.5
cooldown = "300ms"
probes = 2
"#,
    route: "",
    shadow: "",
};

fn state(metrics: &str) -> f64 {
    shadow_gauge(metrics, "circuit_state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_a_failing_shadow_and_closes_after_it_recovers() {
    let primary = echo_primary().await;
    let (shadow, failing) = switchable_shadow().await;
    let proxy = mirrored(primary.addr, shadow.addr, &POLICY).await;
    let mut sent = 0u64;
    let get_ok = |path: String| {
        let url = proxy.url(&path);
        async move {
            let reply = get(&url).await;
            assert_eq!(reply.status, 200, "{url}: {}", reply.text());
        }
    };
    assert_eq!(state(&proxy.metrics().await), 0.0, "closed at start");

    // Four copies that hang past the 200 ms deadline open the breaker.
    for i in 0..4 {
        get_ok(format!("/fail/{i}")).await;
        sent += 1;
    }
    eventually(&proxy, "the breaker to open", |m| state(m) == 1.0).await;
    let metrics = proxy.metrics().await;
    assert_eq!(outcomes(&metrics)["timeout"], 4, "{:?}", outcomes(&metrics));

    // While open, copies are skipped (clients still served). The cooldown is short, so a
    // request may land after it as a probe; keep going until one is skipped.
    within("a copy to be skipped by the open breaker", async {
        loop {
            get_ok(format!("/open/{sent}")).await;
            sent += 1;
            if outcomes(&proxy.metrics().await)["skipped_circuit_open"] > 0 {
                break;
            }
        }
    })
    .await;

    // The shadow recovers; after the cooldown two good probes close the breaker.
    failing.store(false, Ordering::SeqCst);
    within("the breaker to close", async {
        loop {
            get_ok(format!("/recover/{sent}")).await;
            sent += 1;
            if state(&proxy.metrics().await) == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Closed again: the next copies go through.
    let before = outcomes(&proxy.metrics().await)["completed"];
    for i in 0..3 {
        get_ok(format!("/closed/{i}")).await;
        sent += 1;
    }
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], before + 3, "{counts:?}");
    assert!(
        counts["completed"] >= 2 + 3,
        "two probes and three more: {counts:?}"
    );
    assert_eq!(state(&metrics), 0.0);
    assert_eq!(sampled(&metrics), sent, "{counts:?}");
    assert_eq!(primary.count() as u64, sent);
    // The copies are sent concurrently: the last three to arrive are these, in any order.
    let received = shadow.received();
    let mut last: Vec<String> = received
        .iter()
        .rev()
        .take(3)
        .map(|r| r.uri.path().to_string())
        .collect();
    last.sort();
    assert_eq!(last, ["/closed/0", "/closed/1", "/closed/2"]);
}

/// `initial_cooldown` longer than `cooldown` (the longest) is an error naming the key; a
/// config written before the backoff, with only a short `cooldown`, still works: that
/// cooldown is then the first one too.
#[test]
fn the_cooldown_keys_are_checked_and_old_configs_keep_working() {
    let dummy: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let bad = Policy {
        global: "[mirror.circuit_breaker]\ninitial_cooldown = \"20s\"\ncooldown = \"5s\"\n",
        route: "",
        shadow: "",
    };
    let text = mirror_toml(dummy, dummy, &bad);
    let Err(error) = shadowtap::config::Config::from_toml(&text, &Default::default()) else {
        panic!("initial_cooldown longer than cooldown was accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("mirror.circuit_breaker.initial_cooldown") && message.contains("5s"),
        "{message}"
    );

    let old = Policy {
        global: "[mirror.circuit_breaker]\ncooldown = \"300ms\"\n",
        route: "",
        shadow: "",
    };
    let parsed = config(&mirror_toml(dummy, dummy, &old));
    let breaker = &parsed.mirror.circuit_breaker;
    assert_eq!(breaker.cooldown, Duration::from_millis(300));
    assert_eq!(breaker.initial_cooldown, Duration::from_millis(300));
    let defaults = config(&mirror_toml(dummy, dummy, &Policy::default()));
    let breaker = &defaults.mirror.circuit_breaker;
    assert_eq!(
        (breaker.initial_cooldown, breaker.cooldown, breaker.probes),
        (Duration::from_secs(1), Duration::from_secs(10), 5)
    );
}
