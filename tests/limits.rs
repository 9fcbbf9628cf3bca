#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile-client limits: slow heads are cut off after `header_read_timeout`, oversized
//! heads are refused, and `max_connections` caps what is served at once.

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The default header_read_timeout is 10 s; the tests use 300 ms and expect the cut well
/// before the default could explain it.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(4);

async fn limited(listener_extra: &str) -> (Upstream, Shadowtap) {
    let upstream = upstream()
        .always(http::StatusCode::OK, "ok\n")
        .start()
        .await;
    let proxy = Shadowtap::start(config(&simple_toml(upstream.addr, listener_extra, ""))).await;
    (upstream, proxy)
}

/// Reads until EOF or error; returns what was read and how long the server took to close.
async fn closed_by_server(stream: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(CUT_OFF_WITHIN, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the slow connection open for {CUT_OFF_WITHIN:?}"
    );
    (String::from_utf8_lossy(&out).into_owned(), since.elapsed())
}

#[tokio::test]
async fn slowloris_head_is_cut_off_after_header_read_timeout() {
    let (upstream, proxy) = limited("header_read_timeout = \"300ms\"").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    // Keep trickling header bytes, as a slowloris client does, until the server hangs up.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(CUT_OFF_WITHIN, trickle).await.ok();
    let (answer, elapsed) = closed_by_server(&mut stream, started).await;
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed before the timeout: {elapsed:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn silent_connection_is_closed_after_header_read_timeout() {
    // A client that connects and sends nothing at all (HTTP/2 enabled, so hyper first waits
    // to tell HTTP/1 from the h2c preface), and one that sends part of the preface.
    let (_upstream, proxy) = limited("header_read_timeout = \"300ms\"").await;
    for first_bytes in [&b""[..], b"PRI * HTTP/2"] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let started = Instant::now();
        stream.write_all(first_bytes).await.unwrap();
        let (_, elapsed) = closed_by_server(&mut stream, started).await;
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    }
}

#[tokio::test]
async fn too_many_headers_are_refused() {
    let (upstream, proxy) = limited("max_headers = 10").await;
    let mut request = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..20 {
        request.push_str(&format!("X-Many-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    // hyper's parser answers this itself, before the proxy sees a request.
    assert_eq!(raw_status(&answer), Some(431), "{answer:?}");
    assert_eq!(upstream.count(), 0);

    // Under the limit is fine.
    let answer = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
}

#[tokio::test]
async fn oversized_head_is_refused() {
    let (upstream, proxy) = limited("max_header_bytes = 8192").await;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    // hyper's parser answers this itself, before the proxy sees a request.
    assert_eq!(raw_status(&answer), Some(431), "{answer:?}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn max_connections_caps_concurrent_connections() {
    let (_upstream, proxy) = limited("max_connections = 2").await;
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert_eq!(raw_status(&answer), Some(200), "{answer}");
        held.push(stream); // keep-alive: the connection stays open
    }

    // The third connection completes in the kernel backlog but is not served.
    let mut third = TcpStream::connect(proxy.addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served past the cap");

    // Once one of the two closes, the waiting one is served.
    drop(held.remove(0));
    let answer = within("third connection served", read_response(&mut third)).await;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
}

/// Reads one small response (head and a short body) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    within("response", async {
        while !String::from_utf8_lossy(&out).ends_with("ok\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}
