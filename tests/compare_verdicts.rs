#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Verdicts users must be able to trust, through the real proxy on every engine and shadow
//! protocol, read back from `/metrics` and `/api/v1/samples`:
//! - a body only one side can decode (corrupt gzip on the shadow) is a `body` divergence,
//!   and bodies neither side can decode are `result="unjudged"`, never `match`;
//! - bodies too large to keep (over `max_response_body_bytes`, or not fitting
//!   `mirror.max_buffered_bytes`) are compared by length and hash: a 2.6 MB shadow answer
//!   against 6 bytes diverges, equal 3 MB bodies match, one changed byte diverges, and a
//!   primary over the cap is paired and compared (not `primary_unavailable`);
//! - a route's latency rule turns a slow shadow into a `latency` divergence; without a rule
//!   nothing changes.

mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use std::sync::LazyLock;
use support::compare::*;
use support::*;

/// Corrupt gzip on the shadow only.
const CORRUPT_SHADOW: &str = "/corrupt-shadow";
/// Corrupt gzip on both sides, different bytes.
const CORRUPT_BOTH: &str = "/corrupt-both";
/// A 2.6 MB shadow answer against a 6-byte primary answer.
const BIG_SHADOW: &str = "/big-shadow";
/// Equal 3 MB answers.
const BIG_EQUAL: &str = "/big-equal";
/// 3 MB answers, one byte apart.
const BIG_ONE_BYTE: &str = "/big-one-byte";
/// Equal 3 MB bodies, a different status.
const BIG_STATUS: &str = "/big-status";
/// Equal 3 MB bodies streamed chunked (no length known in advance), one byte apart.
const BIG_CHUNKED: &str = "/big-chunked";

const JSON: &str = r#"{"id":7,"name":"seven"}"#;
const BIG: usize = 3_000_000;

static BIG_BODY: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(
        (0..BIG)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
            .collect::<Vec<u8>>(),
    )
});

static BIG_CHANGED: LazyLock<Bytes> = LazyLock::new(|| {
    let mut body = BIG_BODY.to_vec();
    body[BIG / 2] ^= 1;
    Bytes::from(body)
});

fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

fn answer(status: StatusCode, body: Bytes, content_type: &str, gzip: bool) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", content_type.parse().unwrap());
    if gzip {
        headers.insert("content-encoding", "gzip".parse().unwrap());
    }
    response
}

fn blob(body: Bytes) -> Response<Body> {
    answer(StatusCode::OK, body, "application/octet-stream", false)
}

/// `body` in 64 KiB frames through a channel: HTTP/1.1 frames it chunked.
fn streamed(body: Bytes) -> Response<Body> {
    let (tx, stream) = channel_body(4);
    tokio::spawn(async move {
        for start in (0..body.len()).step_by(64 * 1024) {
            let end = (start + 64 * 1024).min(body.len());
            if tx.send(Frame::data(body.slice(start..end))).await.is_err() {
                return;
            }
        }
    });
    Response::new(stream)
}

/// Gzip's magic and method, then bytes that are no deflate stream.
fn corrupt_gzip(tail: &'static [u8]) -> Bytes {
    Bytes::from([&b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"[..], tail].concat())
}

async fn upstreams() -> (Upstream, Upstream) {
    let primary = upstream()
        .route(CORRUPT_SHADOW, |_| async {
            answer(
                StatusCode::OK,
                gzip(JSON.as_bytes()),
                "application/json",
                true,
            )
        })
        .route(CORRUPT_BOTH, |_| async {
            answer(
                StatusCode::OK,
                corrupt_gzip(b"\xff\xfe one"),
                "application/json",
                true,
            )
        })
        .route(BIG_SHADOW, |_| async {
            blob(Bytes::from_static(b"small\n"))
        })
        .route(BIG_EQUAL, |_| async { blob(BIG_BODY.clone()) })
        .route(BIG_ONE_BYTE, |_| async { blob(BIG_BODY.clone()) })
        .route(BIG_STATUS, |_| async { blob(BIG_BODY.clone()) })
        .route(BIG_CHUNKED, |_| async { streamed(BIG_BODY.clone()) })
        .start()
        .await;
    let shadow = upstream()
        .route(CORRUPT_SHADOW, |_| async {
            answer(
                StatusCode::OK,
                corrupt_gzip(b"\xff\xfe two"),
                "application/json",
                true,
            )
        })
        .route(CORRUPT_BOTH, |_| async {
            answer(
                StatusCode::OK,
                corrupt_gzip(b"\xff\xfe two"),
                "application/json",
                true,
            )
        })
        .route(BIG_SHADOW, |_| async { blob(BIG_BODY.slice(..2_600_000)) })
        .route(BIG_EQUAL, |_| async { blob(BIG_BODY.clone()) })
        .route(BIG_ONE_BYTE, |_| async { blob(BIG_CHANGED.clone()) })
        .route(BIG_STATUS, |_| async {
            answer(
                StatusCode::ACCEPTED,
                BIG_BODY.clone(),
                "application/octet-stream",
                false,
            )
        })
        .route(BIG_CHUNKED, |_| async { streamed(BIG_CHANGED.clone()) })
        .start()
        .await;
    (primary, shadow)
}

const ROUTES: [&str; 7] = [
    CORRUPT_SHADOW,
    CORRUPT_BOTH,
    BIG_SHADOW,
    BIG_EQUAL,
    BIG_ONE_BYTE,
    BIG_STATUS,
    BIG_CHUNKED,
];

/// Each route once through a proxy configured with `mirror`; the client always gets the
/// primary's answer whole. Returns the metrics once every pair is compared.
async fn run(engine: &str, protocol: &str, mirror: &str) -> (Shadowtap, String) {
    let (primary, shadow) = upstreams().await;
    let toml = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &ROUTES,
        "learn_after = 0",
        "",
    );
    let toml = format!(
        "{}\n[mirror]\n{mirror}\n",
        on_engine(&toml, engine, protocol)
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    for route in ROUTES {
        let reply = get_expect(&proxy, route, StatusCode::OK).await;
        let expected = match route {
            BIG_SHADOW => 6,
            CORRUPT_SHADOW | CORRUPT_BOTH => reply.body.len(),
            _ => BIG,
        };
        assert_eq!(reply.body.len(), expected, "{engine}/{protocol} {route}");
    }
    let mut metrics = String::new();
    for route in ROUTES {
        metrics = wait_compared(&proxy, route, 1).await;
    }
    drop((primary, shadow));
    (proxy, metrics)
}

fn result(metrics: &str, route: &str, result: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_comparisons_total",
        &[("route", route), ("shadow", SHADOW), ("result", result)],
    )
}

fn kind(metrics: &str, route: &str, kind: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_divergences_total",
        &[("route", route), ("shadow", SHADOW), ("kind", kind)],
    )
}

