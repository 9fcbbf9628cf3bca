#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap replay` end to end with the real binary and real servers: traffic recorded
//! through `run --record`, replayed against a stable build (passes) and a regressed one
//! (fails, naming the regressed paths and what differed), with the exit codes, output
//! formats, filters, pacing and bad input the issue asks for.

mod support;

use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use shadowtap::record::har::{
    self, Content, Entry, Request as HarRequest, Response as HarResponse,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use support::*;

/// The stable build: items with prices, and a search.
async fn stable() -> Upstream {
    upstream()
        .fallback(|r: Received| async move { answer(&r, false) })
        .start()
        .await
}

/// The regressed build: every item's price doubled, and search failing with 500.
async fn regressed() -> Upstream {
    upstream()
        .fallback(|r: Received| async move { answer(&r, true) })
        .start()
        .await
}

fn answer(r: &Received, regressed: bool) -> Response<Body> {
    let path = r.uri.path().to_string();
    let json_response = |status: StatusCode, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap()
    };
    if let Some(id) = path.strip_prefix("/api/items/") {
        let id: u64 = id.parse().unwrap_or(0);
        let price = if regressed { id * 20 } else { id * 10 };
        return json_response(
            StatusCode::OK,
            json!({"id": id, "name": format!("item {id}"), "price": price}),
        );
    }
    if path == "/api/search" {
        if regressed {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "boom"}));
        }
        return json_response(StatusCode::OK, json!({"results": [1, 2, 3]}));
    }
    json_response(StatusCode::CREATED, json!({"ok": true}))
}

/// Records `items` item reads, `searches` searches and 10 POSTs through the real binary.
async fn record(primary: &Upstream, file: &Path, items: u64, searches: u64) {
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let mut child = Spawned::run(
        &primary.url(""),
        &listen,
        &admin,
        &["--record", file.to_str().unwrap()],
    );
    child.ready(&admin).await;
    let client = http1_client();
    let mut paths: Vec<(Method, String)> = (0..items)
        .map(|i| (Method::GET, format!("/api/items/{i}")))
        .collect();
    paths.extend((0..searches).map(|i| (Method::GET, format!("/api/search?q={i}"))));
    paths.extend((0..10).map(|i| (Method::POST, format!("/api/orders/{i}"))));
    for (method, path) in paths {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{listen}{path}"))
            .header("authorization", "Bearer live-secret")
            .body(full(""))
            .unwrap();
        let reply = within("recorded request", send(&client, request))
            .await
            .unwrap();
        assert!(reply.status.is_success());
    }
    let total = (items + searches + 10) as f64;
    until_metrics(
        admin.parse().unwrap(),
        "every exchange written",
        |text| {
            metric_sum(
                text,
                "shadowtap_record_entries_total",
                &[("result", "written")],
            ) >= total
        },
        |text| text.to_string(),
    )
    .await;
    let (status, _) = child.terminate().await;
    assert!(status.success());
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|_| panic!("not JSON: {}\n{}", self.stdout, self.stderr))
    }
}

