#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recording live traffic through the real proxy (in-process, real upstreams): what is
//! written, redacted before it is written, sampled and filtered by route, rotated within the
//! disk cap, and accounted for when the writer falls behind.

mod support;

use http::{Method, Request, Response, StatusCode};
use shadowtap::record::{read_files, Entry};
use std::path::Path;
use std::time::Duration;
use support::*;

const ENTRIES: &str = "shadowtap_record_entries_total";

/// A primary answering JSON that holds a secret, and a secret `set-cookie`.
async fn secret_primary() -> Upstream {
    upstream()
        .fallback(|r: Received| async move {
            let body = format!(
                r#"{{"path":"{}","user":{{"name":"ada","token":"primary-secret-9f3"}}}}"#,
                r.uri.path()
            );
            Response::builder()
                .header("content-type", "application/json")
                .header("set-cookie", "session=cookie-secret-77")
                .body(full(body))
                .unwrap()
        })
        .start()
        .await
}

fn record_toml(primary: &Upstream, record: &str) -> String {
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstreams.primary]
url = "{}"
[compare]
redact_headers = ["x-api-key"]
[[routes]]
name = "api"
path_prefix = "/api/"
primary = "primary"
[routes.compare]
redact_pointers = ["/user/token"]
[[routes]]
name = "static"
path_prefix = "/"
primary = "primary"
[record]
{record}
"#,
        primary.url("")
    )
}

fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

async fn call(proxy: &Shadowtap, method: Method, path: &str, body: &'static str) -> u16 {
    let request = Request::builder()
        .method(method)
        .uri(proxy.url(path))
        .header("authorization", "Bearer auth-secret-123")
        .header("x-api-key", "key-secret-456")
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap();
    within("request", send(&http1_client(), request))
        .await
        .expect("answered")
        .status
        .as_u16()
}

