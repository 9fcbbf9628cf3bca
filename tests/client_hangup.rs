#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Clients that hang up while the primary is still thinking, on every engine and protocol
//! (the native HTTP/1.1 engine, hyper's HTTP/1.1, h2c):
//! * the hang-up is noticed at once, and the upstream request is abandoned (the upstream
//!   sees its connection closed, long before its answer or the response timeout);
//! * it is counted once, as nginx's 499: `status_class="client_closed"` on
//!   `shadowtap_requests_total` and `reason="client_closed"` on
//!   `shadowtap_proxy_errors_total`, never as a 504;
//! * every request that reached the router is counted in `shadowtap_requests_total`
//!   exactly once, wherever the client left;
//! * a pipelining client's next request, sent while the first waits, is no hang-up.

mod support;

use bytes::Bytes;
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::{Duration, Instant};
use support::raw::{thinking_upstream, RawClient, ThinkingUpstream};
use support::*;
use tokio::net::TcpStream;

/// How long the upstream thinks: far past what a test waits for the hang-up to be seen.
const THINK: Duration = Duration::from_secs(6);
/// The generous bound within which the hang-up must have reached the upstream.
const NOTICED_WITHIN: Duration = Duration::from_secs(3);

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: app.test\r\n\r\n").into_bytes()
}

/// The request counters that matter here, once they settle on `expected` requests (or the
/// step's time is up).
struct Counted {
    requests: f64,
    client_closed_class: f64,
    client_closed_errors: f64,
    timeouts: f64,
}

