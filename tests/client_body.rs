#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The client's request body against real upstreams, on every path that carries one (the
//! native engine's `Content-Length` upload, hyper's for chunked HTTP/1.1 and h2c, and the
//! hyper engine's `Content-Length`):
//! * a client that pauses mid-body longer than `[[listeners]] client_body_timeout` gets a
//!   408, counted as `client_timeout`, never blamed on the upstream;
//! * a client that leaves mid-body is counted as `client_aborted`, not `upstream_error`,
//!   towards HTTP/1 and h2c upstreams alike;
//! * a slow but steady upload is not cut by the upstream's `response_timeout`, which times
//!   the upstream, not the client;
//! * the key is validated like every duration.

mod support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Frame;
use shadowtap::config::{Config, Overrides};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits (within the test step) until `reason` has been counted `count` times.
async fn counted(proxy: &Shadowtap, reason: &str, count: f64) {
    within(&format!("{count} counted as {reason}"), async {
        while proxy.proxy_errors(reason).await < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// How a raw HTTP/1.1 client frames its upload.
#[derive(Clone, Copy, Debug)]
enum Framing {
    /// `content-length: 64 MiB` (the native engine serves it, or hyper on that engine).
    Length,
    /// `transfer-encoding: chunked` (always hyper's: the native engine hands it over).
    Chunked,
}

/// The head of a POST framed as `framing`, and `first` bytes of its body.
fn upload_start(framing: Framing, first: usize) -> Vec<u8> {
    let mut out = match framing {
        Framing::Length => {
            b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 67108864\r\n\r\n".to_vec()
        }
        Framing::Chunked => {
            let mut head =
                b"POST /upload HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n"
                    .to_vec();
            head.extend_from_slice(format!("{first:x}\r\n").as_bytes());
            head
        }
    };
    out.extend(std::iter::repeat_n(b'u', first));
    if let Framing::Chunked = framing {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Starts an upload on a raw connection, then sends nothing more while holding the
/// connection open; returns every byte the proxy sent until it closed, and how long that took.
async fn pause_and_read(proxy: &Shadowtap, framing: Framing) -> (String, Duration) {
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(&upload_start(framing, 1024))
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    within(
        "the proxy's answer to a paused upload, then its close",
        async {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => answer.extend_from_slice(&buffer[..read]),
                }
            }
        },
    )
    .await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_client_that_pauses_mid_body_gets_a_408_after_the_client_body_timeout() {
    // The upstream reads the head and then stays silent, with its response timeout at the
    // default 30 s: whatever ends the exchange within the test step is the client's timeout.
    let (addr, task) = head_only_upstream(OnHead::Stall).await;
    for engine in ENGINES {
        let proxy = shadowtap_on(addr, engine, "client_body_timeout = \"400ms\"", "").await;
        let mut paused = 0.0;
        for framing in [Framing::Length, Framing::Chunked] {
            let (answer, took) = pause_and_read(&proxy, framing).await;
            assert!(
                answer.starts_with("HTTP/1.1 408 "),
                "{engine}, {framing:?}: got {:?}",
                answer.lines().next()
            );
            assert!(
                answer.ends_with("request timeout: the request body stopped arriving\n"),
                "{engine}, {framing:?}: {answer:?}"
            );
            assert!(
                took >= Duration::from_millis(400),
                "{engine}, {framing:?}: answered after {took:?}, before the timeout ran out"
            );
            paused += 1.0;
            assert_eq!(proxy.proxy_errors("client_timeout").await, paused);
        }
        // h2c: a stream whose body stops after its first frame.
        let client = h2_client();
        let (frames, request) = stalled_upload(&proxy.url("/upload")).await;
        let reply = send(&client, request).await.unwrap();
        assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT, "{engine}, h2c");
        drop(frames);
        paused += 1.0;
        assert_eq!(proxy.proxy_errors("client_timeout").await, paused);
        for blamed in ["upstream_timeout", "upstream_error"] {
            assert_eq!(
                proxy.proxy_errors(blamed).await,
                0.0,
                "{engine}: the upstream is not blamed for the client's pause ({blamed})"
            );
        }
    }
    task.abort();
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_is_counted_as_client_aborted() {
    let (addr, task) = head_only_upstream(OnHead::Stall).await;
    let h2c = upstream().hang().start().await;
    let upstreams = [(addr, ""), (h2c.addr, "protocol = \"http2\"")];
    for (engine, (addr, upstream_extra)) in ENGINES
        .into_iter()
        .flat_map(|engine| upstreams.map(|upstream| (engine, upstream)))
    {
        let proxy = shadowtap_on(addr, engine, "", upstream_extra).await;
        let mut left = 0.0;
        for framing in [Framing::Length, Framing::Chunked] {
            let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
            stream
                .write_all(&upload_start(framing, 1024))
                .await
                .unwrap();
            // Let the upload start upstream, then leave.
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(stream);
            left += 1.0;
            counted(&proxy, "client_aborted", left).await;
        }
        assert_eq!(
            proxy.proxy_errors("upstream_error").await,
            0.0,
            "{engine}, {upstream_extra:?}: a client leaving is not the upstream's failure"
        );
    }
    task.abort();
}

/// An upstream that answers with the length of the body it read, once it has all of it.
async fn length_echo() -> Upstream {
    upstream()
        .fallback(|received: Received| async move {
            Response::new(full(received.body.len().to_string()))
        })
        .start()
        .await
}

#[tokio::test]
async fn a_slow_steady_upload_is_not_cut_by_the_upstream_response_timeout() {
    // Eight pieces, 100 ms apart: the upload takes about 0.8 s, more than the upstream's
    // 300 ms response timeout, but neither side ever pauses for 300 ms. The response timeout
    // times the upstream (taking the body, answering after it), not the client's pace.
    const PIECES: usize = 8;
    const PIECE: usize = 4096;
    let gap = Duration::from_millis(100);
    let upstream = length_echo().await;
    for engine in ENGINES {
        let proxy = shadowtap_on(
            upstream.addr,
            engine,
            "client_body_timeout = \"2s\"",
            "response_timeout = \"300ms\"",
        )
        .await;
        // A raw Content-Length upload (the native engine's on "native").
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: app\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            PIECES * PIECE
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..PIECES {
            tokio::time::sleep(gap).await;
            stream.write_all(&[b's'; PIECE]).await.unwrap();
        }
        let mut answer = Vec::new();
        within(
            "the answer to a slow upload",
            stream.read_to_end(&mut answer),
        )
        .await
        .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200 "),
            "{engine}, content-length: {answer:?}"
        );
        assert!(
            answer.ends_with(&(PIECES * PIECE).to_string()),
            "{engine}, content-length: {answer:?}"
        );
        // Chunked over HTTP/1.1 and h2c: hyper's path.
        for (name, client) in [("chunked", http1_client()), ("h2c", h2_client())] {
            let (frames, body) = channel_body(1);
            let feeding = tokio::spawn(async move {
                for _ in 0..PIECES {
                    tokio::time::sleep(gap).await;
                    if frames
                        .send(Frame::data(Bytes::from(vec![b's'; PIECE])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let request = Request::post(proxy.url("/upload")).body(body).unwrap();
            let reply = send(&client, request).await.unwrap();
            feeding.await.unwrap();
            assert_eq!(
                (reply.status, reply.text()),
                (StatusCode::OK, (PIECES * PIECE).to_string()),
                "{engine}, {name}"
            );
        }
        assert_eq!(proxy.proxy_errors("upstream_timeout").await, 0.0);
    }
}

#[test]
fn client_body_timeout_is_validated_naming_the_key() {
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (value, reason) in [
        ("\"0s\"", "must be greater than zero"),
        ("\"soon\"", "is not a duration"),
    ] {
        let text = simple_toml(upstream, &format!("client_body_timeout = {value}"), "");
        let error = match Config::from_toml(&text, &Overrides::default()) {
            Ok(_) => panic!("client_body_timeout = {value} was accepted"),
            Err(error) => error,
        };
        let problems = error.problems();
        assert_eq!(problems.len(), 1, "{error}");
        assert_eq!(
            problems[0].path, "listeners[0].client_body_timeout",
            "{error}"
        );
        assert!(problems[0].reason.contains(reason), "{error}");
    }
    let text = simple_toml(upstream, "client_body_timeout = \"90s\"", "");
    let config = Config::from_toml(&text, &Overrides::default()).unwrap();
    assert_eq!(
        config.listeners[0].client_body_timeout,
        Duration::from_secs(90)
    );
    let text = simple_toml(upstream, "", "");
    let config = Config::from_toml(&text, &Overrides::default()).unwrap();
    assert_eq!(
        config.listeners[0].client_body_timeout,
        Duration::from_secs(60),
        "the default, as nginx's client_body_timeout"
    );
}

#[tokio::test]
async fn a_paused_upload_to_an_h2c_upstream_is_a_408_too() {
    // hyper's HTTP/2 client sends the body from its own task; the client's pause must still
    // be told apart from the upstream's failure.
    let upstream = upstream().hang().start().await;
    for engine in ENGINES {
        let proxy = shadowtap_on(
            upstream.addr,
            engine,
            "client_body_timeout = \"400ms\"",
            "protocol = \"http2\"",
        )
        .await;
        for framing in [Framing::Length, Framing::Chunked] {
            let (answer, _) = pause_and_read(&proxy, framing).await;
            assert!(
                answer.starts_with("HTTP/1.1 408 "),
                "{engine}, {framing:?}: got {:?}",
                answer.lines().next()
            );
        }
        assert_eq!(proxy.proxy_errors("client_timeout").await, 2.0, "{engine}");
        assert_eq!(proxy.proxy_errors("upstream_error").await, 0.0, "{engine}");
    }
}
