#![allow(clippy::unwrap_used, clippy::expect_used)]
//! gRPC end to end through the real binary: a tonic client over h2c, shadowtap, a tonic server
//! over h2c. Every call kind streams through unbuffered, statuses with details and trailers
//! arrive intact, and the failures shadowtap answers itself (unreachable upstream, timeouts,
//! the call's own `grpc-timeout`) reach the client as gRPC statuses.

mod grpc_common;
mod support;

use grpc_common::*;
use http::{Method, Request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{closed_port, within, Process};
use tokio_stream::StreamExt;

/// The real binary in front of an h2c upstream at `primary`, `upstream_extra` lines in
/// its `[upstreams.app]`.
struct Binary {
    process: Process,
    addr: SocketAddr,
    _config: tempfile::NamedTempFile,
}

impl Binary {
    async fn start(primary: SocketAddr, upstream_extra: &str) -> Binary {
        let listen = closed_port().await;
        let admin = closed_port().await;
        let toml = format!(
            r#"
[[listeners]]
address = "{listen}"

[admin]
address = "{admin}"

[upstreams.app]
url = "http://{primary}"
protocol = "http2"
{upstream_extra}

[[routes]]
name = "echo"
path_prefix = "/shadowtap.test.Echo/"
primary = "app"
"#
        );
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), toml).unwrap();
        let mut process = Process::start(
            &["run", "--config", config.path().to_str().unwrap()],
            &[("RUST_LOG", "warn")],
        );
        process.ready(&admin.to_string()).await;
        Binary {
            process,
            addr: listen,
            _config: config,
        }
    }
}

async fn through_binary(behaviour: Behaviour) -> (EchoServerHandle, Binary) {
    let server = echo_server(behaviour).await;
    let binary = Binary::start(server.addr, "").await;
    (server, binary)
}

#[tokio::test]
async fn unary_calls_pass_through() {
    let (server, binary) = through_binary(Behaviour {
        name: "primary",
        ..Behaviour::default()
    })
    .await;
    let mut client = client(binary.addr).await;
    for text in ["one", "two", "three"] {
        let reply = within("a unary call", client.unary(echo(text)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.text, text);
        assert_eq!(reply.server, "primary");
        assert_eq!(reply.item.unwrap().price, 9.5);
        assert_eq!(reply.items.len(), 2);
    }
    assert_eq!(
        server
            .service
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    drop(binary.process);
}

#[tokio::test]
async fn a_server_stream_arrives_message_by_message() {
    let (server, binary) = through_binary(Behaviour::default()).await;
    let mut client = client(binary.addr).await;
    let request = pb::EchoRequest {
        text: "s".into(),
        repeat: 4,
        // Non-zero: the server holds the rest of the stream until released.
        delay_ms: 1,
        ..pb::EchoRequest::default()
    };
    let mut stream = within("the stream's head", client.server_stream(request))
        .await
        .unwrap()
        .into_inner();
    // The first message arrives while the server still holds the others: nothing buffers it.
    let first = within("the first message alone", stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.sequence, 0);
    server.service.release.notify_one();
    let mut sequences = vec![first.sequence];
    while let Some(reply) = within("the rest of the stream", stream.next()).await {
        sequences.push(reply.unwrap().sequence);
    }
    assert_eq!(sequences, vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn a_client_stream_reaches_the_server_message_by_message() {
    let (server, binary) = through_binary(Behaviour::default()).await;
    let mut client = client(binary.addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(echo("a")).await.unwrap();
    let first_received = server.service.first_received.clone();
    let waiting = first_received.notified();
    let call = tokio::spawn(async move {
        client
            .client_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // The server has the first message while the client's stream is still open.
    within("the first message at the server", waiting).await;
    tx.send(echo("b")).await.unwrap();
    tx.send(echo("c")).await.unwrap();
    drop(tx);
    let reply = within("the reply", call)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(reply.text, "a+b+c");
    assert_eq!(reply.sequence, 3);
}

#[tokio::test]
async fn a_bidi_stream_ping_pongs() {
    let (_server, binary) = through_binary(Behaviour::default()).await;
    let mut client = client(binary.addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(echo("ping 0")).await.unwrap();
    let mut replies = within(
        "the stream's head",
        client.bidi(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .unwrap()
    .into_inner();
    // Each request is sent only after the previous reply came back: a proxy that held
    // either direction back would deadlock here.
    for round in 0..5u32 {
        let reply = within("a reply", replies.next()).await.unwrap().unwrap();
        assert_eq!(reply.text, format!("ping {round}"));
        assert_eq!(reply.sequence, round);
        if round < 4 {
            tx.send(echo(&format!("ping {}", round + 1))).await.unwrap();
        }
    }
    drop(tx);
    assert!(within("the end", replies.next()).await.is_none());
}

#[tokio::test]
async fn statuses_with_details_and_trailers_arrive_intact() {
    let (_server, binary) = through_binary(Behaviour::default()).await;
    let mut client = client(binary.addr).await;
    let request = pb::EchoRequest {
        text: "bad".into(),
        fail_with: tonic::Code::InvalidArgument as i32,
        ..pb::EchoRequest::default()
    };
    let status = within("a failing call", client.unary(request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "failed: bad ✗");
    assert_eq!(status.details(), b"\x08\x96\x01details\xff");
    assert_eq!(status.metadata().get(TRAILER).unwrap(), "kept");

    // After messages: the status comes in the trailers of a stream that carried data.
    let mut stream = within(
        "a failing stream",
        client.server_stream(pb::EchoRequest {
            repeat: 2,
            fail_with: tonic::Code::ResourceExhausted as i32,
            ..request
        }),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(stream.next().await.unwrap().unwrap().sequence, 0);
    assert_eq!(stream.next().await.unwrap().unwrap().sequence, 1);
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.details(), b"\x08\x96\x01details\xff");
    assert_eq!(status.metadata().get(TRAILER).unwrap(), "kept");
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let dead = closed_port().await;
    let binary = Binary::start(dead, "connect_timeout = \"1s\"").await;
    let mut client = client(binary.addr).await;
    let status = within("a call to nowhere", client.unary(echo("x")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("upstream unreachable"),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_upstream_slower_than_its_response_timeout_is_deadline_exceeded() {
    let server = echo_server(Behaviour::default()).await;
    let binary = Binary::start(server.addr, "response_timeout = \"300ms\"").await;
    let mut client = client(binary.addr).await;
    let started = Instant::now();
    let status = within(
        "a slow call",
        client.unary(pb::EchoRequest {
            delay_ms: 5_000,
            ..echo("slow")
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("gateway timeout"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The call's own deadline: a raw h2 request carrying `grpc-timeout` (no client-side timer)
/// to an upstream that never answers is answered by shadowtap, gRPC-shaped, when it runs out.
#[tokio::test]
async fn the_calls_grpc_timeout_is_honoured() {
    let silent = support::upstream().hang().start().await;
    let binary = Binary::start(silent.addr, "").await;
    let mut sender = support::h2_connection(binary.addr).await;
    // One empty EchoRequest message: flag 0, length 0.
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/shadowtap.test.Echo/Unary", binary.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(support::full(&b"\0\0\0\0\0"[..]))
        .unwrap();
    let started = Instant::now();
    let response = within("the deadline's answer", sender.send_request(request))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "4");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());
}
