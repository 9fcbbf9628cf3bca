#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Who cut a sampled request's body short decides its outcome: a primary that fails while
//! the body is still arriving (closes or resets mid-body, stops taking it past its
//! `response_timeout`, answers without reading it all) costs the copy as
//! `dropped_primary_failed`; only a client that goes away (closes, resets, pauses past
//! `client_body_timeout`) before its body is whole is `dropped_client_aborted`. On both
//! engines, HTTP/1 and h2c clients, HTTP/1 and HTTP/2 primaries; each copy counted once.

mod support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;
use support::raw::RawClient;
use support::shadow::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// The body a client promises; it sends [`FIRST`] of it and waits.
const DECLARED: usize = 1000;
const FIRST: &[u8] = b"0123456789";

/// What a raw HTTP/1 primary does once it has the request head.
#[derive(Clone, Copy)]
enum Misbehaves {
    /// Reads what came of the body, then closes its socket without answering.
    ClosesMidBody,
    /// The same, with a reset (linger 0) instead of a FIN.
    ResetsMidBody,
    /// Answers `200` at once, never reading the body (the socket left open).
    AnswersEarly,
    /// Reads nothing more and never answers: the proxy's writes stall.
    StopsReading,
}

/// A raw HTTP/1 primary on 127.0.0.1:0 that misbehaves as told, for every connection.
struct RawPrimary {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RawPrimary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_primary(how: Misbehaves) -> RawPrimary {
    let socket = TcpSocket::new_v4().unwrap();
    // A small window, so a primary that stops reading stalls the proxy's writes soon.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream, how));
        }
    });
    RawPrimary { addr, task }
}

async fn misbehave(mut stream: TcpStream, how: Misbehaves) {
    let mut head = Vec::new();
    while support::raw::head_end(&head).is_none() {
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match how {
        Misbehaves::ClosesMidBody | Misbehaves::ResetsMidBody => {
            // The body's first bytes came (with the head, or just after it).
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf)).await;
            if let Misbehaves::ResetsMidBody = how {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            drop(stream);
        }
        Misbehaves::AnswersEarly => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Misbehaves::StopsReading => tokio::time::sleep(Duration::from_secs(30)).await,
    }
}

/// What an HTTP/2 primary does with a request.
#[derive(Clone, Copy)]
enum H2Misbehaves {
    /// Reads the body's first frame, then fails the stream (RST_STREAM).
    ResetsMidBody,
    /// Answers `200` at once, never reading the body.
    AnswersEarly,
}

/// An h2c primary on 127.0.0.1:0 (hyper) that misbehaves as told.
async fn h2_primary(how: H2Misbehaves) -> RawPrimary {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |request: Request<Incoming>| async move {
                let mut body = request.into_body();
                match how {
                    H2Misbehaves::ResetsMidBody => {
                        let _ = body.frame().await;
                        Err(std::io::Error::other("the primary gave up mid-body"))
                    }
                    H2Misbehaves::AnswersEarly => {
                        Ok(Response::new(Full::new(Bytes::from_static(b"early"))))
                    }
                }
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::spawn(connection);
        }
    });
    RawPrimary { addr, task }
}

/// shadowtap in front of `primary` (a shadow that takes every method) on `engine`; `h2`:
/// the primary speaks HTTP/2; `listener`: more listener lines.
async fn proxy_for(
    primary: SocketAddr,
    shadow: SocketAddr,
    engine: &str,
    h2: bool,
    listener: &str,
) -> Shadowtap {
    let policy = Policy {
        global: "",
        route: "",
        shadow: "methods = \"all\"",
    };
    let mut toml = engine_toml(&mirror_toml(primary, shadow, &policy), engine);
    toml = toml.replacen(
        "address = \"127.0.0.1:0\"\n",
        &format!("address = \"127.0.0.1:0\"\n{listener}\n"),
        1,
    );
    let app = format!("url = \"http://{primary}\"\n");
    let with_timeout = format!("{app}response_timeout = \"500ms\"\n");
    toml = toml.replacen(&app, &with_timeout, 1);
    if h2 {
        toml = toml.replacen(&app, &format!("{app}protocol = \"http2\"\n"), 1);
    }
    Shadowtap::start(config(&toml)).await
}

/// An HTTP/1 client that sends a POST head promising [`DECLARED`] bytes and [`FIRST`] of
/// them, then waits (its connection open) for whatever answer comes; its status, if any.
async fn http1_upload(proxy: &Shadowtap, path: &str) -> Option<u16> {
    let mut client = RawClient::connect(proxy.addr).await;
    let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {DECLARED}\r\n\r\n");
    client.send(head.as_bytes()).await;
    client.send(FIRST).await;
    client.response().await.map(|response| response.status)
}

/// The same upload over h2c: its first frame sent, the stream kept open.
async fn h2_upload(proxy: &Shadowtap, path: &str) -> Option<u16> {
    let (frames, body) = channel_body(4);
    frames
        .send(Frame::data(Bytes::from_static(FIRST)))
        .await
        .unwrap();
    let request = Request::post(proxy.url(path)).body(body).unwrap();
    let answer = within("an answer", h2_client().request(request)).await;
    drop(frames);
    answer.ok().map(|response| response.status().as_u16())
}

