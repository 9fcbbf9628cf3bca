#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an operator sees of the shadow side at the default level (INFO), captured in
//! process as JSON lines: failures and drops at WARN, rate-limited to a line per shadow and
//! reason every 5 s, each line saying how many events it stands for (so a burst of 1,000
//! failures is a handful of lines that add up to 1,000); and the breaker's transitions —
//! opened at WARN, half-open and closed at INFO.

mod support;

use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::shadow::*;
use support::*;

/// Every JSON line logged by this test binary.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || Writer(sink.clone()))
            .init();
        lines
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured events whose message starts with `prefix`.
fn events(prefix: &str) -> Vec<Value> {
    let bytes = captured().lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with(prefix))
        })
        .collect()
}

fn count(event: &Value) -> u64 {
    event["fields"]["events"].as_u64().expect("events field")
}

/// Both scenarios share the process-wide subscriber, so they run in order in one test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_failures_and_breaker_transitions_are_logged_at_the_default_level_rate_limited() {
    captured();
    a_burst_of_failures_is_a_handful_of_lines_that_count_them_all().await;
    breaker_transitions_are_logged_once_each().await;
}

async fn a_burst_of_failures_is_a_handful_of_lines_that_count_them_all() {
    let primary = echo_primary().await;
    let dead = closed_port().await;
    // A breaker that never opens, so every copy is sent and fails.
    let policy = Policy {
        global: "[mirror.circuit_breaker]\nmin_requests = 1000000\n",
        route: "",
        shadow: "",
    };
    let proxy = mirrored(primary.addr, dead, &policy).await;
    let url = proxy.url("/burst");
    let client = http1_client();
    run_concurrently(1_000, 16, move |_| {
        let (client, url) = (client.clone(), url.clone());
        async move { assert_eq!(send(&client, get_request(&url)).await.unwrap().status, 200) }
    })
    .await;
    let metrics = settled(&proxy).await;
    assert_eq!(
        outcomes(&metrics)["error"],
        1_000,
        "{:?}",
        outcomes(&metrics)
    );

    // The first failure is logged at once; the rest, suppressed, are reported by the next
    // line, at most one interval (5 s) later.
    let deadline = Instant::now() + Duration::from_secs(12);
    let lines = loop {
        let lines = events("shadow request failed");
        if lines.iter().map(count).sum::<u64>() >= 1_000 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let counts: Vec<u64> = lines.iter().map(count).collect();
    assert_eq!(counts.iter().sum::<u64>(), 1_000, "{counts:?}");
    assert!(
        (2..=4).contains(&lines.len()),
        "a handful of lines: {counts:?}"
    );
    assert_eq!(
        counts.first(),
        Some(&1),
        "the first failure is logged at once"
    );
    for line in &lines {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["fields"]["shadow"], "shadow", "{line}");
        assert_eq!(line["fields"]["reason"], "error", "{line}");
    }
    assert!(
        lines[0]["fields"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("refused") || error.contains("connect")),
        "the first line carries the cause: {}",
        lines[0]
    );
}

async fn breaker_transitions_are_logged_once_each() {
    let primary = echo_primary().await;
    let (shadow, down, _answered, _task) = crashing_shadow().await;
    let policy = Policy {
        global: r#"
[mirror.circuit_breaker]
min_requests = 4
initial_cooldown = "200ms"
cooldown = "1s"
probes = 1
"#,
        route: "",
        shadow: "",
    };
    let proxy = mirrored(primary.addr, shadow, &policy).await;
    let get_ok = |i: usize| {
        let url = proxy.url(&format!("/t/{i}"));
        async move { assert_eq!(get(&url).await.status, 200) }
    };
    let mut i = 0;
    while shadow_gauge(&proxy.metrics().await, "circuit_state") != 1.0 {
        get_ok(i).await;
        i += 1;
        assert!(i < 1_000, "the breaker never opened");
    }
    down.store(false, Ordering::SeqCst);
    within("the breaker to close", async {
        while shadow_gauge(&proxy.metrics().await, "circuit_state") != 0.0 {
            get_ok(i).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let opened = events("shadow circuit breaker opened");
    let probing = events("shadow circuit breaker half-open");
    let closed = events("shadow circuit breaker closed");
    assert!(
        !opened.is_empty() && !probing.is_empty(),
        "{opened:?} {probing:?}"
    );
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(opened[0]["level"], "WARN");
    assert_eq!(opened[0]["fields"]["shadow"], "shadow");
    assert_eq!(opened[0]["fields"]["cooldown_ms"], 200);
    assert_eq!(probing[0]["level"], "INFO");
    assert_eq!(closed[0]["level"], "INFO");
    assert!(closed[0]["fields"]["outage_ms"].as_u64().is_some());
}
