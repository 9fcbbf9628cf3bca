#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Requests hyper serves (h2c clients, and HTTP/1 shapes the native engine hands over) on
//! their way to an HTTP/1.1 upstream, which shadowtap speaks itself (`h1::upstream`): request
//! bodies of every framing with their trailers, response bodies of every framing (chunked
//! with trailers, close-delimited, after 1xx, cut short), stale pooled sockets, and the
//! HTTP/1 upstream's idle sockets shared by both engines.

mod support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Frame;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that echoes what it received: the body, how it was framed, its trailers.
async fn echo() -> Upstream {
    upstream()
        .fallback(|received: Received| async move {
            let framing = match (
                received.header("content-length"),
                received.header("transfer-encoding"),
            ) {
                (Some(length), None) => format!("length {length}"),
                (None, Some(coding)) => format!("coding {coding}"),
                (None, None) => "none".to_string(),
                (Some(_), Some(_)) => "both".to_string(),
            };
            let trailer = received
                .trailers
                .as_ref()
                .and_then(|map| map.get("x-checksum"))
                .map_or("-".to_string(), |value| {
                    value.to_str().unwrap_or("?").to_string()
                });
            Response::builder()
                .header("x-framing", framing)
                .header("x-trailer", trailer)
                .body(full(received.body.clone()))
                .unwrap()
        })
        .start()
        .await
}

#[tokio::test]
async fn request_bodies_of_every_framing_reach_the_upstream_whole() {
    let upstream = echo().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    for (client_name, client) in [("h2c", h2_client()), ("http/1.1", http1_client())] {
        // A body of known size goes with its length.
        let request = Request::post(proxy.url("/known"))
            .body(full("hello"))
            .unwrap();
        let reply = send(&client, request).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{client_name}");
        assert_eq!(reply.text(), "hello", "{client_name}");
        assert_eq!(reply.headers["x-framing"], "length 5", "{client_name}");

        // A streamed body of unknown size, with trailers: chunked, trailers kept.
        let (frames, body) = channel_body(8);
        // (hyper's HTTP/1 client sends only the trailer fields `Trailer` announces.)
        let request = Request::post(proxy.url("/streamed"))
            .header("te", "trailers")
            .header("trailer", "x-checksum")
            .body(body)
            .unwrap();
        let sending = tokio::spawn(async move {
            for piece in ["one, ", "two, ", "three"] {
                frames
                    .send(Frame::data(Bytes::from_static(piece.as_bytes())))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            frames
                .send(Frame::trailers(checksum_trailers()))
                .await
                .unwrap();
        });
        let reply = send(&client, request).await.unwrap();
        sending.await.unwrap();
        assert_eq!(reply.text(), "one, two, three", "{client_name}");
        assert_eq!(
            reply.headers["x-framing"], "coding chunked",
            "{client_name}"
        );
        assert_eq!(reply.headers["x-trailer"], "abc123", "{client_name}");

        // A streamed body that just ends (no trailers, no end announced with the data).
        let (frames, body) = channel_body(8);
        let request = Request::put(proxy.url("/ends")).body(body).unwrap();
        let sending = tokio::spawn(async move {
            frames
                .send(Frame::data(Bytes::from_static(b"only part")))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(frames);
        });
        let reply = send(&client, request).await.unwrap();
        sending.await.unwrap();
        assert_eq!(reply.text(), "only part", "{client_name}");
        assert_eq!(
            reply.headers["x-framing"], "coding chunked",
            "{client_name}"
        );

        // No body: no framing fields at all.
        let reply = send(&client, get_request(&proxy.url("/nothing")))
            .await
            .unwrap();
        assert_eq!(reply.text(), "", "{client_name}");
        assert_eq!(reply.headers["x-framing"], "none", "{client_name}");
    }
    assert_eq!(upstream.count(), 8);
}

/// A raw upstream: for every request head it reads, it writes `answer`; then it closes the
/// connection after `close_after` (or keeps it open when `None`).
struct RawAnswers {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawAnswers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_answers(answer: &'static [u8], close_after: Option<Duration>) -> RawAnswers {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(read) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..read]);
                    // Bodiless requests: one answer per complete head.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if let Some(wait) = close_after {
                            tokio::time::sleep(wait).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    RawAnswers {
        addr,
        connections,
        task,
    }
}

#[tokio::test]
async fn response_bodies_of_every_framing_reach_an_h2c_client() {
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
            "hello, world",
        ),
        (
            "length",
            b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nhello, world",
            "hello, world",
        ),
        (
            "after 103",
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            "ok",
        ),
        (
            "close-delimited",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
            "until the end",
        ),
    ];
    for (name, answer, body) in cases {
        let close = name == "close-delimited";
        let upstream = raw_answers(answer, close.then_some(Duration::ZERO)).await;
        let proxy = Shadowtap::in_front_of(upstream.addr).await;
        let reply = send(&h2_client(), get_request(&proxy.url("/x")))
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.text(), body, "{name}");
        assert!(
            reply.headers.get("connection").is_none()
                && reply.headers.get("transfer-encoding").is_none(),
            "{name}: hop-by-hop fields reached the client: {:?}",
            reply.headers
        );
    }

    // Trailers after a chunked body reach an h2c client that asked for them.
    let upstream = raw_answers(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\ndata\r\n0\r\nx-checksum: abc123\r\n\r\n",
        None,
    )
    .await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = Request::get(proxy.url("/t"))
        .header("te", "trailers")
        .body(empty())
        .unwrap();
    let reply = send(&h2_client(), request).await.unwrap();
    assert_eq!(reply.text(), "data");
    let trailers = reply.trailers.expect("trailers reached the client");
    assert_eq!(trailers["x-checksum"], "abc123");
}

