#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real binary: every example in `config/` passes `check`; bad configs fail `check` and
//! `run` with every problem named by its key path, in one run; and `run` with flags alone
//! serves and exits 0 on SIGTERM.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use support::*;

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
    for expected in ["edge.toml", "sidecar.toml", "canary.toml", "docker.toml"] {
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
        (
            "verdict ratio over 1",
            format!("{VALID_BASE}\n[verdict]\nmax_divergence_ratio = 5.0\n"),
            "verdict.max_divergence_ratio",
            "ratio from 0 to 1",
        ),
        (
            "verdict override key misspelled",
            format!("{VALID_BASE}\n[verdict.routes.main]\nmin_pair = 10\n"),
            "verdict.routes.main.min_pair",
            "unknown key",
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

[compare]
diff_log = "/nonexistent-shadowtap-dir/diffs.jsonl"

[admin]
address = "127.0.0.1:18099"

[[listeners]]
address = "127.0.0.1:18099"
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
            // Checks that look past the text: the file system, and bind clashes.
            "compare.diff_log:",
            "admin.address:",
        ] {
            assert!(
                stderr
                    .lines()
                    .any(|line| line.trim_start().starts_with(key)),
                "{command}: {key} not reported:\n{stderr}"
            );
        }
        assert!(stderr.contains("7 problems"), "{stderr}");
    }
}

#[test]
fn an_unreadable_config_file_is_named_with_the_os_error_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    // A directory: it exists, but reading it fails with another OS error.
    let directory = dir.path().to_str().unwrap();
    for (file, cause) in [
        (missing, "No such file or directory (os error 2)"),
        (directory, "Is a directory (os error 21)"),
    ] {
        for command in ["check", "run"] {
            let (status, stderr) = run(&[command, "--config", file]);
            assert_eq!(status.code(), Some(2), "{command} {file}: {stderr}");
            let line = stderr.lines().next().unwrap_or_default();
            assert!(
                line.contains("cannot read config file") && line.contains(file),
                "{command}: {stderr}"
            );
            assert!(line.contains(cause), "{command}: no OS cause: {stderr}");
        }
    }
}

/// The diff log is opened only when `run` has bound its ports; `check` (and `run`, before
/// binding) must refuse a path it cannot append to, with the other problems, by key.
#[test]
fn an_unwritable_diff_log_fails_check_and_run_naming_the_key_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let cases = [
        (
            dir.path().join("no-such-dir").join("diffs.jsonl"),
            "No such file or directory",
        ),
        (a_file.join("diffs.jsonl"), "Not a directory"),
        (dir.path().to_path_buf(), "is a directory"),
    ];
    for (diff_log, reason) in &cases {
        let diff_log = diff_log.to_str().unwrap();
        let text = VALID_BASE.replace(
            "[[routes]]",
            &format!("[compare]\ndiff_log = {diff_log:?}\n\n[[routes]]"),
        );
        let file = write_config(&dir, "diff.toml", &text);
        for command in ["check", "run"] {
            let (status, stderr) = run(&[command, "--config", &file]);
            assert_eq!(status.code(), Some(2), "{command} {diff_log}: {stderr}");
            let line = stderr
                .lines()
                .find(|line| line.trim_start().starts_with("compare.diff_log:"))
                .unwrap_or_else(|| panic!("{command}: compare.diff_log not named:\n{stderr}"));
            assert!(line.contains(reason), "{command}: {line}");
        }
        // The flag is checked the same way, and named as the flag.
        let (status, stderr) = run(&[
            "run",
            "--primary",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--diff-log",
            diff_log,
        ]);
        assert_eq!(status.code(), Some(2), "--diff-log {diff_log}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with("--diff-log:") && l.contains(reason)),
            "{stderr}"
        );
    }
    assert!(!dir.path().join("no-such-dir").exists());

    // A writable path passes, and `check` neither creates nor truncates it.
    let fresh = dir.path().join("fresh.jsonl");
    let kept = dir.path().join("kept.jsonl");
    std::fs::write(&kept, "{}\n").unwrap();
    for path in [&fresh, &kept] {
        let text = VALID_BASE.replace(
            "[[routes]]",
            &format!(
                "[compare]\ndiff_log = {:?}\n\n[[routes]]",
                path.to_str().unwrap()
            ),
        );
        let file = write_config(&dir, "ok.toml", &text);
        let (status, stderr) = run(&["check", "--config", &file]);
        assert!(status.success(), "{stderr}");
    }
    assert!(!fresh.exists(), "check created the diff log");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{}\n");
}

