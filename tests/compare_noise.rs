#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Noise, end to end: with a `secondary` (a second instance of the primary's build),
//! timestamps and UUIDs that differ between any two instances are `noise_only` from the
//! first pair while a real regression next to them still diverges; without a secondary,
//! a volatile field is learned as noise after `learn_after` pairs, and `/api/v1/noise`
//! says so.

mod support;

use http::StatusCode;
use std::time::SystemTime;
use support::compare::*;
use support::*;

const ORDER: &str = "/orders/{id}";
const USER: &str = "/users/{id}";

/// One instance of a build: every answer carries a fresh timestamp (nanoseconds, so two
/// instances never print the same one) and a fresh UUID; `plan` is the build's behaviour.
async fn build(plan: &'static str) -> Upstream {
    upstream()
        .fallback(move |received| async move {
            let id = received.uri.path().rsplit('/').next().unwrap_or("0").to_string();
            let now = humantime::format_rfc3339_nanos(SystemTime::now());
            let trace = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
            json_ok(format!(
                r#"{{"id":"{id}","plan":"{plan}","served_at":"{now}","trace_id":"{trace}","total":42}}"#
            ))
        })
        .start()
        .await
}

#[tokio::test]
async fn secondary_turns_timestamps_and_uuids_into_noise_but_not_regressions() {
    let primary = build("pro").await;
    let secondary = build("pro").await;
    let same_build = build("pro").await;
    let toml = mirror_toml(
        &Mirrored {
            primary: primary.addr,
            shadow: same_build.addr,
            secondary: Some(secondary.addr),
        },
        &[ORDER],
        // Learning off: only the secondary may call anything noise here.
        "learn_after = 0",
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    for n in 0..5 {
        get_expect(&proxy, &format!("/orders/{n}"), StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, ORDER, 5).await;
    let result = |r| [("route", ORDER), ("shadow", SHADOW), ("result", r)];
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &result("noise_only")
        ),
        5.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "shadowtap_comparisons_total", &result("diverged")),
        0.0
    );
    assert!(samples(&proxy, ORDER).await.is_empty());
    assert_eq!(
        secondary.count(),
        5,
        "the secondary saw every mirrored request"
    );

    let noise = admin_json(&proxy, "/api/v1/noise").await;
    let fields = noise[ORDER]
        .as_array()
        .unwrap_or_else(|| panic!("{ORDER} missing from {noise}"));
    for field in ["/served_at", "/trace_id"] {
        let entry = fields
            .iter()
            .find(|f| f["field"] == field)
            .unwrap_or_else(|| panic!("{field} missing from {fields:?}"));
        assert_eq!(entry["state"], "secondary_noise", "{entry}");
        assert_eq!(entry["secondary_pairs"], 5, "{entry}");
    }
}

#[tokio::test]
async fn a_regression_next_to_secondary_noise_still_diverges() {
    let primary = build("pro").await;
    let secondary = build("pro").await;
    let canary = build("basic").await;
    let toml = mirror_toml(
        &Mirrored {
            primary: primary.addr,
            shadow: canary.addr,
            secondary: Some(secondary.addr),
        },
        &[USER],
        "learn_after = 0",
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    for n in 0..3 {
        get_expect(&proxy, &format!("/users/{n}"), StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, USER, 3).await;
    let labels = |k, v| [("route", USER), ("shadow", SHADOW), (k, v)];
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &labels("result", "diverged")
        ),
        3.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_divergences_total",
            &labels("kind", "body")
        ),
        3.0
    );
    let found = samples(&proxy, USER).await;
    assert_eq!(found.len(), 3);
    let differences = found[0]["differences"].as_array().unwrap();
    let noise_of = |path: &str| {
        differences
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("no difference at {path}: {differences:?}"))
            .get("noise")
            .cloned()
    };
    assert_eq!(noise_of("/plan"), None, "the regression is signal");
    assert_eq!(noise_of("/served_at"), Some("secondary".into()));
    assert_eq!(noise_of("/trace_id"), Some("secondary".into()));
    // Only the regression counts towards the top diverging fields.
    let routes = admin_json(&proxy, "/api/v1/routes").await;
    let top = &routes.as_array().unwrap()[0]["top_fields"];
    assert_eq!(top.as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top[0]["field"], "/plan");
}

#[tokio::test]
async fn volatile_field_is_learned_as_noise_after_learn_after_pairs() {
    const LEARN_AFTER: usize = 5;
    const PAIRS: usize = 9;
    let primary = build("pro").await;
    let shadow = build("pro").await;
    let toml = mirror_toml(
        &Mirrored {
            primary: primary.addr,
            shadow: shadow.addr,
            secondary: None,
        },
        &[ORDER],
        &format!("learn_after = {LEARN_AFTER}\nlearn_ratio = 0.5\nworkers = 1"),
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    // One at a time, each compared before the next, so the learner sees them in order.
    for n in 0..PAIRS {
        get_expect(&proxy, &format!("/orders/{n}"), StatusCode::OK).await;
        wait_compared(&proxy, ORDER, n + 1).await;
    }
    let metrics = proxy.metrics().await;
    let result = |r| [("route", ORDER), ("shadow", SHADOW), ("result", r)];
    // Until the route has seen `learn_after` pairs nothing is learned: those diverge.
    assert_eq!(
        metric_sum(&metrics, "shadowtap_comparisons_total", &result("diverged")),
        LEARN_AFTER as f64,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &result("noise_only")
        ),
        (PAIRS - LEARN_AFTER) as f64
    );
    // Only the diverged (early) pairs were kept as samples.
    let found = samples(&proxy, ORDER).await;
    assert_eq!(found.len(), LEARN_AFTER);

    let noise = admin_json(&proxy, "/api/v1/noise").await;
    let fields = noise[ORDER]
        .as_array()
        .unwrap_or_else(|| panic!("{ORDER} missing from {noise}"));
    for field in ["/served_at", "/trace_id"] {
        let entry = fields
            .iter()
            .find(|f| f["field"] == field)
            .unwrap_or_else(|| panic!("{field} missing from {fields:?}"));
        assert_eq!(entry["state"], "learned", "{entry}");
        assert_eq!(entry["differing_pairs"], PAIRS as u64, "{entry}");
        assert_eq!(entry["volatile_pairs"], PAIRS as u64, "{entry}");
        assert_eq!(entry["route_pairs"], PAIRS as u64, "{entry}");
    }
    // Equal fields are never candidates.
    assert!(
        !fields
            .iter()
            .any(|f| f["field"] == "/plan" || f["field"] == "/total"),
        "{fields:?}"
    );
}
