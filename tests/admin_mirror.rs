#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Runtime mirror control on the real binary (`GET`/`PUT /api/v1/mirror`): a pause (global,
//! per route, per shadow) stops copies from the very next request, each skipped copy counted
//! as `skipped_paused`, shown by the gauge and in `/api/v1/routes`; a resume brings them
//! back; a percent change moves the observed share into a band five standard deviations
//! wide; unknown names are 404s and bad values 400s naming the field.

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::admin::*;
use support::shadow::*;
use support::*;

async fn start() -> (Running, Upstream, Upstream) {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let text = mirror_toml(primary.addr, shadow.addr, &Policy::default());
    let running = Running::start(&text, "127.0.0.1", "", "unused").await;
    (running, primary, shadow)
}

async fn put(running: &Running, body: &str) -> serde_json::Value {
    let reply = running
        .admin(Method::PUT, "/api/v1/mirror", Some(body), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text());
    json_body(&reply)
}

fn outcome(metrics: &str, outcome: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_mirror_requests_total",
        &[
            ("route", "default"),
            ("shadow", "shadow"),
            ("outcome", outcome),
        ],
    )
}

/// Sends `n` live requests, then checks the shadow got exactly `hits` more copies and
/// `skipped` more were counted as paused.
async fn send_and_expect(running: &Running, shadow: &Upstream, n: usize, hits: usize) {
    let before_hits = shadow.count();
    let before = running.metrics(None).await;
    for i in 0..n {
        running.get_live(&format!("/item/{i}")).await;
    }
    let target = before_hits + hits;
    until(&format!("{target} shadow copies"), || {
        shadow.count() >= target
    })
    .await;
    // Copies skipped while paused are decided before the primary answers, so they are
    // counted by now; give stray copies a moment to show up if there were any.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(shadow.count(), target, "copies after {n} requests");
    let after = running.metrics(None).await;
    let skipped = outcome(&after, "skipped_paused") - outcome(&before, "skipped_paused");
    assert_eq!(skipped as usize, n - hits, "skipped_paused:\n{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_take_effect_from_the_next_request() {
    let (running, _primary, shadow) = start().await;
    send_and_expect(&running, &shadow, 5, 5).await;

    let view = put(&running, r#"{"paused": true}"#).await;
    assert_eq!(view["paused"], true);
    assert_eq!(view["routes"][0]["shadows"][0]["paused"], true);
    send_and_expect(&running, &shadow, 10, 0).await;
    let metrics = running.metrics(None).await;
    let gauge = |metrics: &str| {
        metric_value(
            metrics,
            "shadowtap_mirror_paused",
            &[("route", "default"), ("shadow", "shadow")],
        )
    };
    assert_eq!(gauge(&metrics), Some(1.0), "{metrics}");
    let routes = running
        .admin(Method::GET, "/api/v1/routes", None, None)
        .await;
    let routes = json_body(&routes);
    let entry = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["route"] == "default" && entry["shadow"] == "shadow")
        .unwrap_or_else(|| panic!("no default/shadow entry: {routes}"));
    assert_eq!(entry["mirror"]["paused"], true, "{entry}");

    put(&running, r#"{"paused": false}"#).await;
    send_and_expect(&running, &shadow, 3, 3).await;
    assert_eq!(gauge(&running.metrics(None).await), Some(0.0));

    put(&running, r#"{"route": "default", "paused": true}"#).await;
    send_and_expect(&running, &shadow, 4, 0).await;
    put(&running, r#"{"route": "default", "paused": false}"#).await;
    put(&running, r#"{"shadow": "shadow", "paused": true}"#).await;
    send_and_expect(&running, &shadow, 4, 0).await;
    let view = put(
        &running,
        r#"{"route": "default", "shadow": "shadow", "paused": false}"#,
    )
    .await;
    assert_eq!(view["routes"][0]["shadows"][0]["paused"], false);
    send_and_expect(&running, &shadow, 2, 2).await;

    let mut process = running.process;
    assert!(process.terminate().await.success());
    assert!(
        process.stderr().contains("mirror control changed"),
        "each change is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_404_and_bad_values_400_naming_the_field() {
    let (running, _primary, _shadow) = start().await;
    let cases = [
        (r#"{"route": "nope", "paused": true}"#, 404, "route: "),
        (r#"{"shadow": "nope", "paused": true}"#, 404, "shadow: "),
        (r#"{"route": "plain", "paused": true}"#, 404, "route: "),
        (r#"{"percent": 150}"#, 400, "percent: "),
        (r#"{"percent": -1}"#, 400, "percent: "),
        (r#"{"percent": "ten"}"#, 400, "percent: "),
        (r#"{"paused": "yes"}"#, 400, "paused: "),
        (r#"{"pause": true}"#, 400, "pause: unknown field"),
        (r#"{}"#, 400, "body: nothing to change"),
        ("not json", 400, "body: "),
    ];
    for (body, status, error) in cases {
        let reply = running
            .admin(Method::PUT, "/api/v1/mirror", Some(body), None)
            .await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text());
        let answer = json_body(&reply);
        assert_eq!(answer["result"], "failure");
        let first = answer["errors"][0].as_str().unwrap();
        assert!(first.starts_with(error), "{body}: {first}");
    }
    // Nothing changed.
    let view = json_body(
        &running
            .admin(Method::GET, "/api/v1/mirror", None, None)
            .await,
    );
    assert_eq!(view["paused"], false);
    let pair = &view["routes"][0]["shadows"][0];
    assert_eq!(pair["paused"], false);
    assert_eq!(pair["percent_overridden"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_change_moves_the_observed_share() {
    let (running, _primary, shadow) = start().await;
    let view = put(&running, r#"{"shadow": "shadow", "percent": 20}"#).await;
    let pair = &view["routes"][0]["shadows"][0];
    assert_eq!(pair["percent"], 20.0);
    assert_eq!(pair["config_percent"], 100.0);
    assert_eq!(pair["percent_overridden"], true);

    const N: usize = 1000;
    for i in 0..N {
        running.get_live(&format!("/share/{i}")).await;
    }
    // Every sampled copy ends as `completed` at this healthy shadow: wait until the count
    // stops moving and matches.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = shadow.count();
        let completed = outcome(&running.metrics(None).await, "completed") as usize;
        if now == last && completed == now {
            break;
        }
        last = now;
    }
    let hits = shadow.count();
    // Binomial(1000, 0.2): mean 200, sd sqrt(1000 * 0.2 * 0.8) ≈ 12.6; five sd either side.
    assert!((137..=263).contains(&hits), "{hits} of {N} mirrored at 20%");

    put(&running, r#"{"percent": 0}"#).await;
    let before = shadow.count();
    for i in 0..50 {
        running.get_live(&format!("/none/{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(shadow.count(), before, "0% mirrors nothing");

    put(&running, r#"{"percent": 100}"#).await;
    send_and_expect(&running, &shadow, 20, 20).await;
}
