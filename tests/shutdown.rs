#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Readiness and graceful shutdown: in-flight requests finish, new connections are refused,
//! readiness turns 503 while draining, idle connections do not hold the drain up, and the
//! grace period bounds it.

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::net::TcpStream;

async fn slow(latency: Duration) -> Upstream {
    upstream()
        .always(http::StatusCode::OK, "slow but complete\n")
        .with_latency(latency)
        .start()
        .await
}

async fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn health_and_readiness_answer_200_while_serving() {
    let upstream = slow(Duration::ZERO).await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let admin = |path: &str| format!("http://{}{path}", proxy.admin);
    assert_eq!(get(&admin("/healthz")).await.status, 200);
    assert_eq!(get(&admin("/readyz")).await.status, 200);
    assert_eq!(get(&admin("/nope")).await.status, 404);
    assert_eq!(get(&proxy.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_an_in_flight_request_and_refuses_new_connections() {
    let upstream = slow(Duration::from_secs(1)).await;
    let mut proxy = Shadowtap::in_front_of(upstream.addr).await;
    let url = proxy.url("/slow");
    let in_flight = tokio::spawn(async move { send(&http1_client(), get_request(&url)).await });
    until("the request reaches the upstream", || upstream.count() == 1).await;

    proxy.begin_shutdown();
    let readyz = format!("http://{}/readyz", proxy.admin);
    let ready = get(&readyz).await;
    assert_eq!(ready.status, 503, "draining is not ready");
    let addr = proxy.addr;
    within("the live port to refuse connections", async {
        while !refuses_connections(addr).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let reply = within("in-flight request", in_flight)
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "slow but complete\n");
    proxy.stopped().await;
    assert!(refuses_connections(proxy.admin).await, "admin closes last");
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let upstream = slow(Duration::ZERO).await;
    // grace_period is 5 s in simple_toml; idle connections must close at once.
    let mut proxy = Shadowtap::in_front_of(upstream.addr).await;
    let h1 = http1_client();
    let h2 = h2_client();
    assert_eq!(
        send(&h1, get_request(&proxy.url("/")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        send(&h2, get_request(&proxy.url("/")))
            .await
            .unwrap()
            .status,
        200
    );
    let started = Instant::now();
    proxy.begin_shutdown();
    proxy.stopped().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "idle connections held the drain for {:?}",
        started.elapsed()
    );
    drop((h1, h2));
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let upstream = slow(Duration::from_secs(20)).await;
    let text = simple_toml(upstream.addr, "", "response_timeout = \"30s\"")
        .replace("grace_period = \"5s\"", "grace_period = \"300ms\"");
    let mut proxy = Shadowtap::start(config(&text)).await;
    let url = proxy.url("/stuck");
    let in_flight = tokio::spawn(async move { send(&http1_client(), get_request(&url)).await });
    until("the request reaches the upstream", || upstream.count() == 1).await;
    let started = Instant::now();
    proxy.begin_shutdown();
    proxy.stopped().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drain took {:?} with a 300ms grace period",
        started.elapsed()
    );
    let outcome = within("client sees the cut", in_flight).await.unwrap();
    assert!(
        outcome.is_err(),
        "cut-off request reported success: {outcome:?}"
    );
}
