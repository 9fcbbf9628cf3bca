#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Request-body limits on the mirror side: a body over the route's `max_body_bytes` still
//! reaches the primary whole but is not copied (counted `dropped_body_too_large`), and a
//! client that gives up mid-body — fixed-length, chunked, or an HTTP/2 stream it cancels —
//! leaves no shadow request behind (`dropped_client_aborted`).

mod support;

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Frame;
use std::time::Duration;
use support::shadow::*;
use support::*;
use tokio::io::AsyncWriteExt;

const CAP: usize = 1024;

async fn start() -> (Upstream, Upstream, Shadowtap) {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let policy = Policy {
        global: "",
        route: "max_body_bytes = 1024",
        shadow: "methods = \"all\"",
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    (primary, shadow, proxy)
}

#[tokio::test]
async fn a_body_over_the_cap_reaches_the_primary_but_not_the_shadow() {
    let (primary, shadow, proxy) = start().await;
    let big: Vec<u8> = (0..4 * CAP).map(|i| (i % 251) as u8).collect();
    let reply = send(
        &http1_client(),
        post_request(&proxy.url("/upload"), big.clone()),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        format!("primary: POST /upload {} bytes", big.len())
    );
    assert_eq!(
        &primary.last().body[..],
        &big[..],
        "the primary got every byte"
    );

    // At the cap exactly, the copy is kept and sent.
    let exact = vec![b'e'; CAP];
    let reply = send(
        &http1_client(),
        post_request(&proxy.url("/exact"), exact.clone()),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["dropped_body_too_large"], 1, "{counts:?}");
    assert_eq!(counts["completed"], 1, "{counts:?}");
    assert_eq!(sampled(&metrics), 2, "{counts:?}");
    let copies = shadow.received();
    assert_eq!(copies.len(), 1, "only the body within the cap was mirrored");
    assert_eq!(copies[0].uri.path(), "/exact");
    assert_eq!(&copies[0].body[..], &exact[..]);
}

/// The default cap (no `max_body_bytes` set) mirrors an ordinary upload: an 8 MiB file in a
/// multipart form, a little over 8 MiB, on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mib_upload_is_mirrored_by_default() {
    let file: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut form =
        b"--xyz\r\ncontent-disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n".to_vec();
    form.extend_from_slice(&file);
    form.extend_from_slice(b"\r\n--xyz--\r\n");
    for engine in ENGINES {
        let primary = echo_primary().await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let policy = Policy {
            global: "",
            route: "",
            shadow: "methods = \"all\"",
        };
        let toml = engine_toml(&mirror_toml(primary.addr, shadow.addr, &policy), engine);
        let proxy = Shadowtap::start(config(&toml)).await;
        let mut request = post_request(&proxy.url("/upload"), form.clone());
        request.headers_mut().insert(
            "content-type",
            "multipart/form-data; boundary=xyz".parse().unwrap(),
        );
        let reply = send(&http1_client(), request).await.unwrap();
        assert_eq!(reply.status, 200, "{engine}");
        let metrics = settled(&proxy).await;
        let counts = outcomes(&metrics);
        assert_eq!(counts["completed"], 1, "{engine}: {counts:?}");
        let copy = received_at_least(&shadow, 1).await.remove(0);
        assert!(copy.body == form, "{engine}: the shadow got the whole body");
    }
}

#[tokio::test]
async fn a_client_that_aborts_mid_body_leaves_no_shadow_request() {
    let (_primary, shadow, proxy) = start().await;
    abort_mid_body(proxy.addr, "/aborted", 1000, b"0123456789").await;

    let metrics = eventually(&proxy, "the aborted request to be counted", |m| {
        sampled(m) >= 1
    })
    .await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["dropped_client_aborted"], 1, "{counts:?}");
    assert_eq!(sampled(&metrics), 1, "{counts:?}");

    // The proxy carries on, and the next request is the first the shadow sees.
    let reply = send(
        &http1_client(),
        post_request(&proxy.url("/after"), b"whole".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    let copies = received_at_least(&shadow, 1).await;
    let metrics = settled(&proxy).await;
    assert_eq!(outcomes(&metrics)["completed"], 1);
    assert_eq!(copies.len(), 1);
    assert_eq!(shadow.count(), 1);
    assert_eq!(copies[0].uri.path(), "/after");
}

/// Waits for the one sampled request to be counted as aborted; the shadow got nothing.
async fn counted_as_aborted(proxy: &Shadowtap, shadow: &Upstream) {
    let metrics = eventually(proxy, "the aborted request to be counted", |m| {
        sampled(m) >= 1
    })
    .await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["dropped_client_aborted"], 1, "{counts:?}");
    assert_eq!(sampled(&metrics), 1, "{counts:?}");
    let metrics = settled(proxy).await;
    assert_eq!(sampled(&metrics), 1, "{:?}", outcomes(&metrics));
    assert_eq!(shadow.count(), 0);
}

#[tokio::test]
async fn a_client_that_aborts_a_chunked_body_leaves_no_shadow_request() {
    let (_primary, shadow, proxy) = start().await;
    let mut stream = within("connect", tokio::net::TcpStream::connect(proxy.addr))
        .await
        .unwrap();
    let partial = b"POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n8\r\nhalf";
    within("write", stream.write_all(partial)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    counted_as_aborted(&proxy, &shadow).await;
}

#[tokio::test]
async fn an_http2_client_that_cancels_mid_body_leaves_no_shadow_request() {
    let (_primary, shadow, proxy) = start().await;
    let (tx, body) = channel_body(4);
    tx.try_send(Frame::data(Bytes::from_static(b"first part")))
        .unwrap();
    let request = Request::builder()
        .method(Method::POST)
        .uri(proxy.url("/h2"))
        .body(body)
        .unwrap();
    let client = h2_client();
    // The primary waits for the whole body, so no answer comes; giving up on the response
    // cancels the stream (RST_STREAM) with the body unfinished.
    let answer = tokio::time::timeout(Duration::from_millis(300), client.request(request)).await;
    assert!(answer.is_err(), "no answer can come before the body ends");
    drop(answer);
    counted_as_aborted(&proxy, &shadow).await;
    drop(tx);
}
