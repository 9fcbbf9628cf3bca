#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bodies are compared after `Content-Encoding` is undone: a gzip shadow and a plain primary
//! with equal JSON match (the framing headers are no difference), a real change inside a
//! gzip body is still found, and a decompression bomb from the shadow costs at most
//! `max_decoded_bytes`: its body is skipped and counted with reason `decompression_bomb`.

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
        &Mirrored {
            primary: primary.addr,
            shadow: shadow.addr,
            secondary: None,
        },
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
async fn a_decompression_bomb_is_skipped_and_counted() {
    let (_primary, _shadow, proxy) = setup().await;
    for _ in 0..2 {
        // The client is served by the primary whatever the shadow sends.
        let reply = get_expect(&proxy, BOMB, StatusCode::OK).await;
        assert_eq!(reply.text(), JSON);
    }
    let metrics = wait_compared(&proxy, BOMB, 2).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_compare_body_skipped_total",
            &[
                ("route", BOMB),
                ("shadow", SHADOW),
                ("reason", "decompression_bomb")
            ]
        ),
        2.0,
        "{metrics}"
    );
    let routes = admin_json(&proxy, "/api/v1/routes").await;
    let summary = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == BOMB)
        .unwrap();
    assert_eq!(summary["body_skipped"], 2, "{summary}");
    // Nothing was decoded past the cap, so nothing about the body was claimed either way.
    assert_eq!(summary["divergences_by_kind"]["body"], 0, "{summary}");
}
