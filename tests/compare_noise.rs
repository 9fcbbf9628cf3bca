#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Noise, end to end: with a `secondary` (a second instance of the primary's build),
//! timestamps and UUIDs that differ between any two instances are `noise_only` from the
//! first pair while a real regression next to them still diverges; without a secondary,
//! a volatile field is learned as noise after `learn_after` pairs, and `/api/v1/noise`
//! says so. Behind a catch-all route (flags alone), noise is learned per endpoint: several
//! endpoints with their own volatile fields are `noise_only` after a short warm-up, and a
//! regression next to them still diverges every time.

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

/// A run with a secondary: primary and secondary of build `pro`, the shadow of build
/// `shadow_plan`, all behind the route `template`.
struct SecondaryRun {
    _primary: Upstream,
    secondary: Upstream,
    _shadow: Upstream,
    proxy: Shadowtap,
    /// `/metrics` once the `pairs` requests are compared.
    metrics: String,
}

/// Sends `GET {prefix}{n}` for `n` in `0..pairs` through a [`SecondaryRun`] with learning off
/// (only the secondary may call anything noise here) and waits until all are compared.
async fn secondary_run(
    shadow_plan: &'static str,
    template: &str,
    prefix: &str,
    pairs: usize,
) -> SecondaryRun {
    let primary = build("pro").await;
    let secondary = build("pro").await;
    let shadow = build(shadow_plan).await;
    let toml = mirror_toml(
        &Mirrored {
            primary: primary.addr,
            shadow: shadow.addr,
            secondary: Some(secondary.addr),
        },
        &[template],
        "learn_after = 0",
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    for n in 0..pairs {
        get_expect(&proxy, &format!("{prefix}{n}"), StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, template, pairs).await;
    SecondaryRun {
        _primary: primary,
        secondary,
        _shadow: shadow,
        proxy,
        metrics,
    }
}

#[tokio::test]
async fn secondary_turns_timestamps_and_uuids_into_noise_but_not_regressions() {
    // The shadow is the same build: every difference is noise.
    // Bound by name (not `..`): every upstream lives to the end of the test, as before.
    let SecondaryRun {
        _primary,
        secondary,
        _shadow,
        proxy,
        metrics,
    } = secondary_run("pro", ORDER, "/orders/", 5).await;
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
    // The canary is another build: `plan` differs, besides the noise.
    let SecondaryRun {
        _primary,
        secondary: _secondary,
        _shadow,
        proxy,
        metrics,
    } = secondary_run("basic", USER, "/users/", 3).await;
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
    // An always-differing field passes the 99 % bound from its sixth pair on.
    const LEARN_AFTER: usize = 6;
    const PAIRS: usize = 9;
    let primary = build("pro").await;
    let shadow = build("pro").await;
    let toml = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
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
    // Until the endpoint has seen `learn_after` pairs nothing is learned: those diverge.
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
        assert_eq!(entry["present_pairs"], PAIRS as u64, "{entry}");
        assert_eq!(entry["endpoint"], "GET /orders/{id}", "{entry}");
    }
    // Equal fields are never candidates.
    assert!(
        !fields
            .iter()
            .any(|f| f["field"] == "/plan" || f["field"] == "/total"),
        "{fields:?}"
    );
}

/// A small API, one build of it: four endpoints, each with its own volatile values
/// (nanosecond timestamps and epochs, UUIDs, random tokens: two answers never share them)
/// next to stable data. `regression`: orders whose id is a multiple of 5 answer in another
/// currency (a stable field, changed).
async fn api_build(regression: bool) -> Upstream {
    upstream()
        .fallback(move |received| async move {
            let path = received.uri.path().to_string();
            let id: u64 = path.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let now = humantime::format_rfc3339_nanos(SystemTime::now());
            let uuid = || uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                + u128::from(fastrand::u32(..));
            if path.starts_with("/users/") {
                json_ok(format!(
                    r#"{{"id":{id},"name":"user {id}","served_at":"{now}","trace_id":"{}"}}"#,
                    uuid()
                ))
            } else if path.starts_with("/orders/") {
                let currency = if regression && id % 5 == 0 { "EUR" } else { "USD" };
                json_ok(format!(
                    r#"{{"id":{id},"total":{},"currency":"{currency}","request_id":"{}","computed_at":{nanos}}}"#,
                    id * 3,
                    uuid()
                ))
            } else if path == "/catalog" {
                let cursor = format!("c1{:024x}", fastrand::u128(..));
                json_ok(format!(
                    r#"{{"items":[{{"sku":"a","checked_at":"{now}"}},{{"sku":"b","checked_at":"{now}"}}],"cursor":"{cursor}"}}"#
                ))
            } else {
                json_ok(r#"{"ok":true}"#)
            }
        })
        .start()
        .await
}

/// The config a user gets from flags alone: `run --primary URL --shadow URL --sample 100
/// --diff-log FILE` (one catch-all route `default`, shadow `shadow`), with `compare` lines
/// as the only file content.
fn flags_only(
    primary: &Upstream,
    shadow: &Upstream,
    diff_log: &str,
    compare: &str,
) -> shadowtap::config::Config {
    let overrides = shadowtap::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        primary: Some(primary.url("")),
        shadows: vec![shadow.url("")],
        sample: Some("100".into()),
        diff_log: Some(diff_log.into()),
        ..Default::default()
    };
    shadowtap::config::Config::from_toml(&format!("[compare]\n{compare}\n"), &overrides)
        .unwrap_or_else(|e| panic!("flags-only config: {e}"))
}

/// shadowtap started with [`flags_only`], its diff log in a new temporary directory: the
/// directory (removed when dropped, after the proxy when bound in this order), the log's path
/// and the proxy.
async fn start_flags_only(
    primary: &Upstream,
    shadow: &Upstream,
    compare: &str,
) -> (tempfile::TempDir, std::path::PathBuf, Shadowtap) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("diffs.jsonl");
    let config = flags_only(primary, shadow, log.to_str().expect("utf-8"), compare);
    let proxy = Shadowtap::start(config).await;
    (dir, log, proxy)
}

