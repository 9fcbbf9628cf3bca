#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A client that stops reading its response (`[[listeners]] client_send_timeout`), against a
//! real upstream sending 64 MiB: the proxy disconnects it once it has taken no byte for the
//! timeout, on the native engine and on hyper's path, instead of holding the connection, the
//! upstream's and its buffers forever; a client that reads slowly but steadily gets every
//! byte; the key is validated.

mod support;

use shadowtap::config::{Config, Overrides};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIG: usize = 64 * 1024 * 1024;

/// An upstream answering every request with `BIG` bytes.
async fn big_upstream() -> Upstream {
    upstream()
        .fallback(|_| async { http::Response::new(full(vec![b'b'; BIG])) })
        .start()
        .await
}

/// Every byte until the proxy closes (or resets) the connection.
async fn read_rest(stream: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    within("the rest of the answer, then the close", async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => total += read,
            }
        }
    })
    .await;
    total
}

/// A raw request: plain HTTP/1.1 (the native engine serves it) or HTTP/1.0 (handed to
/// hyper).
fn request(http10: bool) -> &'static [u8] {
    match http10 {
        false => b"GET /big HTTP/1.1\r\nhost: app\r\n\r\n",
        true => b"GET /big HTTP/1.0\r\nhost: app\r\n\r\n",
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_send_timeout() {
    let upstream = big_upstream().await;
    for engine in ENGINES {
        let proxy =
            shadowtap_on(upstream.addr, engine, "client_send_timeout = \"300ms\"", "").await;
        for http10 in [false, true] {
            let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
            stream.write_all(request(http10)).await.unwrap();
            // Read nothing for ten times the timeout: the socket buffers fill, the proxy's
            // writes wait, and it gives up.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let received = read_rest(&mut stream).await;
            assert!(
                received < BIG,
                "{engine}, HTTP/1.{}: {received} bytes, the whole answer: the stalled client \
                 was never disconnected",
                if http10 { 0 } else { 1 }
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_reads_slowly_but_steadily_gets_every_byte() {
    // 4 MiB answers read 256 KiB every 50 ms: the client never takes nothing for the 300 ms
    // timeout, however long the whole answer takes.
    const ANSWER: usize = 4 * 1024 * 1024;
    let upstream = upstream()
        .fallback(|_| async { http::Response::new(full(vec![b's'; ANSWER])) })
        .start()
        .await;
    for engine in ENGINES {
        let proxy =
            shadowtap_on(upstream.addr, engine, "client_send_timeout = \"300ms\"", "").await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut total = 0;
        let mut buffer = vec![0u8; 256 * 1024];
        within("a slow read of the whole answer", async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => total += read,
                }
            }
        })
        .await;
        assert!(
            total > ANSWER,
            "{engine}: {total} bytes (head and body expected)"
        );
    }
}

#[test]
fn client_send_timeout_is_validated_naming_the_key() {
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = simple_toml(upstream, "client_send_timeout = \"0s\"", "");
    let error = match Config::from_toml(&text, &Overrides::default()) {
        Ok(_) => panic!("client_send_timeout = \"0s\" was accepted"),
        Err(error) => error,
    };
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{error}");
    assert_eq!(problems[0].path, "listeners[0].client_send_timeout");
    let config = Config::from_toml(&simple_toml(upstream, "", ""), &Overrides::default()).unwrap();
    assert_eq!(
        config.listeners[0].client_send_timeout,
        Duration::from_secs(60),
        "the default, as nginx's send_timeout"
    );
}
