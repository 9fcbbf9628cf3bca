#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The comparison budget is bounded: with one worker and a queue of one, a burst of large
//! JSON pairs overflows the queue; the overflow is dropped and counted as
//! `shadowtap_compare_dropped_total{reason="queue_full"}`, every client is still answered
//! in full, and every completed pair is either compared or counted as dropped.

mod support;

use http::StatusCode;
use support::compare::*;
use support::*;

const BURST: usize = 24;

/// A ~300 KB API-like document; `variant` changes a field in every item.
fn document(variant: &str) -> String {
    let items: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                r#"{{"id":{i},"sku":"sku-{i:05}","name":"item number {i}","price":{{"amount":"{}.99","currency":"EUR"}},"tags":["a","b","c"],"state":"{variant}"}}"#,
                i % 100
            )
        })
        .collect();
    format!(r#"{{"page":1,"items":[{}]}}"#, items.join(","))
}

#[tokio::test]
async fn a_burst_of_large_pairs_overflows_the_compare_queue_and_is_counted() {
    let primary = upstream()
        .fallback(|_| async { json_ok(document("active")) })
        .start()
        .await;
    let shadow = upstream()
        .fallback(|_| async { json_ok(document("inactive")) })
        .start()
        .await;
    let toml = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &["/big"],
        "workers = 1\nqueue_capacity = 1\nlearn_after = 0\nmax_differences = 10000",
        // Multiset comparison of 2000 objects: the expensive path.
        "unordered_arrays = true",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    let expected_len = document("active").len();

    let client = http1_client();
    let requests: Vec<_> = (0..BURST)
        .map(|_| {
            let client = client.clone();
            let url = proxy.url("/big");
            tokio::spawn(async move { send(&client, get_request(&url)).await })
        })
        .collect();
    for request in requests {
        let reply = within("burst client", request).await.unwrap().unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.body.len(),
            expected_len,
            "the client got the whole answer"
        );
    }

    // Every pair the mirror completed ends compared or dropped, never lost.
    let metrics = wait_metrics(&proxy, "every pair compared or dropped", |m| {
        let complete = metric_sum(
            m,
            "shadowtap_mirror_pairs_total",
            &[("route", "/big"), ("result", "complete")],
        );
        let dropped = metric_sum(
            m,
            "shadowtap_compare_dropped_total",
            &[("reason", "queue_full")],
        );
        complete == BURST as f64 && compared(m, "/big") + dropped == complete
    })
    .await;
    let dropped = metric_sum(
        &metrics,
        "shadowtap_compare_dropped_total",
        &[("reason", "queue_full")],
    );
    assert!(dropped > 0.0, "nothing was dropped:\n{metrics}");
    let compared = compared(&metrics, "/big");
    assert!(compared >= 1.0, "nothing was compared:\n{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &[("route", "/big"), ("result", "diverged")]
        ),
        compared,
        "every compared pair found the changed field"
    );
}
