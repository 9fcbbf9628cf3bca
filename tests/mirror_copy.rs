#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a shadow receives: the request the primary got — method, query, body bytes and
//! end-to-end headers — with the policy's edits (removals, additions, Host and path
//! rewrites) and the marker header, whether the client sent a fixed-length body, a chunked
//! one, or spoke HTTP/2, and whether the shadow speaks HTTP/1.1 (the native client) or h2c
//! (hyper's).

mod support;

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Frame;
use std::collections::BTreeMap;
use support::shadow::*;
use support::*;

const POLICY: Policy = Policy {
    global: "",
    route: "",
    shadow: r#"
methods = "all"
remove_headers = ["x-secret"]
add_headers = { "x-env" = "shadow", "x-replaced" = "new" }
host_rewrite = "shadow.internal"
path_rewrite = { prefix = "/v1/", replacement = "/v2/" }
"#,
};

/// Fields whose framing is each hop's business: the shadow gets a complete body and its
/// length, whatever framing the client used.
const FRAMING: &[&str] = &["content-length", "transfer-encoding"];

/// Header values by name, each name's values in order.
fn by_name(received: &Received) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &received.headers {
        if !FRAMING.contains(&name.as_str()) {
            map.entry(name.clone()).or_default().push(value.clone());
        }
    }
    map
}

fn set(map: &mut BTreeMap<String, Vec<String>>, name: &str, value: &str) {
    map.insert(name.to_string(), vec![value.to_string()]);
}

/// The client's request: a query, a header the policy removes, one it replaces, one with
/// two values, and `body`.
fn request(url: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("x-secret", "s3cret")
        .header("x-replaced", "old")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// Sends `request`, then checks the shadow's copy against what the primary received.
async fn check_copy(client: &TestClient, request: Request<Body>, sent: &[u8]) {
    check_copy_to(client, request, sent, http::Version::HTTP_11).await;
}

/// [`check_copy`] to a shadow spoken to in `version` (HTTP/2: an h2c shadow, sent through
/// hyper's client, where HTTP/1 shadows get the native one).
async fn check_copy_to(
    client: &TestClient,
    request: Request<Body>,
    sent: &[u8],
    version: http::Version,
) {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let mut toml = mirror_toml(primary.addr, shadow.addr, &POLICY);
    if version == http::Version::HTTP_2 {
        toml = toml.replacen(
            "[upstreams.shadow]\n",
            "[upstreams.shadow]\nprotocol = \"http2\"\n",
            1,
        );
    }
    let proxy = Shadowtap::start(config(&toml)).await;
    let request = {
        let (mut parts, body) = request.into_parts();
        parts.uri = proxy
            .url(parts.uri.path_and_query().unwrap().as_str())
            .parse()
            .unwrap();
        Request::from_parts(parts, body)
    };

    let reply = send(client, request).await.expect("proxied request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let copy = received_at_least(&shadow, 1).await.remove(0);
    let original = primary.last();

    assert_eq!(original.body, Bytes::copy_from_slice(sent), "primary body");
    assert_eq!(copy.method, original.method);
    assert_eq!(copy.uri.path(), "/v2/items", "path_rewrite applies");
    assert_eq!(
        original.uri.path(),
        "/v1/items",
        "the primary's path is untouched"
    );
    assert_eq!(copy.uri.query(), original.uri.query());
    assert_eq!(copy.uri.query(), Some("q=a%20b&x=1"));
    assert_eq!(copy.body, original.body, "body bytes");
    assert_eq!(copy.version, version, "the shadow's protocol");
    assert_eq!(
        copy.header("content-length"),
        Some(sent.len().to_string().as_str()),
        "the shadow gets the body's length"
    );

    let mut expected = by_name(&original);
    expected.remove("x-secret");
    set(&mut expected, "x-env", "shadow");
    set(&mut expected, "x-replaced", "new");
    set(&mut expected, "host", "shadow.internal");
    set(&mut expected, "x-shadowtap-shadow", "1");
    assert_eq!(by_name(&copy), expected, "shadow headers");

    // The policy edits only the copy.
    assert_eq!(original.header("x-secret"), Some("s3cret"));
    assert_eq!(original.header("x-replaced"), Some("old"));
    assert_eq!(original.header("x-shadowtap-shadow"), None);
    assert_eq!(original.header_all("x-multi"), ["one", "two"]);
    assert_eq!(
        original.header("host"),
        Some(proxy.addr.to_string().as_str())
    );

    let metrics = settled(&proxy).await;
    assert_eq!(
        outcomes(&metrics)["completed"],
        1,
        "{:?}",
        outcomes(&metrics)
    );
    assert_eq!(sampled(&metrics), 1);
    assert_eq!(shadow.count(), 1);
}

const PATH: &str = "/v1/items?q=a%20b&x=1";

#[tokio::test]
async fn fixed_length_body_is_copied_with_the_policy_edits() {
    let body = br#"{"name":"widget","count":3}"#;
    check_copy(&http1_client(), request(PATH, full(&body[..])), body).await;
}

#[tokio::test]
async fn chunked_body_is_copied_whole() {
    let chunks: [&'static [u8]; 3] = [b"first chunk, ", b"second chunk, ", b"last"];
    let (tx, body) = channel_body(chunks.len());
    for chunk in chunks {
        tx.try_send(Frame::data(Bytes::from_static(chunk))).unwrap();
    }
    drop(tx);
    check_copy(&http1_client(), request(PATH, body), &chunks.concat()).await;
}

#[tokio::test]
async fn http2_request_is_copied_to_an_http1_shadow() {
    let body = vec![7u8; 100_000];
    check_copy(&h2_client(), request(PATH, full(body.clone())), &body).await;
}

#[tokio::test]
async fn the_copy_to_an_h2c_shadow_has_the_same_fields() {
    let body = br#"{"name":"widget","count":3}"#;
    check_copy_to(
        &http1_client(),
        request(PATH, full(&body[..])),
        body,
        http::Version::HTTP_2,
    )
    .await;
}

#[tokio::test]
async fn a_path_outside_the_rewrite_prefix_is_sent_as_is() {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let proxy = mirrored(primary.addr, shadow.addr, &POLICY).await;
    let reply = get(&proxy.url("/v1?x=1")).await;
    assert_eq!(reply.status, 200);
    let copy = received_at_least(&shadow, 1).await.remove(0);
    assert_eq!(copy.method, Method::GET);
    assert_eq!(copy.uri.path_and_query().unwrap().as_str(), "/v1?x=1");
    assert!(copy.body.is_empty());
}
