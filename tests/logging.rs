#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Logs at the default level: a failed request is logged once, as one JSON event that carries
//! the request's context (method, route, request id, status, reason, cause) by itself — the
//! per-request span is DEBUG, so nothing else is printed per request.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_logged_once_with_its_context_at_the_default_level() {
    let dead_primary = closed_port().await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = format!("http://{dead_primary}");
    let child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args([
            "run",
            "--primary",
            &primary,
            "--listen",
            &listen,
            "--admin",
            &admin,
            "--log-format",
            "json",
        ])
        // The default level, as a user gets it.
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shadowtap");
    let mut child = Spawned(child);
    child.ready(&admin).await;

    let client = http1_client();
    let mut request = get_request(&format!("http://{listen}/orders/7"));
    request
        .headers_mut()
        .insert("x-request-id", "log-test-42".parse().unwrap());
    assert_eq!(send(&client, request).await.unwrap().status, 502);
    // A request that succeeds at the router but has no upstream failure logs nothing; the
    // admin port's own requests log nothing either.
    assert_eq!(
        send(&client, get_request(&format!("http://{admin}/healthz")))
            .await
            .unwrap()
            .status,
        200
    );

    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stderr = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.0.try_wait().unwrap().is_some() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.0.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
                }
                return stderr;
            }
            assert!(Instant::now() < deadline, "still running after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();

    let failures: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "request failed")
        .collect();
    assert_eq!(failures.len(), 1, "exactly one failure event:\n{stderr}");
    // The JSON format flattens an event's fields into the line.
    let fields = &failures[0];
    assert_eq!(fields["method"], "GET", "{stderr}");
    assert_eq!(fields["route"], "default", "{stderr}");
    assert_eq!(fields["request_id"], "log-test-42", "{stderr}");
    assert_eq!(fields["status"], 502, "{stderr}");
    assert_eq!(fields["reason"], "upstream_unreachable", "{stderr}");
    assert!(
        fields["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "the cause chain is logged: {stderr}"
    );
    assert_eq!(failures[0]["level"], "WARN", "{stderr}");
}
