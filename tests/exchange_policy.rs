#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP/1 upstream exchange's one retry rule (docs/ARCHITECTURE.md, "HTTP/1 upstream
//! exchange: one policy"), on both engines: a request that reached a reused connection the
//! upstream then closed without a byte of answer goes again only when it is idempotent and
//! bodiless — PUT and DELETE as well as GET, HEAD, OPTIONS and TRACE — and a POST never does.

mod support;

use support::raw::{flaky_upstream, OnReuse, RawClient};
use support::*;

fn bodiless(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nhost: app.test\r\ncontent-length: 0\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn idempotent_bodiless_requests_go_again_and_a_post_does_not() {
    for engine in ENGINES {
        for (method, expected) in [
            ("PUT", 200),
            ("DELETE", 200),
            ("OPTIONS", 200),
            ("GET", 200),
            ("POST", 502),
        ] {
            let what = format!("{engine}, {method}");
            let upstream = flaky_upstream(OnReuse::Answer).await;
            let proxy = shadowtap_with_engine(upstream.addr, engine).await;
            let mut client = RawClient::connect(proxy.addr).await;
            // A fresh upstream connection serves the first request and goes to the pool.
            client.send(&bodiless("GET", "/warm")).await;
            assert_eq!(client.response().await.unwrap().status, 200, "{what}");
            // The pooled connection now reads the next request and closes unanswered.
            upstream.set(OnReuse::CloseAfterRequest);
            client.send(&bodiless(method, "/again")).await;
            let answer = client.response().await;
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, expected, "{what}");
            let errors = proxy.proxy_errors("upstream_error").await;
            assert_eq!(errors, f64::from(u8::from(expected == 502)), "{what}");
            let counted = metric_sum(&proxy.metrics().await, "shadowtap_requests_total", &[]);
            assert_eq!(counted, 2.0, "{what}: each request counted once");
            // Retried on a new connection (accepted twice) or not at all (once).
            let connections = if expected == 200 { 2 } else { 1 };
            assert_eq!(upstream.accepted(), connections, "{what}");
        }
    }
}
