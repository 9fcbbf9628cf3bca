#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The web page in a real browser: Debian's headless chromium, driven by `playwright-core`
//! (tests/ui/ui.test.mjs), against the real binary with real upstreams whose answers differ
//! in known places. The page loads with no console error, the overview shows the routes and
//! their counts, a sample lights exactly the differing JSON paths, pinning a field (given
//! the token) moves it into the noise view, new pairs show up without a reload, and an admin
//! port that stops answering is called unreachable.
//! Screenshots of each view land in `target/ui-screenshots/`.
//!
//! Skipped, saying so, only where chromium or the test's node modules are missing; `.ci/run`
//! installs both and sets `SHADOWTAP_REQUIRE_BROWSER=1`, which turns that skip into a failure.

mod support;

use http::Request;
use std::path::Path;
use std::process::Command;
use support::admin::*;
use support::compare::*;
use support::*;

const TOKEN: &str = "ui-test-token";
/// The route whose answers differ, and where.
const ITEMS: &str = "/items/{id}";
const PRIMARY_ITEM: &str =
    r#"{"id":1,"price":10,"name":"lamp","tags":["home","light"],"stock":{"count":3,"where":"A1"}}"#;
const SHADOW_ITEM: &str =
    r#"{"id":1,"price":12,"name":"lamp","tags":["home","lamp"],"stock":{"count":3,"where":"A1"}}"#;
/// The route whose answers agree.
const HEALTH: &str = "/health";

/// Why the browser test cannot run here, if it cannot.
fn missing(test_dir: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !test_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "{}/node_modules is missing (npm ci in tests/ui)",
            test_dir.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".to_string());
    }
    None
}

async fn get_with_secret(running: &Running, path: &str) {
    let request = Request::get(format!("http://{}{path}", running.listen))
        .header("authorization", "Bearer a-user-secret")
        .body(empty())
        .unwrap();
    let reply = send(&http1_client(), request).await.unwrap();
    assert_eq!(reply.status, 200, "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_in_a_real_browser() {
    let test_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if let Some(reason) = missing(&test_dir) {
        assert!(
            std::env::var_os("SHADOWTAP_REQUIRE_BROWSER").is_none(),
            "SHADOWTAP_REQUIRE_BROWSER is set, but {reason}"
        );
        println!("SKIPPED the_web_page_in_a_real_browser: {reason}");
        return;
    }
    let primary = upstream()
        .route(HEALTH, |_| async { json_ok(r#"{"ok":true}"#) })
        .fallback(|_| async { json_ok(PRIMARY_ITEM) })
        .start()
        .await;
    let shadow = upstream()
        .route(HEALTH, |_| async { json_ok(r#"{"ok":true}"#) })
        .fallback(|_| async { json_ok(SHADOW_ITEM) })
        .start()
        .await;
    let text = mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &[ITEMS, HEALTH],
        "",
        "",
    );
    let running = Running::start(
        &text,
        "127.0.0.1",
        "token_file = \"TOKEN_FILE\"\nread_only_open = true",
        TOKEN,
    )
    .await;
    for i in 0..5 {
        get_with_secret(&running, &format!("/items/{i}")).await;
    }
    for _ in 0..3 {
        running.get_live(HEALTH).await;
    }
    wait_admin_metrics(running.admin, "8 pairs compared", |m| {
        compared(m, ITEMS) + compared(m, HEALTH) >= 8.0
    })
    .await;

    let expect = serde_json::json!({
        "routes": {
            ITEMS: {"pairs": 5, "diverged": "100.0 %"},
            HEALTH: {"pairs": 3, "diverged": "0.0 %"},
        },
        "route": ITEMS,
        "field": "/price",
        "paths": ["/price", "/tags/1"],
        "live_path": "/items/",
    });
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("ui.test.mjs")
            .current_dir(&test_dir)
            .env("ADMIN", format!("http://{}", running.admin))
            .env("LIVE", format!("http://{}", running.listen))
            .env("TOKEN", TOKEN)
            .env("EXPECT", expect.to_string())
            .env("SHOTS", &shots)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}
