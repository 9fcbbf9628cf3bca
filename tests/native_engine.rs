#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The native HTTP/1.1 engine (`[[listeners]] http1_engine = "native"`, the default) at its
//! edges, against real servers: pipelining, hand-over to the hyper path mid-connection,
//! `Connection: close` on either side, close-delimited and 1xx upstream answers, trailers,
//! stale pooled connections, upstream bodies longer or shorter than announced, 64 MiB
//! bodies, HEAD/204/304 framing, header rules, and the config key itself.
//!
//! Most tests run the same exchange once per engine. The hyper engine is the reference: a
//! case that fails only for `native` points at the engine; one that fails for both points at
//! the test (or at behaviour both paths share). Exchanges are mostly raw TCP, so the bytes
//! on the wire (framing, stray body bytes, closes) are what is checked.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Frame;
use shadowtap::config::{Config, Overrides};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::raw::{content_length, read_until_head, RawClient};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// shadowtap with one catch-all route to `upstream`, its listener on `engine`.
async fn proxy_for(upstream: SocketAddr, engine: &str, upstream_extra: &str) -> Shadowtap {
    shadowtap_on(upstream, engine, "", upstream_extra).await
}

/// `GET path` with `Host: a` and any extra header lines (each ending in `\r\n`).
fn get_bytes(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n{extra}\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------------
// Upstreams.
// ---------------------------------------------------------------------------------------

/// 42 bytes, the body of `/fixed`.
const FIXED: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz012345";

/// `METHOD target body=...`: what the upstream received, as text.
fn echo_text(r: &Received) -> String {
    format!(
        "{} {} body={}",
        r.method,
        r.uri.path_and_query().map_or("", |pq| pq.as_str()),
        String::from_utf8_lossy(&r.body)
    )
}

/// A hyper upstream with the paths the tests use; anything else is echoed ([`echo_text`])
/// with a few end-to-end headers (two set-cookie, x-app, content-type).
async fn app() -> Upstream {
    upstream()
        .route("/slow", |r: Received| async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Response::new(full(echo_text(&r)))
        })
        .route("/very-slow", |_| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            status(StatusCode::OK, "too late\n")
        })
        .route("/fixed", |_| async { Response::new(full(FIXED)) })
        .route("/not-modified", |_| async {
            let mut response = status(StatusCode::NOT_MODIFIED, "");
            response
                .headers_mut()
                .insert("etag", "\"v1\"".parse().unwrap());
            response
        })
        .route("/no-content", |_| async {
            status(StatusCode::NO_CONTENT, "")
        })
        .route("/missing", |_| async {
            let mut response = status(StatusCode::NOT_FOUND, "no such thing\n");
            response
                .headers_mut()
                .insert("x-app", "native-tests".parse().unwrap());
            response
        })
        .route("/trailers", |_| async { trailers_response() })
        .route("/hop-response", |_| async { hop_by_hop_response("hop\n") })
        .fallback(|r: Received| async move {
            let mut response = Response::new(full(echo_text(&r)));
            let headers = response.headers_mut();
            headers.insert("content-type", "text/plain".parse().unwrap());
            headers.append("set-cookie", "a=1; Path=/".parse().unwrap());
            headers.append("set-cookie", "b=2; Path=/".parse().unwrap());
            headers.insert("x-app", "native-tests".parse().unwrap());
            response
        })
        .start()
        .await
}

/// What a [`scripted`] upstream does after writing its answer.
#[derive(Clone, Copy, Debug)]
enum After {
    /// Wait for the next request on the same connection.
    KeepOpen,
    /// Close at once.
    Close,
    /// Keep the connection open this long (without reading), then close it.
    CloseLater(Duration),
}

