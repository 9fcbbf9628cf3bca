#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Secrets never leave the process. Requests carry `Authorization`, `Cookie` and a
//! configured `x-api-key`; answers carry `Set-Cookie` and values under configured
//! `redact_pointers`, and differ exactly there. Every secret contains the marker
//! [`MARKER`], which must appear nowhere in `/api/v1/samples`, in the JSONL diff log, or in
//! the real binary's log output at debug level — while the non-secret parts of the same
//! samples stay visible, so the checks are not passing on empty records.

mod support;

use http::{Request, StatusCode};
use serde_json::Value;
use std::time::Duration;
use support::compare::*;
use support::*;

/// Part of every secret value in these tests.
const MARKER: &str = "s3cr3t";

const ACCOUNT: &str = "/account/{id}";
const DROPPED: &str = "/dropped/{id}";
const BIG: &str = "/big";

const PRIMARY_DOC: &str = r#"{"user":{"email":"s3cr3t-p@example.com","name":"ann"},"accounts":[{"iban":"s3cr3t-IBAN-P1","kind":"checking"}],"plan":"pro"}"#;
const SHADOW_DOC: &str = r#"{"user":{"email":"s3cr3t-s@example.com","name":"ann"},"accounts":[{"iban":"s3cr3t-IBAN-S1","kind":"checking"}],"plan":"basic"}"#;
/// `/user` gone and an account more: the differences sit *above* the redacted pointers.
const DROPPED_DOC: &str = r#"{"accounts":[{"iban":"s3cr3t-IBAN-P1","kind":"checking"},{"iban":"s3cr3t-IBAN-NEW","kind":"savings"}],"plan":"pro"}"#;

/// Shadow answers larger than this are cut, so their JSON cannot be parsed for redaction.
const MAX_RESPONSE_BODY: usize = 4096;

