#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bodies are compared after `Content-Encoding` is undone: a gzip shadow and a plain primary
//! with equal JSON match (the framing headers are no difference), a real change inside a
//! gzip body is still found, and a decompression bomb from the shadow costs at most
//! `max_decoded_bytes`: against a primary body that decodes, it is a body divergence
//! (`undecodable`: only one side could be decoded within the cap), not a skipped body.

mod support;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::{Response, StatusCode};
use std::io::Write;
use support::compare::*;
use support::*;

const DOC: &str = "/doc";
const CHANGED: &str = "/changed";
const BOMB: &str = "/bomb";

const JSON: &str = r#"{"id":7,"tags":["a","b"],"price":{"amount":"9.99","currency":"EUR"}}"#;

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

fn gzip_json(body: Bytes) -> Response<Body> {
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("content-encoding", "gzip".parse().unwrap());
    response
}

async fn setup() -> (Upstream, Upstream, Shadowtap) {
    let primary = upstream()
        .fallback(|_| async { json_ok(JSON) })
        .start()
        .await;
    let shadow = upstream()
        .route("/doc", |_| async { gzip_json(gzip(JSON.as_bytes())) })
        .route("/changed", |_| async {
            gzip_json(gzip(JSON.replace("9.99", "10.99").as_bytes()))
        })
        .route("/bomb", |_| async {
            // 16 MiB of spaces (valid JSON whitespace around `{}`) in a few KiB of gzip.
            let mut bomb = vec![b' '; 16 * 1024 * 1024];
            bomb[0] = b'{';
            *bomb.last_mut().unwrap() = b'}';
            gzip_json(gzip(&bomb))
        })
        .start()
        .await;
    let toml = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &[DOC, CHANGED, BOMB],
        "learn_after = 0\nmax_decoded_bytes = 1048576",
        "",
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    (primary, shadow, proxy)
}

#[tokio::test]
async fn gzip_shadow_and_plain_primary_with_equal_json_match() {
    let (_primary, _shadow, proxy) = setup().await;
    for _ in 0..3 {
        get_expect(&proxy, DOC, StatusCode::OK).await;
    }
    let metrics = wait_compared(&proxy, DOC, 3).await;
    let labels = |k, v| [("route", DOC), ("shadow", SHADOW), (k, v)];
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_comparisons_total",
            &labels("result", "match")
        ),
        3.0,
        "{metrics}"
    );
    assert!(samples(&proxy, DOC).await.is_empty());
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_compare_body_skipped_total",
            &[("route", DOC)]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_change_inside_a_gzip_body_is_found_at_its_pointer() {
    let (_primary, _shadow, proxy) = setup().await;
    get_expect(&proxy, CHANGED, StatusCode::OK).await;
    wait_compared(&proxy, CHANGED, 1).await;
    let found = samples(&proxy, CHANGED).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        difference_triples(&found[0]),
        vec![(
            "body".to_string(),
            "/price/amount".to_string(),
            "changed".to_string()
        )]
    );
}

#[tokio::test]
async fn a_decompression_bomb_against_a_decodable_body_is_a_body_divergence() {
    let (_primary, _shadow, proxy) = setup().await;
    for _ in 0..2 {
        // The client is served by the primary whatever the shadow sends.
        let reply = get_expect(&proxy, BOMB, StatusCode::OK).await;
        assert_eq!(reply.text(), JSON);
    }
    let metrics = wait_compared(&proxy, BOMB, 2).await;
    let labels = |k, v| [("route", BOMB), ("shadow", SHADOW), (k, v)];
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_divergences_total",
            &labels("kind", "body")
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_compare_body_skipped_total",
            &[("route", BOMB)]
        ),
        0.0,
        "the body was judged: {metrics}"
    );
    let found = samples(&proxy, BOMB).await;
    assert_eq!(
        difference_triples(&found[0]),
        vec![("body".to_string(), String::new(), "undecodable".to_string())]
    );
    // Decoding stopped at the cap, and says so.
    let shadow_side = found[0]["differences"][0]["shadow"].as_str().unwrap();
    assert!(
        shadow_side.contains("max_decoded_bytes (1048576)"),
        "{shadow_side}"
    );
}
