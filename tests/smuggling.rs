#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Request-smuggling shapes sent over raw TCP: each must be refused with 400 and nothing
//! may reach the upstream. Some shapes are refused by hyper's parser, some by the proxy's
//! own framing checks; the tests do not care which, only that none is forwarded.

mod support;

use std::time::Duration;
use support::*;

/// Sends one raw request through a fresh proxy on each engine and checks: 400, connection
/// closed, and the recording upstream saw nothing.
async fn assert_refused(shape: &str, request: &str) {
    for engine in ENGINES {
        let upstream = upstream()
            .always(http::StatusCode::OK, "forwarded\n")
            .start()
            .await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        // Let a wrongly forwarded request arrive before counting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            raw_status(&answer),
            Some(400),
            "{engine}: {shape}: expected 400, got:\n{answer}"
        );
        assert!(
            !answer.contains("forwarded"),
            "{engine}: {shape}: the upstream's answer reached the client:\n{answer}"
        );
        assert_eq!(
            upstream.count(),
            0,
            "{engine}: {shape}: the upstream received it"
        );
        // Which layer refused it: the proxy counts its own 400s, hyper's parser does not.
        let by_proxy = metric_value(
            &proxy.metrics().await,
            "shadowtap_proxy_errors_total",
            &[("reason", "bad_request")],
        )
        .is_some();
        eprintln!(
            "{engine}: {shape}: refused by {}",
            if by_proxy { "shadowtap" } else { "hyper" }
        );
    }
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_and_not_forwarded() {
    assert_refused(
        "CL then TE",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_refused(
        "TE then CL",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_refused(
        "TE with a tab before the value, plus CL",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_refused(
        "lower-case names, TE first",
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn two_different_content_lengths_are_refused_and_not_forwarded() {
    assert_refused(
        "two CL lines",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    assert_refused(
        "one CL line with two values",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
    )
    .await;
}

#[tokio::test]
async fn obfuscated_transfer_encodings_are_refused_and_not_forwarded() {
    for (shape, te) in [
        ("xchunked", "Transfer-Encoding: xchunked\r\n"),
        (
            "chunked, chunked",
            "Transfer-Encoding: chunked, chunked\r\n",
        ),
        (
            "chunked twice in two fields",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n"),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n",
        ),
        ("space before colon", "Transfer-Encoding : chunked\r\n"),
        ("tab before colon", "Transfer-Encoding\t: chunked\r\n"),
        (
            "vertical tab in value",
            "Transfer-Encoding: \x0bchunked\r\n",
        ),
        (
            "chunked then identity on two lines",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        ),
        ("obs-fold", "Transfer-Encoding:\r\n chunked\r\n"),
    ] {
        let request = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n0\r\n\r\n");
        assert_refused(shape, &request).await;
    }
}

#[tokio::test]
async fn transfer_encoding_in_http_1_0_is_refused_and_not_forwarded() {
    assert_refused(
        "HTTP/1.0 with TE",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn smuggled_request_after_a_legitimate_one_is_not_forwarded() {
    // A normal keep-alive request, then a CL+TE request on the same connection: the first is
    // served, the second refused, and the upstream sees exactly one request.
    let upstream = upstream()
        .always(http::StatusCode::OK, "forwarded\n")
        .start()
        .await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = "POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
         POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let paths = upstream.paths();
    assert!(
        !paths.contains(&"/two".to_string()),
        "the smuggled request was forwarded: {paths:?}\n{answer}"
    );
    assert!(answer.contains(" 400 "), "no 400 in:\n{answer}");
}

#[tokio::test]
async fn plain_chunked_and_fixed_length_posts_still_pass() {
    // The control: the same raw client, well-formed framing, is forwarded.
    let upstream = upstream()
        .fallback(|r| async move { status_with_body(r.body) })
        .start()
        .await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let answer = raw_exchange(proxy.addr, chunked.as_bytes()).await;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
    assert!(answer.ends_with("abc"), "{answer}");
    let fixed = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz";
    let answer = raw_exchange(proxy.addr, fixed.as_bytes()).await;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
    assert!(answer.ends_with("xyz"), "{answer}");
    assert_eq!(upstream.count(), 2);
}

fn status_with_body(body: bytes::Bytes) -> http::Response<Body> {
    http::Response::new(full(body))
}