async fn replay(args: &[&str]) -> Ran {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(BIN)
            .arg("replay")
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_replayed_passes_on_stable_and_fails_on_regressed_with_the_paths() {
    let stable_build = stable().await;
    let regressed_build = regressed().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traffic.jsonl");
    record(&stable_build, &file, 120, 30).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("live-secret"));
    let file = file.to_str().unwrap();

    // A stable build against its own recorded answers: no divergence, a pass.
    let ran = replay(&[file, "--shadow", &stable_build.url(""), "--format", "json"]).await;
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let out = ran.json();
    assert_eq!(out["verdict"]["verdict"], "pass");
    assert_eq!(out["replay"]["read"], 160);
    // The POSTs are not replayed: the side-effect policy.
    assert_eq!(out["replay"]["excluded"]["method"], 10);
    assert_eq!(out["replay"]["answered"], 150);
    assert_eq!(out["diverged"].as_array().unwrap().len(), 0);
    // The shadow received only the safe methods, without the replay's own field.
    let received = stable_build.received();
    assert!(received
        .iter()
        .all(|r| r.method != Method::POST || r.header("x-shadowtap-replay-entry").is_none()));

    // The regressed build: a fail, the item prices (body) and search (status) named.
    let junit = dir.path().join("replay.xml");
    let ran = replay(&[
        file,
        "--shadow",
        &regressed_build.url(""),
        "--format",
        "json",
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let out = ran.json();
    assert_eq!(out["verdict"]["verdict"], "fail");
    let kinds = &out["verdict"]["routes"][0]["evidence"]["divergences_by_kind"];
    // Items 1..119 (item 0 costs 0 either way) and every search (its error body).
    assert_eq!(kinds["body"], 119 + 30, "{kinds}");
    assert_eq!(kinds["status"], 30, "{kinds}");
    let diverged: Vec<(String, Vec<(String, String)>)> = out["diverged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            let differences = sample["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["kind"].as_str().unwrap().to_string(),
                        d["path"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (sample["path"].as_str().unwrap().to_string(), differences)
        })
        .collect();
    assert!(!diverged.is_empty());
    for (path, differences) in &diverged {
        if path.starts_with("/api/items/") && path != "/api/items/0" {
            assert!(
                differences.contains(&("body".into(), "/price".into())),
                "{path}: {differences:?}"
            );
        } else if path.starts_with("/api/search") {
            assert!(
                differences.iter().any(|(kind, _)| kind == "status"),
                "{path}: {differences:?}"
            );
        } else {
            panic!("{path} diverged: {differences:?}");
        }
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite") && xml.contains("failure"),
        "{xml}"
    );

    // The table: the per-route report and the verdict, for people.
    let ran = replay(&[file, "--shadow", &regressed_build.url("")]).await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.stdout.contains("top diverging fields"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("GET /api/search?q="), "{}", ran.stdout);
    assert!(ran.stdout.contains("verdict:"), "{}", ran.stdout);

    // Too few pairs to judge: inconclusive. A route filter and a limit narrow the replay.
    let ran = replay(&[
        file,
        "--shadow",
        &stable_build.url(""),
        "--route",
        "/api/search",
        "--limit",
        "5",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    let out = ran.json();
    assert_eq!(out["replay"]["answered"], 5);
    assert_eq!(out["replay"]["excluded"]["route"], 120);
    assert_eq!(out["replay"]["excluded"]["limit"], 25);

    // --methods opts in to POST.
    let ran = replay(&[
        file,
        "--shadow",
        &stable_build.url(""),
        "--methods",
        "GET,POST",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json()["replay"]["answered"], 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_shadow_is_exit_3_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_entries(dir.path(), &[(0, "/a")]);
    let closed = closed_port().await;
    let ran = replay(&[
        file.to_str().unwrap(),
        "--shadow",
        &format!("http://{closed}"),
    ])
    .await;
    assert_eq!(ran.code, 3);
    assert!(
        ran.stderr
            .contains(&format!("the shadow http://{closed} is unreachable")),
        "{}",
        ran.stderr
    );
    // A file that does not exist, and a file with nothing to replay, are errors too.
    let ran = replay(&[
        "/nonexistent/traffic.jsonl",
        "--shadow",
        "http://127.0.0.1:1",
    ])
    .await;
    assert_eq!(ran.code, 3);
    assert!(
        ran.stderr
            .contains("cannot read /nonexistent/traffic.jsonl"),
        "{}",
        ran.stderr
    );
}

/// A recording of GETs, each `(milliseconds after the first, path)`, answered `{"ok":1}`.
fn write_entries(dir: &Path, entries: &[(u64, &str)]) -> PathBuf {
    let file = dir.join("made.jsonl");
    let lines: String = entries
        .iter()
        .map(|(at, path)| serde_json::to_string(&entry(*at, path)).unwrap() + "\n")
        .collect();
    std::fs::write(&file, lines).unwrap();
    file
}

fn entry(at: u64, path: &str) -> Entry {
    let started = UNIX_EPOCH + Duration::from_millis(1_796_616_000_000 + at);
    Entry {
        started_date_time: har::format_time(started),
        time: 1.0,
        request: HarRequest {
            method: "GET".into(),
            url: format!("http://shop.test{path}"),
            http_version: "HTTP/1.1".into(),
            cookies: Vec::new(),
            headers: Vec::new(),
            query_string: Vec::new(),
            post_data: None,
            headers_size: -1,
            body_size: 0,
        },
        response: HarResponse {
            status: 200,
            status_text: "OK".into(),
            http_version: "HTTP/1.1".into(),
            cookies: Vec::new(),
            headers: vec![har::Header {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            content: Content {
                size: 8,
                mime_type: "application/json".into(),
                text: Some(r#"{"ok":1}"#.into()),
                encoding: None,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: 8,
        },
        cache: Default::default(),
        timings: Default::default(),
        shadowtap: None,
    }
}

async fn ok_shadow() -> Upstream {
    upstream()
        .fallback(|_| async {
            Response::builder()
                .header("content-type", "application/json")
                .body(full(r#"{"ok":1}"#))
                .unwrap()
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_lines_are_reported_with_their_numbers_and_skipped() {
    let shadow = ok_shadow().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_entries(dir.path(), &[(0, "/a"), (1, "/b"), (2, "/c")]);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"startedDateTime\": \"2026-12-07T04:00:00Z\", \"requ\n");
    text.push_str("garbage\n");
    std::fs::write(&file, text).unwrap();
    let ran = replay(&[
        file.to_str().unwrap(),
        "--shadow",
        &shadow.url(""),
        "--format",
        "json",
    ])
    .await;
    // Never fatal: judged (three pairs are too few for a decision: inconclusive).
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json()["verdict"]["routes"][0]["evidence"]["pairs"], 3);
    let out = ran.json();
    assert_eq!(out["replay"]["read"], 3);
    assert_eq!(out["replay"]["skipped"], 2);
    assert!(ran.stderr.contains("line 4 skipped"), "{}", ran.stderr);
    assert!(ran.stderr.contains("line 5 skipped"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_keeps_the_recorded_gaps_scaled_or_a_rate() {
    let shadow = ok_shadow().await;
    let dir = tempfile::tempdir().unwrap();
    // Three requests over 1.2 s as recorded.
    let file = write_entries(dir.path(), &[(0, "/a"), (600, "/b"), (1200, "/c")]);
    let file = file.to_str().unwrap();
    let seconds = |ran: &Ran| ran.json()["replay"]["seconds"].as_f64().unwrap();
    let ran = replay(&[
        file,
        "--shadow",
        &shadow.url(""),
        "--format",
        "json",
        "--speed",
        "1",
        "--min-pairs",
        "3",
    ])
    .await;
    assert_eq!(ran.json()["replay"]["answered"], 3, "{}", ran.stderr);
    let taken = seconds(&ran);
    assert!((1.2..3.0).contains(&taken), "--speed 1 took {taken}s");
    let ran = replay(&[
        file,
        "--shadow",
        &shadow.url(""),
        "--format",
        "json",
        "--speed",
        "4",
        "--min-pairs",
        "3",
    ])
    .await;
    let taken = seconds(&ran);
    assert!((0.3..1.0).contains(&taken), "--speed 4 took {taken}s");
    let ran = replay(&[
        file,
        "--shadow",
        &shadow.url(""),
        "--format",
        "json",
        "--min-pairs",
        "3",
    ])
    .await;
    let taken = seconds(&ran);
    assert!(taken < 0.6, "--speed 0 took {taken}s");
    // --rate 4: three requests, the third due at 0.5 s.
    let ran = replay(&[
        file,
        "--shadow",
        &shadow.url(""),
        "--format",
        "json",
        "--rate",
        "4",
        "--min-pairs",
        "3",
    ])
    .await;
    let taken = seconds(&ran);
    assert!((0.5..1.2).contains(&taken), "--rate 4 took {taken}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_live_primary_with_a_secondary_and_a_route_config() {
    let stable_build = stable().await;
    let stable_twin = stable().await;
    let regressed_build = regressed().await;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..120).map(|i| format!("/api/items/{i}")).collect();
    let specs: Vec<(u64, &str)> = paths.iter().map(|p| (0, p.as_str())).collect();
    let file = write_entries(dir.path(), &specs);
    let file = file.to_str().unwrap();
    // The user's routes: item reads under their template, a verdict of their own.
    let config = dir.path().join("shadowtap.toml");
    std::fs::write(
        &config,
        r#"
[upstreams.prod]
url = "http://10.255.255.1:8080"
[[routes]]
name = "items"
path_prefix = "/api/items/"
primary = "prod"
template = ["/api/items/{id}"]
[verdict]
min_pairs = 50
"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The recorded answers say {"ok":1}; a live primary answers what the stable build says.
    let ran = replay(&[
        file,
        "--shadow",
        &stable_twin.url(""),
        "--primary",
        &stable_build.url(""),
        "--secondary",
        &stable_twin.url(""),
        "--config",
        config,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let out = ran.json();
    assert_eq!(
        out["verdict"]["routes"][0]["evidence"]["route"],
        "/api/items/{id}"
    );
    assert_eq!(out["verdict"]["routes"][0]["thresholds"]["min_pairs"], 50);
    // The live primary got the requests, without the recorded-answer field.
    assert!(stable_build.received().len() >= 120);
    assert!(stable_build
        .received()
        .iter()
        .all(|r| r.header("x-shadowtap-replay-entry").is_none()));

    let ran = replay(&[
        file,
        "--shadow",
        &regressed_build.url(""),
        "--primary",
        &stable_build.url(""),
        "--config",
        config,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        ran.json()["verdict"]["routes"][0]["evidence"]["divergences_by_kind"]["body"],
        119
    );
    // An unreachable primary is an error too.
    let closed = closed_port().await;
    let ran = replay(&[
        file,
        "--shadow",
        &stable_twin.url(""),
        "--primary",
        &format!("http://{closed}"),
    ])
    .await;
    assert_eq!(ran.code, 3);
    assert!(ran.stderr.contains("the primary"), "{}", ran.stderr);
}

/// An answer the recording cut at its cap is not compared against a whole one: with the
/// recorded answers as the primary its entry is left out and counted, so no divergence is
/// reported that the shadow did not make; with a live `--primary` it is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_cut_at_record_time_are_not_compared_as_divergent() {
    let shadow = ok_shadow().await;
    let primary = ok_shadow().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.jsonl");
    let lines: String = (0..6)
        .map(|i| {
            let mut entry = entry(i, &format!("/api/{i}"));
            if i % 2 == 0 {
                // The first 4 bytes of {"ok":1}, as a 4-byte cap writes it.
                entry.response.content.text = Some(r#"{"ok"#.into());
                entry.shadowtap = Some(har::Extra {
                    route: "api".into(),
                    response_truncated: true,
                });
            }
            serde_json::to_string(&entry).unwrap() + "\n"
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let file = file.to_str().unwrap();

    let ran = replay(&[file, "--shadow", &shadow.url(""), "--format", "json"]).await;
    let out = ran.json();
    assert_eq!(out["replay"]["excluded"]["truncated"], 3, "{}", ran.stdout);
    assert_eq!(out["replay"]["answered"], 3);
    assert_eq!(shadow.received().len(), 3);
    assert_eq!(out["verdict"]["routes"][0]["evidence"]["pairs"], 3);
    assert_eq!(
        out["verdict"]["routes"][0]["evidence"]["diverged"], 0,
        "{}",
        ran.stdout
    );

    let ran = replay(&[
        file,
        "--shadow",
        &shadow.url(""),
        "--primary",
        &primary.url(""),
        "--format",
        "json",
    ])
    .await;
    let out = ran.json();
    assert_eq!(out["replay"]["excluded"]["truncated"], 0, "{}", ran.stdout);
    assert_eq!(out["replay"]["answered"], 6);
    assert_eq!(
        out["verdict"]["routes"][0]["evidence"]["diverged"], 0,
        "{}",
        ran.stdout
    );

    let ran = replay(&[file, "--shadow", &shadow.url("")]).await;
    assert!(
        ran.stdout.contains("3 cut at record time"),
        "{}",
        ran.stdout
    );
}

/// Every `shadowtap replay ...` line in the README parses with the binary's own parser.
#[test]
fn every_replay_command_in_the_readme_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .map(|line| line.trim_start_matches(['-', ' ']))
        .filter(|line| line.starts_with("shadowtap replay "))
        .collect();
    assert!(commands.len() >= 4, "{commands:?}");
    for command in commands {
        let mut words: Vec<&str> = command.split_whitespace().skip(1).collect();
        words.push("--help");
        let output = std::process::Command::new(BIN)
            .args(&words)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
