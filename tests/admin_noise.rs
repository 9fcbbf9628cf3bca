#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Noise pins at runtime on the real binary (`PUT /api/v1/noise`): a field pinned `noise`
//! turns later pairs that differ only there from `diverged` into `noise_only`, exactly as a
//! config pin does; a runtime `signal` pin overrides a config `noise` pin; `none` removes
//! the runtime pin; every pin shows in `GET /api/v1/noise` with where it comes from.

mod support;

use http::{Method, StatusCode};
use support::admin::*;
use support::compare::*;
use support::*;

fn count(metrics: &str, result: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_comparisons_total",
        &[("route", "api"), ("shadow", SHADOW), ("result", result)],
    )
}

/// Sends `n` requests and waits until all of them are compared; returns the metrics.
async fn pairs(running: &Running, n: usize) -> String {
    let before = compared(&running.metrics(None).await, "api") as usize;
    for i in 0..n {
        running.get_live(&format!("/thing/{i}")).await;
    }
    let target = (before + n) as f64;
    wait_admin_metrics(running.admin, "pairs compared", |m| {
        compared(m, "api") >= target
    })
    .await
}

async fn pin(running: &Running, body: &str) -> Reply {
    running
        .admin(Method::PUT, "/api/v1/noise", Some(body), None)
        .await
}

fn pinned(noise: &serde_json::Value, field: &str) -> (String, String) {
    let entry = noise["api"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["field"] == field && entry["endpoint"].is_null())
        .unwrap_or_else(|| panic!("no pin of {field}: {noise}"));
    (
        entry["state"].as_str().unwrap().to_string(),
        entry["pinned_by"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_pins_show_and_class_later_pairs_as_config_pins_do() {
    let primary = upstream()
        .fallback(|_| async { json_ok(r#"{"plan":"red","n":1}"#) })
        .start()
        .await;
    let shadow = upstream()
        .fallback(|_| async { json_ok(r#"{"plan":"blue","n":2}"#) })
        .start()
        .await;
    let text = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &[],
        "",
        r#"noise = { "/n" = "noise" }"#,
    );
    let running = Running::start(&text, "127.0.0.1", "", "unused").await;

    // /plan differs and is no pin: diverged.
    let metrics = pairs(&running, 4).await;
    assert_eq!(count(&metrics, "diverged"), 4.0, "{metrics}");

    let reply = pin(
        &running,
        r#"{"route": "api", "field": "/plan", "pin": "noise"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let noise = json_body(
        &running
            .admin(Method::GET, "/api/v1/noise", None, None)
            .await,
    );
    assert_eq!(
        pinned(&noise, "/plan"),
        ("pinned_noise".into(), "runtime".into())
    );
    assert_eq!(
        pinned(&noise, "/n"),
        ("pinned_noise".into(), "config".into())
    );

    // Both differing fields are pinned noise now.
    let metrics = pairs(&running, 5).await;
    assert_eq!(count(&metrics, "diverged"), 4.0, "{metrics}");
    assert_eq!(count(&metrics, "noise_only"), 5.0, "{metrics}");

    // A runtime signal pin wins over the config's noise pin; removing the runtime noise
    // pin of /plan makes it a divergence again.
    let reply = pin(
        &running,
        r#"{"route": "api", "pointer": "/n", "pin": "signal"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = pin(
        &running,
        r#"{"route": "api", "field": "/plan", "pin": "none"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let metrics = pairs(&running, 3).await;
    assert_eq!(count(&metrics, "diverged"), 7.0, "{metrics}");
    assert_eq!(count(&metrics, "noise_only"), 5.0, "{metrics}");
    let noise = json_body(
        &running
            .admin(Method::GET, "/api/v1/noise", None, None)
            .await,
    );
    assert_eq!(
        pinned(&noise, "/n"),
        ("pinned_signal".into(), "runtime".into())
    );
    assert!(
        noise["api"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["field"] != "/plan" || entry["state"] != "pinned_noise"),
        "{noise}"
    );
    let samples = running
        .admin(Method::GET, "/api/v1/samples?route=api&limit=1", None, None)
        .await;
    let samples = json_body(&samples);
    let fields: Vec<&str> = samples[0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["noise"].is_null())
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"/n") && fields.contains(&"/plan"),
        "{samples}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pins_are_refused_naming_the_field() {
    let primary = upstream()
        .fallback(|_| async { json_ok(r#"{"a":1}"#) })
        .start()
        .await;
    let text = mirror_toml(&Mirrored::pair(primary.addr, primary.addr), &[], "", "");
    let running = Running::start(&text, "127.0.0.1", "", "unused").await;
    let cases = [
        (
            r#"{"route": "nope", "field": "/a", "pin": "noise"}"#,
            404,
            "route: ",
        ),
        (
            r#"{"route": "api", "field": "a", "pin": "noise"}"#,
            400,
            "field: ",
        ),
        (
            r#"{"route": "api", "field": "header:bad name", "pin": "noise"}"#,
            400,
            "field: ",
        ),
        (
            r#"{"route": "api", "field": "/a", "pin": "maybe"}"#,
            400,
            "pin: ",
        ),
        (
            r#"{"route": "api", "field": "/a"}"#,
            400,
            "body: missing field `pin`",
        ),
        (
            r#"{"route": "api", "field": "/a", "pin": "noise", "x": 1}"#,
            400,
            "x: unknown field",
        ),
    ];
    for (body, status, error) in cases {
        let reply = pin(&running, body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text());
        let first = json_body(&reply)["errors"][0].as_str().unwrap().to_string();
        assert!(first.starts_with(error), "{body}: {first}");
    }
    let reply = pin(
        &running,
        r#"{"route": "api", "field": "header:X-Trace", "pin": "noise"}"#,
    )
    .await;
    assert_eq!(json_body(&reply)["field"], "header:x-trace");
}
