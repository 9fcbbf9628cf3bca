//! The WebSocket load cell's two tools (`loadtests/websocket.sh`): a WebSocket echo server
//! and a load generator, both tokio-tungstenite, so every contender (shadowtap, nginx)
//! carries real WebSocket traffic between real peers.
//!
//! ```text
//! cargo run --release --example ws_bench -- echo 127.0.0.1:18381
//! cargo run --release --example ws_bench -- load ws://127.0.0.1:18390/ws 64 5 128
//! ```
//!
//! `echo ADDR` serves until killed: every text and binary message back as it came.
//! `load URL CONNECTIONS SECONDS SIZE` opens CONNECTIONS WebSockets to URL; each sends a
//! SIZE-byte binary message and waits for its echo, over and over, for SECONDS; then each
//! closes (the close handshake), and it prints one JSON line: the echoes that came back
//! intact, the ones that did not, and the connections that failed. Bounded in time and
//! count; talks only to the URL it is given.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["echo", addr] => echo(addr).await,
        ["load", url, connections, seconds, size] => {
            load(url, connections.parse()?, seconds.parse()?, size.parse()?).await
        }
        _ => Err("usage: ws_bench echo ADDR | load URL CONNECTIONS SECONDS SIZE".into()),
    }
}

async fn echo(addr: &str) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// What one connection did.
#[derive(Default)]
struct Tally {
    echoed: u64,
    wrong: u64,
    failed: u64,
}

async fn load(url: &str, connections: usize, seconds: u64, size: usize) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let url = url.to_string();
        tasks.spawn(async move { one(&url, deadline, size).await });
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let tally = done.unwrap_or(Tally {
            failed: 1,
            ..Tally::default()
        });
        total.echoed += tally.echoed;
        total.wrong += tally.wrong;
        total.failed += tally.failed;
    }
    println!(
        "{{\"echoed\": {}, \"wrong\": {}, \"failed\": {}, \"connections\": {connections}, \"size\": {size}}}",
        total.echoed, total.wrong, total.failed
    );
    Ok(())
}

async fn one(url: &str, deadline: Instant, size: usize) -> Tally {
    let mut tally = Tally::default();
    let Some(authority) = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
    else {
        tally.failed = 1;
        return tally;
    };
    let Ok(stream) = TcpStream::connect(authority).await else {
        tally.failed = 1;
        return tally;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(url, stream).await else {
        tally.failed = 1;
        return tally;
    };
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    while Instant::now() < deadline {
        if ws.send(Message::binary(payload.clone())).await.is_err() {
            tally.failed = 1;
            return tally;
        }
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(echo)))) if echo[..] == payload[..] => tally.echoed += 1,
            Ok(Some(Ok(_))) => tally.wrong += 1,
            _ => {
                tally.failed = 1;
                return tally;
            }
        }
    }
    let _ = ws.close(None).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
    tally
}
