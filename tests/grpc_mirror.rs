#![allow(clippy::unwrap_used, clippy::expect_used)]
//! gRPC calls mirrored to a shadow tonic server and compared: messages structurally (by
//! field name with the route's descriptor set, by field number without), `grpc-status` as
//! kind `status`, streams message by message; a failing shadow never touches the client's
//! call.

mod grpc_common;
mod support;

use grpc_common::*;
use serde_json::Value;
use std::net::SocketAddr;
use support::compare::{samples, wait_compared, SHADOW};
use support::{config, listener_and_admin, within, Shadowtap};
use tokio_stream::StreamExt;

/// tests/protos/echo.pb, made by the command in tests/protos/README.md.
fn descriptor_set() -> String {
    format!("{}/tests/protos/echo.pb", env!("CARGO_MANIFEST_DIR"))
}

/// shadowtap with the echo service's route mirrored (every call) to `shadow`;
/// `route_compare` lines go into `[routes.compare]`.
async fn mirrored(primary: SocketAddr, shadow: SocketAddr, route_compare: &str) -> Shadowtap {
    let head = listener_and_admin("");
    let toml = format!(
        r#"{head}
[upstreams.app]
url = "http://{primary}"
protocol = "http2"

[upstreams.{SHADOW}]
url = "http://{shadow}"
protocol = "http2"
connect_timeout = "1s"

[[routes]]
name = "echo"
path_prefix = "/shadowtap.test.Echo/"
primary = "app"

[[routes.mirror.shadows]]
upstream = "{SHADOW}"
methods = "all"

[routes.compare]
{route_compare}

[shutdown]
grace_period = "1s"
"#
    );
    Shadowtap::start(config(&toml)).await
}

/// [`mirrored`], its route comparing by the echo service's descriptor set.
async fn mirrored_by_descriptors(primary: SocketAddr, shadow: SocketAddr) -> Shadowtap {
    let set = descriptor_set();
    mirrored(
        primary,
        shadow,
        &format!("protobuf_descriptor_set = {set:?}"),
    )
    .await
}

/// The body differences of the route's newest sample.
async fn newest_differences(proxy: &Shadowtap) -> Vec<Value> {
    let samples = samples(proxy, "echo").await;
    let newest = samples.first().expect("a divergent sample");
    newest["differences"].as_array().unwrap().clone()
}

fn find<'a>(differences: &'a [Value], path: &str) -> &'a Value {
    differences
        .iter()
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("no difference at {path}: {differences:#?}"))
}