const CATCH_ALL: &str = "default";
const FLAG_SHADOW: &str = "shadow";

async fn results(proxy: &Shadowtap) -> (f64, f64, f64) {
    let metrics = proxy.metrics().await;
    let count = |result| {
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &[
                ("route", CATCH_ALL),
                ("shadow", FLAG_SHADOW),
                ("result", result),
            ],
        )
    };
    (count("match"), count("noise_only"), count("diverged"))
}

async fn wait_pairs(proxy: &Shadowtap, pairs: usize) {
    wait_metrics(proxy, &format!("{pairs} pairs compared"), |metrics| {
        metric_sum(
            metrics,
            "shadowtap_comparisons_total",
            &[("route", CATCH_ALL), ("shadow", FLAG_SHADOW)],
        ) >= pairs as f64
    })
    .await;
}

fn diff_log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Waits until the diff log holds `lines` lines (a pair is counted in the metrics just
/// before its line is written); returns how many it holds.
async fn wait_logged(path: &std::path::Path, lines: usize) -> usize {
    within("diff log lines", async {
        loop {
            let found = diff_log_lines(path).len();
            if found >= lines {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The target of issue 17: several endpoints behind one catch-all route, each with its
/// own volatile fields. After a warm-up of 20 pairs per endpoint, under 1 % of the pairs
/// whose only differences are volatile values are reported diverged (in fact none), while
/// every pair with the currency regression is reported, with its path. Before, a field was
/// learned only when it differed in `learn_ratio` of *all* the route's pairs: each of these
/// is a quarter of them, so none was ever learned and every pair diverged.
#[tokio::test]
async fn catch_all_route_learns_each_endpoints_noise_and_still_reports_a_regression() {
    const WARM_UP: u64 = 20;
    const MEASURED: u64 = 100;
    let primary = api_build(false).await;
    let shadow = api_build(true).await;
    let (_dir, log, proxy) = start_flags_only(&primary, &shadow, "").await;
    let paths = |n: u64| {
        [
            format!("/users/{n}"),
            format!("/orders/{}", n + 1),
            "/catalog".to_string(),
            "/health".to_string(),
        ]
    };
    for n in 0..WARM_UP {
        for path in paths(n) {
            get_expect(&proxy, &path, StatusCode::OK).await;
        }
    }
    wait_pairs(&proxy, (4 * WARM_UP) as usize).await;
    let (match_before, noise_before, diverged_before) = results(&proxy).await;
    let logged_before = wait_logged(&log, diverged_before as usize).await;

    let mut regressions = 0;
    for n in WARM_UP..WARM_UP + MEASURED {
        for path in paths(n) {
            get_expect(&proxy, &path, StatusCode::OK).await;
        }
        regressions += u64::from((n + 1) % 5 == 0);
    }
    wait_pairs(&proxy, (4 * (WARM_UP + MEASURED)) as usize).await;
    let (matched, noise_only, diverged) = results(&proxy).await;
    let (matched, noise_only, diverged) = (
        matched - match_before,
        noise_only - noise_before,
        diverged - diverged_before,
    );
    // Users, catalog and the orders without the regression differ only in volatile values.
    let volatile_only = (3 * MEASURED - regressions) as f64;
    assert_eq!(matched, MEASURED as f64, "/health always matches");
    let false_divergences = diverged - regressions as f64;
    assert!(
        false_divergences < 0.01 * volatile_only,
        "{false_divergences} of {volatile_only} volatile-only pairs diverged after the warm-up \
         (noise_only {noise_only}, diverged {diverged}, regressions {regressions})"
    );
    assert!(
        noise_only >= 0.99 * volatile_only,
        "noise_only {noise_only} of {volatile_only}"
    );

    // Every diverged pair after the warm-up is a regression, reported with its path, its
    // volatile neighbours marked as learned noise.
    wait_logged(&log, (diverged_before + diverged) as usize).await;
    let lines = diff_log_lines(&log);
    let measured: Vec<&serde_json::Value> = lines.iter().skip(logged_before).collect();
    assert_eq!(
        measured.len() as u64,
        regressions,
        "one log line per regression"
    );
    for line in &measured {
        let path = line["path"].as_str().unwrap();
        let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
        assert!(path.starts_with("/orders/") && id % 5 == 0, "{line}");
        let differences = line["differences"].as_array().unwrap();
        let signal: Vec<&serde_json::Value> = differences
            .iter()
            .filter(|d| d.get("noise").is_none())
            .collect();
        assert_eq!(signal.len(), 1, "{line}");
        assert_eq!(signal[0]["path"], "/currency");
        assert_eq!(signal[0]["primary"], "\"USD\"");
        assert_eq!(signal[0]["shadow"], "\"EUR\"");
        for field in ["/request_id", "/computed_at"] {
            let noise = differences
                .iter()
                .find(|d| d["path"] == field)
                .map(|d| &d["noise"]);
            assert_eq!(
                noise,
                Some(&serde_json::json!("learned")),
                "{field}: {line}"
            );
        }
    }
    let found = samples(&proxy, CATCH_ALL).await;
    assert!(found
        .iter()
        .take(5)
        .all(|sample| sample["path"].as_str().unwrap().starts_with("/orders/")));

    // The endpoint view: four endpoints under the catch-all, each with its learned fields.
    let endpoints = admin_json(&proxy, "/api/v1/endpoints").await;
    let endpoints = endpoints.as_array().unwrap();
    let names: Vec<&str> = endpoints
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "GET /catalog",
            "GET /health",
            "GET /orders/{id}",
            "GET /users/{id}"
        ],
        "{endpoints:?}"
    );
    let learned = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["endpoint"] == name)
            .map(|e| e["learned_noise"].clone())
            .unwrap()
    };
    assert_eq!(
        learned("GET /users/{id}"),
        serde_json::json!(["/served_at", "/trace_id"])
    );
    assert_eq!(
        learned("GET /orders/{id}"),
        serde_json::json!(["/computed_at", "/request_id"])
    );
    assert_eq!(
        learned("GET /catalog"),
        serde_json::json!(["/cursor", "/items/*/checked_at"])
    );
    let orders = endpoints
        .iter()
        .find(|e| e["endpoint"] == "GET /orders/{id}")
        .unwrap();
    assert_eq!(orders["route"], CATCH_ALL);
    assert_eq!(orders["shadow"], FLAG_SHADOW);
    // The warm-up (the first 10 of its pairs: `learn_after`), then only the regressions:
    // ids 5, 10, …, 120, of which 5 and 10 are normally inside the warm-up.
    let all_regressions = (1..=WARM_UP + MEASURED).filter(|id| id % 5 == 0).count() as u64;
    let diverged = orders["comparisons"]["diverged"].as_u64().unwrap();
    assert!(
        (10 + all_regressions - 2..=10 + all_regressions).contains(&diverged),
        "{orders}"
    );
}

/// Endpoints are bounded per route: past `compare.endpoints_per_route` shapes, pairs are
/// learned and counted together under `<route>:other`.
#[tokio::test]
async fn endpoints_past_the_bound_share_the_overflow_endpoint() {
    let primary = api_build(false).await;
    let shadow = api_build(false).await;
    let (_dir, _log, proxy) = start_flags_only(&primary, &shadow, "endpoints_per_route = 2").await;
    for path in [
        "/users/1",
        "/users/2",
        "/health",
        "/orders/3",
        "/catalog",
        "/users/3",
    ] {
        get_expect(&proxy, path, StatusCode::OK).await;
        wait_pairs(&proxy, 1).await;
    }
    wait_pairs(&proxy, 6).await;
    let endpoints = admin_json(&proxy, "/api/v1/endpoints").await;
    let counts: Vec<(String, u64)> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let total: u64 = e["comparisons"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            (e["endpoint"].as_str().unwrap().to_string(), total)
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("GET /health".to_string(), 1),
            ("GET /users/{id}".to_string(), 3),
            ("default:other".to_string(), 2),
        ]
    );
    // Noise is learned under the same names: the overflow endpoint is one of them.
    let noise = admin_json(&proxy, "/api/v1/noise").await;
    let learned_at: std::collections::BTreeSet<&str> = noise[CATCH_ALL]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        learned_at.into_iter().collect::<Vec<_>>(),
        ["GET /users/{id}", "default:other"],
        "{noise}"
    );
}

#[test]
fn endpoints_per_route_must_be_at_least_one() {
    let result = shadowtap::config::Config::from_toml(
        "[compare]\nendpoints_per_route = 0\n",
        &shadowtap::config::Overrides {
            primary: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    let Err(error) = result.map(|_| ()) else {
        panic!("endpoints_per_route = 0 was accepted");
    };
    let error = error.to_string();
    assert!(
        error.contains("compare.endpoints_per_route: must be at least 1"),
        "{error}"
    );
}