#[tokio::test]
async fn a_cut_body_fails_the_h2c_stream_and_is_counted() {
    let cut = reset_mid_body(1000, b"partial").await;
    let proxy = Shadowtap::in_front_of(cut.addr).await;
    let outcome = send(&h2_client(), get_request(&proxy.url("/cut"))).await;
    assert!(
        outcome.is_err(),
        "a cut-off body passed as complete: {outcome:?}"
    );
    let metrics = proxy.metrics().await;
    let errors = metric_value(
        &metrics,
        "shadowtap_proxy_errors_total",
        &[("reason", "upstream_body_error")],
    );
    assert_eq!(errors, Some(1.0), "{metrics}");
}

#[tokio::test]
async fn stale_pooled_sockets_are_not_used_and_idle_sockets_are_shared_by_both_engines() {
    // Keep-alive, then closed by the upstream 50 ms after each answer.
    let upstream = raw_answers(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        Some(Duration::from_millis(50)),
    )
    .await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let h2 = h2_client();
    assert_eq!(
        send(&h2, get_request(&proxy.url("/a")))
            .await
            .unwrap()
            .text(),
        "ok"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = send(&h2, get_request(&proxy.url("/b"))).await.unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (StatusCode::OK, "ok"),
        "the request after the upstream closed its idle socket"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);

    // One pool per upstream: a socket an HTTP/1 request (native engine) gave back serves
    // the next h2c request (hyper path), and the other way round.
    let upstream = raw_answers(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", None).await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let http1 = http1_client();
    for round in 0..3 {
        assert_eq!(get(&proxy.url("/native")).await.text(), "ok", "{round}");
        let reply = send(&h2, get_request(&proxy.url("/h2"))).await.unwrap();
        assert_eq!(reply.text(), "ok", "{round}");
        let reply = send(&http1, get_request(&proxy.url("/again")))
            .await
            .unwrap();
        assert_eq!(reply.text(), "ok", "{round}");
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "requests one after another, from both engines, on one upstream socket"
    );
}

#[tokio::test]
async fn an_upstream_that_answers_before_the_upload_ends_is_heard() {
    // Reads the request head only, answers 413 and reads no more (as an upstream enforcing
    // a size limit may): the client gets the 413, not a 502 or a 504.
    let (addr, task) = head_only_upstream(OnHead::Answer413).await;
    let proxy = Shadowtap::in_front_of(addr).await;
    for (client_name, client) in [("h2c", h2_client()), ("http/1.1", http1_client())] {
        let (frames, body) = channel_body(4);
        let request = Request::post(proxy.url("/upload")).body(body).unwrap();
        let sending = tokio::spawn(async move {
            let piece = Bytes::from(vec![b'u'; 256 * 1024]);
            // 64 MiB at most: far more than the socket buffers hold.
            for _ in 0..256 {
                if frames.send(Frame::data(piece.clone())).await.is_err() {
                    return;
                }
            }
        });
        let reply = send(&client, request)
            .await
            .unwrap_or_else(|error| panic!("{client_name}: {error}"));
        sending.abort();
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "too large"),
            "{client_name}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn an_upstream_that_closes_mid_upload_fails_the_request_at_once() {
    // Reads the request head, then closes without answering, while the client's body is
    // still open: a 502 right away, not when the client next sends something.
    let (addr, task) = head_only_upstream(OnHead::Close).await;
    let proxy = Shadowtap::in_front_of(addr).await;
    for (client_name, client) in [("h2c", h2_client()), ("http/1.1", http1_client())] {
        let (frames, request) = stalled_upload(&proxy.url("/upload")).await;
        // `frames` stays open: the body never ends.
        let reply = send(&client, request)
            .await
            .unwrap_or_else(|error| panic!("{client_name}: {error}"));
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{client_name}");
        drop(frames);
    }
    task.abort();
}