/// The differences and the sample of a call whose shadow answers one field changed.
async fn one_changed_field(route_compare: &str) -> (Vec<Value>, Value) {
    let primary = echo_server(Behaviour::default()).await;
    let shadow = echo_server(Behaviour {
        price_offset: 1.0,
        ..Behaviour::default()
    })
    .await;
    let proxy = mirrored(primary.addr, shadow.addr, route_compare).await;
    let mut client = client(proxy.addr).await;
    let reply = within("a mirrored call", client.unary(echo("hi")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.item.unwrap().price,
        9.5,
        "the client gets the primary's"
    );
    wait_compared(&proxy, "echo", 1).await;
    let sample = samples(&proxy, "echo").await.remove(0);
    (newest_differences(&proxy).await, sample)
}

#[tokio::test]
async fn a_changed_field_is_named_by_the_descriptor_set() {
    let set = descriptor_set();
    let (differences, sample) = one_changed_field(&format!(
        "protobuf_descriptor_set = {set:?}\nredact_pointers = [\"/text\"]"
    ))
    .await;
    // The sample shows both answers decoded, with the redacted field replaced.
    let primary_body = sample["primary"]["body"].as_str().unwrap();
    let shadow_body = sample["shadow_response"]["body"].as_str().unwrap();
    assert!(primary_body.contains(r#""price":9.5"#), "{primary_body}");
    assert!(shadow_body.contains(r#""price":10.5"#), "{shadow_body}");
    assert!(
        primary_body.contains(r#""text":"[REDACTED]""#),
        "{primary_body}"
    );
    assert!(!primary_body.contains(r#""hi""#), "{primary_body}");
    assert_eq!(differences.len(), 1, "{differences:#?}");
    let price = find(&differences, "/item/price");
    assert_eq!(price["kind"], "body");
    assert_eq!(price["change"], "changed");
    assert_eq!(price["primary"], "9.5");
    assert_eq!(price["shadow"], "10.5");
}

/// Answers whose messages are gzip-compressed (`grpc-encoding: gzip`, a client that accepts
/// it) are decompressed and compared field by field, as uncompressed ones are.
#[tokio::test]
async fn compressed_messages_are_compared_field_by_field() {
    let primary = echo_server(Behaviour {
        gzip: true,
        ..Behaviour::default()
    })
    .await;
    let shadow = echo_server(Behaviour {
        gzip: true,
        price_offset: 1.0,
        ..Behaviour::default()
    })
    .await;
    let proxy = mirrored_by_descriptors(primary.addr, shadow.addr).await;
    let mut client = client(proxy.addr)
        .await
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let reply = within("a mirrored call", client.unary(echo("hi")))
        .await
        .unwrap();
    assert_eq!(
        reply
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "the answer was compressed"
    );
    assert_eq!(reply.into_inner().item.unwrap().price, 9.5);
    wait_compared(&proxy, "echo", 1).await;
    let differences = newest_differences(&proxy).await;
    assert_eq!(differences.len(), 1, "{differences:#?}");
    let price = find(&differences, "/item/price");
    assert_eq!(
        (&price["primary"], &price["shadow"]),
        (&"9.5".into(), &"10.5".into())
    );
}

#[tokio::test]
async fn without_a_descriptor_set_a_changed_field_is_named_by_number() {
    let (differences, _) = one_changed_field("").await;
    assert_eq!(differences.len(), 1, "{differences:#?}");
    let price = find(&differences, "/3/3");
    assert_eq!(price["kind"], "body");
    assert_eq!(price["primary"], "9.5");
    assert_eq!(price["shadow"], "10.5");
}

#[tokio::test]
async fn ignore_patterns_and_tolerance_apply_to_protobuf_fields() {
    let set = descriptor_set();
    let primary = echo_server(Behaviour::default()).await;
    let shadow = echo_server(Behaviour {
        price_offset: 1.0,
        name: "shadow",
        ..Behaviour::default()
    })
    .await;
    let proxy = mirrored(
        primary.addr,
        shadow.addr,
        &format!(
            "protobuf_descriptor_set = {set:?}\nignore = [\"/server\"]\nnumeric_tolerance = 1.5"
        ),
    )
    .await;
    let mut client = client(proxy.addr).await;
    within("a call", client.unary(echo("hi"))).await.unwrap();
    let metrics = wait_compared(&proxy, "echo", 1).await;
    assert!(
        samples(&proxy, "echo").await.is_empty(),
        "price within tolerance, server ignored: no divergence\n{metrics}"
    );
}

#[tokio::test]
async fn a_grpc_status_difference_is_kind_status() {
    let primary = echo_server(Behaviour::default()).await;
    let shadow = echo_server(Behaviour {
        always_fail: Some(tonic::Code::Unavailable),
        ..Behaviour::default()
    })
    .await;
    let proxy = mirrored(primary.addr, shadow.addr, "").await;
    let mut client = client(proxy.addr).await;
    within("a call", client.unary(echo("hi"))).await.unwrap();
    wait_compared(&proxy, "echo", 1).await;
    let differences = newest_differences(&proxy).await;
    let status = find(&differences, "grpc-status");
    assert_eq!(status["kind"], "status");
    assert_eq!(status["primary"], "0 OK");
    assert_eq!(status["shadow"], "14 UNAVAILABLE");
    // The trailers are compared as headers: the message and our trailer differ too.
    assert_eq!(find(&differences, "grpc-message")["kind"], "header");
    assert_eq!(find(&differences, TRAILER)["kind"], "header");
}

#[tokio::test]
async fn a_server_stream_is_compared_message_by_message() {
    let primary = echo_server(Behaviour::default()).await;
    let shadow = echo_server(Behaviour {
        price_offset: 1.0,
        ..Behaviour::default()
    })
    .await;
    let proxy = mirrored_by_descriptors(primary.addr, shadow.addr).await;
    let mut client = client(proxy.addr).await;
    let request = pb::EchoRequest {
        repeat: 3,
        ..echo("s")
    };
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    let mut count = 0;
    while let Some(reply) = within("the stream", stream.next()).await {
        assert_eq!(reply.unwrap().item.unwrap().price, 9.5);
        count += 1;
    }
    assert_eq!(count, 3);
    wait_compared(&proxy, "echo", 1).await;
    let differences = newest_differences(&proxy).await;
    let paths: Vec<&str> = differences
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/0/item/price", "/1/item/price", "/2/item/price"],
        "{differences:#?}"
    );
}

#[tokio::test]
async fn a_failing_shadow_never_touches_the_clients_stream() {
    let primary = echo_server(Behaviour::default()).await;
    // A shadow that refuses connections, and one that fails every call.
    let dead = support::closed_port().await;
    let failing = echo_server(Behaviour {
        always_fail: Some(tonic::Code::Internal),
        ..Behaviour::default()
    })
    .await;
    for shadow in [dead, failing.addr] {
        let proxy = mirrored(primary.addr, shadow, "").await;
        let mut client = client(proxy.addr).await;
        for _ in 0..3 {
            let request = pb::EchoRequest {
                repeat: 5,
                ..echo("s")
            };
            let mut stream = within("the stream", client.server_stream(request))
                .await
                .unwrap()
                .into_inner();
            let mut sequences = Vec::new();
            while let Some(reply) = within("a message", stream.next()).await {
                sequences.push(reply.unwrap().sequence);
            }
            assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
            let reply = within("a unary call", client.unary(echo("u")))
                .await
                .unwrap();
            assert_eq!(reply.into_inner().text, "u");
        }
    }
}

#[tokio::test]
async fn calls_whose_client_streams_are_not_copied_when_the_descriptor_set_says_so() {
    let primary = echo_server(Behaviour::default()).await;
    let shadow = echo_server(Behaviour::default()).await;
    let proxy = mirrored_by_descriptors(primary.addr, shadow.addr).await;
    let mut client = client(proxy.addr).await;
    // Client-streaming and bidi calls: served, never copied (a copy could only follow the
    // whole stream, after the fact).
    let reply = within(
        "a client stream",
        client.client_stream(tokio_stream::iter(vec![echo("a"), echo("b")])),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(reply.text, "a+b");
    let mut replies = within(
        "a bidi call",
        client.bidi(tokio_stream::iter(vec![echo("x")])),
    )
    .await
    .unwrap()
    .into_inner();
    let first = within("the bidi reply", replies.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.text, "x");
    while within("the bidi end", replies.next()).await.is_some() {}
    // A unary call still is.
    within("a unary call", client.unary(echo("hi")))
        .await
        .unwrap();
    let metrics = wait_compared(&proxy, "echo", 1).await;
    let skipped = support::metrics::metric_sum(
        &metrics,
        "shadowtap_mirror_requests_total",
        &[("route", "echo"), ("outcome", "skipped_method")],
    );
    assert_eq!(
        skipped, 2.0,
        "both streaming calls counted as skipped_method"
    );
    assert_eq!(
        shadow
            .service
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the unary call reached the shadow"
    );
}
