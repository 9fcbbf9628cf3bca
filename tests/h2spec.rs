#![allow(clippy::unwrap_used, clippy::expect_used)]
//! HTTP/2 conformance by h2spec, the tool Envoy and nginx are checked with, against the real
//! app on 127.0.0.1:0: prior-knowledge h2c on a plaintext listener, and h2 over TLS (ALPN) on
//! a TLS listener. Every case h2spec runs must pass but the ones listed in [`KNOWN`], each
//! with the reason it fails; a case that starts failing, or a known one that starts passing,
//! fails the test, so the list stays true.
//!
//! h2spec is read from `SHADOWTAP_H2SPEC`, else `../shared/tools/h2spec` beside the checkout
//! (the Go module proxy is not reachable here, so it is not built by the test). Without it
//! the test says so and passes: the rest of the suite must run anywhere.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use support::tls::{with_listener_tls, Pki};
use support::*;

/// Cases that fail, with why. The ids are h2spec's (`http2/SECTION/N`).
const KNOWN: &[(&str, &str)] = &[(
    "http2/3.5/2",
    "an invalid connection preface: the connection is closed, as RFC 9113 §3.4 requires, but \
     without a GOAWAY first (which it only allows), and h2spec reads the close as an \
     unexpected EOF",
)];

fn h2spec() -> Option<PathBuf> {
    let path = std::env::var_os("SHADOWTAP_H2SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/h2spec")
        });
    path.exists().then_some(path)
}

/// Runs h2spec against `port` (`extra` flags: `-t -k` for TLS) and returns the ids of the
/// failed cases and how many ran, from its JUnit report.
async fn run(h2spec: PathBuf, port: u16, extra: &[&str]) -> (BTreeSet<String>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("h2spec.xml");
    let mut command = Command::new(h2spec);
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-o", "5", "-j"])
        .arg(&report)
        .args(extra);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("h2spec runs");
    let junit = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "h2spec wrote no report: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    failed_cases(&junit)
}

/// The failed cases' ids in an h2spec JUnit report, and the number of cases. Each case's
/// `package` is its section (`http2/5.1`) and its id the section plus its number in it.
fn failed_cases(junit: &str) -> (BTreeSet<String>, usize) {
    let mut failed = BTreeSet::new();
    let mut cases = 0;
    let mut numbers: std::collections::HashMap<String, usize> = Default::default();
    for case in junit.split("<testcase").skip(1) {
        let attribute = |name: &str| {
            let start = case.find(&format!("{name}=\""))? + name.len() + 2;
            let end = case.get(start..)?.find('"')? + start;
            case.get(start..end)
        };
        let package = attribute("package").unwrap_or("?").to_string();
        let number = numbers.entry(package.clone()).or_default();
        *number += 1;
        cases += 1;
        let body = case.split("</testcase>").next().unwrap_or_default();
        if body.contains("<failure") || body.contains("<error") {
            failed.insert(format!("{package}/{number}"));
        }
    }
    (failed, cases)
}

fn check(what: &str, failed: &BTreeSet<String>, cases: usize) {
    assert!(cases > 100, "{what}: h2spec ran only {cases} cases");
    let known: BTreeSet<String> = KNOWN.iter().map(|(id, _)| id.to_string()).collect();
    let new: Vec<_> = failed.difference(&known).collect();
    let fixed: Vec<_> = known.difference(failed).collect();
    assert!(new.is_empty(), "{what}: cases that fail now: {new:?}");
    assert!(
        fixed.is_empty(),
        "{what}: known failures that pass now (take them off KNOWN): {fixed:?}"
    );
    println!(
        "{what}: {} of {cases} h2spec cases pass",
        cases - failed.len()
    );
}

async fn ok_upstream() -> Upstream {
    upstream()
        .fallback(|_: Received| async move { http::Response::new(full("ok")) })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_passes_h2spec_but_the_known_cases() {
    let Some(h2spec) = h2spec() else {
        println!("h2spec not found (SHADOWTAP_H2SPEC or ../shared/tools/h2spec): skipped");
        return;
    };
    let upstream = ok_upstream().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let (failed, cases) = run(h2spec, proxy.addr.port(), &[]).await;
    check("h2c", &failed, cases);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_passes_h2spec_but_the_known_cases() {
    let Some(h2spec) = h2spec() else {
        println!("h2spec not found (SHADOWTAP_H2SPEC or ../shared/tools/h2spec): skipped");
        return;
    };
    let pki = Pki::new("h2spec CA");
    let leaf = pki.server("leaf", &["localhost", "127.0.0.1"]);
    let upstream = ok_upstream().await;
    let toml = with_listener_tls(&simple_toml(upstream.addr, "", ""), &leaf.pair());
    let proxy = Shadowtap::start(config(&toml)).await;
    let (failed, cases) = run(h2spec, proxy.addr.port(), &["-t", "-k"]).await;
    check("h2 over TLS", &failed, cases);
}