async fn upstreams() -> (Upstream, Upstream) {
    let primary = upstream()
        .fallback(|_| async {
            json_with(
                StatusCode::OK,
                PRIMARY_DOC,
                &[("set-cookie", "sid=s3cr3t-SETCOOKIE-P; HttpOnly")],
            )
        })
        .start()
        .await;
    let shadow = upstream()
        .route("/account/1", |_| async {
            json_with(
                StatusCode::OK,
                SHADOW_DOC,
                &[("set-cookie", "sid=s3cr3t-SETCOOKIE-S; HttpOnly")],
            )
        })
        .route("/dropped/1", |_| async {
            json_with(
                StatusCode::OK,
                DROPPED_DOC,
                &[("set-cookie", "sid=s3cr3t-SETCOOKIE-P; HttpOnly")],
            )
        })
        .route("/big", |_| async {
            // A 500 (so the pair diverges) whose JSON passes the capture cap: only a prefix,
            // which is not valid JSON, is kept.
            let pad = "x".repeat(2 * MAX_RESPONSE_BODY);
            json_with(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(r#"{{"user":{{"email":"s3cr3t-big@example.com"}},"pad":"{pad}"}}"#),
                &[("set-cookie", "sid=s3cr3t-SETCOOKIE-P; HttpOnly")],
            )
        })
        .start()
        .await;
    (primary, shadow)
}

/// The mirrored config with redaction: `x-api-key` redacted globally, two JSON pointers
/// (one with a wildcard) on the route. `diff_log` (when given) goes into `[compare]`.
fn redaction_toml(primary: &Upstream, shadow: &Upstream, diff_log: Option<&str>) -> String {
    let diff_log = diff_log
        .map(|path| format!("diff_log = {path:?}"))
        .unwrap_or_default();
    mirror_toml(
        &Mirrored::pair(primary.addr, shadow.addr),
        &[ACCOUNT, DROPPED, BIG],
        &format!(
            "learn_after = 0\nredact_headers = [\"X-Api-Key\"]\n{diff_log}\n\n\
             [mirror]\nmax_response_body_bytes = {MAX_RESPONSE_BODY}"
        ),
        r#"redact_pointers = ["/user/email", "/accounts/*/iban"]"#,
    )
}

/// A GET with every kind of secret request header.
fn secret_request(url: &str) -> Request<Body> {
    Request::get(url)
        .header("authorization", "Bearer s3cr3t-AUTH")
        .header("cookie", "session=s3cr3t-COOKIE; theme=dark")
        .header("x-api-key", "s3cr3t-APIKEY")
        .header("x-visible", "shown")
        .body(empty())
        .unwrap()
}

/// Sends one secret-laden request per scenario through `proxy` (an `http://addr` base).
async fn send_secrets(base: &str) {
    let client = http1_client();
    for path in ["/account/1", "/dropped/1", "/big"] {
        let reply = send(&client, secret_request(&format!("{base}{path}")))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
}

/// The checks on one divergent record, whether it came from the API or the diff log.
fn assert_redacted_record(record: &Value) {
    let text = record.to_string();
    assert!(!text.contains(MARKER), "a secret leaked: {text}");
    let request = &record["request"]["headers"];
    for name in ["authorization", "cookie", "x-api-key"] {
        assert_eq!(request[name], "[REDACTED]", "{name}: {request}");
    }
    assert_eq!(request["x-visible"], "shown", "{request}");
    assert_eq!(
        record["primary"]["headers"]["set-cookie"], "[REDACTED]",
        "{record}"
    );
}

/// The samples of every scenario, with the differences each must show.
async fn assert_redacted_samples(samples_of: impl AsyncFn(&str) -> Vec<Value>) {
    let account = samples_of(ACCOUNT).await;
    assert_eq!(account.len(), 1, "{account:?}");
    let sample = &account[0];
    assert_redacted_record(sample);
    let differences = sample["differences"].as_array().unwrap();
    let at = |path: &str| {
        differences
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("no difference at {path}: {differences:?}"))
    };
    // The differences are there, with their values hidden...
    for path in ["/user/email", "/accounts/0/iban", "set-cookie"] {
        assert_eq!(at(path)["primary"], "[REDACTED]", "{path}");
        assert_eq!(at(path)["shadow"], "[REDACTED]", "{path}");
    }
    // ...and what is not secret is shown as it is.
    assert_eq!(at("/plan")["shadow"], "\"basic\"");
    let body = sample["primary"]["body"].as_str().unwrap();
    assert!(body.contains("ann") && body.contains("checking"), "{body}");

    let dropped = samples_of(DROPPED).await;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_redacted_record(&dropped[0]);
    let kinds = difference_triples(&dropped[0]);
    for (path, change) in [("/user", "removed"), ("/accounts/1", "added")] {
        assert!(
            kinds
                .iter()
                .any(|(k, p, c)| k == "body" && p == path && c == change),
            "{path} {change} missing: {kinds:?}"
        );
    }
    // The parts of the removed and added values that are not secret are still there.
    let text = dropped[0]["differences"].to_string();
    assert!(text.contains("ann") && text.contains("savings"), "{text}");

    let big = samples_of(BIG).await;
    assert_eq!(big.len(), 1, "{big:?}");
    assert_redacted_record(&big[0]);
    assert_eq!(big[0]["shadow_response"]["status"], 500);
}

/// The diff log at `path`: no secret in it, and one JSON object per divergent pair (three).
fn read_diff_log(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        !text.contains(MARKER),
        "a secret leaked to the diff log: {text}"
    );
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(
        records.len(),
        3,
        "the diff log has one line per divergent pair:\n{text}"
    );
    records
}

/// [`assert_redacted_samples`] over the records of a diff log.
async fn assert_redacted_log(records: &[Value]) {
    assert_redacted_samples(async |route: &str| {
        records
            .iter()
            .filter(|r| r["route"] == route)
            .cloned()
            .collect()
    })
    .await;
}

