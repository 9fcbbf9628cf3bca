#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Logs at the default level: a failed request is logged once, as one JSON event that carries
//! the request's context (method, route, request id, status, reason, cause) by itself — the
//! per-request span is DEBUG, so nothing else is printed per request.

mod support;

use std::process::{Command, Stdio};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_logged_once_with_its_context_at_the_default_level() {
    let dead_primary = closed_port().await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = format!("http://{dead_primary}");
    let child = Command::new(BIN)
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

    // Its exit status is not this test's business; that it exits (within STEP) is.
    let (_, stderr) = child.terminate().await;

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

/// Starts the real binary in front of a dead primary (every request fails: 502) and a dead
/// shadow, with the given log format at the default level; stderr is a pipe, as under
/// `kubectl logs`. Sends a mix of requests (HTTP/1.1 and h2c, a 502, a malformed request,
/// an admin scrape), then SIGTERM, and returns everything logged.
async fn logs_of_a_mixed_run(format: &str) -> String {
    let dead_primary = closed_port().await;
    let dead_shadow = closed_port().await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = format!("http://{dead_primary}");
    let shadow = format!("http://{dead_shadow}");
    let mut child = Process::start(
        &[
            "run",
            "--primary",
            &primary,
            "--shadow",
            &shadow,
            "--listen",
            &listen,
            "--admin",
            &admin,
            "--log-format",
            format,
        ],
        // The default level; an empty NO_COLOR counts as unset.
        &[("RUST_LOG", "info"), ("NO_COLOR", "")],
    );
    child.ready(&admin).await;
    for client in [http1_client(), h2_client()] {
        for path in ["/a", "/b?x=1"] {
            let reply = send(&client, get_request(&format!("http://{listen}{path}")))
                .await
                .unwrap();
            assert_eq!(reply.status, 502);
        }
    }
    let answer = raw_exchange(
        listen.parse().unwrap(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), Some(400), "{answer}");
    let metrics = send(
        &http1_client(),
        get_request(&format!("http://{admin}/metrics")),
    )
    .await
    .unwrap();
    assert_eq!(metrics.status, 200);
    assert!(child.terminate().await.success());
    child.stderr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_logs_to_a_pipe_carry_no_colour_codes() {
    let stderr = logs_of_a_mixed_run("human").await;
    assert!(
        stderr.contains("WARN"),
        "the failures were logged: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in piped logs: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_log_line_is_an_object_with_no_debug_formatted_values() {
    let stderr = logs_of_a_mixed_run("json").await;
    let mut events = 0;
    for line in stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"));
        assert!(event.is_object(), "{line}");
        assert!(!line.contains('\u{1b}'), "{line:?}");
        let mut strings = Vec::new();
        leaf_strings(&event, &mut strings);
        for value in strings {
            assert!(
                !value.contains("Some(") && !value.contains("None"),
                "a Debug-formatted Option in {line}"
            );
        }
        events += 1;
    }
    // Start-up, the failures, and the drain on SIGTERM (which printed `Some(ADDR)`).
    assert!(events >= 4, "{stderr}");
    assert!(
        stderr.contains("\"listener\":\"127.0.0.1:"),
        "the listener is logged as a plain address: {stderr}"
    );
}

/// Every string inside a JSON value.
fn leaf_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => out.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|item| leaf_strings(item, out)),
        serde_json::Value::Object(map) => map.values().for_each(|item| leaf_strings(item, out)),
        _ => {}
    }
}

/// On a terminal (a pseudo-terminal from util-linux's `script`, as an interactive shell
/// gives) human logs keep their colour, unless `NO_COLOR` is set.
#[test]
fn on_a_terminal_logs_are_coloured_unless_no_color_is_set() {
    let command = format!(
        "timeout 1 {} run --primary http://127.0.0.1:9 --listen 127.0.0.1:0 --admin 127.0.0.1:0",
        env!("CARGO_BIN_EXE_shadowtap")
    );
    for (no_color, coloured) in [(None, true), (Some(""), true), (Some("1"), false)] {
        let mut script = Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let output = script.output().expect("run script(1)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("listening"),
            "NO_COLOR={no_color:?}: {text:?}"
        );
        assert_eq!(
            text.contains('\u{1b}'),
            coloured,
            "NO_COLOR={no_color:?}: {text:?}"
        );
    }
}