/// Uploads through `proxy` (h2c or HTTP/1.1) to a primary that fails mid-body; the client's
/// answer is `status` when one is expected, and the copy is counted once as the primary's.
async fn upload_lost_to_the_primary(
    proxy: &Shadowtap,
    shadow: &Upstream,
    h2c: bool,
    status: Option<u16>,
    case: &str,
) {
    let answered = match h2c {
        true => h2_upload(proxy, "/upload").await,
        false => http1_upload(proxy, "/upload").await,
    };
    if let Some(status) = status {
        assert_eq!(answered, Some(status), "{case}");
    }
    counted_once_as(proxy, shadow, "dropped_primary_failed", case).await;
}

/// Waits for the one sampled copy to be counted, and checks it was counted once, as
/// `expected`, with nothing sent to the shadow.
async fn counted_once_as(proxy: &Shadowtap, shadow: &Upstream, expected: &str, case: &str) {
    let metrics = eventually(proxy, "the sampled copy to be counted", |m| sampled(m) >= 1).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts[expected], 1, "{case}: {counts:?}");
    let metrics = settled(proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(sampled(&metrics), 1, "{case}: counted once: {counts:?}");
    assert_eq!(counts[expected], 1, "{case}: {counts:?}");
    assert_eq!(shadow.count(), 0, "{case}: no copy reached the shadow");
}

/// The engines and clients of every HTTP/1-primary case: (engine, client speaks h2c).
const PATHS: [(&str, bool); 3] = [("native", false), ("hyper", false), ("native", true)];

