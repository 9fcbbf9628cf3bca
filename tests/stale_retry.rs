#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pooled upstream connections that the upstream closes at the worst moments, on every
//! engine: after reading a request and before answering it, after its head only, or in the
//! middle of its body, with the client's body partly in the proxy's buffer.
//!
//! A request without a body and with a safe method is sent again on another connection
//! (the upstream never saw it whole, or never answered); any other gets a 502. Either way
//! the client gets exactly one answer per request, its connection survives when its request
//! was read whole, and every request is counted once. Regression: the native engine's
//! retry re-sent the request from a client buffer it had already consumed, and the
//! connection's task panicked ("range start index 83 out of range for slice of length 0").

mod support;

use http::StatusCode;
use std::time::Duration;
use support::raw::{flaky_upstream, OnReuse, RawClient, RawResponse};
use support::*;

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: app.test\r\n\r\n").into_bytes()
}

fn post_head(path: &str, length: usize) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nhost: app.test\r\ncontent-length: {length}\r\n\r\n")
        .into_bytes()
}

/// `shadowtap_requests_total`, every series.
async fn requests_counted(proxy: &Shadowtap) -> f64 {
    metric_sum(&proxy.metrics().await, "shadowtap_requests_total", &[])
}

/// `shadowtap_task_panics_total`, every task kind.
async fn panics(proxy: &Shadowtap) -> f64 {
    metric_sum(&proxy.metrics().await, "shadowtap_task_panics_total", &[])
}

/// Each way of closing a reused connection, on each engine: a GET on it is sent again and
/// answered 200; the client's connection lives on.
#[tokio::test]
async fn a_get_on_a_connection_the_upstream_closed_is_sent_again() {
    for engine in ENGINES {
        for plan in OnReuse::ALL {
            let upstream = flaky_upstream(plan).await;
            let proxy = shadowtap_with_engine(upstream.addr, engine).await;
            let mut client = RawClient::connect(proxy.addr).await;
            for round in 0..4 {
                client.send(&get(&format!("/get/{round}"))).await;
                let answer = client.response().await;
                let answer = answer.unwrap_or_else(|| {
                    panic!("{engine}, {plan:?}: connection died at request {round}")
                });
                assert_eq!(answer.status, 200, "{engine}, {plan:?}, request {round}");
                assert_eq!(answer.body, b"len=0");
            }
            assert_eq!(requests_counted(&proxy).await, 4.0, "{engine}, {plan:?}");
            assert_eq!(panics(&proxy).await, 0.0, "{engine}, {plan:?}");
            assert_eq!(
                proxy.proxy_errors("upstream_error").await,
                0.0,
                "{engine}, {plan:?}"
            );
        }
    }
}

/// A POST whose body is partly in the proxy's buffer when the reused connection fails:
/// never sent twice; a 502; and the next request on the client's connection (or on a new
/// one, when the proxy closed it because the body was not all read) is served.
#[tokio::test]
async fn a_post_with_a_partly_buffered_body_is_answered_once() {
    for engine in ENGINES {
        for plan in OnReuse::ALL {
            let upstream = flaky_upstream(plan).await;
            let proxy = shadowtap_with_engine(upstream.addr, engine).await;
            let mut client = RawClient::connect(proxy.addr).await;
            // A fresh upstream connection serves the first request.
            client.send(&get("/warm")).await;
            assert_eq!(client.response().await.unwrap().status, 200);
            let answer = post_in_two_parts(&mut client, 4000, 1500).await;
            let answer = answer.unwrap_or_else(|| panic!("{engine}, {plan:?}: no answer"));
            let expected = match plan {
                OnReuse::Answer => 200,
                _ => 502,
            };
            assert_eq!(answer.status, expected, "{engine}, {plan:?}");
            if closes(engine, &answer) {
                client = RawClient::connect(proxy.addr).await;
            }
            client.send(&get("/after")).await;
            let after = client.response().await;
            assert_eq!(after.map(|a| a.status), Some(200), "{engine}, {plan:?}");
            assert_eq!(requests_counted(&proxy).await, 3.0, "{engine}, {plan:?}");
        }
    }
}

