#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The upstream keep-alive pool, seen from a raw TCP upstream that counts its connections:
//! connections are reused, never more than the concurrency needs, expired when idle, and an
//! upstream that closes connections after each answer (with or without saying so) costs
//! reconnections, never a failed client request.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the raw upstream ends each exchange.
#[derive(Clone, Copy)]
enum Ending {
    /// Keep the connection open for the next request.
    KeepAlive,
    /// Answer with `Connection: close` and close.
    AnnouncedClose,
    /// Answer as if keeping it, then close anyway (an upstream idle timeout at the worst time).
    SilentClose,
}

/// A minimal HTTP/1.1 upstream for bodiless requests; returns its address and a counter of
/// accepted connections.
async fn counting_upstream(ending: Ending) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head per exchange (the test sends no bodies).
                    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buffer.drain(..end);
                    let answer: &[u8] = match ending {
                        Ending::AnnouncedClose => {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        }
                        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    };
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    if !matches!(ending, Ending::KeepAlive) {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

async fn start(upstream: SocketAddr, upstream_extra: &str) -> Shadowtap {
    Shadowtap::start(config(&simple_toml(upstream, "", upstream_extra))).await
}

async fn get_ok(proxy: &Shadowtap, path: &str) {
    let reply = get(&proxy.url(path)).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    assert_eq!(reply.text(), "ok");
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (upstream, connections) = counting_upstream(Ending::KeepAlive).await;
    let proxy = start(upstream, "").await;
    for i in 0..20 {
        get_ok(&proxy, &format!("/seq/{i}")).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_clients_need_no_more_connections_than_their_number() {
    let (upstream, connections) = counting_upstream(Ending::KeepAlive).await;
    let proxy = Arc::new(start(upstream, "").await);
    let mut clients = Vec::new();
    for client in 0..8 {
        let proxy = proxy.clone();
        clients.push(tokio::spawn(async move {
            for i in 0..10 {
                get_ok(&proxy, &format!("/c{client}/{i}")).await;
            }
        }));
    }
    for client in clients {
        within("client", client).await.unwrap();
    }
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "{opened} upstream connections for 8 clients"
    );
}

#[tokio::test]
async fn idle_connections_expire() {
    let (upstream, connections) = counting_upstream(Ending::KeepAlive).await;
    let proxy = start(upstream, r#"pool_idle_timeout = "200ms""#).await;
    get_ok(&proxy, "/a").await;
    get_ok(&proxy, "/b").await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    get_ok(&proxy, "/c").await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the idle connection expired"
    );
}

#[tokio::test]
async fn upstreams_that_close_after_each_answer_cost_reconnections_not_errors() {
    for ending in [Ending::AnnouncedClose, Ending::SilentClose] {
        let (upstream, connections) = counting_upstream(ending).await;
        let proxy = start(upstream, "").await;
        for i in 0..30 {
            get_ok(&proxy, &format!("/close/{i}")).await;
            // A client that is not in a hurry: the upstream's close has time to be seen.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 30);
        let metrics = proxy.metrics().await;
        assert_eq!(
            metric_value(
                &metrics,
                "shadowtap_requests_total",
                &[("route", "default"), ("status_class", "2xx")]
            ),
            Some(30.0)
        );
    }
}