async fn primary_fails_mid_body(how: Misbehaves, status: Option<u16>, what: &str) {
    for (engine, h2c) in PATHS {
        let primary = raw_primary(how).await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let proxy = proxy_for(primary.addr, shadow.addr, engine, false, "").await;
        let case = format!("{what}, {engine} engine, h2c client: {h2c}");
        upload_lost_to_the_primary(&proxy, &shadow, h2c, status, &case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_closes_mid_body_is_not_a_client_abort() {
    primary_fails_mid_body(Misbehaves::ClosesMidBody, Some(502), "closes mid-body").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_resets_mid_body_is_not_a_client_abort() {
    primary_fails_mid_body(Misbehaves::ResetsMidBody, Some(502), "resets mid-body").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_answers_without_reading_the_body_is_not_a_client_abort() {
    primary_fails_mid_body(Misbehaves::AnswersEarly, Some(200), "answers early").await;
}

/// The client keeps sending; the primary takes nothing: its `response_timeout` (500 ms)
/// ends the upload with a 504, and the copy is the primary's loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_stops_reading_the_body_is_not_a_client_abort() {
    for engine in ["native", "hyper"] {
        let primary = raw_primary(Misbehaves::StopsReading).await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let proxy = proxy_for(primary.addr, shadow.addr, engine, false, "").await;
        let case = format!("stops reading, {engine} engine");
        // More than the sockets between the proxy and the primary hold, within the cap.
        let declared = 12 * 1024 * 1024;
        let mut client = RawClient::connect(proxy.addr).await;
        let head =
            format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n");
        client.send(head.as_bytes()).await;
        let (mut reader, mut writer) = client.stream.into_split();
        let upload = tokio::spawn(async move {
            let piece = vec![b'x'; 64 * 1024];
            for _ in 0..declared / piece.len() {
                if writer.write_all(&piece).await.is_err() {
                    return;
                }
            }
        });
        let mut answer = Vec::new();
        let _ = within("the answer", async {
            let mut buf = [0u8; 1024];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            answer.starts_with(b"HTTP/1.1 504"),
            "{case}: {:?}",
            String::from_utf8_lossy(&answer)
        );
        upload.abort();
        counted_once_as(&proxy, &shadow, "dropped_primary_failed", &case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_primary_that_resets_or_answers_early_is_not_a_client_abort() {
    let cases = [
        (
            H2Misbehaves::ResetsMidBody,
            Some(502),
            "h2 primary resets mid-body",
        ),
        (H2Misbehaves::AnswersEarly, None, "h2 primary answers early"),
    ];
    for (how, status, what) in cases {
        for h2c in [false, true] {
            let primary = h2_primary(how).await;
            let shadow = healthy_shadow(Duration::ZERO).await;
            let proxy = proxy_for(primary.addr, shadow.addr, "native", true, "").await;
            let case = format!("{what}, h2c client: {h2c}");
            upload_lost_to_the_primary(&proxy, &shadow, h2c, status, &case).await;
        }
    }
}

/// The other side of the line: a client that leaves or stalls before its body is whole is
/// still `dropped_client_aborted` (never the primary's), whatever the engine or primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_or_stalls_mid_body_is_a_client_abort() {
    for (engine, h2) in [("native", false), ("hyper", false), ("native", true)] {
        let primary = echo_primary().await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let proxy = proxy_for(primary.addr, shadow.addr, engine, h2, "").await;
        let case = format!("client closes mid-body, {engine} engine, h2 primary: {h2}");
        abort_mid_body(proxy.addr, "/aborted", DECLARED, FIRST).await;
        counted_once_as(&proxy, &shadow, "dropped_client_aborted", &case).await;
    }
    for (engine, h2c) in PATHS {
        let primary = echo_primary().await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let paused = "client_body_timeout = \"300ms\"";
        let proxy = proxy_for(primary.addr, shadow.addr, engine, false, paused).await;
        let case = format!("client pauses mid-body, {engine} engine, h2c client: {h2c}");
        let answered = match h2c {
            true => h2_upload(&proxy, "/paused").await,
            false => http1_upload(&proxy, "/paused").await,
        };
        assert_eq!(
            answered,
            Some(StatusCode::REQUEST_TIMEOUT.as_u16()),
            "{case}"
        );
        counted_once_as(&proxy, &shadow, "dropped_client_aborted", &case).await;
    }
}

/// The recording counts the same distinction: an exchange sampled for it whose body the
/// primary cut short is `dropped_primary_failed`, one the client left is
/// `dropped_client_aborted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_tells_the_primarys_failure_from_the_clients_abort() {
    const ENTRIES: &str = "shadowtap_record_entries_total";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recording.jsonl");
    let closing = raw_primary(Misbehaves::ClosesMidBody).await;
    let echo = echo_primary().await;
    for (primary, expected, other) in [
        (
            closing.addr,
            "dropped_primary_failed",
            "dropped_client_aborted",
        ),
        (
            echo.addr,
            "dropped_client_aborted",
            "dropped_primary_failed",
        ),
    ] {
        let toml = format!(
            "{}\n[upstreams.app]\nurl = \"http://{primary}\"\n\n[[routes]]\nname = \"all\"\n\
             primary = \"app\"\n\n[record]\nfile = {:?}\n",
            listener_and_admin(""),
            file.display().to_string()
        );
        let proxy = Shadowtap::start(config(&toml)).await;
        match expected {
            "dropped_primary_failed" => {
                assert_eq!(http1_upload(&proxy, "/upload").await, Some(502));
            }
            _ => abort_mid_body(proxy.addr, "/aborted", DECLARED, FIRST).await,
        }
        let counted = |text: &str, result: &str| {
            support::metrics::metric_sum(text, ENTRIES, &[("result", result)])
        };
        let metrics = until_metrics(
            proxy.admin,
            "the recorded exchange to be counted",
            |text| counted(text, expected) >= 1.0,
            |text| text.to_string(),
        )
        .await;
        assert_eq!(counted(&metrics, expected), 1.0, "{expected}");
        assert_eq!(counted(&metrics, other), 0.0, "{expected}");
        assert_eq!(counted(&metrics, "written"), 0.0, "{expected}");
    }
}

/// A request whose body came whole with its head is mirrored whole even when the primary
/// answers before taking all of it (as when the primary fails before it has any): the
/// client's connection had the whole body, so the shadow gets it, every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_request_answered_early_is_still_mirrored_whole() {
    for engine in ["native", "hyper"] {
        let primary = raw_primary(Misbehaves::AnswersEarly).await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let proxy = proxy_for(primary.addr, shadow.addr, engine, false, "").await;
        let body: Vec<u8> = (0..12_000).map(|i| b'a' + (i % 26) as u8).collect();
        let mut request = format!(
            "POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&request).await;
        let answer = client.response().await.map(|response| response.status);
        assert_eq!(answer, Some(200), "{engine}");
        let metrics = settled(&proxy).await;
        let counts = outcomes(&metrics);
        assert_eq!(sampled(&metrics), 1, "{engine}: {counts:?}");
        for copy in shadow.received() {
            assert_eq!(copy.body.len(), body.len(), "{engine}: {counts:?}");
        }
    }
}

/// The hyper path: an h2c client that resets its stream while the upload waits on a primary
/// that takes nothing. hyper drops the request at once, before the body is polled again; the
/// copy is still the client's loss (its body had failed), not the primary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_resets_while_the_primary_holds_its_upload_is_a_client_abort() {
    let primary = raw_primary(Misbehaves::StopsReading).await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let proxy = proxy_for(primary.addr, shadow.addr, "native", false, "").await;
    let (frames, body) = channel_body(64);
    let request = Request::post(proxy.url("/held")).body(body).unwrap();
    // More than the sockets to the primary hold: the upload soon waits on the primary.
    let feeder = tokio::spawn(async move {
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..200 {
            if frames.send(Frame::data(piece.clone())).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    // Given up on before the primary's response timeout (500 ms): RST_STREAM.
    let answer =
        tokio::time::timeout(Duration::from_millis(250), h2_client().request(request)).await;
    assert!(answer.is_err(), "no answer can come");
    drop(answer);
    counted_once_as(
        &proxy,
        &shadow,
        "dropped_client_aborted",
        "h2c client resets",
    )
    .await;
    feeder.abort();
}