/// Whether the proxy closes the client's connection after `answer`. The native engine says
/// so (`connection: close`) whenever it does; hyper closes after an error answered before
/// the request body was all read without saying so, so the client cannot tell.
fn closes(engine: &str, answer: &RawResponse) -> bool {
    answer.closes() || (engine == "hyper" && answer.status == 502)
}

/// Sends a POST of `length` bytes: the head and `first` bytes in one write, the rest a
/// moment later.
async fn post_in_two_parts(
    client: &mut RawClient,
    length: usize,
    first: usize,
) -> Option<RawResponse> {
    let mut start = post_head("/upload", length);
    start.extend(std::iter::repeat_n(b'a', first));
    client.send(&start).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The upstream may have closed and the proxy answered already; a failed write is fine.
    let rest = vec![b'b'; length - first];
    let _ = tokio::io::AsyncWriteExt::write_all(&mut client.stream, &rest).await;
    client.response().await
}

/// Over h2c (the hyper path's HTTP/1 upstream client): GETs on reused connections the
/// upstream closed are sent again.
#[tokio::test]
async fn h2c_gets_on_closed_connections_are_sent_again() {
    for plan in OnReuse::ALL {
        let upstream = flaky_upstream(plan).await;
        let proxy = shadowtap_with_engine(upstream.addr, "native").await;
        let client = h2_client();
        for round in 0..4 {
            let reply = send(&client, get_request(&proxy.url(&format!("/h2/{round}"))))
                .await
                .unwrap_or_else(|error| panic!("{plan:?}, request {round}: {error}"));
            assert_eq!(reply.status, StatusCode::OK, "{plan:?}, request {round}");
        }
        assert_eq!(requests_counted(&proxy).await, 4.0, "{plan:?}");
    }
}

/// Mixed traffic on both engines: GETs and POSTs with bodies split at random points, the
/// upstream's treatment of reused connections changed at random between requests. Every
/// request gets exactly one answer; every GET is 200; nothing panics; every request is
/// counted once.
#[tokio::test]
async fn mixed_keep_alive_traffic_against_closing_upstreams() {
    for engine in ENGINES {
        for seed in [0x9e37_79b9_7f4a_7c15_u64, 0x2545_f491_4f6c_dd1d] {
            let mut rng = Rng(seed);
            let upstream = flaky_upstream(OnReuse::Answer).await;
            let proxy = shadowtap_with_engine(upstream.addr, engine).await;
            let mut client = RawClient::connect(proxy.addr).await;
            let requests = 60;
            for round in 0..requests {
                upstream.set(OnReuse::ALL[rng.below(4) as usize]);
                let what = format!("{engine}, seed {seed:x}, request {round}");
                let answer = if rng.below(2) == 0 {
                    client.send(&get(&format!("/mixed/{round}"))).await;
                    let answer = client.response().await;
                    let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
                    assert_eq!(answer.status, 200, "{what}");
                    answer
                } else {
                    let length = 1 + rng.below(40_000) as usize;
                    let first = rng.below(length as u64 + 1) as usize;
                    let answer = post_in_two_parts(&mut client, length, first).await;
                    let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
                    assert!([200, 502].contains(&answer.status), "{what}: {answer:?}");
                    if answer.status == 200 {
                        assert_eq!(answer.body, format!("len={length}").as_bytes(), "{what}");
                    }
                    answer
                };
                if closes(engine, &answer) {
                    client = RawClient::connect(proxy.addr).await;
                }
            }
            let what = format!("{engine}, seed {seed:x}");
            assert_eq!(requests_counted(&proxy).await, requests as f64, "{what}");
            assert_eq!(panics(&proxy).await, 0.0, "{what}");
        }
    }
}