async fn changes(proxy: &Shadowtap, route: &str) -> Vec<(String, String, String)> {
    let found = samples(proxy, route).await;
    assert_eq!(found.len(), 1, "{route}: {found:?}");
    difference_triples(&found[0])
}

fn body(change: &str) -> (String, String, String) {
    ("body".to_string(), String::new(), change.to_string())
}

/// What every configuration must find, whether bodies pass the cap or the byte budget.
async fn assert_verdicts(proxy: &Shadowtap, metrics: &str, why: &str) {
    let at = |route: &str| format!("{why}, {route}:\n{metrics}");
    assert_eq!(
        result(metrics, CORRUPT_SHADOW, "diverged"),
        1.0,
        "{}",
        at(CORRUPT_SHADOW)
    );
    assert_eq!(
        kind(metrics, CORRUPT_SHADOW, "body"),
        1.0,
        "{}",
        at(CORRUPT_SHADOW)
    );
    assert_eq!(
        changes(proxy, CORRUPT_SHADOW).await,
        vec![body("undecodable")]
    );

    assert_eq!(
        result(metrics, CORRUPT_BOTH, "unjudged"),
        1.0,
        "{}",
        at(CORRUPT_BOTH)
    );
    assert_eq!(
        result(metrics, CORRUPT_BOTH, "match"),
        0.0,
        "{}",
        at(CORRUPT_BOTH)
    );
    assert_eq!(
        metric_sum(
            metrics,
            "shadowtap_compare_body_skipped_total",
            &[("route", CORRUPT_BOTH), ("reason", "corrupt_encoding")]
        ),
        1.0,
        "{}",
        at(CORRUPT_BOTH)
    );

    for route in [BIG_SHADOW, BIG_ONE_BYTE, BIG_CHUNKED] {
        assert_eq!(result(metrics, route, "diverged"), 1.0, "{}", at(route));
        assert_eq!(kind(metrics, route, "body"), 1.0, "{}", at(route));
        assert_eq!(changes(proxy, route).await, vec![body("bytes_changed")]);
    }
    assert_eq!(
        result(metrics, BIG_EQUAL, "match"),
        1.0,
        "{}",
        at(BIG_EQUAL)
    );

    // The primary passed the cap and was still compared: by status, headers and digest.
    assert_eq!(
        result(metrics, BIG_STATUS, "diverged"),
        1.0,
        "{}",
        at(BIG_STATUS)
    );
    assert_eq!(
        changes(proxy, BIG_STATUS).await,
        vec![("status".to_string(), String::new(), "changed".to_string())]
    );
    assert_eq!(
        metric_sum(
            metrics,
            "shadowtap_mirror_pairs_total",
            &[("result", "primary_unavailable")]
        ),
        0.0,
        "{why}:\n{metrics}"
    );
    let routes = admin_json(proxy, "/api/v1/routes").await;
    let unjudged = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == CORRUPT_BOTH)
        .unwrap();
    assert_eq!(unjudged["comparisons"]["unjudged"], 1, "{unjudged}");
}

#[tokio::test]
async fn bodies_over_the_cap_and_undecodable_bodies_get_a_verdict_on_every_engine() {
    for (engine, protocol) in ENGINE_PAIRS {
        // The default cap (1 MiB) keeps the small bodies and digests the large ones.
        let (proxy, metrics) = run(engine, protocol, "").await;
        assert_verdicts(&proxy, &metrics, &format!("{engine}/{protocol}, cap")).await;
    }
}

#[tokio::test]
async fn bodies_that_do_not_fit_the_byte_budget_are_compared_by_digest() {
    for (engine, protocol) in ENGINE_PAIRS {
        // Under the cap, over the budget: kept as they come, then dropped for a digest.
        let mirror = "max_response_body_bytes = 8388608\nmax_buffered_bytes = 1048576";
        let (proxy, metrics) = run(engine, protocol, mirror).await;
        assert_verdicts(&proxy, &metrics, &format!("{engine}/{protocol}, budget")).await;
        assert!(
            metric_sum(&metrics, "shadowtap_mirror_buffered_bytes", &[]) <= 1048576.0,
            "{metrics}"
        );
    }
}
