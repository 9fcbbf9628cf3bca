#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real binary: every example in `config/` passes `check`; bad configs fail `check` and
//! `run` with every problem named by its key path, in one run; and `run` with flags alone
//! serves and exits 0 on SIGTERM.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use support::*;

impl Spawned {
    /// Waits for exit at most `limit`; panics if the process is still running.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "shadowtap still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            stderr.read_to_string(&mut text).expect("read stderr");
        }
        text
    }
}

/// Runs the binary to completion (at most 10 s); returns exit status and stderr.
fn run(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Spawned::start(args);
    let status = child.wait(STEP);
    (status, child.stderr())
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_passes_check() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["edge.toml", "sidecar.toml"] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing: {names:?}"
        );
    }
    for file in &files {
        let (status, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
        assert!(status.success(), "{}: {status}\n{stderr}", file.display());
        assert!(stderr.contains(": ok"), "{stderr}");
    }
}

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const VALID_BASE: &str = r#"
[[listeners]]
address = "127.0.0.1:0"
[upstreams.prod]
url = "http://127.0.0.1:9"
[[routes]]
name = "main"
primary = "prod"
"#;

/// Each broken config, with the key path (and a word of the reason) its message must name.
fn broken_configs() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "unknown key",
            VALID_BASE.replace("url = ", "urll = \"x\"\nurl = "),
            "upstreams.prod.urll",
            "unknown key",
        ),
        (
            "bad URL",
            VALID_BASE.replace("http://127.0.0.1:9", "ftp://127.0.0.1:9"),
            "upstreams.prod.url",
            "scheme",
        ),
        (
            "unknown upstream",
            format!("{VALID_BASE}[[routes]]\nname = \"second\"\nprimary = \"prod2\"\n"),
            "routes[1].primary",
            "unknown upstream \"prod2\"",
        ),
        (
            "bad address",
            VALID_BASE.replace("127.0.0.1:0", "localhost"),
            "listeners[0].address",
            "IP:PORT",
        ),
    ]
}

#[test]
fn each_bad_config_fails_check_and_run_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, key, reason) in broken_configs() {
        let file = write_config(&dir, "bad.toml", &text);
        for command in ["check", "run"] {
            let (status, stderr) = run(&[command, "--config", &file]);
            assert!(!status.success(), "{command} {what}: exit {status}");
            let line = stderr
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("{key}:")))
                .unwrap_or_else(|| panic!("{command} {what}: no line for {key}:\n{stderr}"));
            assert!(line.contains(reason), "{command} {what}: {line}");
        }
    }
}

#[test]
fn several_problems_in_one_file_are_all_reported_in_one_run() {
    let text = r#"
[[listeners]]
address = "localhost:8080"
max_conections = 5

[upstreams.prod]
url = "not a url"

[[routes]]
name = "a"
primary = "prod"

[[routes]]
name = "b"
primary = "prod2"

[loging]
format = "json"
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(&dir, "many.toml", text);
    for command in ["check", "run"] {
        let (status, stderr) = run(&[command, "--config", &file]);
        assert!(!status.success(), "{command}: {status}");
        for key in [
            "listeners[0].max_conections:",
            // In the same section as the unknown key: still checked.
            "listeners[0].address:",
            "upstreams.prod.url:",
            "routes[1].primary:",
            "loging:",
        ] {
            assert!(
                stderr
                    .lines()
                    .any(|line| line.trim_start().starts_with(key)),
                "{command}: {key} not reported:\n{stderr}"
            );
        }
        assert!(stderr.contains("5 problems"), "{stderr}");
    }
}

#[test]
fn missing_config_file_is_an_error_naming_the_file() {
    let (status, stderr) = run(&["check", "--config", "/nonexistent/shadowtap.toml"]);
    assert!(!status.success());
    assert!(stderr.contains("/nonexistent/shadowtap.toml"), "{stderr}");
}

#[test]
fn bad_listen_flag_is_named() {
    let (status, stderr) = run(&["run", "--listen", "nope", "--primary", "http://127.0.0.1:9"]);
    assert!(!status.success());
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_flags_alone_serves_and_exits_zero_on_sigterm() {
    let upstream = upstream()
        .fallback(|_| async { status(http::StatusCode::OK, "from the primary\n") })
        .start()
        .await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = upstream.url("");
    let mut child = Spawned::start(&[
        "run",
        "--primary",
        &primary,
        "--listen",
        &listen,
        "--admin",
        &admin,
    ]);
    let pid = child.0.id().to_string();

    child.ready(&admin).await;
    let reply = get(&format!("http://{listen}/anything")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "from the primary\n");
    assert_eq!(upstream.count(), 1);

    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait(STEP);
        (status, child.stderr())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit {}: {}", status.0, status.1);
}
