#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap verdict --admin`, the real binary, against a real shadowtap with real
//! upstreams: inconclusive while the pairs are few, a pass once the clean route has enough,
//! a fail once a broken route has enough, a per-route override in a config file deciding
//! its route, and the errors (exit 3) that must never read as a pass.

mod support;
mod verdict_common;

use support::closed_port;
use verdict_common::{instance, traffic, upstreams, verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconclusive_then_pass_then_fail_as_the_pairs_come_in() {
    let upstreams = upstreams().await;
    let proxy = instance(&upstreams).await;
    let admin = format!("http://{}", proxy.admin);

    // Nothing mirrored yet: nothing to judge, inconclusive (never a pass).
    let run = verdict(&["--admin", &admin]).await;
    assert_eq!(run.code, 2, "{}", run.shown());
    assert!(
        run.stdout.contains("nothing to judge yet"),
        "{}",
        run.shown()
    );

    // 3 clean pairs: 0 in 3 is not a pass.
    traffic(&proxy, "/clean", 3, 0).await;
    let run = verdict(&["--admin", &admin]).await;
    assert_eq!(run.code, 2, "{}", run.shown());
    let line = run.line("/clean");
    assert!(line.starts_with("INCONCLUSIVE"), "{line}");
    assert!(line.contains("fewer than min_pairs = 100"), "{line}");
    // --wait asks again until its deadline, then the last answer stands.
    let started = std::time::Instant::now();
    let run = verdict(&["--admin", &admin, "--wait", "1s", "--interval", "300ms"]).await;
    assert_eq!(run.code, 2, "{}", run.shown());
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{}",
        run.shown()
    );
    assert!(
        run.stderr.contains("inconclusive so far"),
        "{}",
        run.shown()
    );

    // 120 clean pairs: 0 in 120 passes (95 % upper bound 3.1 %).
    traffic(&proxy, "/clean", 117, 3).await;
    let junit = tempfile::NamedTempFile::new().unwrap();
    let junit_path = junit.path().to_str().unwrap().to_string();
    let run = verdict(&["--admin", &admin, "--junit", &junit_path]).await;
    assert_eq!(run.code, 0, "{}", run.shown());
    let line = run.line("/clean");
    assert!(line.starts_with("PASS"), "{line}");
    assert!(line.contains("0/120 pairs diverged"), "{line}");
    assert!(line.contains("upper bound at or under 5.00%"), "{line}");
    // A decided verdict ends the wait at once.
    let started = std::time::Instant::now();
    let run = verdict(&["--admin", &admin, "--wait", "1m"]).await;
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{}",
        run.shown()
    );
    assert!(
        run.stdout
            .contains("verdict: PASS (1 passed, 0 failed, 0 inconclusive)"),
        "{}",
        run.shown()
    );
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(
        xml.contains("tests=\"1\" failures=\"0\" skipped=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"/clean -&gt; canary\""), "{xml}");

    // 1 broken pair: its route is inconclusive (1 in 1 is not yet a fail), the run too.
    traffic(&proxy, "/broken", 1, 0).await;
    let run = verdict(&["--admin", &admin]).await;
    assert_eq!(run.code, 2, "{}", run.shown());
    assert!(
        run.line("/broken").starts_with("INCONCLUSIVE"),
        "{}",
        run.shown()
    );

    // 100 broken pairs: a fail, named by the threshold that decided it, in every format.
    traffic(&proxy, "/broken", 99, 1).await;
    let run = verdict(&["--admin", &admin, "--junit", &junit_path]).await;
    assert_eq!(run.code, 1, "{}", run.shown());
    let line = run.line("/broken");
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains("max_divergence_ratio: 100/100 pairs diverged"),
        "{line}"
    );
    assert!(line.contains("lower bound over 5.00%"), "{line}");
    assert!(run.line("/clean").starts_with("PASS"), "{}", run.shown());
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(
        xml.contains("tests=\"2\" failures=\"1\" skipped=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"max_divergence_ratio: 100/100"),
        "{xml}"
    );

    let run = verdict(&["--admin", &admin, "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.shown());
    let report = run.json();
    assert_eq!(report["verdict"], "fail");
    let routes = report["routes"].as_array().unwrap();
    let broken = routes
        .iter()
        .find(|r| r["evidence"]["route"] == "/broken")
        .unwrap();
    assert_eq!(broken["verdict"], "fail");
    assert_eq!(broken["decided_by"]["threshold"], "max_divergence_ratio");
    assert_eq!(broken["evidence"]["pairs"], 100);
    assert_eq!(broken["evidence"]["diverged"], 100);
    assert_eq!(broken["evidence"]["shadow_requests"], 100);
    assert_eq!(broken["evidence"]["shadow_errors"], 0);
    assert!(broken["divergence_interval"]["lower"].as_f64().unwrap() > 0.95);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_route_override_decides_its_route() {
    let upstreams = upstreams().await;
    let proxy = instance(&upstreams).await;
    let admin = format!("http://{}", proxy.admin);
    // 1 in 10 diverges: 20 of 200, 95 % interval [6.6 %, 14.9 %].
    traffic(&proxy, "/flaky", 200, 0).await;
    traffic(&proxy, "/clean", 200, 0).await;

    let run = verdict(&["--admin", &admin]).await;
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(
        run.line("/flaky").contains("20/200 pairs diverged"),
        "{}",
        run.shown()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verdict.toml");
    let path = file.to_str().unwrap();
    std::fs::write(
        &file,
        "[verdict]\nmin_pairs = 150\n\n[verdict.routes.\"/flaky\"]\nmax_divergence_ratio = 0.2\n",
    )
    .unwrap();
    let run = verdict(&["--admin", &admin, "--config", path, "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.shown());
    let report = run.json();
    let route = |name: &str| {
        report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["evidence"]["route"] == name)
            .cloned()
            .unwrap()
    };
    let flaky = route("/flaky");
    assert_eq!(flaky["verdict"], "pass", "{flaky}");
    assert_eq!(flaky["thresholds"]["max_divergence_ratio"], 0.2);
    assert_eq!(
        flaky["thresholds"]["min_pairs"], 150,
        "the section's value under the override"
    );
    let clean = route("/clean");
    assert_eq!(clean["thresholds"]["max_divergence_ratio"], 0.05, "{clean}");

    // A flag sets every route's threshold; the route's override still wins for its route.
    let run = verdict(&[
        "--admin",
        &admin,
        "--config",
        path,
        "--max-divergence-ratio",
        "0.02",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.shown());
    let run = verdict(&["--admin", &admin, "--max-divergence-ratio", "0.02"]).await;
    assert_eq!(run.code, 1, "{}", run.shown());

    // A latency threshold is judged once set (the shadow is not slower here: both pass).
    let run = verdict(&[
        "--admin",
        &admin,
        "--config",
        path,
        "--max-latency-delta",
        "5s",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(run.stdout.contains("p99 delta"), "{}", run.shown());

    // A misspelled key is refused with its path: an error, not a pass.
    std::fs::write(&file, "[verdict.routes.\"/flaky\"]\nmax_divergence = 0.2\n").unwrap();
    let run = verdict(&["--admin", &admin, "--config", path]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert!(
        run.stderr
            .contains("verdict.routes./flaky.max_divergence: unknown key"),
        "{}",
        run.shown()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_error_never_a_pass() {
    let closed = closed_port().await;
    let run = verdict(&["--admin", &format!("http://{closed}")]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert!(run.stderr.contains("source unreachable"), "{}", run.shown());

    let run = verdict(&["--admin", &format!("http://{closed}"), "--format", "json"]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert_eq!(run.json()["verdict"], "error");

    // Bad arguments: 3 as well (2 would read as inconclusive).
    for args in [
        vec![
            "--admin",
            "http://127.0.0.1:1",
            "--max-divergence-ratio",
            "5",
        ],
        vec!["--admin", "http://127.0.0.1:1", "--window", "10m"],
        vec!["--admin", "http://127.0.0.1:1", "--selector", "{app=\"x\"}"],
        vec!["--min-pairs", "10"],
        vec!["--admin", "ftp://127.0.0.1:1"],
    ] {
        let run = verdict(&args).await;
        assert_eq!(run.code, 3, "{args:?}: {}", run.shown());
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.shown());
        // Refused as given, before any source is asked.
        assert!(
            !run.stderr.contains("unreachable"),
            "{args:?}: {}",
            run.shown()
        );
    }
}
