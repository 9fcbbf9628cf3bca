//! The gRPC load cell's tools (`loadtests/grpc.sh`): the test service of
//! `tests/protos/echo.proto` as a real tonic server for the primary and the shadows, the
//! prepared request frame the load generator sends, and one real tonic call to check that a
//! contender carries gRPC (trailers and all) before it is measured.
//!
//! ```text
//! cargo run --release --example grpc_bench -- serve 127.0.0.1:18381 primary
//! cargo run --release --example grpc_bench -- frame /tmp/echo.grpc hello
//! cargo run --release --example grpc_bench -- call http://127.0.0.1:18390 hello
//! ```
//!
//! `serve ADDR NAME` answers every call until SIGTERM or Ctrl-C, then prints one JSON line
//! with the calls it received (so the script can tell how many copies a shadow got).
//! `frame FILE TEXT` writes a unary `Echo/Unary` request for TEXT as it goes on the wire (the
//! five-byte gRPC prefix and the message), for `oha -D` or `h2load -d`.
//! `call URL TEXT` makes one unary call over h2c and exits non-zero unless it came back OK
//! with TEXT echoed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/grpc_common/mod.rs"]
mod grpc_common;

use grpc_common::{echo, echo_server_on, Behaviour};
use prost::Message;
use std::sync::atomic::Ordering;

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
        ["serve", addr, name] => serve(addr, name).await,
        ["frame", file, text] => frame(file, text),
        ["call", url, text] => call(url, text).await,
        _ => Err("usage: grpc_bench serve ADDR NAME | frame FILE TEXT | call URL TEXT".into()),
    }
}

async fn serve(addr: &str, name: &str) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let behaviour = Behaviour {
        // The process serves one name for its whole life.
        name: Box::leak(name.to_string().into_boxed_str()),
        ..Behaviour::default()
    };
    let server = echo_server_on(listener, behaviour);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "{{\"calls\": {}}}",
        server.service.calls.load(Ordering::SeqCst)
    );
    Ok(())
}

fn frame(file: &str, text: &str) -> Result<(), Error> {
    let message = echo(text).encode_to_vec();
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    framed.extend_from_slice(&message);
    std::fs::write(file, framed)?;
    Ok(())
}

async fn call(url: &str, text: &str) -> Result<(), Error> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    let mut client = grpc_common::pb::echo_client::EchoClient::new(channel);
    let reply = client.unary(echo(text)).await?.into_inner();
    if reply.text != text {
        return Err(format!("the reply echoed {:?}, not {text:?}", reply.text).into());
    }
    println!(
        "{{\"text\": {:?}, \"server\": {:?}}}",
        reply.text, reply.server
    );
    Ok(())
}
