#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end, known differences between a primary and a shadow (both real servers) come out
//! of the comparison engine with the right kind, path and change — in `/api/v1/samples`, in
//! `/api/v1/routes` and in `shadowtap_divergences_total{kind}` — and identical answers are
//! counted as `match` with no sample kept.

mod support;

use http::StatusCode;
use support::compare::*;
use support::*;

const USERS: &str = "/users/{id}";
const FAIL: &str = "/fail";
const SAME: &str = "/same";

/// The primary's build.
async fn primary() -> Upstream {
    upstream()
        .route("/users/1", |_| async {
            json_with(
                StatusCode::OK,
                r#"{"id":1,"plan":"pro","items":[{"sku":"a1"}],"count":3,"name":"ann"}"#,
                &[("x-feature", "on"), ("cache-control", "max-age=60")],
            )
        })
        .route("/fail", |_| async { json_ok(r#"{"ok":true}"#) })
        .route("/same", |_| async {
            json_with(
                StatusCode::OK,
                r#"{"a":[1,2,3],"b":{"c":"d"}}"#,
                &[("x-feature", "on")],
            )
        })
        .start()
        .await
}

/// The build under test: `/plan` changed, `/items` removed, `/count` a string now, one
/// header changed and one gone; `/fail` answers 500; `/same` is the same (keys reordered
/// and different whitespace are not differences).
async fn shadow() -> Upstream {
    upstream()
        .route("/users/1", |_| async {
            json_with(
                StatusCode::OK,
                r#"{"name":"ann","id":1,"plan":"basic","count":"3"}"#,
                &[("x-feature", "off")],
            )
        })
        .route("/fail", |_| async {
            json_with(StatusCode::INTERNAL_SERVER_ERROR, r#"{"ok":true}"#, &[])
        })
        .route("/same", |_| async {
            json_with(
                StatusCode::OK,
                "{ \"b\": {\"c\": \"d\"},\n  \"a\": [1, 2, 3] }",
                &[("x-feature", "on")],
            )
        })
        .start()
        .await
}

async fn setup() -> (Upstream, Upstream, Shadowtap) {
    let (primary, shadow) = (primary().await, shadow().await);
    let toml = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &[USERS, FAIL, SAME],
        // No learning: every difference here is a regression and must stay one.
        "learn_after = 0",
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    (primary, shadow, proxy)
}

fn find<'a>(
    triples: &'a [(String, String, String)],
    kind: &str,
    path: &str,
) -> Option<&'a (String, String, String)> {
    triples.iter().find(|(k, p, _)| k == kind && p == path)
}

#[tokio::test]
async fn injected_body_and_header_differences_are_reported_with_kind_and_path() {
    let (_primary, _shadow, proxy) = setup().await;
    // The client always gets the primary's answer.
    let reply = get_expect(&proxy, "/users/1", StatusCode::OK).await;
    assert!(
        reply.text().contains("\"plan\":\"pro\""),
        "{}",
        reply.text()
    );
    let metrics = wait_compared(&proxy, USERS, 1).await;

    let route = [("route", USERS), ("shadow", SHADOW)];
    let count =
        |name: &str, extra: (&str, &str)| metric_sum(&metrics, name, &[route[0], route[1], extra]);
    assert_eq!(
        count("shadowtap_comparisons_total", ("result", "diverged")),
        1.0
    );
    assert_eq!(count("shadowtap_divergences_total", ("kind", "body")), 1.0);
    assert_eq!(
        count("shadowtap_divergences_total", ("kind", "header")),
        1.0
    );
    assert_eq!(
        count("shadowtap_divergences_total", ("kind", "status")),
        0.0
    );

    let found = samples(&proxy, USERS).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let sample = &found[0];
    assert_eq!(sample["route"], USERS);
    assert_eq!(sample["shadow"], SHADOW);
    assert_eq!(sample["method"], "GET");
    assert_eq!(sample["path"], "/users/1");
    assert_eq!(sample["result"], "diverged");
    let triples = difference_triples(sample);
    let expect = |kind: &str, path: &str, change: &str| {
        let found = find(&triples, kind, path)
            .unwrap_or_else(|| panic!("no {kind} difference at {path:?} in {triples:?}"));
        assert_eq!(found.2, change, "{kind} {path}: {triples:?}");
    };
    expect("body", "/plan", "changed");
    expect("body", "/items", "removed");
    expect("body", "/count", "type_changed");
    expect("header", "x-feature", "changed");
    expect("header", "cache-control", "removed");
    // Nothing else: equal fields, reordered keys, `date` and framing headers are not differences.
    assert_eq!(triples.len(), 5, "{triples:?}");

    let plan = sample["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "/plan")
        .unwrap();
    assert_eq!(plan["primary"], "\"pro\"");
    assert_eq!(plan["shadow"], "\"basic\"");
    assert_eq!(plan["field"], "/plan");
    assert!(plan.get("noise").is_none(), "{plan}");
    // Both answers are kept (as excerpts) for a person to look at.
    assert_eq!(sample["primary"]["status"], 200);
    assert!(sample["shadow_response"]["body"]
        .as_str()
        .unwrap()
        .contains("basic"));

    let routes = admin_json(&proxy, "/api/v1/routes").await;
    let summary = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == USERS)
        .unwrap_or_else(|| panic!("{USERS} missing from {routes}"));
    assert_eq!(summary["comparisons"]["diverged"], 1);
    assert_eq!(summary["divergence_rate"], 1.0);
    assert_eq!(summary["divergences_by_kind"]["body"], 1);
    assert_eq!(summary["divergences_by_kind"]["header"], 1);
    let fields: Vec<&str> = summary["top_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for field in ["/plan", "/items", "/count", "header:x-feature"] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
}

#[tokio::test]
async fn a_shadow_500_is_a_status_divergence() {
    let (_primary, _shadow, proxy) = setup().await;
    for _ in 0..3 {
        get_expect(&proxy, "/fail", StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, FAIL, 3).await;
    let labels = |extra| [("route", FAIL), ("shadow", SHADOW), extra];
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_divergences_total",
            &labels(("kind", "status"))
        ),
        3.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_divergences_total",
            &labels(("kind", "body"))
        ),
        0.0,
        "equal bodies are not a body divergence"
    );
    let found = samples(&proxy, FAIL).await;
    assert_eq!(found.len(), 3);
    let triples = difference_triples(&found[0]);
    assert_eq!(
        triples,
        vec![("status".to_string(), String::new(), "changed".to_string())]
    );
    let status = &found[0]["differences"][0];
    assert_eq!(status["primary"], "200");
    assert_eq!(status["shadow"], "500");
    // Newest first, each with its own request id.
    let ids: std::collections::BTreeSet<&str> = found
        .iter()
        .map(|s| s["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{found:?}");
}

#[tokio::test]
async fn identical_answers_match_and_keep_no_sample() {
    let (primary, shadow, proxy) = setup().await;
    for _ in 0..5 {
        get_expect(&proxy, "/same", StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, SAME, 5).await;
    let labels = |result| [("route", SAME), ("shadow", SHADOW), ("result", result)];
    assert_eq!(
        metric_sum(&metrics, "shadowtap_comparisons_total", &labels("match")),
        5.0
    );
    assert_eq!(
        metric_sum(&metrics, "shadowtap_comparisons_total", &labels("diverged")),
        0.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_divergences_total",
            &[("route", SAME), ("shadow", SHADOW)]
        ),
        0.0
    );
    assert!(samples(&proxy, SAME).await.is_empty());
    assert_eq!((primary.count(), shadow.count()), (5, 5));
    // Every compared pair had its latency delta observed.
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_latency_delta_seconds_count",
            &[("route", SAME), ("shadow", SHADOW)]
        ),
        5.0
    );
}
