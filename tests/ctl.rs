#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap ctl` end to end: the real binary as the client, a real shadowtap (another
//! child) as the server for status and mirror control, and a real HTTP server speaking the
//! reload contract for `ctl reload`. Every exit code is checked: 0 done, 1 refused, 2 bad
//! usage, 3 unreachable.

mod support;

use http::StatusCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::admin::*;
use support::compare::json_with;
use support::shadow::*;
use support::*;

const TOKEN: &str = "ctl-token-81d0";

/// Runs `shadowtap ctl args...` with extra environment; (exit code, stdout, stderr).
async fn ctl(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("ctl")
        .args(args)
        .env_remove("SHADOWTAP_ADMIN_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("run ctl"))
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pause_resume_and_percent_through_ctl() {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let text = mirror_toml(primary.addr, shadow.addr, &Policy::default());
    let running = Running::start(&text, "127.0.0.1", "token_file = \"TOKEN_FILE\"", TOKEN).await;
    let url = format!("http://{}", running.admin);
    let token_file = running.token_file();
    let token_file = token_file.to_str().unwrap();
    let with_file = |rest: &[&'static str]| {
        let mut args = vec!["--admin".to_string(), url.clone()];
        args.extend(["--token-file".to_string(), token_file.to_string()]);
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&args, &[]).await
    };

    // Without the token: refused (1), and told why.
    let (code, _, stderr) = ctl(&["--admin", &url, "status"], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("--token-file"),
        "{stderr}"
    );

    let (code, stdout, stderr) = run(with_file(&["status"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("mirroring: on"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("default")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["default", "shadow", "on", "100"]
    );

    let (code, stdout, stderr) = run(with_file(&["mirror", "pause", "--route", "default"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("paused"), "{stdout}");
    let before = shadow.count();
    running.get_live("/while-paused").await;
    let metrics = running.metrics(Some(TOKEN)).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_mirror_requests_total",
            &[("outcome", "skipped_paused")]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(shadow.count(), before);

    // The token from the environment, a shadow-wide percent, JSON output.
    let (code, stdout, stderr) = ctl(
        &[
            "--admin", &url, "mirror", "percent", "25", "--shadow", "shadow",
        ],
        &[("SHADOWTAP_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("25 (config 100)"), "{stdout}");
    let (code, stdout, stderr) = run(with_file(&["--format", "json", "mirror", "resume"])).await;
    assert_eq!(code, 0, "{stderr}");
    let view: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let pair = &view["routes"][0]["shadows"][0];
    assert_eq!(pair["paused"], false, "{view}");
    assert_eq!(pair["percent"], 25.0, "{view}");

    // Refusals: 1, with the API's reason.
    let (code, _, stderr) = run(with_file(&["mirror", "pause", "--route", "nope"])).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("route: no mirrored route is named \"nope\""),
        "{stderr}"
    );
    let (code, _, stderr) = run(with_file(&["mirror", "percent", "101"])).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("percent: 101 is not from 0 to 100"),
        "{stderr}"
    );

    let mut process = running.process;
    assert!(process.terminate().await.success());
    assert!(!process.stderr().contains(TOKEN), "the token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_2_and_an_unreachable_admin_port_is_3() {
    let closed = closed_port().await;
    let url = format!("http://{closed}");
    let (code, _, stderr) = ctl(&["--admin", &url, "status"], &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach the admin port"), "{stderr}");
    let (code, _, stderr) = ctl(&["--admin", "ftp://127.0.0.1:1", "status"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = ctl(
        &[
            "--admin",
            &url,
            "--token-file",
            "/nonexistent/token",
            "status",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
    let (code, _, _) = ctl(&["--admin", &url, "mirror", "percent", "ten"], &[]).await;
    assert_eq!(code, 2, "clap refuses a percent that is no number");
}

/// `ctl reload` against a server that answers with the contract of `POST /api/v1/reload`:
/// a refusal's errors are printed one per line (exit 1), a success's changes too (exit 0),
/// and a proxy that does not serve the path is told apart (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_prints_the_contract_s_errors_and_changes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let admin = upstream()
        .route("/api/v1/reload", move |_| {
            let call = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                match call {
                    0 => json_with(
                        StatusCode::BAD_REQUEST,
                        r#"{"result":"failure","errors":["routes[1].primary: unknown upstream \"nope\"","mirror.timeout: \"x\" is not a duration"]}"#,
                        &[],
                    ),
                    _ => json_with(
                        StatusCode::OK,
                        r#"{"result":"success","changes":["routes: added \"beta\"","upstreams.canary: percent 10 -> 25"]}"#,
                        &[],
                    ),
                }
            }
        })
        .start()
        .await;
    let url = format!("http://{}", admin.addr);
    let env = [("SHADOWTAP_ADMIN_TOKEN", TOKEN)];

    let (code, stdout, stderr) = ctl(&["--admin", &url, "reload"], &env).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("reload refused; the running config is unchanged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  routes[1].primary: unknown upstream \"nope\"\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  mirror.timeout: \"x\" is not a duration\n"),
        "{stderr}"
    );

    let (code, stdout, stderr) = ctl(&["--admin", &url, "reload"], &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("reloaded"), "{stdout}");
    assert!(stdout.contains("  routes: added \"beta\"\n"), "{stdout}");

    let (code, stdout, _) = ctl(&["--admin", &url, "--format", "json", "reload"], &env).await;
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["result"], "success");

    let received = admin.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.method, http::Method::POST);
        let auth = request
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str());
        assert_eq!(auth, Some("Bearer ctl-token-81d0"));
    }

    // A path the server does not serve (a proxy without hot reload): 404, said plainly.
    let other = upstream().start().await;
    let url = format!("http://{}", other.addr);
    let (code, _, stderr) = ctl(&["--admin", &url, "reload"], &[]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not serve POST /api/v1/reload"),
        "{stderr}"
    );
}

/// Every `shadowtap ctl ...` line in the README parses with the binary's own parser
/// (`--help` appended, so nothing is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ctl_command_in_the_readme_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("shadowtap ctl "))
        .map(|line| line.split('#').next().unwrap().trim())
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    for command in commands {
        let mut words: Vec<&str> = command.split_whitespace().skip(2).collect();
        words.push("--help");
        let (code, _, stderr) = ctl(&words, &[]).await;
        assert_eq!(code, 0, "{command}: {stderr}");
    }
}
