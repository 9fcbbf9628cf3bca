#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /api/v1/routes/{route}/history` on the real binary: compared pairs, divergences and
//! latencies land in the current minute's bucket, the mirror's outcomes follow from the
//! metrics, and `/api/v1/routes` carries the mirror outcomes and the breaker state.

mod support;

use http::{Method, StatusCode};
use support::admin::*;
use support::compare::*;
use support::*;

/// Sums a bucket field over every bucket of the first series (a minute may roll mid-test).
fn total(history: &serde_json::Value, field: impl Fn(&serde_json::Value) -> u64) -> u64 {
    history["series"][0]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(field)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_history_counts_its_pairs_latencies_and_mirror_outcomes() {
    let primary = upstream()
        .fallback(|_| async { json_ok(r#"{"price":1,"name":"a"}"#) })
        .start()
        .await;
    let shadow = upstream()
        .with_latency(std::time::Duration::from_millis(30))
        .fallback(|_| async { json_ok(r#"{"price":2,"name":"a"}"#) })
        .start()
        .await;
    let text = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &["/users/{id}"],
        "history_minutes = 30",
        "",
    );
    let running = Running::start(&text, "127.0.0.1", "", "unused").await;
    for i in 0..6 {
        running.get_live(&format!("/users/{i}")).await;
    }
    wait_admin_metrics(running.admin, "6 pairs compared", |m| {
        compared(m, "/users/{id}") >= 6.0
    })
    .await;

    let path = format!("/api/v1/routes/{}/history", encode("/users/{id}"));
    let reply = running.admin(Method::GET, &path, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let history = json_body(&reply);
    assert_eq!(history["bucket_seconds"], 60);
    assert_eq!(history["minutes"], 30);
    let series = history["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{history}");
    assert_eq!(series[0]["route"], "/users/{id}");
    assert_eq!(series[0]["shadow"], SHADOW);
    assert_eq!(series[0]["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(total(&history, |b| b["pairs"].as_u64().unwrap()), 6);
    assert_eq!(total(&history, |b| b["diverged"].as_u64().unwrap()), 6);
    let last = series[0]["buckets"].as_array().unwrap().last().unwrap();
    let shadow_p50 = last["latency_ms"]["shadow"]["p50"].as_f64().unwrap();
    let primary_p50 = last["latency_ms"]["primary"]["p50"].as_f64().unwrap();
    if last["pairs"].as_u64().unwrap() > 0 {
        assert!(shadow_p50 >= 30.0, "{last}");
        assert!(primary_p50 < shadow_p50, "{last}");
    }

    // The mirror's outcomes are read from the metrics every few seconds.
    let mut completed = 0;
    for _ in 0..200 {
        let reply = running.admin(Method::GET, &path, None, None).await;
        completed = total(&json_body(&reply), |b| {
            b["mirror"]["completed"].as_u64().unwrap_or(0)
        });
        if completed >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(completed, 6);

    let all_reply = running
        .admin(Method::GET, "/api/v1/history", None, None)
        .await;
    // The page polls this every 10 s: it comes without indentation.
    assert!(!all_reply.text().contains('\n'), "compact JSON");
    assert!(!reply.text().contains('\n'), "compact JSON");
    let all = json_body(&all_reply);
    assert_eq!(all["series"].as_array().unwrap().len(), 1, "{all}");

    let routes = json_body(
        &running
            .admin(Method::GET, "/api/v1/routes", None, None)
            .await,
    );
    assert_eq!(routes[0]["mirror_outcomes"]["completed"], 6, "{routes}");
    assert_eq!(routes[0]["breaker"], "closed", "{routes}");

    let unknown = running
        .admin(Method::GET, "/api/v1/routes/nope/history", None, None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let put = running.admin(Method::PUT, &path, Some("{}"), None).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
}
