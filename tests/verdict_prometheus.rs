#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fleet test: a real Prometheus (Debian's `prometheus`, started here with a generated
//! config, its own storage in a temp dir and a 1 s scrape interval) scrapes two shadowtap
//! instances carrying different traffic, and `shadowtap verdict --prometheus` judges across
//! both. Its counts must be the sums of what the two instances' APIs say, and its verdict
//! the one those sums give, including a route neither instance could decide alone.
//!
//! A Prometheus serving HTTPS (`--web.config.file` with a `tls_server_config`, a certificate
//! from a CA made here) is judged through `--cacert`, and refused without it.
//!
//! Then the bad inputs: an unreachable Prometheus, a bad query, a selector that matches
//! nothing, and a window with no comparisons in it; each is exit 3 or 2, never a pass.
//!
//! Without a `prometheus` binary the test fails (CI installs it; see .ci/run) unless
//! `SHADOWTAP_SKIP_PROMETHEUS=1` says to skip it.

mod support;
mod verdict_common;

use serde_json::Value;
use shadowtap::verdict::evidence::Evidence;
use shadowtap::verdict::judge::judge;
use std::collections::BTreeMap;
use std::time::Duration;
use support::compare::admin_json;
use support::tls::{client_config, handshake, Issued, Pki, Sender};
use support::{closed_port, get, Shadowtap};
use verdict_common::{instance, traffic, upstreams, verdict};

/// A Prometheus this test started; killed by its own handle when the test ends.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _storage: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the `prometheus` binary runs; `None` when the test is to be skipped.
fn prometheus_available() -> Option<()> {
    let found = std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some(());
    }
    if std::env::var("SHADOWTAP_SKIP_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: no prometheus binary, and SHADOWTAP_SKIP_PROMETHEUS=1");
        return None;
    }
    panic!(
        "the fleet test needs Prometheus: install Debian's package (apt-get install -y prometheus; \
         .ci/run does), or set SHADOWTAP_SKIP_PROMETHEUS=1 to skip this test"
    );
}

/// Starts Prometheus scraping `targets` every second, each with the label `app="checkout"`.
async fn start_prometheus(targets: &[std::net::SocketAddr]) -> Prometheus {
    launch_prometheus(targets, None).await
}