/// A raw TCP upstream that answers every request with the same bytes.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (and its Content-Length body) from `stream`; `None` at EOF.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let end = read_until_head(stream, buffer).await?;
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    buffer.drain(..end);
    let length = content_length(head.as_bytes());
    while buffer.len() < length {
        buffer.reserve(16 * 1024);
        match stream.read_buf(buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    buffer.drain(..length);
    Some(head)
}

/// Starts a raw upstream: for each request it writes `pieces` in order (20 ms apart, so they
/// arrive as separate reads), then does `after`.
async fn scripted(pieces: &[&[u8]], after: After) -> Scripted {
    let pieces: Arc<Vec<Vec<u8>>> = Arc::new(pieces.iter().map(|p| p.to_vec()).collect());
    let listener = within("bind scripted upstream", TcpListener::bind("127.0.0.1:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (conn_count, req_count, head_log) = (connections.clone(), requests.clone(), heads.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            conn_count.fetch_add(1, Ordering::SeqCst);
            let (pieces, req_count, head_log) =
                (pieces.clone(), req_count.clone(), head_log.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                while let Some(head) = read_request(&mut stream, &mut buffer).await {
                    req_count.fetch_add(1, Ordering::SeqCst);
                    head_log.lock().unwrap().push(head);
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    match after {
                        After::KeepOpen => {}
                        After::Close => return,
                        After::CloseLater(wait) => {
                            tokio::time::sleep(wait).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        connections,
        requests,
        heads,
        task,
    }
}

// ---------------------------------------------------------------------------------------
// 1. Pipelining and partial reads.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn pipelined_requests_in_one_write_are_answered_in_order() {
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        // The first is slow at the upstream: a later answer must not overtake it.
        let mut pipeline = get_bytes("/slow?n=1", "");
        pipeline.extend_from_slice(
            b"POST /echo?n=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        );
        pipeline.extend_from_slice(&get_bytes("/fast?n=3", ""));
        client.send(&pipeline).await;
        let expected = [
            "GET /slow?n=1 body=",
            "POST /echo?n=2 body=hello",
            "GET /fast?n=3 body=",
        ];
        for (i, want) in expected.iter().enumerate() {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: response {i}: {response:?}");
            assert_eq!(response.text(), *want, "{engine}: response {i}");
        }
        // Still a keep-alive connection, with nothing stray in it.
        assert_eq!(
            client.state_after(Duration::from_millis(100)).await,
            "open",
            "{engine}: after the pipeline"
        );
        client.send(&get_bytes("/after", "")).await;
        assert_eq!(
            client.complete_response(false).await.text(),
            "GET /after body=",
            "{engine}"
        );
        let paths = upstream.paths();
        assert_eq!(
            paths,
            ["/slow", "/echo", "/fast", "/after"],
            "{engine}: the upstream sees pipelined requests in order"
        );
    }
}

#[tokio::test]
async fn request_head_and_body_split_across_writes_are_reassembled() {
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        let pieces: [&[u8]; 6] = [
            b"PO",
            b"ST /split?x=1 HTTP/1.1\r\nHo",
            b"st: a\r\nContent-Le",
            b"ngth: 11\r\n\r",
            b"\nhello ",
            b"split",
        ];
        for piece in pieces {
            client.send(piece).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let response = client.complete_response(false).await;
        assert_eq!(response.status, 200, "{engine}: {response:?}");
        assert_eq!(
            response.text(),
            "POST /split?x=1 body=hello split",
            "{engine}"
        );
        // A second request, its head split at the CRLF CRLF.
        client.send(b"GET /second HTTP/1.1\r\nHost: a\r\n\r").await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        client.send(b"\n").await;
        assert_eq!(
            client.complete_response(false).await.text(),
            "GET /second body=",
            "{engine}"
        );
        assert_eq!(upstream.count(), 2, "{engine}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Hand-over to the hyper path in the middle of a keep-alive connection.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn native_get_then_chunked_post_then_get_on_one_connection() {
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;

        client.send(&get_bytes("/one", "")).await;
        let first = client.complete_response(false).await;
        assert_eq!(
            (first.status, first.text().as_str()),
            (200, "GET /one body="),
            "{engine}"
        );

        client
            .send(
                b"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await;
        let second = client.complete_response(false).await;
        assert_eq!(
            (second.status, second.text().as_str()),
            (200, "POST /two body=hello world"),
            "{engine}"
        );

        client.send(&get_bytes("/three?q=3", "")).await;
        let third = client.complete_response(false).await;
        assert_eq!(
            (third.status, third.text().as_str()),
            (200, "GET /three?q=3 body="),
            "{engine}"
        );

        let received = upstream.received();
        assert_eq!(received.len(), 3, "{engine}");
        assert_eq!(
            &received[1].body[..],
            b"hello world",
            "{engine}: chunked body"
        );
        assert_eq!(received[1].method, Method::POST, "{engine}");
        assert_eq!(received[2].uri.path(), "/three", "{engine}");
    }
}

#[tokio::test]
async fn expect_continue_and_http_1_0_after_a_native_request_get_the_hyper_answers() {
    let mut seen = Vec::new();
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get_bytes("/native-first", "")).await;
        assert_eq!(
            client.complete_response(false).await.text(),
            "GET /native-first body=",
            "{engine}"
        );

        // Expect: 100-continue: wait (briefly, as curl does) for the 100, then send the body.
        client
            .send(b"POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            .await;
        let interim = tokio::time::timeout(Duration::from_secs(1), client.read_response(false))
            .await
            .ok()
            .map(|r| r.map(|r| r.status).map_err(|cut| cut.why));
        client.send(b"data").await;
        let mut last = client.complete_response(false).await;
        if last.status == 100 {
            last = client.complete_response(false).await;
        }
        assert_eq!(last.status, 200, "{engine}: {last:?}");
        assert_eq!(last.text(), "POST /expect body=data", "{engine}");

        // HTTP/1.0 without keep-alive: answered, then the connection is closed.
        client.send(b"GET /ten HTTP/1.0\r\nHost: a\r\n\r\n").await;
        let old = client.complete_response(false).await;
        assert_eq!(old.status, 200, "{engine}: {old:?}");
        assert_eq!(old.text(), "GET /ten body=", "{engine}");
        let rest = client.until_closed().await;
        assert!(rest.is_empty(), "{engine}: stray bytes {rest:?}");
        assert_eq!(upstream.count(), 3, "{engine}");
        let ten = upstream.last();
        seen.push((
            interim,
            old.version.clone(),
            ten.version,
            ten.header("connection").map(str::to_string),
        ));
    }
    assert_eq!(
        seen[0], seen[1],
        "native vs hyper: (interim answer to Expect, HTTP/1.0 response version, \
         upstream request version, upstream connection field)"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Connection: close from the client.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn client_connection_close_is_answered_with_close_and_the_socket_closed() {
    let mut upstream_connection_fields = Vec::new();
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;

        // Alone.
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(&get_bytes("/bye", "Connection: close\r\n"))
            .await;
        let response = client.complete_response(false).await;
        assert_eq!(response.status, 200, "{engine}");
        assert_eq!(response.text(), "GET /bye body=", "{engine}");
        assert!(
            response.connection_tokens().contains(&"close".to_string()),
            "{engine}: no connection: close in {:?}",
            response.headers
        );
        let rest = client.until_closed().await;
        assert!(rest.is_empty(), "{engine}: stray bytes {rest:?}");
        upstream_connection_fields.push(upstream.last().header("connection").map(str::to_string));

        // After a keep-alive request on the same connection.
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get_bytes("/a", "")).await;
        let first = client.complete_response(false).await;
        assert!(
            !first.connection_tokens().contains(&"close".to_string()),
            "{engine}: {first:?}"
        );
        client.send(&get_bytes("/b", "connection: Close\r\n")).await;
        let second = client.complete_response(false).await;
        assert_eq!(second.text(), "GET /b body=", "{engine}");
        assert!(
            second.connection_tokens().contains(&"close".to_string()),
            "{engine}: {second:?}"
        );
        let rest = client.until_closed().await;
        assert!(rest.is_empty(), "{engine}: stray bytes {rest:?}");

        // Pipelined behind a close: the request after it is neither forwarded nor answered.
        let before = upstream.count();
        let mut client = RawClient::connect(proxy.addr).await;
        let mut pipeline = get_bytes("/last", "Connection: close\r\n");
        pipeline.extend_from_slice(&get_bytes("/ignored", ""));
        client.send(&pipeline).await;
        let response = client.complete_response(false).await;
        assert_eq!(response.text(), "GET /last body=", "{engine}");
        let rest = client.until_closed().await;
        assert!(
            rest.is_empty(),
            "{engine}: answered after close: {:?}",
            String::from_utf8_lossy(&rest)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            upstream.count(),
            before + 1,
            "{engine}: the request after the close was forwarded"
        );
    }
    assert_eq!(
        upstream_connection_fields[0], upstream_connection_fields[1],
        "native vs hyper: Connection field the upstream sees for a client's close"
    );
}

// ---------------------------------------------------------------------------------------
// 4-6, 8-9. Raw upstreams: close, close-delimited, 1xx, stale, over-long and cut bodies.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_connection_close_is_not_reused_and_the_client_connection_stays_open() {
    for engine in ENGINES {
        let upstream = scripted(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"],
            After::Close,
        )
        .await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        for i in 0..3 {
            client.send(&get_bytes(&format!("/close/{i}"), "")).await;
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: request {i}: {response:?}");
            assert_eq!(response.text(), "ok", "{engine}: request {i}");
            assert!(
                !response.connection_tokens().contains(&"close".to_string()),
                "{engine}: the upstream's close is hop-by-hop: {response:?}"
            );
            assert!(
                response.header("date").is_some(),
                "{engine}: a Date is added when the upstream sent none: {response:?}"
            );
        }
        assert_eq!(upstream.requests(), 3, "{engine}");
        assert_eq!(
            upstream.connections(),
            3,
            "{engine}: one upstream connection per request"
        );
        for (i, head) in upstream.heads().iter().enumerate() {
            assert!(
                head.starts_with(&format!("GET /close/{i} HTTP/1.1\r\n")),
                "{engine}: request {i} arrived as {head:?}"
            );
        }
    }
}

#[tokio::test]
async fn close_delimited_upstream_response_is_reframed_as_chunked() {
    for engine in ENGINES {
        // Head and body in separate writes, then the close ends the body.
        let upstream = scripted(
            &[
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello",
                b" world",
            ],
            After::Close,
        )
        .await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        for i in 0..2 {
            client.send(&get_bytes(&format!("/cd/{i}"), "")).await;
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: request {i}: {response:?}");
            assert_eq!(response.text(), "hello world", "{engine}: request {i}");
            assert!(
                response.is_chunked(),
                "{engine}: request {i}: not chunked: {:?}",
                response.headers
            );
            assert_eq!(response.header("content-length"), None, "{engine}");
            assert_eq!(
                response.header("content-type"),
                Some("text/plain"),
                "{engine}"
            );
        }
        assert_eq!(upstream.connections(), 2, "{engine}");
        // The client connection is still usable and clean.
        assert_eq!(
            client.state_after(Duration::from_millis(100)).await,
            "open",
            "{engine}"
        );
    }
}

#[tokio::test]
async fn early_hints_from_the_upstream_are_skipped() {
    for engine in ENGINES {
        let upstream = scripted(
            &[
                b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n",
                b"HTTP/1.1 103 Early Hints\r\nlink: </b.js>; rel=preload\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nfinal",
            ],
            After::KeepOpen,
        )
        .await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        for i in 0..2 {
            client.send(&get_bytes(&format!("/hints/{i}"), "")).await;
            let response = client.complete_response(false).await;
            assert_eq!(
                response.status, 200,
                "{engine}: request {i}: the first response must be the final one: {response:?}"
            );
            assert_eq!(response.text(), "final", "{engine}: request {i}");
            assert_eq!(
                response.header("link"),
                None,
                "{engine}: a 103's field leaked into the final response"
            );
        }
        assert_eq!(upstream.requests(), 2, "{engine}");
        assert_eq!(
            client.state_after(Duration::from_millis(100)).await,
            "open",
            "{engine}: nothing follows the final response"
        );
    }
}

#[tokio::test]
async fn stale_pooled_upstream_connection_is_not_used() {
    for engine in ENGINES {
        // Keep-alive in every respect, then closed by the upstream 50 ms later.
        let upstream = scripted(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
            After::CloseLater(Duration::from_millis(50)),
        )
        .await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let first = get(&proxy.url("/first")).await;
        assert_eq!(
            (first.status.as_u16(), first.text().as_str()),
            (200, "ok"),
            "{engine}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = get(&proxy.url("/second")).await;
        assert_eq!(
            (second.status.as_u16(), second.text().as_str()),
            (200, "ok"),
            "{engine}: the request after the upstream closed its idle connection"
        );
        // A POST (never retried once written) must not meet the stale connection either.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let request = Request::post(proxy.url("/post"))
            .body(full("payload"))
            .unwrap();
        let third = send(&http1_client(), request).await.unwrap();
        assert_eq!(
            third.status,
            200,
            "{engine}: POST after the close: {}",
            third.text()
        );
        assert_eq!(upstream.requests(), 3, "{engine}");
        assert_eq!(upstream.connections(), 3, "{engine}");
    }
}

#[tokio::test]
async fn upstream_bytes_beyond_content_length_never_reach_the_client() {
    for engine in ENGINES {
        let upstream = scripted(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA-BYTES-NOT-A-RESPONSE\r\n\r\n"],
            After::KeepOpen,
        )
        .await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get_bytes("/over/1", "")).await;
        let first = client.complete_response(false).await;
        assert_eq!(first.status, 200, "{engine}: {first:?}");
        assert_eq!(first.text(), "hello", "{engine}");
        let after = client.state_after(Duration::from_millis(150)).await;
        assert_eq!(
            after,
            "open",
            "{engine}: after the response: {:?}",
            String::from_utf8_lossy(&client.buffer)
        );
        // The next request must get a real answer, not the leftovers parsed as a response.
        client.send(&get_bytes("/over/2", "")).await;
        let second = client.complete_response(false).await;
        assert_eq!(
            (second.status, second.text().as_str()),
            (200, "hello"),
            "{engine}: {second:?}"
        );
        let fresh = get(&proxy.url("/over/3")).await;
        assert_eq!(
            (fresh.status.as_u16(), fresh.text().as_str()),
            (200, "hello"),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn upstream_body_cut_short_is_an_error_for_the_client_and_the_proxy_carries_on() {
    for engine in ENGINES {
        let reset = reset_mid_body(1000, b"partial").await;
        let ok = app().await;
        let proxy = Shadowtap::start(config(&two_upstreams(
            &engine_line(engine),
            reset.addr,
            "",
            ok.addr,
        )))
        .await;

        // A real client: the exchange fails, it is never a complete 200.
        match send(&http1_client(), get_request(&proxy.url("/broken/a"))).await {
            Err(_) => {}
            Ok(reply) => panic!(
                "{engine}: a cut-off body passed as complete: {} with {} bytes",
                reply.status,
                reply.body.len()
            ),
        }

        // On the wire: the promised length, fewer bytes, then the connection is closed.
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get_bytes("/broken/b", "")).await;
        let outcome = within("the cut response", client.read_response(false)).await;
        match outcome {
            Ok(response) => panic!("{engine}: complete response from a cut body: {response:?}"),
            Err(cut) => {
                assert_eq!(cut.status, Some(200), "{engine}: {}", cut.why);
                assert!(cut.body.len() < 1000, "{engine}");
                assert!(
                    b"partial".starts_with(&cut.body),
                    "{engine}: {:?}",
                    String::from_utf8_lossy(&cut.body)
                );
            }
        }

        // The proxy carries on, on a new connection and on the healthy route.
        let fresh = get(&proxy.url("/after")).await;
        assert_eq!(fresh.status, 200, "{engine}");
        assert_eq!(fresh.text(), "GET /after body=", "{engine}");
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get_bytes("/after-raw", "")).await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        assert_eq!(reset.count(), 2, "{engine}");
    }
}

// ---------------------------------------------------------------------------------------
// 7. Trailers.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn response_trailers_reach_a_client_that_asked_for_them() {
    let mut without_te = Vec::new();
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;

        let request = Request::get(proxy.url("/trailers"))
            .header("te", "trailers")
            .body(empty())
            .unwrap();
        let reply = send(&http1_client(), request).await.unwrap();
        assert_eq!(reply.status, 200, "{engine}");
        assert_eq!(reply.text(), "part one, part two", "{engine}");
        let trailers = reply
            .trailers
            .unwrap_or_else(|| panic!("{engine}: no trailers reached the client"));
        assert_eq!(trailers["x-checksum"], "abc123", "{engine}");
        assert_eq!(
            upstream.last().header_all("te"),
            ["trailers"],
            "{engine}: te: trailers is re-stated upstream"
        );

        // On the wire, with the raw client.
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(&get_bytes("/trailers", "TE: trailers\r\n"))
            .await;
        let raw = client.complete_response(false).await;
        assert!(raw.is_chunked(), "{engine}: {raw:?}");
        assert_eq!(raw.text(), "part one, part two", "{engine}");
        assert_eq!(
            raw.trailers,
            [("x-checksum".to_string(), "abc123".to_string())],
            "{engine}"
        );

        // Without te: trailers the body still arrives whole (trailers may be dropped).
        let reply = send(&http1_client(), get_request(&proxy.url("/trailers")))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{engine}");
        assert_eq!(reply.text(), "part one, part two", "{engine}");
        assert!(
            upstream.last().header("te").is_none(),
            "{engine}: te sent upstream though the client sent none"
        );
        client.send(&get_bytes("/trailers", "")).await;
        let raw = client.complete_response(false).await;
        assert_eq!(raw.text(), "part one, part two", "{engine}");
        without_te.push((reply.trailers, raw.trailers));
    }
    assert_eq!(
        without_te[0], without_te[1],
        "native vs hyper: trailers delivered to a client that did not send te: trailers \
         (hyper client, raw client)"
    );
}

// ---------------------------------------------------------------------------------------
// 10. 64 MiB bodies.
// ---------------------------------------------------------------------------------------

const BIG: usize = 64 * 1024 * 1024;

/// 64 MiB that are not periodic at any power-of-two stride: loss, repetition or reordering
/// of any run of bytes changes the content.
fn big_body() -> Bytes {
    static DATA: OnceLock<Bytes> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut state: u32 = 0x9e37_79b9;
        let mut data = Vec::with_capacity(BIG);
        for _ in 0..BIG / 4 {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            data.extend_from_slice(&state.to_le_bytes());
        }
        Bytes::from(data)
    })
    .clone()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where two byte strings first differ (for a readable failure), or `None`.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_request_and_response_bodies_stream_through_intact() {
    let data = big_body();
    let upstream = upstream()
        .route("/upload", |r: Received| async move {
            Response::new(full(format!("{} {:016x}", r.body.len(), fnv1a(&r.body))))
        })
        .route("/download", |_| async { Response::new(full(big_body())) })
        .route("/download-chunked", |_| async {
            let (tx, body) = channel_body(4);
            tokio::spawn(async move {
                let data = big_body();
                for start in (0..BIG).step_by(256 * 1024) {
                    let chunk = data.slice(start..(start + 256 * 1024).min(BIG));
                    if tx.send(Frame::data(chunk)).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(body)
        })
        .start()
        .await;
    let proxy = proxy_for(upstream.addr, "native", "").await;
    let client = http1_client();
    let expected_summary = format!("{BIG} {:016x}", fnv1a(&data));

    // Upload with a Content-Length: what the upstream got is byte-for-byte what was sent.
    let request = Request::post(proxy.url("/upload"))
        .header("content-type", "application/octet-stream")
        .body(full(data.clone()))
        .unwrap();
    let reply = send(&client, request).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        expected_summary,
        "length and FNV-1a at the upstream"
    );
    let seen = upstream.last();
    assert_eq!(
        seen.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    assert_eq!(first_difference(&seen.body, &data), None, "upload bytes");

    // Download with a Content-Length, then chunked.
    for path in ["/download", "/download-chunked"] {
        let reply = send(&client, get_request(&proxy.url(path))).await.unwrap();
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body.len(), BIG, "{path}: length");
        assert_eq!(
            first_difference(&reply.body, &data),
            None,
            "{path}: downloaded bytes"
        );
        if path == "/download" {
            assert_eq!(
                reply.headers["content-length"],
                BIG.to_string(),
                "{path}: the upstream's length is kept"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 11. Bodiless responses: HEAD, 204, 304.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn head_204_and_304_carry_no_body_and_the_connection_stays_in_step() {
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;

        client
            .send(b"HEAD /fixed HTTP/1.1\r\nHost: a\r\n\r\n")
            .await;
        let head = client.complete_response(true).await;
        assert_eq!(head.status, 200, "{engine}: {head:?}");
        assert_eq!(
            head.header("content-length"),
            Some("42"),
            "{engine}: the upstream's length: {head:?}"
        );
        let after = client.state_after(Duration::from_millis(150)).await;
        assert_eq!(
            after,
            "open",
            "{engine}: bytes after a HEAD response: {:?}",
            String::from_utf8_lossy(&client.buffer)
        );

        client.send(&get_bytes("/fixed", "")).await;
        let get = client.complete_response(false).await;
        assert_eq!(get.body, FIXED, "{engine}");

        client
            .send(&get_bytes("/not-modified", "If-None-Match: \"v1\"\r\n"))
            .await;
        let not_modified = client.complete_response(false).await;
        assert_eq!(not_modified.status, 304, "{engine}");
        assert_eq!(not_modified.header("etag"), Some("\"v1\""), "{engine}");

        client
            .send(b"DELETE /no-content HTTP/1.1\r\nHost: a\r\n\r\n")
            .await;
        assert_eq!(
            client.complete_response(false).await.status,
            204,
            "{engine}"
        );

        // HEAD and GET pipelined: the GET's response starts right after the HEAD's head.
        let mut pipeline = b"HEAD /fixed HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        pipeline.extend_from_slice(&get_bytes("/fixed", ""));
        client.send(&pipeline).await;
        let head = client.complete_response(true).await;
        assert_eq!(head.status, 200, "{engine}");
        let get = client.complete_response(false).await;
        assert_eq!(get.status, 200, "{engine}: {get:?}");
        assert_eq!(get.body, FIXED, "{engine}");
        assert_eq!(
            client.state_after(Duration::from_millis(100)).await,
            "open",
            "{engine}"
        );
        let methods: Vec<Method> = upstream
            .received()
            .iter()
            .map(|r| r.method.clone())
            .collect();
        assert_eq!(
            methods,
            [
                Method::HEAD,
                Method::GET,
                Method::GET,
                Method::DELETE,
                Method::HEAD,
                Method::GET
            ],
            "{engine}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 12. The same requests through both engines.
// ---------------------------------------------------------------------------------------

/// Response fields that may differ between engines: the date, the generated id, hop-by-hop.
const ENGINE_SPECIFIC: &[&str] = &[
    "date",
    "x-request-id",
    "connection",
    "keep-alive",
    "transfer-encoding",
];

/// Header pairs without `ignored`, sorted by name (values of one name stay in order).
fn comparable(pairs: Vec<(String, String)>, ignored: &[&str]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = pairs
        .into_iter()
        .filter(|(name, _)| !ignored.contains(&name.as_str()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// What the upstream received: method, target, headers (sorted, minus x-request-id), body.
type Seen = (Method, String, Vec<(String, String)>, Bytes);

/// What one request produced: the client's view and what the upstream received.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Bytes,
    trailers: Option<HeaderMap>,
    /// Method, target, headers (minus x-request-id), body; `None` if nothing arrived.
    seen: Option<Seen>,
}

struct MatrixCase {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
}

impl MatrixCase {
    fn request(&self, base: &str) -> Request<Body> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(format!("{base}{}", self.path))
            // The same Host through both proxies (their ports differ).
            .header("host", "app.example");
        for (name, value) in self.headers {
            builder = builder.header(*name, *value);
        }
        let body = if self.body.is_empty() {
            empty()
        } else {
            full(self.body)
        };
        builder.body(body).unwrap()
    }
}

async fn outcome(case: &MatrixCase, proxy: &Shadowtap, upstream: Option<&Upstream>) -> Outcome {
    let before = upstream.map_or(0, Upstream::count);
    let reply = send(&http1_client(), case.request(&proxy.url("")))
        .await
        .unwrap_or_else(|e| panic!("{}: request failed: {e}", case.name));
    let seen = upstream.filter(|u| u.count() > before).map(|u| {
        let r = u.last();
        (
            r.method.clone(),
            r.uri
                .path_and_query()
                .map_or("", |pq| pq.as_str())
                .to_string(),
            comparable(r.headers.clone(), &["x-request-id"]),
            r.body.clone(),
        )
    });
    Outcome {
        status: reply.status,
        headers: comparable(header_pairs(&reply.headers), ENGINE_SPECIFIC),
        body: reply.body,
        trailers: reply.trailers,
        seen,
    }
}

#[tokio::test]
async fn both_engines_give_the_same_answers() {
    let cases = [
        MatrixCase {
            name: "GET with query",
            method: Method::GET,
            path: "/search/a%20b%2Fc?q=x%26y&empty=&plus=a+b&pct=%25",
            headers: &[("accept", "application/json"), ("x-custom", "kept")],
            body: b"",
        },
        MatrixCase {
            name: "POST with body",
            method: Method::POST,
            path: "/submit",
            headers: &[("content-type", "text/plain")],
            body: b"hello native engine",
        },
        MatrixCase {
            name: "404 from the upstream",
            method: Method::GET,
            path: "/missing",
            headers: &[],
            body: b"",
        },
        MatrixCase {
            name: "HEAD",
            method: Method::HEAD,
            path: "/fixed",
            headers: &[],
            body: b"",
        },
        MatrixCase {
            name: "304",
            method: Method::GET,
            path: "/not-modified",
            headers: &[("if-none-match", "\"v1\"")],
            body: b"",
        },
        MatrixCase {
            name: "repeated request headers, request id",
            method: Method::GET,
            path: "/multi",
            headers: &[
                ("x-forwarded-for", "10.1.1.1"),
                ("x-multi", "1"),
                ("x-multi", "2"),
                ("x-request-id", "fixed-id-1"),
            ],
            body: b"",
        },
        MatrixCase {
            name: "hop-by-hop response fields",
            method: Method::GET,
            path: "/hop-response",
            headers: &[],
            body: b"",
        },
        MatrixCase {
            name: "trailers",
            method: Method::GET,
            path: "/trailers",
            headers: &[("te", "trailers")],
            body: b"",
        },
        MatrixCase {
            name: "504 response timeout",
            method: Method::GET,
            path: "/very-slow",
            headers: &[],
            body: b"",
        },
    ];
    let upstream = app().await;
    let timeout = r#"response_timeout = "500ms""#;
    let native = proxy_for(upstream.addr, "native", timeout).await;
    let hyper = proxy_for(upstream.addr, "hyper", timeout).await;
    for case in &cases {
        let from_native = outcome(case, &native, Some(&upstream)).await;
        let from_hyper = outcome(case, &hyper, Some(&upstream)).await;
        assert_eq!(
            from_native, from_hyper,
            "{}: native (left) vs hyper (right)",
            case.name
        );
        assert!(
            from_native.status.is_success()
                || matches!(from_native.status.as_u16(), 304 | 404 | 504),
            "{}: {:?}",
            case.name,
            from_native.status
        );
    }
    assert_eq!(
        outcome(&cases[8], &native, None).await.status,
        504,
        "the slow case really timed out"
    );

    // The upstream down: 502 from both, the same answer.
    let down = closed_port().await;
    let native = proxy_for(down, "native", r#"connect_timeout = "1s""#).await;
    let hyper = proxy_for(down, "hyper", r#"connect_timeout = "1s""#).await;
    for case in &cases[..2] {
        let from_native = outcome(case, &native, None).await;
        let from_hyper = outcome(case, &hyper, None).await;
        assert_eq!(from_native.status, 502, "{}", case.name);
        assert_eq!(
            from_native, from_hyper,
            "{} (down): native vs hyper",
            case.name
        );
    }
}

#[tokio::test]
async fn odd_requests_get_the_same_answers_from_both_engines() {
    // Shapes the native engine must hand to hyper (or handle identically).
    let shapes: &[(&str, &[u8])] = &[
        (
            "absolute-form target",
            b"GET http://a/abs?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "HTTP/1.0 keep-alive",
            b"GET /ten HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        ),
        ("no Host", b"GET /nohost HTTP/1.1\r\n\r\n"),
        (
            "two Host fields",
            b"GET /twohost HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        (
            "the same Content-Length twice",
            b"POST /cl2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "Content-Length with a plus sign",
            b"POST /clplus HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        ),
        (
            "Upgrade request",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        (
            "Connection: keep-alive, close",
            b"GET /kc HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
        ),
        (
            "odd whitespace in values, empty value",
            b"GET /ws2 HTTP/1.1\r\nHost: a\r\nX-A:   spaced   \r\nX-B:tight\r\nX-Empty:\r\n\r\n",
        ),
        ("bare LF line endings", b"GET /lf HTTP/1.1\nHost: a\n\n"),
        (
            "double space in the request line",
            b"GET  /dbl HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        ("asterisk-form OPTIONS", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "chunked with an extension",
            b"POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "Content-Length: 0 POST",
            b"POST /zero HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "Expect with Content-Length 0",
            b"POST /expect0 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
        ),
    ];
    #[derive(Debug, PartialEq)]
    struct Answer {
        status: Option<u16>,
        body: String,
        then: &'static str,
        seen: Option<Seen>,
    }
    let mut answers: Vec<Vec<Answer>> = Vec::new();
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut per_engine = Vec::new();
        for (shape, bytes) in shapes {
            let before = upstream.count();
            let mut client = RawClient::connect(proxy.addr).await;
            client.send(bytes).await;
            let read =
                tokio::time::timeout(Duration::from_secs(3), client.read_response(false)).await;
            let (status, body) = match read {
                Ok(Ok(response)) => (Some(response.status), response.text()),
                Ok(Err(cut)) => (cut.status, format!("<cut: {}>", cut.why)),
                Err(_) => (None, "<no answer in 3 s>".to_string()),
            };
            let then = client.state_after(Duration::from_millis(200)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Addresses differ between runs: name them, so a Host filled in from either
            // compares equal.
            let name_addresses = |value: &str| {
                value
                    .replace(&upstream.addr.to_string(), "<upstream>")
                    .replace(&proxy.addr.to_string(), "<proxy>")
            };
            let seen = (upstream.count() > before).then(|| {
                let r = upstream.last();
                let headers = r
                    .headers
                    .iter()
                    .map(|(name, value)| (name.clone(), name_addresses(value)))
                    .collect();
                (
                    r.method.clone(),
                    r.uri
                        .path_and_query()
                        .map_or("", |pq| pq.as_str())
                        .to_string(),
                    comparable(headers, &["x-request-id"]),
                    r.body.clone(),
                )
            });
            eprintln!("{engine}: {shape}: {status:?} {body:?}, then {then}");
            per_engine.push(Answer {
                status,
                body,
                then,
                seen,
            });
        }
        answers.push(per_engine);
    }
    let mut differences = Vec::new();
    for (i, (shape, _)) in shapes.iter().enumerate() {
        if answers[0][i] != answers[1][i] {
            differences.push(format!(
                "{shape}:\n  native: {:?}\n  hyper:  {:?}",
                answers[0][i], answers[1][i]
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} shape(s) answered differently:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 13. The config key.
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_http1_engine_is_a_config_error_naming_the_key() {
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = simple_toml(upstream, "http1_engine = \"fast\"", "");
    let error = match Config::from_toml(&text, &Overrides::default()) {
        Ok(_) => panic!("http1_engine = \"fast\" was accepted"),
        Err(error) => error,
    };
    let problems = error.problems();
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.path == "listeners[0].http1_engine")
            .count(),
        1,
        "{error}"
    );
    assert_eq!(problems.len(), 1, "only the engine is wrong: {error}");
    assert!(
        !problems[0].reason.contains("unknown key"),
        "the key itself must be known; only its value is wrong: {error}"
    );
    assert!(
        error.to_string().contains("listeners[0].http1_engine"),
        "{error}"
    );
    for engine in ENGINES {
        let text = simple_toml(upstream, &engine_line(engine), "");
        if let Err(error) = Config::from_toml(&text, &Overrides::default()) {
            panic!("http1_engine = {engine:?} rejected: {error}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 14. Header rules on the way up.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn request_header_rules_hold_on_both_engines() {
    let mut seen_by_engine = Vec::new();
    for engine in ENGINES {
        let upstream = app().await;
        let proxy = proxy_for(upstream.addr, engine, "").await;
        let mut client = RawClient::connect(proxy.addr).await;

        // Native-eligible: one Host, no Connection tokens besides keep-alive.
        client
            .send(
                b"GET /fwd?x=1 HTTP/1.1\r\nHost: shop.example:8443\r\nX-Forwarded-For: 10.0.0.1\r\n\
                  X-Forwarded-Proto: https\r\nX-Request-Id: client-id-7\r\nConnection: keep-alive\r\n\
                  TE: trailers\r\nx-end: kept\r\n\r\n",
            )
            .await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        let seen = upstream.last();
        assert_eq!(seen.header("host"), Some("shop.example:8443"), "{engine}");
        assert_eq!(seen.header_all("host").len(), 1, "{engine}");
        assert_eq!(
            seen.header_all("x-forwarded-for"),
            ["10.0.0.1, 127.0.0.1"],
            "{engine}"
        );
        assert_eq!(seen.header("x-forwarded-proto"), Some("http"), "{engine}");
        assert_eq!(
            seen.header("x-forwarded-host"),
            Some("shop.example:8443"),
            "{engine}"
        );
        assert_eq!(seen.header_all("x-request-id"), ["client-id-7"], "{engine}");
        assert_eq!(seen.header_all("te"), ["trailers"], "{engine}");
        assert_eq!(seen.header("x-end"), Some("kept"), "{engine}");
        assert_eq!(seen.header("connection"), None, "{engine}");
        seen_by_engine.push(comparable(seen.headers.clone(), &[]));

        // X-Forwarded-For on two lines with another field between them: joined, the
        // client's address appended, the field between kept.
        client
            .send(
                b"GET /xff2 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-mid: m\r\n\
                  X-Forwarded-For: 10.0.0.2\r\nx-last: l\r\n\r\n",
            )
            .await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        let seen = upstream.last();
        assert_eq!(
            seen.header_all("x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 127.0.0.1"],
            "{engine}: {:?}",
            seen.headers
        );
        assert_eq!(
            seen.header("x-mid"),
            Some("m"),
            "{engine}: {:?}",
            seen.headers
        );
        assert_eq!(
            seen.header("x-last"),
            Some("l"),
            "{engine}: {:?}",
            seen.headers
        );

        // A field named in Connection, plus the other hop-by-hop fields.
        client
            .send(
                b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\nx-secret: 1\r\n\
                  Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nx-end: kept\r\n\r\n",
            )
            .await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        let seen = upstream.last();
        for name in ["x-secret", "connection", "keep-alive", "proxy-connection"] {
            assert_eq!(
                seen.header(name),
                None,
                "{engine}: {name} reached the upstream"
            );
        }
        assert_eq!(seen.header("x-end"), Some("kept"), "{engine}");

        // Hop-by-hop fields alone (no extra Connection token): still removed.
        client
            .send(b"GET /hop2 HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\r\n")
            .await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        let seen = upstream.last();
        assert_eq!(seen.header("keep-alive"), None, "{engine}");
        assert_eq!(seen.header("proxy-connection"), None, "{engine}");
        assert_eq!(
            seen.header("upgrade-insecure-requests"),
            Some("1"),
            "{engine}: an end-to-end field"
        );

        // Request ids are generated when absent, one per request.
        let mut ids = Vec::new();
        for _ in 0..2 {
            client.send(&get_bytes("/id", "")).await;
            {
                let response = client.complete_response(false).await;
                assert_eq!(response.status, 200, "{engine}: {response:?}");
            }
            let id = upstream.last().header("x-request-id").unwrap().to_string();
            assert_eq!(id.len(), 36, "{engine}: a UUID: {id}");
            assert_eq!(id.matches('-').count(), 4, "{engine}: a UUID: {id}");
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1], "{engine}");

        // Hop-by-hop fields on the way back.
        client.send(&get_bytes("/hop-response", "")).await;
        let response = client.complete_response(false).await;
        for name in ["x-upstream-hop", "keep-alive", "proxy-connection"] {
            assert_eq!(
                response.header(name),
                None,
                "{engine}: {name} reached the client"
            );
        }
        assert_eq!(response.header("x-end-to-end"), Some("kept"), "{engine}");
    }
    assert_eq!(
        seen_by_engine[0], seen_by_engine[1],
        "native vs hyper: everything the upstream saw for the same request"
    );
}

#[tokio::test]
async fn host_rewrite_applies_on_both_engines() {
    for engine in ENGINES {
        let upstream = app().await;
        let config = config(&format!(
            r#"
[[listeners]]
address = "127.0.0.1:0"
{line}
[admin]
address = "127.0.0.1:0"
[upstreams.api]
url = "http://{addr}"
[[routes]]
name = "api"
primary = "api"
host_rewrite = "api.internal"
"#,
            line = engine_line(engine),
            addr = upstream.addr
        ));
        let proxy = Shadowtap::start(config).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(b"GET /v1/x HTTP/1.1\r\nHost: API.example:80\r\n\r\n")
            .await;
        {
            let response = client.complete_response(false).await;
            assert_eq!(response.status, 200, "{engine}: {response:?}");
        }
        let seen = upstream.last();
        assert_eq!(seen.header_all("host"), ["api.internal"], "{engine}");
        assert_eq!(
            seen.header("x-forwarded-host"),
            Some("API.example:80"),
            "{engine}"
        );
    }
}

/// Sum of `shadowtap_http1_handovers_total` over every reason, and the count for `reason`.
fn handovers(metrics: &str, reason: &str) -> (f64, f64) {
    let total = metrics
        .lines()
        .filter(|line| line.starts_with("shadowtap_http1_handovers_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    let one = metric_value(
        metrics,
        "shadowtap_http1_handovers_total",
        &[("reason", reason)],
    )
    .unwrap_or(-1.0);
    (total, one)
}

#[tokio::test]
async fn plain_requests_stay_native_and_handovers_are_counted_by_reason() {
    let upstream = upstream().always(StatusCode::OK, "ok").start().await;
    let proxy = proxy_for(upstream.addr, "native", "").await;

    // Plain GET and POST (Content-Length), and Connection: close: the native engine's shape.
    let answer = raw_exchange(
        proxy.addr,
        b"GET /a?x=1 HTTP/1.1\r\nHost: app\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: app\r\ncontent-length: 3\r\n\r\nabc\
          GET /c HTTP/1.1\r\nHost: app\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200 ").count(), 3, "{answer}");
    let metrics = proxy.metrics().await;
    assert_eq!(handovers(&metrics, "other"), (0.0, 0.0), "{metrics}");

    // Each shape the engine leaves to hyper is counted once, under its reason, and served.
    let cases: [(&[u8], &str); 4] = [
        (
            b"POST /d HTTP/1.1\r\nHost: app\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "transfer_encoding",
        ),
        (b"GET /e HTTP/1.0\r\nHost: app\r\n\r\n", "http10"),
        (
            b"GET /f HTTP/1.1\r\nHost: app\r\nconnection: close, x-hop\r\n\r\n",
            "connection_options",
        ),
        (
            b"POST /g HTTP/1.1\r\nHost: app\r\ncontent-length: 0\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
            "expect",
        ),
    ];
    for (index, (request, reason)) in cases.iter().enumerate() {
        let answer = raw_exchange(proxy.addr, request).await;
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.") && status_line.contains(" 200 "),
            "{reason}: {answer}"
        );
        let metrics = proxy.metrics().await;
        assert_eq!(
            handovers(&metrics, reason),
            ((index + 1) as f64, 1.0),
            "{reason}: {metrics}"
        );
    }

    // An h2c client is handed over too.
    let reply = send(&h2_client(), get_request(&proxy.url("/h")))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = proxy.metrics().await;
    assert_eq!(handovers(&metrics, "h2c"), (5.0, 1.0), "{metrics}");
}

#[tokio::test]
async fn mirrored_requests_stay_native_and_pair_like_on_hyper() {
    use support::shadow::{echo_primary, healthy_shadow, mirror_toml, outcomes, settled, Policy};
    let policy = Policy {
        global: "",
        route: "",
        shadow: "methods = \"all\"",
    };
    let mut seen = Vec::new();
    for engine in ENGINES {
        let primary = echo_primary().await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let text = engine_toml(&mirror_toml(primary.addr, shadow.addr, &policy), engine);
        let proxy = Shadowtap::start(config(&text)).await;
        // A GET, a POST with a body in the first read, and one larger than a read buffer.
        let big = vec![b'x'; 100_000];
        let head = format!(
            "GET /a?q=1 HTTP/1.1\r\nHost: app\r\n\r\n\
             POST /b HTTP/1.1\r\nHost: app\r\ncontent-length: 5\r\n\r\nhello\
             POST /c HTTP/1.1\r\nHost: app\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            big.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&big);
        let answer = raw_exchange(proxy.addr, &bytes).await;
        assert_eq!(
            answer.matches(" 200 OK\r\n").count(),
            3,
            "{engine}: {answer}"
        );

        let metrics = settled(&proxy).await;
        let copies = shadow.received();
        let mut bodies: Vec<(String, usize)> = copies
            .iter()
            .map(|r| (r.uri.to_string(), r.body.len()))
            .collect();
        bodies.sort();
        assert_eq!(
            bodies,
            [
                ("/a?q=1".to_string(), 0),
                ("/b".to_string(), 5),
                ("/c".to_string(), big.len())
            ],
            "{engine}: what the shadow received"
        );
        let compared: f64 = metrics
            .lines()
            .filter(|line| line.starts_with("shadowtap_comparisons_total{"))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert_eq!(compared, 3.0, "{engine}: {metrics}");
        if engine == "native" {
            assert_eq!(handovers(&metrics, "other").0, 0.0, "{metrics}");
        }
        seen.push(format!("{:?}", outcomes(&metrics)));
    }
    assert_eq!(seen[0], seen[1], "outcomes: native vs hyper");
}

// ---------------------------------------------------------------------------------------
// Uploads the upstream does not take to the end.
// ---------------------------------------------------------------------------------------

/// Sends a POST announcing 64 MiB (far more than the socket buffers hold) on a raw
/// connection: the first `first` bytes of body at once, then, when `keep_sending`, the rest
/// in 256 KiB writes (errors ignored) while the answer is read. Returns every byte the
/// proxy sent until it closed.
async fn upload_and_read_answer(proxy: &Shadowtap, first: usize, keep_sending: bool) -> String {
    const ANNOUNCED: usize = 64 * 1024 * 1024;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reading, mut writing) = stream.into_split();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: app\r\ncontent-type: application/octet-stream\r\ncontent-length: {ANNOUNCED}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let mut out = head.into_bytes();
        out.extend(std::iter::repeat_n(b'u', first));
        if writing.write_all(&out).await.is_err() || !keep_sending {
            // Hold the body open (never ends) until the test is done.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        let piece = vec![b'u'; 256 * 1024];
        let mut sent = first;
        while sent < ANNOUNCED {
            if writing.write_all(&piece).await.is_err() {
                return;
            }
            sent += piece.len();
        }
    });
    let mut answer = Vec::new();
    within("the proxy's answer, then its close", async {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match reading.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_upstream_that_answers_before_a_content_length_upload_ends_is_heard() {
    // The upstream answers 413 after the head and reads no more: the client gets that 413
    // (not a 502 on the reset, nor a 504), and the proxy then closes the connection (the
    // rest of the body is never read).
    let (addr, task) = head_only_upstream(OnHead::Answer413).await;
    for engine in ENGINES {
        let proxy = proxy_for(addr, engine, "").await;
        let answer = upload_and_read_answer(&proxy, 64 * 1024, true).await;
        assert!(
            answer.starts_with("HTTP/1.1 413 "),
            "{engine}: got {:?}",
            answer.lines().next()
        );
        assert!(answer.ends_with("too large"), "{engine}: {answer:?}");
        // Both close the connection after it (the read above ends at the close); the
        // native engine also says so (RFC 9112 §9.6), hyper's server does not.
        if engine == "native" {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("\r\nconnection: close\r\n"),
                "{engine}: {answer:?}"
            );
        }
    }
    task.abort();
}

/// On both engines: an upload against a head-only upstream doing `on_head` (`first` bytes
/// of body, then more or silence) ends with `status` from the proxy, counted once as
/// `reason`, within the test step (10 s), whatever the upstream does.
async fn upload_ends_with(
    on_head: OnHead,
    upstream_extra: &str,
    first: usize,
    keep_sending: bool,
    status: u16,
    reason: &str,
) {
    let (addr, task) = head_only_upstream(on_head).await;
    for engine in ENGINES {
        let proxy = proxy_for(addr, engine, upstream_extra).await;
        let answer = upload_and_read_answer(&proxy, first, keep_sending).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{engine}: got {:?}",
            answer.lines().next()
        );
        assert_eq!(
            proxy.proxy_errors(reason).await,
            1.0,
            "{engine}: counted once as {reason}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn an_upstream_that_closes_mid_upload_is_a_502_at_once() {
    // The upstream closes after the head without answering, while the client's body is
    // still open and silent: a 502 right away, not when the client next sends something
    // (the default response timeout is 30 s, far beyond the test step).
    upload_ends_with(OnHead::Close, "", 1024, false, 502, "upstream_error").await;
}

#[tokio::test]
async fn an_upstream_that_takes_no_more_of_the_body_is_a_504_after_its_response_timeout() {
    // The upstream reads the head, then neither reads nor answers: once the socket takes no
    // more, the upload waits at most the upstream's response timeout, then 504.
    let timeout = "response_timeout = \"500ms\"";
    upload_ends_with(
        OnHead::Stall,
        timeout,
        64 * 1024,
        true,
        504,
        "upstream_timeout",
    )
    .await;
}