/// Start-up failures after the config was accepted: each names what failed and carries the
/// OS error, and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_is_named_with_the_os_error() {
    // Held open for the whole test: the port stays taken.
    let holder = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy = holder.local_addr().unwrap().to_string();
    let free = closed_port().await.to_string();
    for (listen, admin, what) in [
        (busy.as_str(), free.as_str(), "listeners[0]"),
        (free.as_str(), busy.as_str(), "admin"),
    ] {
        let (status, stderr) = tokio::task::spawn_blocking({
            let args: Vec<String> = [
                "run",
                "--primary",
                "http://127.0.0.1:9",
                "--listen",
                listen,
                "--admin",
                admin,
            ]
            .map(str::to_string)
            .into();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run(&args)
            }
        })
        .await
        .unwrap();
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        let line = stderr
            .lines()
            .find(|line| line.starts_with("error:"))
            .unwrap_or_else(|| panic!("{what}: no error line:\n{stderr}"));
        assert!(line.contains(&busy) && line.contains(what), "{line}");
        assert!(
            line.contains("Address already in use (os error 98)"),
            "{line}"
        );
    }
}

/// The argument lists that print each command's help.
const HELP: [&[&str]; 5] = [
    &["--help"],
    &["run", "--help"],
    &["check", "--help"],
    &["demo", "--help"],
    &["verdict", "--help"],
];

/// Runs the binary with `args` to completion.
fn shadowtap_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn help_shows_examples_defaults_and_exit_codes_for_every_command() {
    for command in HELP {
        let output = shadowtap_output(command);
        assert!(output.status.success(), "{command:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(
            help.contains("Examples:\n  shadowtap "),
            "{command:?}: {help}"
        );
        assert!(help.contains("Exit codes:"), "{command:?}: {help}");
        for code in ["  0  ", "  2  "] {
            assert!(
                help.contains(code),
                "{command:?} lacks exit code {code:?}: {help}"
            );
        }
    }
    let output = shadowtap_output(&["run", "--help"]);
    let help = String::from_utf8(output.stdout).unwrap();
    for default in [
        "[default: 127.0.0.1:8080]",
        "[default: 127.0.0.1:9901]",
        "[default: human]",
    ] {
        assert!(help.contains(default), "{default}: {help}");
    }
}