/// [`start_prometheus`], serving HTTPS with `tls`'s certificate (signed by its CA) when given:
/// its own `--web.config.file` with a `tls_server_config`.
async fn launch_prometheus(
    targets: &[std::net::SocketAddr],
    tls: Option<(&Pki, &Issued)>,
) -> Prometheus {
    let storage = tempfile::tempdir().unwrap();
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: shadowtap\n    static_configs:\n      \
         - targets: [{}]\n        labels:\n          app: checkout\n",
        targets.join(", ")
    );
    let config_path = storage.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    // A free port: bound, read and released (Prometheus takes no port 0 and says nothing).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = std::process::Command::new("prometheus");
    if let Some((_, issued)) = tls {
        let web = storage.path().join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n",
                issued.cert, issued.key
            ),
        )
        .unwrap();
        command.arg(format!("--web.config.file={}", web.display()));
    }
    let child = command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            storage.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let mut prometheus = Prometheus {
        child,
        url: format!(
            "{}://127.0.0.1:{port}",
            if tls.is_some() { "https" } else { "http" }
        ),
        _storage: storage,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if is_ready(&prometheus.url, port, tls.map(|(pki, _)| pki)).await {
            break;
        }
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            panic!("prometheus exited early: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    prometheus
}

/// Whether Prometheus at `url` answers `/-/ready` with 200 (over TLS, trusting `pki`, when
/// given).
async fn is_ready(url: &str, port: u16, pki: Option<&Pki>) -> bool {
    let Some(pki) = pki else {
        let client = support::http1_client();
        let ready = support::get_request(&format!("{url}/-/ready"));
        return support::send(&client, ready)
            .await
            .is_ok_and(|reply| reply.status == 200);
    };
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = client_config(pki, &["http/1.1"], None);
    let Ok(stream) = handshake(address, "localhost", config).await else {
        return false;
    };
    let Ok(mut sender) = Sender::over(stream).await else {
        return false;
    };
    let request = http::Request::get("/-/ready")
        .header(http::header::HOST, "localhost")
        .body(support::empty())
        .unwrap();
    sender
        .send(request)
        .await
        .is_ok_and(|reply| reply.status() == 200)
}

/// One instant query's first value (0 when the result is empty).
async fn query(prometheus: &Prometheus, promql: &str) -> f64 {
    let url = format!(
        "{}/api/v1/query?query={}",
        prometheus.url,
        support::compare::encode(promql)
    );
    let answer: Value = serde_json::from_str(&get(&url).await.text()).unwrap();
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The sum over both instances of `/api/v1/routes`: (pairs, diverged) by route.
async fn api_sums(instances: &[&Shadowtap]) -> BTreeMap<String, (u64, u64)> {
    let mut sums = BTreeMap::new();
    for proxy in instances {
        for entry in admin_json(proxy, "/api/v1/routes")
            .await
            .as_array()
            .unwrap()
        {
            let counts = &entry["comparisons"];
            let pairs: u64 = ["match", "diverged", "noise_only", "unjudged"]
                .iter()
                .map(|k| counts[k].as_u64().unwrap())
                .sum();
            let slot = sums
                .entry(entry["route"].as_str().unwrap().to_string())
                .or_insert((0, 0));
            slot.0 += pairs;
            slot.1 += counts["diverged"].as_u64().unwrap();
        }
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_over_a_fleet_is_the_sum_of_its_instances() {
    let Some(()) = prometheus_available() else {
        return;
    };
    let upstreams = upstreams().await;
    let a = instance(&upstreams).await;
    let b = instance(&upstreams).await;
    // Different traffic on each. /clean and /flaky: 80 and 60 pairs per instance, too few
    // for either alone (min_pairs = 100), enough together. /broken: 30 on one only.
    traffic(&a, "/clean", 80, 0).await;
    traffic(&b, "/clean", 80, 0).await;
    traffic(&a, "/flaky", 60, 0).await;
    traffic(&b, "/flaky", 60, 0).await;
    traffic(&a, "/broken", 30, 0).await;

    let prometheus = start_prometheus(&[a.admin, b.admin]).await;
    let sums = api_sums(&[&a, &b]).await;
    let total: u64 = sums.values().map(|(pairs, _)| pairs).sum();
    assert_eq!(total, 80 + 80 + 60 + 60 + 30, "{sums:?}");
    // Wait until Prometheus holds both instances' final counts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let scraped = "sum(shadowtap_comparisons_total{app=\"checkout\"})";
    while query(&prometheus, scraped).await != total as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not scrape both instances within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let run = verdict(&[
        "--prometheus",
        &prometheus.url,
        "--selector",
        "{app=\"checkout\"}",
        "--window",
        "10m",
        "--format",
        "json",
    ])
    .await;
    // /flaky: 12 of 120 diverge, 95 % interval [5.8 %, 19.1 %]: a fail, though each
    // instance alone (6 of 60) is inconclusive.
    assert_eq!(run.code, 1, "{}", run.shown());
    let report = run.json();
    let routes = report["routes"].as_array().unwrap();
    let found: BTreeMap<String, &Value> = routes
        .iter()
        .map(|r| (r["evidence"]["route"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        sums.keys().collect::<Vec<_>>(),
        "{}",
        run.shown()
    );
    for (route, (pairs, diverged)) in &sums {
        let judged = found[route];
        let evidence = &judged["evidence"];
        assert_eq!(evidence["pairs"], *pairs, "{route}: {judged}");
        assert_eq!(evidence["diverged"], *diverged, "{route}: {judged}");
        assert_eq!(evidence["shadow_requests"], *pairs, "{route}: {judged}");
        assert_eq!(evidence["shadow_errors"], 0, "{route}: {judged}");
        assert!(
            evidence["latency_delta_p99_seconds"].is_number(),
            "{route}: {judged}"
        );
        // The same verdict as the APIs' sums give.
        let expected = judge(
            Evidence {
                pairs: *pairs,
                diverged: *diverged,
                shadow_requests: *pairs,
                ..Evidence::new(route, "canary")
            },
            shadowtap::config::Thresholds::default(),
        );
        assert_eq!(
            judged["verdict"],
            serde_json::to_value(expected.verdict).unwrap(),
            "{route}: {judged}"
        );
    }
    assert_eq!(found["/clean"]["verdict"], "pass");
    assert_eq!(found["/flaky"]["verdict"], "fail");
    assert_eq!(found["/flaky"]["evidence"]["diverged"], 12);
    assert_eq!(found["/broken"]["verdict"], "inconclusive");
    // Each instance alone cannot decide /flaky.
    for proxy in [&a, &b] {
        let alone = verdict(&["--admin", &format!("http://{}", proxy.admin)]).await;
        assert!(
            alone.line("/flaky").starts_with("INCONCLUSIVE"),
            "{}",
            alone.shown()
        );
    }

    // The bad inputs, against the same real Prometheus.
    let nothing = verdict(&[
        "--prometheus",
        &prometheus.url,
        "--selector",
        "{app=\"nothing\"}",
    ])
    .await;
    assert_eq!(nothing.code, 3, "{}", nothing.shown());
    assert!(
        nothing.stderr.contains("matches no shadowtap series"),
        "{}",
        nothing.shown()
    );
    let bad = verdict(&[
        "--prometheus",
        &prometheus.url,
        "--selector",
        "{app=~\"(\"}",
    ])
    .await;
    assert_eq!(bad.code, 3, "{}", bad.shown());
    assert!(bad.stderr.contains("bad query"), "{}", bad.shown());
    // A window with no comparisons in it: series exist, nothing to judge, inconclusive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty = verdict(&[
        "--prometheus",
        &prometheus.url,
        "--selector",
        "{app=\"checkout\"}",
        "--window",
        "1s",
    ])
    .await;
    assert_eq!(empty.code, 2, "{}", empty.shown());
    assert!(
        empty.stdout.contains("nothing to judge yet"),
        "{}",
        empty.shown()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_an_error() {
    let closed = closed_port().await;
    let run = verdict(&["--prometheus", &format!("http://{closed}")]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert!(run.stderr.contains("source unreachable"), "{}", run.shown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_reads_a_prometheus_over_https_with_its_cacert() {
    let Some(()) = prometheus_available() else {
        return;
    };
    let upstreams = upstreams().await;
    let proxy = instance(&upstreams).await;
    traffic(&proxy, "/clean", 120, 0).await;
    let pki = Pki::new("prometheus test CA");
    let issued = pki.server("prometheus", &["localhost", "127.0.0.1"]);
    let prometheus = launch_prometheus(&[proxy.admin], Some((&pki, &issued))).await;
    assert!(prometheus.url.starts_with("https://"), "{}", prometheus.url);
    let ca = pki.ca_file("ca.pem");
    let args = [
        "--prometheus",
        &prometheus.url,
        "--cacert",
        ca.to_str().unwrap(),
        "--selector",
        "{app=\"checkout\"}",
        "--format",
        "json",
    ];
    // Until the first scrape the selector matches nothing (exit 3, said so); then the
    // instance's pairs, all of them in the window.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run = verdict(&args).await;
        if !run.stderr.contains("matches no shadowtap series") {
            break run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not scrape the instance within 30 s: {}",
            run.shown()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(run.code, 0, "{}", run.shown());
    let report = run.json();
    let clean = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["evidence"]["route"] == "/clean")
        .cloned()
        .unwrap_or_else(|| panic!("no /clean: {}", run.shown()));
    assert_eq!(clean["verdict"], "pass", "{clean}");
    assert_eq!(clean["evidence"]["pairs"], 120, "{clean}");

    // Without --cacert the system's roots do not know the test CA: exit 3, saying why.
    let run = verdict(&["--prometheus", &prometheus.url]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    for expected in ["TLS handshake", "--cacert", "UnknownIssuer"] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.shown());
    }
}
