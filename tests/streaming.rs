#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large bodies stream through: the first bytes reach the client while the upstream is still
//! held back, and 64 MiB arrive complete and in order, the same as direct.

mod support;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Frame;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::sync::Notify;

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 64 * 1024 * 1024;

/// The byte at `offset` of the generated body: constant within a chunk, different between
/// neighbouring chunks, so lost, repeated or reordered chunks show.
fn pattern(offset: usize) -> u8 {
    ((offset / CHUNK) % 251) as u8
}

struct Gate {
    release: Notify,
    finished: AtomicBool,
}

/// An upstream whose `/big` sends one chunk, waits for `gate.release`, then sends the rest.
async fn big_upstream(gate: Arc<Gate>) -> Upstream {
    upstream()
        .route("/big", move |_| {
            let gate = gate.clone();
            async move {
                let (tx, body) = channel_body(4);
                tokio::spawn(async move {
                    let mut offset = 0;
                    while offset < TOTAL {
                        let chunk = Bytes::from(vec![pattern(offset); CHUNK]);
                        if offset + CHUNK >= TOTAL {
                            // Flagged before the last chunk is handed over, so no reader can
                            // see the whole body while the flag still says unfinished (after
                            // the send, this thread could be preempted before the store).
                            gate.finished.store(true, Ordering::SeqCst);
                        }
                        if tx.send(Frame::data(chunk)).await.is_err() {
                            return;
                        }
                        if offset == 0 {
                            gate.release.notified().await;
                        }
                        offset += CHUNK;
                    }
                });
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert("content-length", TOTAL.to_string().parse().unwrap());
                response
            }
        })
        .start()
        .await
}

/// Fetches `/big` from `base`, checks the first bytes arrive while the upstream is blocked,
/// then releases it and verifies length and pattern.
async fn fetch_big(base: &str, gate: &Gate) {
    let client = http1_client();
    let response = within(
        "response head",
        client.request(get_request(&format!("{base}/big"))),
    )
    .await
    .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], TOTAL.to_string());
    let mut body = response.into_body();
    let first = within(
        "first body bytes while the upstream is held back (is the body buffered?)",
        body.frame(),
    )
    .await
    .expect("a first frame")
    .expect("first frame is not an error");
    let first = first.into_data().expect("data frame");
    assert!(!first.is_empty());
    assert!(
        !gate.finished.load(Ordering::SeqCst),
        "the upstream finished before it was released"
    );
    gate.release.notify_one();

    let mut offset = 0;
    let check = |data: &Bytes, offset: &mut usize| {
        // One byte at each end of every frame is enough to catch loss or reordering of chunks.
        assert_eq!(data[0], pattern(*offset), "byte at {offset}");
        let last = *offset + data.len() - 1;
        assert_eq!(data[data.len() - 1], pattern(last), "byte at {last}");
        *offset += data.len();
    };
    check(&first, &mut offset);
    let rest = async {
        while let Some(frame) = body.frame().await {
            let data = frame.expect("body frame").into_data().expect("data frame");
            if !data.is_empty() {
                check(&data, &mut offset);
            }
        }
    };
    within("the rest of the body", rest).await;
    assert_eq!(offset, TOTAL, "bytes received");
    assert!(gate.finished.load(Ordering::SeqCst));
}

fn gate() -> Arc<Gate> {
    Arc::new(Gate {
        release: Notify::new(),
        finished: AtomicBool::new(false),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_stream_through_with_first_byte_before_upstream_finishes() {
    // Direct first: the harness itself streams and the check holds without the proxy.
    let direct_gate = gate();
    let direct = big_upstream(direct_gate.clone()).await;
    fetch_big(&direct.url(""), &direct_gate).await;

    let proxied_gate = gate();
    let upstream = big_upstream(proxied_gate.clone()).await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    fetch_big(&proxy.url(""), &proxied_gate).await;
}

#[tokio::test]
async fn client_that_stops_reading_does_not_block_the_next_request() {
    // A client that takes the head of a large response and drops the body must not leave
    // the proxy stuck: the next request is served normally.
    let gate = gate();
    let upstream = big_upstream(gate.clone()).await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let client = http1_client();
    let response = within("head", client.request(get_request(&proxy.url("/big"))))
        .await
        .unwrap();
    drop(response);
    gate.release.notify_one();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reply = get(&proxy.url("/missing")).await;
    assert_eq!(reply.status, 404, "the upstream's own 404 came through");
}
