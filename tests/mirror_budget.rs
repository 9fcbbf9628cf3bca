#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `mirror.max_buffered_bytes`: one byte budget for every body the mirror side holds. A
//! request body that does not fit is not mirrored (`dropped_memory_budget`) while the live
//! request is served in full; the bytes come back when the pairs holding them are done; an
//! answer that does not fit is not kept, and its body is compared by its length and hash
//! (here the two answers differ in length: a `body` divergence, no body skipped).

mod support;

use http::{Response, StatusCode};
use std::sync::Arc;
use support::shadow::*;
use support::*;
use tokio::sync::Semaphore;

const BUFFERED: &str = "shadowtap_mirror_buffered_bytes";

/// A shadow that answers only when the test lets it (one permit per answer).
async fn gated_shadow() -> (Upstream, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let shadow = upstream()
        .fallback(move |_| {
            let gate = held.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                status(StatusCode::OK, "shadow\n")
            }
        })
        .start()
        .await;
    (shadow, gate)
}

#[tokio::test]
async fn request_bodies_past_the_budget_are_not_mirrored_until_bytes_come_back() {
    let primary = echo_primary().await;
    let (shadow, gate) = gated_shadow().await;
    let policy = Policy {
        // Two 1,000-byte bodies and their 27-byte answers fit; a third body does not.
        global: "max_buffered_bytes = 2500",
        route: "",
        shadow: "methods = \"all\"",
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    let client = http1_client();
    for path in ["/a", "/b", "/c"] {
        let reply = send(&client, post_request(&proxy.url(path), vec![b'x'; 1000]))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("primary: POST {path} 1000 bytes"));
        if path != "/c" {
            // The copy is at the shadow (held there) before the next request.
            received_at_least(&shadow, if path == "/a" { 1 } else { 2 }).await;
        }
    }
    let metrics = eventually(&proxy, "the third copy to be dropped", |m| {
        outcomes(m)["dropped_memory_budget"] == 1
    })
    .await;
    assert_eq!(outcomes(&metrics)["completed"], 0, "two copies are held");
    let held = metric_value(&metrics, BUFFERED, &[]).unwrap();
    assert!(
        (2000.0..=2500.0).contains(&held),
        "two request bodies and their answers are held: {held}"
    );
    assert_eq!(primary.count(), 3, "the primary got every request");

    // The shadow answers: the pairs are compared and dropped, and the bytes come back.
    gate.add_permits(100);
    eventually(&proxy, "the held bytes to come back", |m| {
        outcomes(m)["completed"] == 2 && metric_value(m, BUFFERED, &[]) == Some(0.0)
    })
    .await;
    let reply = send(&client, post_request(&proxy.url("/d"), vec![b'y'; 1000]))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let copies = received_at_least(&shadow, 3).await;
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], 3, "{counts:?}");
    assert_eq!(counts["dropped_memory_budget"], 1, "{counts:?}");
    assert_eq!(
        sampled(&metrics),
        4,
        "one outcome per sampled request: {counts:?}"
    );
    let paths: Vec<_> = copies.iter().map(|c| c.uri.path().to_string()).collect();
    assert_eq!(paths, ["/a", "/b", "/d"]);
    assert_eq!(&copies[2].body[..], &[b'y'; 1000][..]);
}