#[tokio::test]
async fn samples_and_the_diff_log_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("diffs.jsonl");
    let (primary, shadow) = upstreams().await;
    let toml = redaction_toml(&primary, &shadow, Some(log_path.to_str().unwrap()));
    let proxy = Shadowtap::start(config(&toml)).await;
    send_secrets(&format!("http://{}", proxy.addr)).await;
    for route in [ACCOUNT, DROPPED, BIG] {
        wait_compared(&proxy, route, 1).await;
    }

    let all = admin_text(proxy.admin, "/api/v1/samples?limit=100").await.0;
    assert!(!all.contains(MARKER), "a secret leaked to the API: {all}");
    assert_redacted_samples(async |route: &str| samples(&proxy, route).await).await;

    // The diff log: one JSON object per divergent pair, with the documented fields.
    let records = read_diff_log(&log_path);
    for record in &records {
        for field in [
            "time",
            "route",
            "shadow",
            "method",
            "path",
            "request_id",
            "result",
        ] {
            assert!(record[field].is_string(), "{field} in {record}");
        }
        assert_eq!(record["result"], "diverged");
        assert_eq!(record["method"], "GET");
        assert!(
            humantime::parse_rfc3339(record["time"].as_str().unwrap()).is_ok(),
            "{record}"
        );
        for side in ["primary", "shadow"] {
            assert!(record["latency_ms"][side].is_number(), "{record}");
        }
        let differences = record["differences"].as_array().unwrap();
        assert!(!differences.is_empty());
        for difference in differences {
            for key in ["kind", "path", "primary", "shadow"] {
                assert!(difference.get(key).is_some(), "{key} in {difference}");
            }
        }
    }
    let routes: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes, [ACCOUNT, BIG, DROPPED].into_iter().collect());
    assert_redacted_log(&records).await;
}

#[tokio::test]
async fn the_binary_logs_at_debug_and_writes_diff_log_flag_file_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("flag-diffs.jsonl");
    let config_path = dir.path().join("shadowtap.toml");
    let (primary, shadow) = upstreams().await;
    std::fs::write(&config_path, redaction_toml(&primary, &shadow, None)).unwrap();
    let mut process = Process::start(
        &[
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--diff-log",
            log_path.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "debug")],
    );
    let limit = Duration::from_secs(20);
    let proxy = process.announced("listening", limit).await;
    let admin = process.announced("admin listening", limit).await;
    send_secrets(&format!("http://{proxy}")).await;
    wait_admin_metrics(admin, "three comparisons", |m| {
        metric_sum(m, "shadowtap_comparisons_total", &[("shadow", SHADOW)]) >= 3.0
    })
    .await;
    let api = admin_text(admin, "/api/v1/samples?limit=100").await.0;
    // The worker logs each divergent pair at debug level; wait for all three lines.
    process
        .wait_stderr(limit, |s| {
            (s.matches("divergent pair").count() >= 3).then_some(())
        })
        .await;
    let status = process.terminate().await;
    assert!(status.success(), "{status}\n{}", process.stderr());

    let logs = process.stderr();
    // Proof that this captured shadowtap's own tracing at debug level, from the proxy and
    // from the comparison workers (a separate thread pool), so "absent" means something.
    assert!(logs.contains("\"level\":\"DEBUG\""), "{logs}");
    assert!(logs.contains("primary answered"), "{logs}");
    assert!(logs.contains("\"request_id\""), "{logs}");
    assert!(
        !logs.contains(MARKER),
        "a secret leaked to the logs:\n{logs}"
    );

    assert!(!api.contains(MARKER), "a secret leaked to the API: {api}");
    let from_api: Vec<Value> = serde_json::from_str(&api).unwrap();
    assert_eq!(from_api.len(), 3);

    let records = read_diff_log(&log_path);
    assert_redacted_log(&records).await;
}
