#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A HAR exported by real headless Chromium (tests/fixtures/chromium.har, made by
//! tests/fixtures/make-chromium-har.mjs, whose header gives the command) reads as a
//! recording and replays: a shadow answering as the browser's server did shows no
//! divergence, one with a changed price is caught on that path and field.

mod support;

use http::{Response, StatusCode};
use serde_json::{json, Value};
use shadowtap::record::read_files;
use support::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chromium.har");

async fn shop(price: u64) -> Upstream {
    upstream()
        .fallback(move |r: Received| async move {
            let (status, kind, body) = match r.uri.path() {
                "/api/items/7" => (
                    200,
                    "application/json",
                    json!({"id": 7, "name": "lamp", "price": price}).to_string(),
                ),
                "/api/search" => (200, "application/json", json!({"results": [7]}).to_string()),
                _ => (404, "text/plain", String::new()),
            };
            Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", kind)
                .body(full(body))
                .unwrap()
        })
        .start()
        .await
}

#[test]
fn the_browser_export_reads_as_a_recording() {
    let loaded = read_files(&[FIXTURE]).unwrap();
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let paths: Vec<String> = loaded.entries.iter().map(|e| e.path_and_query()).collect();
    assert!(paths.contains(&"/api/items/7".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"/api/search?q=lamp".to_string()),
        "{paths:?}"
    );
    let item = loaded
        .entries
        .iter()
        .find(|e| e.path() == "/api/items/7")
        .unwrap();
    let body: Value = serde_json::from_slice(&item.response_body()).unwrap();
    assert_eq!(body, json!({"id": 7, "name": "lamp", "price": 70}));
    assert!(item.started().is_some());
}

async fn replay(shadow: &Upstream) -> Value {
    let url = shadow.url("");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args([
                "replay", FIXTURE, "--shadow", &url, "--route", "/api/", "--format", "json",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // A handful of pairs cannot decide a ratio: inconclusive, never an error.
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_export_replays_against_a_shadow() {
    let same = shop(70).await;
    let out = replay(&same).await;
    assert_eq!(out["replay"]["answered"], 2);
    assert_eq!(out["diverged"].as_array().unwrap().len(), 0, "{out}");

    let changed = shop(80).await;
    let out = replay(&changed).await;
    let diverged = out["diverged"].as_array().unwrap();
    assert_eq!(diverged.len(), 1, "{out}");
    assert_eq!(diverged[0]["path"], "/api/items/7");
    assert_eq!(diverged[0]["differences"][0]["path"], "/price");
}
