#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A route's latency rule (`[routes.compare] latency = { max_delta, max_ratio }`), through
//! the real proxy on both engines: a shadow slower than the rule allows diverges with kind
//! `latency` (in `/metrics`, the samples and the diff log); one within it matches; and a
//! route without a rule reports a slow shadow as before: as a match, its slowness only in
//! `shadowtap_latency_delta_seconds` and the per-route latency of `/api/v1/routes`.

mod support;

use http::StatusCode;
use std::time::Duration;
use support::compare::*;
use support::*;

/// On the route with a rule: the shadow far slower.
const RULED_SLOW: &str = "/ruled/slow";
/// On the route with a rule: the shadow as fast as the primary.
const RULED_OK: &str = "/ruled/ok";
/// On the route without a rule: the shadow far slower.
const FREE_SLOW: &str = "/free/slow";

/// An answer after `delay`.
async fn after(delay: u64) -> http::Response<Body> {
    tokio::time::sleep(Duration::from_millis(delay)).await;
    json_ok(r#"{"ok":true}"#)
}

fn toml(primary: &Upstream, shadow: &Upstream, engine: &str, diff_log: &str) -> String {
    let route = |name: &str, prefix: &str, compare: &str| {
        format!(
            r#"
[[routes]]
name = "{name}"
primary = "stable"
path_prefix = "{prefix}"
template = ["{prefix}/{{what}}"]

[[routes.mirror.shadows]]
upstream = "{SHADOW}"
percent = 100

[routes.compare]
{compare}
"#
        )
    };
    let head = listener_and_admin(&engine_line(engine));
    format!(
        r#"{head}
[upstreams.stable]
url = "http://{primary}"

[upstreams.{SHADOW}]
url = "http://{shadow}"

[compare]
learn_after = 0
diff_log = {diff_log:?}
{ruled}
{free}
[shutdown]
grace_period = "1s"
"#,
        primary = primary.addr,
        shadow = shadow.addr,
        ruled = route(
            "ruled",
            "/ruled",
            r#"latency = { max_delta = "100ms", max_ratio = 4.0 }"#
        ),
        free = route("free", "/free", ""),
    )
}

#[tokio::test]
async fn a_shadow_slower_than_the_rule_diverges_with_kind_latency_and_no_rule_changes_nothing() {
    for engine in ENGINES {
        let primary = upstream()
            .route(RULED_SLOW, |_| after(10))
            .route(RULED_OK, |_| after(20))
            .route(FREE_SLOW, |_| after(10))
            .start()
            .await;
        let shadow = upstream()
            .route(RULED_SLOW, |_| after(400))
            .route(RULED_OK, |_| after(20))
            .route(FREE_SLOW, |_| after(400))
            .start()
            .await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("diffs.jsonl");
        let text = toml(&primary, &shadow, engine, log.to_str().unwrap());
        let proxy = Shadowtap::start(config(&text)).await;
        for path in [RULED_SLOW, RULED_OK, FREE_SLOW] {
            get_expect(&proxy, path, StatusCode::OK).await;
        }
        let mut metrics = String::new();
        for label in ["/ruled/{what}", "/free/{what}"] {
            let want = if label == "/ruled/{what}" { 2.0 } else { 1.0 };
            metrics = wait_metrics(&proxy, label, |m| compared(m, label) >= want).await;
        }
        let count = |name: &str, labels: &[(&str, &str)]| metric_sum(&metrics, name, labels);
        let ruled = [("route", "/ruled/{what}")];
        let free = [("route", "/free/{what}")];
        let at = format!("{engine}:\n{metrics}");
        assert_eq!(
            count(
                "shadowtap_divergences_total",
                &[ruled[0], ("kind", "latency")]
            ),
            1.0,
            "{at}"
        );
        assert_eq!(
            count(
                "shadowtap_comparisons_total",
                &[ruled[0], ("result", "diverged")]
            ),
            1.0,
            "{at}"
        );
        assert_eq!(
            count(
                "shadowtap_comparisons_total",
                &[ruled[0], ("result", "match")]
            ),
            1.0,
            "{at}"
        );
        // No rule: unchanged, a match; the slowness shows in the latency delta only.
        assert_eq!(
            count(
                "shadowtap_comparisons_total",
                &[free[0], ("result", "match")]
            ),
            1.0,
            "{at}"
        );
        assert_eq!(count("shadowtap_divergences_total", &free), 0.0, "{at}");
        assert!(
            count("shadowtap_latency_delta_seconds_sum", &free) > 0.3,
            "{at}"
        );
        let routes = admin_json(&proxy, "/api/v1/routes").await;
        let free_summary = routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "/free/{what}")
            .unwrap();
        assert_eq!(free_summary["divergence_rate"], 0.0, "{free_summary}");
        assert!(
            free_summary["latency_ms"]["delta"]["p50"].as_f64().unwrap() > 300.0,
            "{free_summary}"
        );

        let found = samples(&proxy, "/ruled/{what}").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["path"], RULED_SLOW);
        assert_eq!(
            difference_triples(&found[0]),
            vec![("latency".to_string(), String::new(), "slower".to_string())]
        );
        let logged = wait_for_log(&log).await;
        assert!(
            logged.contains(r#""kind":"latency""#) && logged.contains(RULED_SLOW),
            "{logged}"
        );
        assert!(samples(&proxy, "/free/{what}").await.is_empty());
    }
}

/// The diff log's text once it has a line.
async fn wait_for_log(path: &std::path::Path) -> String {
    within("the diff log", async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains('\n') {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
