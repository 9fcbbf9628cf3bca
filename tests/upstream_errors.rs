#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Upstream failures become the right answer and the right numbers: refused -> 502, too
//! slow -> 504, both counted by reason on the admin `/metrics`; a body cut off mid-way is
//! an error for the client (never a hang, never a fake success) and the proxy carries on.

mod support;

use std::time::Duration;
use support::*;

async fn healthy() -> Upstream {
    upstream()
        .always(http::StatusCode::OK, "fine\n")
        .start()
        .await
}

fn count(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(metrics, name, labels)
        .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{metrics}"))
}

#[tokio::test]
async fn refused_upstream_is_502_and_counted_as_unreachable() {
    let ok = healthy().await;
    let proxy = Shadowtap::start(config(&two_upstreams(
        "",
        closed_port().await,
        "connect_timeout = \"1s\"",
        ok.addr,
    )))
    .await;
    for _ in 0..2 {
        let reply = get(&proxy.url("/broken/x")).await;
        assert_eq!(reply.status, 502, "{}", reply.text());
    }
    assert_eq!(get(&proxy.url("/fine")).await.status, 200);

    let metrics = proxy.metrics().await;
    let broken = [("route", "broken")];
    assert_eq!(
        count(
            &metrics,
            "shadowtap_requests_total",
            &[
                ("route", "broken"),
                ("method", "GET"),
                ("status_class", "5xx")
            ]
        ),
        2.0
    );
    assert_eq!(
        count(
            &metrics,
            "shadowtap_proxy_errors_total",
            &[("route", "broken"), ("reason", "upstream_unreachable")]
        ),
        2.0
    );
    assert_eq!(
        count(
            &metrics,
            "shadowtap_request_duration_seconds_count",
            &[broken[0], ("target", "primary")]
        ),
        2.0
    );
    assert_eq!(
        metric_value(&metrics, "shadowtap_proxy_errors_total", &[("route", "ok")]),
        None,
        "the healthy route has no errors"
    );
}

#[tokio::test]
async fn upstream_slower_than_response_timeout_is_504_and_counted_as_timeout() {
    let slow = upstream()
        .always(http::StatusCode::OK, "late\n")
        .with_latency(Duration::from_secs(3))
        .start()
        .await;
    let ok = healthy().await;
    let proxy = Shadowtap::start(config(&two_upstreams(
        "",
        slow.addr,
        "response_timeout = \"200ms\"",
        ok.addr,
    )))
    .await;
    let started = std::time::Instant::now();
    let reply = get(&proxy.url("/broken/slow")).await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered by the proxy's timeout, not the upstream: {:?}",
        started.elapsed()
    );
    assert_eq!(slow.count(), 1, "the request did reach the slow upstream");

    let metrics = proxy.metrics().await;
    assert_eq!(
        count(
            &metrics,
            "shadowtap_requests_total",
            &[("route", "broken"), ("status_class", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &metrics,
            "shadowtap_proxy_errors_total",
            &[("route", "broken"), ("reason", "upstream_timeout")]
        ),
        1.0
    );
    assert!(
        count(
            &metrics,
            "shadowtap_request_duration_seconds_sum",
            &[("route", "broken"), ("target", "primary")]
        ) >= 0.2,
        "the duration covers the wait"
    );
}

#[tokio::test]
async fn hanging_upstream_is_504_not_a_hang() {
    let hung = upstream().hang().start().await;
    let ok = healthy().await;
    let proxy = Shadowtap::start(config(&two_upstreams(
        "",
        hung.addr,
        "response_timeout = \"300ms\"",
        ok.addr,
    )))
    .await;
    assert_eq!(get(&proxy.url("/broken/x")).await.status, 504);
    assert_eq!(get(&proxy.url("/x")).await.status, 200);
}

#[tokio::test]
async fn upstream_reset_mid_body_truncates_the_client_body_and_the_proxy_carries_on() {
    let reset = reset_mid_body(1000, b"only the first bytes").await;
    let ok = healthy().await;
    let proxy = Shadowtap::start(config(&two_upstreams("", reset.addr, "", ok.addr))).await;

    // Direct, the harness upstream is really broken the way we think.
    let direct = send(
        &http1_client(),
        get_request(&format!("http://{}/", reset.addr)),
    )
    .await;
    assert!(direct.is_err(), "direct read should fail: {direct:?}");

    for attempt in 0..2 {
        let result = send(&http1_client(), get_request(&proxy.url("/broken/file"))).await;
        match result {
            Err(_) => {}
            Ok(reply) => panic!(
                "attempt {attempt}: a cut-off body was passed off as complete: {} with {} bytes",
                reply.status,
                reply.body.len()
            ),
        }
        // The proxy keeps serving on new connections.
        assert_eq!(get(&proxy.url("/after")).await.status, 200);
    }
    assert_eq!(reset.count(), 3, "direct + two proxied requests");
}

#[tokio::test]
async fn truncated_body_shows_its_partial_bytes_then_an_error() {
    use http_body_util::BodyExt;
    let reset = reset_mid_body(1000, b"partial").await;
    let proxy = Shadowtap::in_front_of(reset.addr).await;
    let response = within(
        "head",
        http1_client().request(get_request(&proxy.url("/file"))),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "the head was already sent upstream");
    assert_eq!(response.headers()["content-length"], "1000");
    let mut body = response.into_body();
    let mut received = Vec::new();
    let outcome = within("body ends (with an error)", async {
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        received.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    })
    .await;
    assert!(
        outcome.is_err(),
        "the body ended cleanly after {received:?}"
    );
    assert!(received.len() < 1000);
    assert!(b"partial".starts_with(&received), "{received:?}");
    // The status already went out as 200, so the failure shows in the error counter.
    let metrics = proxy.metrics().await;
    assert_eq!(
        count(
            &metrics,
            "shadowtap_proxy_errors_total",
            &[("reason", "upstream_body_error")]
        ),
        1.0
    );
}
