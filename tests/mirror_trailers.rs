#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A chunked request with a trailer section: the shadow's copy carries the body *and* the
//! trailer fields, as the primary received them. Each listener engine (the native engine
//! hands chunked requests to the hyper path), each client protocol (HTTP/1.1 chunked, HTTP/2
//! with a trailing HEADERS frame) and each shadow protocol (HTTP/1.1 through the native
//! client, h2c through hyper's) is run on the same request.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Version};
use hyper::body::Frame;
use support::shadow::*;
use support::*;

const POLICY: Policy = Policy {
    global: "",
    route: "",
    shadow: "methods = \"all\"\n",
};

const BODY: &[&str] = &["first chunk, ", "second chunk, ", "last"];

/// How the client sends the chunked request.
#[derive(Debug, Clone, Copy)]
enum ClientKind {
    /// Raw HTTP/1.1 bytes: `Transfer-Encoding: chunked` and a trailer section.
    RawHttp1,
    /// hyper's HTTP/2 client: data frames, then a trailing HEADERS frame.
    Http2,
}

fn trailers() -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("x-checksum", "sha256=abc123".parse().unwrap());
    map.append("x-note", "one".parse().unwrap());
    map.append("x-note", "two".parse().unwrap());
    map
}

async fn send_with_trailers(kind: ClientKind, proxy: &Shadowtap) -> u16 {
    match kind {
        ClientKind::RawHttp1 => {
            let mut raw = format!(
                "POST /upload?x=1 HTTP/1.1\r\nhost: {}\r\ncontent-type: text/plain\r\n\
                 trailer: x-checksum, x-note\r\ntransfer-encoding: chunked\r\n\
                 connection: close\r\n\r\n",
                proxy.addr
            );
            for chunk in BODY {
                raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
            }
            raw.push_str("0\r\nx-checksum: sha256=abc123\r\nx-note: one\r\nx-note: two\r\n\r\n");
            let answer = raw_exchange(proxy.addr, raw.as_bytes()).await;
            raw_status(&answer).unwrap_or_else(|| panic!("no response: {answer:?}"))
        }
        ClientKind::Http2 => {
            let (tx, body) = channel_body(BODY.len() + 1);
            for chunk in BODY {
                tx.try_send(Frame::data(Bytes::from_static(chunk.as_bytes())))
                    .unwrap();
            }
            tx.try_send(Frame::trailers(trailers())).unwrap();
            drop(tx);
            let request = Request::builder()
                .method(Method::POST)
                .uri(proxy.url("/upload?x=1"))
                .header("content-type", "text/plain")
                .body(body)
                .unwrap();
            send(&h2_client(), request).await.unwrap().status.as_u16()
        }
    }
}

async fn check(engine: &str, client: ClientKind, shadow_protocol: &str) {
    let context = format!("engine {engine}, client {client:?}, shadow {shadow_protocol}");
    let primary = echo_primary().await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let toml = engine_toml(&mirror_toml(primary.addr, shadow.addr, &POLICY), engine).replacen(
        "[upstreams.shadow]\n",
        &format!("[upstreams.shadow]\nprotocol = \"{shadow_protocol}\"\n"),
        1,
    );
    let proxy = Shadowtap::start(config(&toml)).await;

    assert_eq!(send_with_trailers(client, &proxy).await, 200, "{context}");
    let original = received_at_least(&primary, 1).await.remove(0);
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], 1, "{context}: {counts:?}");
    let copy = received_at_least(&shadow, 1).await.remove(0);

    assert_eq!(original.body, BODY.concat(), "{context}: primary body");
    assert_eq!(
        original.trailers.as_ref(),
        Some(&trailers()),
        "{context}: the primary's trailers"
    );
    assert_eq!(copy.body, original.body, "{context}: shadow body");
    assert_eq!(
        copy.trailers, original.trailers,
        "{context}: shadow trailers"
    );
    let expected_version = if shadow_protocol == "http2" {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    assert_eq!(copy.version, expected_version, "{context}");
    assert_eq!(copy.uri.path_and_query().unwrap().as_str(), "/upload?x=1");
    assert_eq!(copy.header("x-shadowtap-shadow"), Some("1"), "{context}");
}

#[tokio::test]
async fn a_chunked_request_with_trailers_is_mirrored_with_its_trailers() {
    for engine in ENGINES {
        for client in [ClientKind::RawHttp1, ClientKind::Http2] {
            for shadow in ["http1", "http2"] {
                check(engine, client, shadow).await;
            }
        }
    }
}

/// The other side of the same class: a primary answer that ends with trailers is a complete
/// answer, paired and compared with the shadow's (not `primary_unavailable`), on each engine
/// and for an HTTP/1.1 client that accepts trailers and an HTTP/2 one. (Checked, not a
/// defect: the response writers poll a body to its end, past the trailers frame.)
#[tokio::test]
async fn a_primary_answer_with_trailers_is_paired() {
    for engine in ENGINES {
        for h2 in [false, true] {
            let primary = upstream()
                .fallback(|_| async {
                    let (tx, body) = channel_body(2);
                    tx.try_send(Frame::data(Bytes::from_static(b"answer")))
                        .unwrap();
                    tx.try_send(Frame::trailers(trailers())).unwrap();
                    http::Response::new(body)
                })
                .start()
                .await;
            let shadow = healthy_shadow(std::time::Duration::ZERO).await;
            let toml = engine_toml(&mirror_toml(primary.addr, shadow.addr, &POLICY), engine);
            let proxy = Shadowtap::start(config(&toml)).await;
            let (client, request) = if h2 {
                (h2_client(), get_request(&proxy.url("/t")))
            } else {
                let mut request = get_request(&proxy.url("/t"));
                request
                    .headers_mut()
                    .insert("te", "trailers".parse().unwrap());
                (http1_client(), request)
            };
            let reply = send(&client, request).await.unwrap();
            assert_eq!(reply.status, 200, "{engine} h2={h2}");
            let metrics = settled(&proxy).await;
            let pairs = |result: &str| {
                metric_sum(
                    &metrics,
                    "shadowtap_mirror_pairs_total",
                    &[("shadow", "shadow"), ("result", result)],
                )
            };
            assert_eq!(
                (pairs("complete"), pairs("primary_unavailable")),
                (1.0, 0.0),
                "{engine} h2={h2}"
            );
        }
    }
}