/// Every example command in the help text is real: it parses with the binary's own parser.
#[test]
fn every_example_in_the_help_parses() {
    for command in HELP {
        let output = shadowtap_output(command);
        let help = String::from_utf8(output.stdout).unwrap();
        let examples = help
            .split("Examples:\n")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap()
            .replace("\\\n", " ");
        for line in examples.lines() {
            // Comments and shell redirections are not arguments.
            let line = line.split(['#', '>']).next().unwrap();
            let mut words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.first(), Some(&"shadowtap"), "{line}");
            words.remove(0);
            let subcommand = words.first().copied().unwrap();
            // Ask for the subcommand's help with the example's flags: clap parses (and
            // refuses unknown flags or bad values) before it prints help.
            let mut args = words.clone();
            args.push("--help");
            let output = shadowtap_output(&args);
            assert!(
                output.status.success(),
                "{subcommand}: {line}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
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
        .always(http::StatusCode::OK, "from the primary\n")
        .start()
        .await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = upstream.url("");
    let mut child = Spawned::run(&primary, &listen, &admin, &[]);
    child.ready(&admin).await;
    let reply = get(&format!("http://{listen}/anything")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "from the primary\n");
    assert_eq!(upstream.count(), 1);

    let status = child.terminate().await;
    assert!(status.0.success(), "exit {}: {}", status.0, status.1);
}

/// The README's `docker run` line mounts a config the container can serve with: every port it
/// binds is on all interfaces (a container's loopback cannot be reached through `-p`) and
/// published by that same line, and the image exposes it.
#[test]
fn the_readme_docker_run_mounts_a_config_reachable_from_outside_the_container() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let runs: Vec<&str> = readme
        .lines()
        .filter(|line| line.trim_start().starts_with("docker run"))
        .collect();
    assert!(!runs.is_empty(), "no docker run in the README");
    for run in runs {
        let words: Vec<&str> = run.split_whitespace().collect();
        let mount = words
            .windows(2)
            .find(|pair| pair[0] == "-v")
            .map(|pair| pair[1].trim_matches('"'))
            .unwrap_or_else(|| panic!("no -v in {run}"));
        let (host, container) = mount.split_once(':').unwrap();
        assert!(
            container.starts_with("/etc/shadowtap/shadowtap.toml"),
            "{run}"
        );
        let file = root.join(host.strip_prefix("$PWD/").unwrap());
        let config = shadowtap::config::Config::load(Some(&file), &Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let published: Vec<u16> = words
            .windows(2)
            .filter(|pair| pair[0] == "-p")
            .map(|pair| pair[1].rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        let admin = config.admin.address.expect("admin enabled");
        let addresses = config.listeners.iter().map(|l| l.address).chain([admin]);
        for address in addresses {
            assert!(
                address.ip().is_unspecified(),
                "{}: {address} cannot be reached from outside a container",
                file.display()
            );
            assert!(
                published.contains(&address.port()),
                "{address} not published: {run}"
            );
            let exposed = dockerfile
                .lines()
                .find(|line| line.starts_with("EXPOSE"))
                .unwrap();
            assert!(
                exposed
                    .split_whitespace()
                    .any(|port| port == address.port().to_string()),
                "{address}: {exposed}"
            );
        }
    }
}

/// `check` refuses sockets `run` could not bind together, and only those: every case is
/// judged by the config check and by binding the sockets for real (as `run` does), and the
/// two must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_and_admin_ports_that_clash_are_refused_exactly_when_binding_fails() {
    // (listeners, admin), with PORT replaced by one free port.
    let cases: &[(&[&str], &str)] = &[
        (&["127.0.0.1:PORT"], "127.0.0.1:PORT"),
        (&["0.0.0.0:PORT"], "127.0.0.1:PORT"),
        (&["127.0.0.1:PORT"], "0.0.0.0:PORT"),
        (&["[::]:PORT"], "127.0.0.1:PORT"),
        (&["127.0.0.1:PORT"], "[::]:PORT"),
        (&["[::1]:PORT"], "127.0.0.1:PORT"),
        (&["0.0.0.0:PORT"], "[::1]:PORT"),
        (&["[::1]:PORT"], "[::]:PORT"),
        (&["0.0.0.0:PORT", "127.0.0.1:PORT"], "127.0.0.1:0"),
        (&["127.0.0.1:PORT", "[::1]:PORT"], "127.0.0.1:0"),
        (&["127.0.0.1:0", "127.0.0.1:0"], "127.0.0.1:0"),
    ];
    let token_dir = tempfile::tempdir().unwrap();
    let token = token_dir.path().join("admin-token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let token = token.to_str().unwrap();
    for (listeners, admin) in cases {
        let port = closed_port().await.port().to_string();
        let listeners: Vec<String> = listeners.iter().map(|l| l.replace("PORT", &port)).collect();
        let admin = admin.replace("PORT", &port);
        let mut text = String::new();
        for listener in &listeners {
            text.push_str(&format!("[[listeners]]\naddress = {listener:?}\n\n"));
        }
        // A non-loopback admin port needs a token file; every case has one, so clashes
        // are the only problems.
        text.push_str(&format!(
            "[admin]\naddress = {admin:?}\ntoken_file = {token:?}\n\n[upstreams.prod]\nurl = \"http://127.0.0.1:9\"\n\n[[routes]]\nname = \"main\"\nprimary = \"prod\"\n"
        ));
        let checked = shadowtap::config::Config::from_toml(&text, &Default::default());
        let mut bound = Vec::new();
        let mut binds = true;
        for address in listeners.iter().chain([&admin]) {
            match tokio::net::TcpListener::bind(address.as_str()).await {
                Ok(listener) => bound.push(listener),
                Err(_) => binds = false,
            }
        }
        drop(bound);
        match &checked {
            Ok(_) => assert!(
                binds,
                "check passes {listeners:?} + admin {admin}, bind fails"
            ),
            Err(error) => {
                assert!(
                    !binds,
                    "check refuses {listeners:?} + admin {admin}: {error}"
                );
                assert!(
                    error.problems().iter().all(|p| p.path.ends_with(".address")
                        && p.reason.contains("same port")
                        || p.reason.contains("used by two listeners")),
                    "{error}"
                );
            }
        }
    }
}

/// Every `shadowtap ...` command in the README's and the example configs' instructions
/// parses with the binary's own parser (flags and values; `--help` appended so nothing runs),
/// and every config file it names exists and passes `check`.
#[test]
fn every_shadowtap_command_in_the_docs_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("README.md")];
    sources.extend(examples());
    let mut commands = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source)
            .unwrap()
            .replace("\\\n", " ");
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            if line.starts_with("shadowtap run") || line.starts_with("shadowtap check") {
                // Comments and shell redirections are not arguments.
                let command = line.split(['#', '>']).next().unwrap().trim().to_string();
                commands.push((source.clone(), command));
            }
        }
    }
    assert!(commands.len() >= 6, "{commands:?}");
    for (source, command) in commands {
        let mut words: Vec<&str> = command.split_whitespace().skip(1).collect();
        for pair in words.windows(2) {
            if pair[0] == "--config" {
                // The configs' own comments name themselves without their folder.
                let named = root.join(pair[1]);
                let file = if named.exists() {
                    named
                } else {
                    root.join("config").join(pair[1])
                };
                let (status, stderr) = run(&["check", "--config", file.to_str().unwrap()]);
                assert!(
                    status.success(),
                    "{}: {command}: {stderr}",
                    source.display()
                );
            }
        }
        words.push("--help");
        let (status, stderr) = run(&words);
        assert!(
            status.success(),
            "{}: {command}: {stderr}",
            source.display()
        );
    }
}