async fn written(proxy: &Shadowtap, n: f64) -> String {
    until_metrics(
        proxy.admin,
        "recorded entries written",
        |text| metric_sum(text, ENTRIES, &[("result", "written")]) >= n,
        |text| {
            text.lines()
                .filter(|l| l.contains("record"))
                .collect::<Vec<_>>()
                .join("\n")
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_exchanges_as_har_lines_with_secrets_redacted() {
    let primary = secret_primary().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traffic.jsonl");
    let proxy = Shadowtap::start(config(&record_toml(
        &primary,
        &format!("file = {}", toml_path(&file)),
    )))
    .await;
    assert_eq!(call(&proxy, Method::GET, "/api/items/1?x=2", "").await, 200);
    let body = r#"{"user":{"name":"bob","token":"request-secret-abc"}}"#;
    assert_eq!(call(&proxy, Method::POST, "/api/users", body).await, 200);
    assert_eq!(call(&proxy, Method::GET, "/index.html", "").await, 200);
    let metrics = written(&proxy, 3.0).await;

    let text = std::fs::read_to_string(&file).unwrap();
    // The pointer is the api route's rule: the other route's body is written as it was.
    let (api, other): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|line| line.contains(r#""route":"api""#));
    assert_eq!((api.len(), other.len()), (2, 1));
    assert!(other[0].contains("primary-secret-9f3"));
    assert!(!api.concat().contains("primary-secret-9f3"), "{text}");
    for secret in [
        "cookie-secret-77",
        "auth-secret-123",
        "key-secret-456",
        "request-secret-abc",
    ] {
        assert!(!text.contains(secret), "{secret} written:\n{text}");
    }
    assert_eq!(
        metric_sum(&metrics, "shadowtap_record_bytes_total", &[]),
        text.len() as f64
    );
    let loaded = read_files(&[&file]).unwrap();
    assert!(loaded.skipped.is_empty());
    let mut entries: Vec<&Entry> = loaded.entries.iter().collect();
    entries.sort_by_key(|e| e.path());
    let seen: Vec<(String, String, u16, String)> = entries
        .iter()
        .map(|e| {
            (
                e.request.method.clone(),
                e.path_and_query(),
                e.response.status,
                e.shadowtap.as_ref().unwrap().route.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".into(), "/api/items/1?x=2".into(), 200, "api".into()),
            ("POST".into(), "/api/users".into(), 200, "api".into()),
            ("GET".into(), "/index.html".into(), 200, "static".into()),
        ]
    );
    let get = entries[0];
    let answer: serde_json::Value = serde_json::from_slice(&get.response_body()).unwrap();
    assert_eq!(answer["user"]["name"], "ada");
    assert_eq!(answer["user"]["token"], "[REDACTED]");
    let header = |e: &Entry, name: &str| {
        e.request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
    };
    assert_eq!(header(get, "authorization").as_deref(), Some("[REDACTED]"));
    assert_eq!(header(get, "x-api-key").as_deref(), Some("[REDACTED]"));
    assert!(header(get, "host").is_some());
    let posted: serde_json::Value = serde_json::from_slice(&entries[1].request_body()).unwrap();
    assert_eq!(
        posted["user"],
        serde_json::json!({"name": "bob", "token": "[REDACTED]"})
    );
    // Timing: the primary's answer time, and a start time close to now.
    assert!(get.time >= 0.0 && get.timings.wait == get.time);
    let age = std::time::SystemTime::now()
        .duration_since(get.started().unwrap())
        .unwrap();
    assert!(age < Duration::from_secs(60), "{age:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_only_the_routes_and_share_it_is_told() {
    let primary = secret_primary().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.jsonl");
    let proxy = Shadowtap::start(config(&record_toml(
        &primary,
        &format!(
            "file = {}\nroutes = [\"api\"]\nsample = 50",
            toml_path(&file)
        ),
    )))
    .await;
    for i in 0..200 {
        assert_eq!(
            call(&proxy, Method::GET, &format!("/api/{i}"), "").await,
            200
        );
        assert_eq!(
            call(&proxy, Method::GET, &format!("/page/{i}"), "").await,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = proxy.metrics().await;
    let written = metric_sum(&metrics, ENTRIES, &[("result", "written")]);
    let all = metric_sum(&metrics, ENTRIES, &[]);
    assert_eq!(written, all, "nothing dropped:\n{metrics}");
    // 50 % of 200, well inside a 1-in-a-million band (sd = 7.1).
    assert!(
        (60.0..=140.0).contains(&written),
        "{written} of 200 recorded"
    );
    let loaded = read_files(&[&file]).unwrap();
    assert_eq!(loaded.entries.len() as f64, written);
    assert!(loaded.entries.iter().all(|e| e.path().starts_with("/api/")));
}

/// On a mirrored route the body copy is taken within the mirror's cap; a body over the
/// recording's own cap is not recorded (a cut request would replay as another request),
/// and is counted, while the shadow still gets its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_request_over_the_recording_cap_is_not_recorded_cut() {
    let primary = secret_primary().await;
    let shadow = secret_primary().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capped.jsonl");
    let text = record_toml(
        &primary,
        &format!("file = {}\nmax_body_bytes = 8", toml_path(&file)),
    )
    .replace(
        "[upstreams.primary]",
        &format!("[upstreams.shadow]\nurl = \"{}\"\n[upstreams.primary]", shadow.url("")),
    )
    .replace(
        "redact_pointers = [\"/user/token\"]",
        "redact_pointers = [\"/user/token\"]\n[[routes.mirror.shadows]]\nupstream = \"shadow\"\nmethods = [\"POST\"]",
    );
    let proxy = Shadowtap::start(config(&text)).await;
    assert_eq!(
        call(&proxy, Method::POST, "/api/small", "{\"a\":1}").await,
        200
    );
    assert_eq!(
        call(&proxy, Method::POST, "/api/large", "{\"a\":\"0123456789\"}").await,
        200
    );
    let metrics = until_metrics(
        proxy.admin,
        "both exchanges accounted for",
        |text| metric_sum(text, ENTRIES, &[]) >= 2.0,
        |text| text.to_string(),
    )
    .await;
    assert_eq!(metric_sum(&metrics, ENTRIES, &[("result", "written")]), 1.0);
    assert_eq!(
        metric_sum(&metrics, ENTRIES, &[("result", "dropped_body_too_large")]),
        1.0
    );
    let loaded = read_files(&[&file]).unwrap();
    let paths: Vec<String> = loaded.entries.iter().map(|e| e.path()).collect();
    assert_eq!(paths, ["/api/small"]);
    until("the shadow got both copies", || shadow.count() == 2).await;
}

/// A recording says which protocol each client spoke and over which scheme, on both engines:
/// HTTP/1.0, HTTP/1.1 and h2c in plaintext, HTTP/1.1 and h2 over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_protocol_and_scheme_each_client_used() {
    use support::tls::{client_config, handshake, with_listener_tls, Pki, Sender};
    let pki = Pki::new("record CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let primary = secret_primary().await;
    for engine in ["native", "hyper"] {
        let dir = tempfile::tempdir().unwrap();
        let plain_file = dir.path().join("plain.jsonl");
        let tls_file = dir.path().join("tls.jsonl");
        let record = |file: &Path| {
            engine_toml(
                &record_toml(&primary, &format!("file = {}", toml_path(file))),
                engine,
            )
        };
        let plain = Shadowtap::start(config(&record(&plain_file))).await;
        let tls =
            Shadowtap::start(config(&with_listener_tls(&record(&tls_file), &leaf.pair()))).await;

        let answer = raw_exchange(
            plain.addr,
            b"GET /api/v10 HTTP/1.0\r\nHost: localhost\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.0 200 "), "{answer}");
        assert_eq!(call(&plain, Method::GET, "/api/v11", "").await, 200);
        let reply = within(
            "h2c request",
            send(&h2_client(), get_request(&plain.url("/api/h2c"))),
        )
        .await
        .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        for (alpn, path) in [("http/1.1", "/api/tls11"), ("h2", "/api/tls2")] {
            let stream = handshake(tls.addr, "localhost", client_config(&pki, &[alpn], None))
                .await
                .expect("handshake");
            let mut sender = Sender::over(stream).await.unwrap();
            let request = Request::get(format!("https://localhost{path}"))
                .header("host", "localhost")
                .body(empty())
                .unwrap();
            assert_eq!(sender.send(request).await.unwrap().status(), StatusCode::OK);
        }
        written(&plain, 3.0).await;
        written(&tls, 2.0).await;

        let mut seen = Vec::new();
        for file in [&plain_file, &tls_file] {
            for entry in read_files(&[file]).unwrap().entries {
                assert_eq!(entry.response.http_version, entry.request.http_version);
                let scheme = entry.request.url.split_once("://").unwrap().0.to_string();
                seen.push((entry.path(), entry.request.http_version, scheme));
            }
        }
        seen.sort();
        let expected = |path: &str, version: &str, scheme: &str| {
            (path.to_string(), version.to_string(), scheme.to_string())
        };
        assert_eq!(
            seen,
            [
                expected("/api/h2c", "HTTP/2", "http"),
                expected("/api/tls11", "HTTP/1.1", "https"),
                expected("/api/tls2", "HTTP/2", "https"),
                expected("/api/v10", "HTTP/1.0", "http"),
                expected("/api/v11", "HTTP/1.1", "http"),
            ],
            "engine {engine}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_by_size_and_keeps_within_the_disk_cap() {
    let primary = secret_primary().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rotated.jsonl");
    let proxy = Shadowtap::start(config(&record_toml(
        &primary,
        &format!(
            "file = {}\nmax_file_bytes = 4000\nmax_total_bytes = 12000",
            toml_path(&file)
        ),
    )))
    .await;
    for i in 0..60 {
        assert_eq!(
            call(&proxy, Method::GET, &format!("/api/{i}"), "").await,
            200
        );
    }
    written(&proxy, 60.0).await;
    let name = |suffix: &str| dir.path().join(format!("rotated.jsonl{suffix}"));
    // 12000 / 4000: the current file and two rotated ones.
    assert!(name(".1").exists() && name(".2").exists());
    assert!(!name(".3").exists());
    let mut total = 0;
    for suffix in ["", ".1", ".2"] {
        let size = std::fs::metadata(name(suffix)).unwrap().len();
        assert!(size <= 4000, "{suffix}: {size}");
        total += size;
    }
    assert!(total <= 12000);
    let loaded = read_files(&[name(".2"), name(".1"), name("")]).unwrap();
    assert!(loaded.skipped.is_empty());
    // The newest are kept, in order.
    let last = loaded.entries.last().unwrap();
    assert_eq!(last.path(), "/api/59");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_falls_behind_drops_and_counts_never_slows_the_live_path() {
    // The recording is a FIFO nobody reads yet: the writer blocks once the pipe is full,
    // as on a stalled disk.
    let big = "x".repeat(32 * 1024);
    let primary = upstream()
        .fallback(move |_| {
            let big = big.clone();
            async move { Response::new(full(big)) }
        })
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stalled.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Read-write, so opening it blocks neither side; read from only at the end.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let proxy = Shadowtap::start(config(&record_toml(
        &primary,
        &format!("file = {}\nqueue_size = 4", toml_path(&fifo)),
    )))
    .await;
    let started = std::time::Instant::now();
    // The `static` route: no pointers to redact, so the bodies are written whole.
    for i in 0..40 {
        assert_eq!(
            call(&proxy, Method::GET, &format!("/page/{i}"), "").await,
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let metrics = until_metrics(
        proxy.admin,
        "drops counted",
        |text| metric_sum(text, ENTRIES, &[("result", "dropped_queue_full")]) >= 1.0,
        |text| text.to_string(),
    )
    .await;
    let written_so_far = metric_sum(&metrics, ENTRIES, &[("result", "written")]);
    assert!(written_so_far < 40.0);
    // Drain the pipe: every sampled exchange ends written or dropped, exactly once.
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        while std::io::Read::read(&mut reader, &mut sink).is_ok() {}
    });
    let metrics = until_metrics(
        proxy.admin,
        "every exchange accounted for",
        |text| metric_sum(text, ENTRIES, &[]) >= 40.0,
        |text| text.to_string(),
    )
    .await;
    assert_eq!(metric_sum(&metrics, ENTRIES, &[]), 40.0, "{metrics}");
    let dropped = metric_sum(&metrics, ENTRIES, &[("result", "dropped_queue_full")]);
    let written = metric_sum(&metrics, ENTRIES, &[("result", "written")]);
    assert_eq!(dropped + written, 40.0);
    assert!(dropped >= 1.0);
    let _ = StatusCode::OK;
}