async fn counted(proxy: &Shadowtap, expected: f64) -> Counted {
    let deadline = Instant::now() + STEP;
    loop {
        let metrics = proxy.metrics().await;
        let counted = Counted {
            requests: metric_sum(&metrics, "shadowtap_requests_total", &[]),
            client_closed_class: metric_sum(
                &metrics,
                "shadowtap_requests_total",
                &[("status_class", "client_closed")],
            ),
            client_closed_errors: metric_sum(
                &metrics,
                "shadowtap_proxy_errors_total",
                &[("reason", "client_closed")],
            ),
            timeouts: metric_sum(
                &metrics,
                "shadowtap_proxy_errors_total",
                &[("reason", "upstream_timeout")],
            ),
        };
        if counted.requests >= expected || Instant::now() > deadline {
            return counted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the one request the upstream read saw its connection closed within
/// [`NOTICED_WITHIN`] of the hang-up, and that it was counted once as `client_closed`.
async fn assert_abandoned(what: &str, upstream: &ThinkingUpstream, proxy: &Shadowtap) {
    until(
        &format!("{what}: the upstream sees its connection closed"),
        || upstream.closed() == 1,
    )
    .await;
    let closed_after = upstream.closed_after.lock().unwrap()[0].unwrap();
    assert!(
        closed_after < NOTICED_WITHIN,
        "{what}: upstream connection closed only after {closed_after:?}"
    );
    let counted = counted(proxy, 1.0).await;
    assert_eq!(counted.requests, 1.0, "{what}: requests_total");
    assert_eq!(
        counted.client_closed_class, 1.0,
        "{what}: client_closed class"
    );
    assert_eq!(
        counted.client_closed_errors, 1.0,
        "{what}: client_closed reason"
    );
    assert_eq!(counted.timeouts, 0.0, "{what}: no 504");
}

/// HTTP/1.1 on both engines: the client sends its request and closes after 200 ms.
#[tokio::test]
async fn an_http1_client_that_hangs_up_is_noticed_and_counted_once() {
    for engine in ENGINES {
        let upstream = thinking_upstream(THINK, 4).await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get("/slow")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(client);
        assert_abandoned(engine, &upstream, &proxy).await;
    }
}

/// h2c: the client resets its stream (drops the request) after 200 ms; the connection
/// stays open.
#[tokio::test]
async fn an_h2c_client_that_resets_its_stream_is_noticed_and_counted_once() {
    let upstream = thinking_upstream(THINK, 4).await;
    let proxy = shadowtap_with_engine(upstream.addr, "native").await;
    let client = h2_client();
    let request = send(&client, get_request(&proxy.url("/slow")));
    let abandoned = tokio::time::timeout(Duration::from_millis(200), request).await;
    assert!(abandoned.is_err(), "the upstream answered too early");
    assert_abandoned("h2c stream reset", &upstream, &proxy).await;
}

/// h2c: the client closes the whole connection after 200 ms.
#[tokio::test]
async fn an_h2c_client_that_closes_its_connection_is_noticed_and_counted_once() {
    let upstream = thinking_upstream(THINK, 4).await;
    let proxy = shadowtap_with_engine(upstream.addr, "native").await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(proxy.url("/slow"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::spawn(sender.send_request(request));
    tokio::time::sleep(Duration::from_millis(200)).await;
    connection.abort();
    response.abort();
    assert_abandoned("h2c connection close", &upstream, &proxy).await;
}

/// A pipelining client sends its next request while the first waits: no hang-up; both are
/// answered in order and counted with their status.
#[tokio::test]
async fn a_pipelined_request_is_not_a_hang_up() {
    for engine in ENGINES {
        let upstream = thinking_upstream(Duration::from_millis(300), 4).await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(&get("/first")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.send(&get("/second")).await;
        for which in ["first", "second"] {
            let answer = client.response().await;
            let answer = answer.unwrap_or_else(|| panic!("{engine}: no answer to the {which}"));
            assert_eq!(answer.status, 200, "{engine}: {which}");
        }
        let counted = counted(&proxy, 2.0).await;
        assert_eq!(counted.requests, 2.0, "{engine}");
        assert_eq!(counted.client_closed_class, 0.0, "{engine}");
        assert_eq!(
            upstream.closed(),
            0,
            "{engine}: the upstream request was not abandoned"
        );
    }
}

/// Where a client leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// Half-way through its request head: it never reaches the router.
    InHead,
    /// After its request reached the upstream, while the upstream thinks.
    Waiting,
    /// After the response head, in the middle of the body.
    MidBody,
    /// Not at all: reads the whole answer.
    Never,
}

/// N clients on both engines, each leaving at a random point: the sum of
/// `shadowtap_requests_total` is the number of requests that reached the router, and
/// `client_closed` the number left while waiting.
#[tokio::test]
async fn wherever_clients_leave_each_routed_request_is_counted_once() {
    for engine in ENGINES {
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        // Thinks long enough that every "waiting" hang-up comes before the answer.
        let upstream = thinking_upstream(Duration::from_millis(700), 64 * 1024).await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let (mut routed, mut waiting) = (0, 0);
        let mut clients = Vec::new();
        for round in 0..24 {
            let leave = [Leave::InHead, Leave::Waiting, Leave::MidBody, Leave::Never]
                [rng.below(4) as usize];
            let pause = Duration::from_millis(rng.below(300));
            if !matches!(leave, Leave::InHead) {
                routed += 1;
            }
            if matches!(leave, Leave::Waiting) {
                waiting += 1;
            }
            let addr = proxy.addr;
            let seen_before = upstream.requests();
            let mut client = RawClient::connect(addr).await;
            let request = get(&format!("/r/{round}"));
            match leave {
                Leave::InHead => {
                    client.send(&request[..request.len() / 2]).await;
                    tokio::time::sleep(pause).await;
                    continue;
                }
                _ => client.send(&request).await,
            }
            // The request is under way only once the upstream has it.
            until("the upstream to read the request", || {
                upstream.requests() > seen_before
            })
            .await;
            clients.push(tokio::spawn(async move {
                match leave {
                    Leave::Waiting => tokio::time::sleep(pause).await,
                    Leave::MidBody => {
                        let mut byte = [0u8; 1];
                        let _ = tokio::io::AsyncReadExt::read(&mut client.stream, &mut byte).await;
                        tokio::time::sleep(pause / 10).await;
                    }
                    Leave::Never => {
                        let answer = client.response().await;
                        assert_eq!(answer.map(|a| a.status), Some(200), "{leave:?}");
                    }
                    Leave::InHead => {}
                }
                drop(client);
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        let counted = counted(&proxy, routed as f64).await;
        assert_eq!(counted.requests, routed as f64, "{engine}: requests_total");
        assert_eq!(
            counted.client_closed_class, waiting as f64,
            "{engine}: client_closed"
        );
        assert_eq!(counted.client_closed_errors, waiting as f64, "{engine}");
        assert_eq!(counted.timeouts, 0.0, "{engine}");
    }
}

/// The same over h2c, on one multiplexed connection: streams reset while waiting, streams
/// dropped after the response head, streams read to the end.
#[tokio::test]
async fn wherever_h2c_streams_are_dropped_each_routed_request_is_counted_once() {
    use http_body_util::BodyExt;
    let mut rng = Rng(0x1405_7b7e_f767_814f);
    let upstream = thinking_upstream(Duration::from_millis(700), 64 * 1024).await;
    let proxy = shadowtap_with_engine(upstream.addr, "native").await;
    let client = h2_client();
    let (mut sent, mut waiting) = (0, 0);
    let mut streams = Vec::new();
    for round in 0..18 {
        let leave = [Leave::Waiting, Leave::MidBody, Leave::Never][rng.below(3) as usize];
        let pause = Duration::from_millis(rng.below(300));
        sent += 1;
        if matches!(leave, Leave::Waiting) {
            waiting += 1;
        }
        let seen_before = upstream.requests();
        let request = client.request(get_request(&proxy.url(&format!("/h2/{round}"))));
        let stream = tokio::spawn(async move {
            let response = request.await.expect("response head");
            let mut body = response.into_body();
            match leave {
                Leave::MidBody => {
                    let _ = body.frame().await;
                }
                _ => {
                    let all = body.collect().await.expect("whole body");
                    assert_eq!(all.to_bytes().len(), 64 * 1024);
                }
            }
        });
        until("the upstream to read the request", || {
            upstream.requests() > seen_before
        })
        .await;
        if matches!(leave, Leave::Waiting) {
            // Dropping the request resets its stream; the connection stays.
            tokio::time::sleep(pause).await;
            stream.abort();
        } else {
            streams.push(stream);
        }
    }
    for stream in streams {
        stream.await.unwrap();
    }
    let counted = counted(&proxy, sent as f64).await;
    assert_eq!(counted.requests, sent as f64, "requests_total");
    assert_eq!(counted.client_closed_class, waiting as f64, "client_closed");
    assert_eq!(counted.client_closed_errors, waiting as f64);
    assert_eq!(counted.timeouts, 0.0);
}

/// A request still waiting on the upstream when the shutdown grace period ends is cut off
/// with its connection: it too is counted once, as `client_closed` (nobody answered it).
#[tokio::test]
async fn a_request_cut_off_by_the_end_of_the_grace_period_is_counted_once() {
    for engine in ENGINES {
        let upstream = thinking_upstream(THINK, 4).await;
        let text = simple_toml(upstream.addr, &engine_line(engine), "")
            .replace("grace_period = \"5s\"", "grace_period = \"300ms\"");
        let app = within("bind", shadowtap::BoundApp::bind(config(&text)))
            .await
            .unwrap();
        let addr = app.listen_addrs()[0];
        let metrics = app.metrics();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        let mut client = RawClient::connect(addr).await;
        client.send(&get("/slow")).await;
        until("the upstream to read the request", || {
            upstream.requests() == 1
        })
        .await;
        stop.send(()).unwrap();
        within("serve() to return", served).await.unwrap();
        let text = metrics.render();
        let requests = metric_sum(&text, "shadowtap_requests_total", &[]);
        let closed = &[("status_class", "client_closed")];
        let closed = metric_sum(&text, "shadowtap_requests_total", closed);
        assert_eq!((requests, closed), (1.0, 1.0), "{engine}");
        drop(client);
    }
}