#[tokio::test]
async fn an_answer_past_the_budget_is_compared_by_length_and_hash() {
    let body = "p".repeat(300);
    let answer = body.clone();
    let primary = upstream()
        .fallback(move |_| {
            let answer = answer.clone();
            async move { Response::new(full(answer)) }
        })
        .start()
        .await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let policy = Policy {
        global: "max_buffered_bytes = 100",
        ..Policy::default()
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    let reply = send(&http1_client(), get_request(&proxy.url("/big")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), body, "the client gets the whole answer");

    compared_by_digest_and_given_back(&proxy).await;
}

#[test]
fn a_zero_budget_is_refused_with_its_key() {
    let text = mirror_toml(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        &Policy {
            global: "max_buffered_bytes = 0",
            ..Policy::default()
        },
    );
    let error = shadowtap::config::Config::from_toml(&text, &Default::default())
        .expect_err("a zero budget is an error");
    let message = error.to_string();
    assert!(
        message.contains("mirror.max_buffered_bytes") && message.contains("at least 1"),
        "{message}"
    );
}

/// How a raw client frames the upload in [`a_capture_in_progress_holds_its_bytes_and_is_dropped_once_it_outgrows_the_budget`].
#[derive(Clone, Copy, Debug)]
enum Framing {
    /// `content-length` (the native engine captures it).
    Length,
    /// `transfer-encoding: chunked` (hyper's path captures it).
    Chunked,
}

/// `bytes` of body as `framing` puts them on the wire.
fn piece(framing: Framing, bytes: usize) -> Vec<u8> {
    match framing {
        Framing::Length => vec![b'z'; bytes],
        Framing::Chunked => {
            let mut out = format!("{bytes:x}\r\n").into_bytes();
            out.extend(std::iter::repeat_n(b'z', bytes));
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

#[tokio::test]
async fn a_capture_in_progress_holds_its_bytes_and_is_dropped_once_it_outgrows_the_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TOTAL: usize = 300_000;
    const PIECE: usize = 60_000;
    let primary = echo_primary().await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let policy = Policy {
        global: "max_buffered_bytes = 100000",
        route: "max_body_bytes = 1048576",
        shadow: "methods = \"all\"",
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    for (dropped, framing) in [(1, Framing::Length), (2, Framing::Chunked)] {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let framing_field = match framing {
            Framing::Length => format!("content-length: {TOTAL}"),
            Framing::Chunked => "transfer-encoding: chunked".to_string(),
        };
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: app\r\nconnection: close\r\n{framing_field}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&piece(framing, PIECE)).await.unwrap();
        // Mid-upload, the capture holds what it has against the budget.
        let metrics = eventually(&proxy, "the capture in progress to be held", |m| {
            metric_value(m, BUFFERED, &[]).unwrap_or(0.0) >= PIECE as f64
        })
        .await;
        assert_eq!(
            outcomes(&metrics)["dropped_memory_budget"],
            dropped - 1,
            "{framing:?}: still fits"
        );
        // 120,000 bytes do not fit 100,000: dropped now, while the body is still coming.
        stream.write_all(&piece(framing, PIECE)).await.unwrap();
        eventually(&proxy, "the capture to be dropped mid-upload", |m| {
            outcomes(m)["dropped_memory_budget"] == dropped
                && metric_value(m, BUFFERED, &[]) == Some(0.0)
        })
        .await;
        // The live request goes on and gets every byte to the primary.
        let mut sent = 2 * PIECE;
        while sent < TOTAL {
            stream.write_all(&piece(framing, PIECE)).await.unwrap();
            sent += PIECE;
        }
        if let Framing::Chunked = framing {
            stream.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let mut answer = Vec::new();
        within("the primary's answer", stream.read_to_end(&mut answer))
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{framing:?}: {answer}");
        assert!(
            answer.ends_with(&format!("primary: POST /upload {TOTAL} bytes")),
            "{framing:?}: {answer}"
        );
    }
    let metrics = proxy.metrics().await;
    assert_eq!(outcomes(&metrics)["dropped_memory_budget"], 2);
    assert_eq!(shadow.count(), 0, "no copy reached the shadow");
}

#[tokio::test]
async fn a_shadow_answer_is_held_as_it_is_read_and_not_read_past_the_budget() {
    // The cap allows 64 MiB of the shadow's 100 MiB answer, the budget 1 MiB: nothing is
    // held past the budget, and reading stops once the answer is longer than the primary's
    // (the bodies differ whatever follows), not at the cap.
    const HUGE: u64 = 100 * 1024 * 1024;
    let (shadow, produced) = huge_body_shadow(HUGE).await;
    let primary = healthy_shadow(std::time::Duration::ZERO).await;
    let policy = Policy {
        global: "max_buffered_bytes = 1048576\nmax_response_body_bytes = 67108864",
        ..Policy::default()
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    let reply = send(&http1_client(), get_request(&proxy.url("/huge")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    compared_by_digest_and_given_back(&proxy).await;
    let produced = produced.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        produced < 32 * 1024 * 1024,
        "{produced} bytes produced: the shadow's answer was read past the budget"
    );
}

/// Waits for the one pair to be compared, its bodies (one not kept for the budget) judged
/// different by length, its copy completed, and every held byte to come back.
async fn compared_by_digest_and_given_back(proxy: &Shadowtap) {
    let metrics = eventually(proxy, "the pair to be compared", |m| {
        metric_sum(m, "shadowtap_comparisons_total", &[("route", "default")]) >= 1.0
    })
    .await;
    let skipped = metric_sum(
        &metrics,
        "shadowtap_compare_body_skipped_total",
        &[("route", "default")],
    );
    assert_eq!(skipped, 0.0, "{metrics}");
    let body = metric_sum(
        &metrics,
        "shadowtap_divergences_total",
        &[("route", "default"), ("kind", "body")],
    );
    assert_eq!(body, 1.0, "{metrics}");
    assert_eq!(outcomes(&metrics)["completed"], 1);
    eventually(proxy, "the held bytes to come back", |m| {
        metric_value(m, BUFFERED, &[]) == Some(0.0)
    })
    .await;
}
