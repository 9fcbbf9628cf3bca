#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Mirroring from flags alone: `shadowtap run --primary URL --shadow URL --sample 100
//! --mirror-methods GET,POST` mirrors the catch-all route, and exits 0 on SIGTERM.

mod support;

use http::{Method, Request};
use std::time::Duration;
use support::shadow::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_shadow_flags_mirrors_the_catch_all_route() {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    // The binary cannot report a port it picked, so pick free ones for it.
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let (primary_url, shadow_url) = (primary.url(""), shadow.url(""));
    let mut child = Spawned::run(
        &primary_url,
        &listen,
        &admin,
        &[
            "--shadow",
            &shadow_url,
            "--sample",
            "100",
            "--mirror-methods",
            "GET,POST",
        ],
    );
    child.ready(&admin).await;

    let base = format!("http://{listen}");
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("{base}/cli/{method}?x=1"))
            .body(full("flag body"))
            .unwrap();
        let reply = send(&http1_client(), request).await.expect("proxied");
        assert_eq!(reply.status, 200, "{method}");
    }
    let copies = received_at_least(&shadow, 2).await;
    let seen: Vec<String> = copies
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert!(seen.contains(&"GET /cli/GET?x=1".to_string()), "{seen:?}");
    assert!(seen.contains(&"POST /cli/POST?x=1".to_string()), "{seen:?}");
    assert!(copies
        .iter()
        .all(|r| r.header("x-shadowtap-shadow") == Some("1")));

    let metrics = send(
        &http1_client(),
        get_request(&format!("http://{admin}/metrics")),
    )
    .await
    .expect("admin /metrics")
    .text();
    let labels = |outcome| {
        [
            ("route", "default"),
            ("shadow", "shadow"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_mirror_requests_total",
            &labels("skipped_method")
        ),
        1.0,
        "DELETE is not in --mirror-methods:\n{metrics}"
    );

    let status = child.terminate().await;
    assert!(status.0.success(), "exit {}: {}", status.0, status.1);
    assert_eq!(shadow.count(), 2, "nothing else was mirrored");
}
