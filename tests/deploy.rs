#![allow(clippy::unwrap_used, clippy::expect_used)]
//! deploy/ held to the real binary. Every series the Prometheus rules, the Grafana dashboard
//! and the Kubernetes analysis templates query is one that a real `/metrics` scrape exports
//! after mirrored traffic with divergences (or one the rules record), with labels the series
//! carries and values it takes; the scrape passes `promtool check metrics` and holds no
//! summary; each expression parses for promtool. The
//! Kubernetes ConfigMaps' configs pass `shadowtap check`, the custom resources carry their
//! API versions, and the image's HEALTHCHECK script follows `/readyz`.
//!
//! promtool comes from Debian's `prometheus` package (.ci/run installs it). Without it the
//! promtool steps are skipped with a note, except under CI, where they are required.

mod support;

#[path = "deploy/promql.rs"]
mod promql;
#[path = "deploy/scrape.rs"]
mod scrape;
#[path = "deploy/sources.rs"]
mod sources;

use http::{Response, StatusCode};
use scrape::{exported_labels, known_values, matcher_problems};
use sources::{
    dashboard_expressions, kubernetes_documents, kubernetes_expressions, rule_expressions,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use support::tls::Pki;
use support::*;
use yaml_rust2::Yaml;

/// Whether promtool can run here; panics under CI (`CI` set) when it cannot.
fn promtool_available() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required under CI (Debian's prometheus package; .ci/run installs it)"
        );
        eprintln!("skipped: promtool not installed (apt-get install prometheus)");
    }
    found
}

/// Runs `promtool args...` with `stdin`; panics with its output when it fails.
fn promtool(args: &[&str], stdin: &str) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A JSON answer for `path` naming its `build`, with a timestamp that differs on every
/// answer (noise the secondary reveals).
fn json_answer(path: &str, build: &str) -> Response<Body> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let body = format!(r#"{{"path":"{path}","build":"{build}","served_at":{nanos}}}"#);
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

/// An upstream of the `stable` build (primary and secondary answer alike but for the
/// timestamp), or of the canary, whose `build` differs on every even id. `/api/blob` is
/// labelled gzip and is not: neither side's body can be judged.
async fn app(canary: bool) -> Upstream {
    upstream()
        .fallback(move |r: Received| async move {
            let path = r.uri.path().to_string();
            if path == "/api/blob" {
                let mut response = Response::new(full(format!("not gzip from {canary}")));
                response
                    .headers_mut()
                    .insert("content-encoding", "gzip".parse().unwrap());
                return response;
            }
            let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap_or(1);
            let build = if canary && id % 2 == 0 {
                "next"
            } else {
                "stable"
            };
            json_answer(&path, build)
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_deploy_files_query_is_exported_by_a_real_scrape() {
    let (primary, secondary, shadow) = (app(false).await, app(false).await, app(true).await);
    let pki = Pki::new("deploy test CA");
    let certificate = pki.server("edge", &["localhost"]);
    let (listen, tls_listen, admin) = (
        closed_port().await,
        closed_port().await,
        closed_port().await,
    );
    let config = format!(
        r#"
[[listeners]]
address = "{listen}"

[[listeners]]
address = "{tls_listen}"
[listeners.tls]
{pair}

[admin]
address = "{admin}"

[upstreams.stable]
url = "{primary}"

[upstreams.stable-b]
url = "{secondary}"

[upstreams.canary]
url = "{shadow}"

[[routes]]
name = "api"
path_prefix = "/api/"
primary = "stable"
template = ["/api/users/{{id}}", "/api/blob"]

[routes.mirror]
secondary = "stable-b"

[[routes.mirror.shadows]]
upstream = "canary"
percent = 100
"#,
        pair = certificate.pair(),
        primary = primary.url(""),
        secondary = secondary.url(""),
        shadow = shadow.url(""),
    );
    let config_file = pki.dir.path().join("shadowtap.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut child = Spawned::start(&["run", "--config", config_file.to_str().unwrap()]);
    child.ready(&admin.to_string()).await;

    for id in 1..=20 {
        let reply = get(&format!("http://{listen}/api/users/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    for _ in 0..2 {
        get(&format!("http://{listen}/api/blob")).await;
    }
    // No route: answered by the proxy itself (shadowtap_proxy_errors_total).
    let unrouted = get(&format!("http://{listen}/elsewhere")).await;
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);
    let count = |text: &str, result: &str| {
        metric_sum(text, "shadowtap_comparisons_total", &[("result", result)])
    };
    let scrape = until_metrics(
        admin,
        "diverged, noise-only and unjudged pairs",
        |text| {
            count(text, "diverged") >= 1.0
                && count(text, "noise_only") >= 1.0
                && metric_sum(text, "shadowtap_compare_body_skipped_total", &[]) >= 1.0
        },
        |text| text.to_string(),
    )
    .await;

    // Every histogram can be summed across instances: buckets, never quantiles.
    assert!(
        !scrape.contains(" summary\n"),
        "a summary is exported:\n{scrape}"
    );
    assert!(scrape.contains("# TYPE shadowtap_latency_delta_seconds histogram"));
    if promtool_available() {
        promtool(&["check", "metrics"], &scrape);
    }

    let mut exported = exported_labels(&scrape);
    known_values(&mut exported);
    let exported_names: BTreeSet<String> = exported.keys().cloned().collect();
    let (rules, recorded) = rule_expressions();
    let dashboard = dashboard_expressions();
    let kubernetes = kubernetes_expressions();
    assert!(rules.len() >= 15, "{} rules", rules.len());
    assert!(
        dashboard.len() >= 20,
        "{} dashboard expressions",
        dashboard.len()
    );
    assert!(
        kubernetes.len() >= 7,
        "{} template queries",
        kubernetes.len()
    );
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for expression in rules.iter().chain(&dashboard).chain(&kubernetes) {
        let selectors = promql::selectors(&expression.promql);
        let names: BTreeSet<String> = selectors.iter().map(|s| s.name.clone()).collect();
        assert!(
            !names.is_empty(),
            "{}: no series in {}",
            expression.source,
            expression.promql
        );
        for name in promql::unknown(&names, &exported_names, &recorded) {
            problems.push(format!(
                "{}: {name} is neither exported nor recorded",
                expression.source
            ));
        }
        for selector in &selectors {
            for problem in matcher_problems(selector, &exported) {
                problems.push(format!("{}: {problem}", expression.source));
            }
        }
        used.extend(names);
    }
    assert!(
        problems.is_empty(),
        "queries that a real scrape does not answer:\n{}\nexported: {exported_names:?}",
        problems.join("\n")
    );
    // A recorded name must not shadow an exported series.
    assert!(recorded.is_disjoint(&exported_names), "{recorded:?}");
    for name in [
        "shadowtap_comparisons_total",
        "shadowtap_divergences_total",
        "shadowtap_mirror_requests_total",
        "shadowtap_latency_delta_seconds_bucket",
        "shadowtap_mirror_circuit_state",
        "shadowtap_compare_dropped_total",
        "shadowtap_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(used.contains(name), "{name} is queried nowhere");
    }

    // promtool parses each dashboard and template expression, as a recording rule.
    if promtool_available() {
        let mut rules_file = String::from("groups:\n  - name: deploy-expressions\n    rules:\n");
        for (index, expression) in dashboard.iter().chain(&kubernetes).enumerate() {
            rules_file.push_str(&format!(
                "      - record: deploy_expression_{index}\n        expr: |\n"
            ));
            for line in promql::fill_placeholders(&expression.promql).lines() {
                rules_file.push_str(&format!("          {line}\n"));
            }
        }
        let path = pki.dir.path().join("expressions.yml");
        std::fs::write(&path, rules_file).unwrap();
        promtool(&["check", "rules", path.to_str().unwrap()], "");
    }
    child.terminate().await;
}

#[test]
fn every_kubernetes_config_map_passes_shadowtap_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for (file, document) in kubernetes_documents() {
        if document["kind"].as_str() != Some("ConfigMap") {
            continue;
        }
        let name = document["metadata"]["name"].as_str().unwrap();
        let config = document["data"]["shadowtap.toml"]
            .as_str()
            .unwrap_or_else(|| panic!("{file} {name}: no shadowtap.toml"));
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut child = Spawned::start(&["check", "--config", path.to_str().unwrap()]);
        let status = child.wait(STEP);
        let stderr = child.stderr();
        assert!(status.success(), "{file} {name}: {status}\n{stderr}");
        assert!(stderr.contains(": ok"), "{stderr}");
        checked.push(file);
    }
    for expected in ["sidecar.yaml", "edge.yaml", "canary.yaml"] {
        assert!(
            checked.iter().any(|f| f == expected),
            "no config in {expected}: {checked:?}"
        );
    }
}

/// The labels of a Deployment's pod template, and its container named `shadowtap`.
fn shadowtap_pods(documents: &[(String, Yaml)]) -> Vec<(String, &Yaml, &Yaml)> {
    documents
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("Deployment"))
        .filter_map(|(file, d)| {
            let template = &d["spec"]["template"];
            let container = template["spec"]["containers"]
                .as_vec()?
                .iter()
                .find(|c| c["name"].as_str() == Some("shadowtap"))?;
            Some((file.clone(), &template["metadata"], container))
        })
        .collect()
}

/// What `kubernetes-validate` cannot check (it has no schema for custom resources): each
/// parses with the API version its operator serves, and the PodMonitor, the probes and the
/// scrape annotations agree with the pods that run shadowtap.
#[test]
fn kubernetes_custom_resources_and_shadowtap_pods_agree() {
    let documents = kubernetes_documents();
    let mut kinds = BTreeSet::new();
    for (file, document) in &documents {
        let api_version = document["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: apiVersion"));
        let kind = document["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: kind"));
        assert!(
            document["metadata"]["name"].as_str().is_some(),
            "{file} {kind}: no name"
        );
        kinds.insert((api_version.to_string(), kind.to_string()));
    }
    for expected in [
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("argoproj.io/v1alpha1", "AnalysisTemplate"),
        ("flagger.app/v1beta1", "MetricTemplate"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("policy/v1", "PodDisruptionBudget"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string());
        assert!(kinds.contains(&expected), "{expected:?} missing: {kinds:?}");
    }

    let monitor = &documents
        .iter()
        .find(|(_, d)| d["kind"].as_str() == Some("PodMonitor"))
        .unwrap()
        .1;
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    let port_name = endpoint["port"].as_str().unwrap();
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_hash()
        .unwrap();
    let pods = shadowtap_pods(&documents);
    assert!(pods.len() >= 3, "{} Deployments run shadowtap", pods.len());
    for (file, metadata, container) in pods {
        for (key, value) in selector {
            assert_eq!(
                &metadata["labels"][key.as_str().unwrap()],
                value,
                "{file}: PodMonitor selector"
            );
        }
        let port = container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(port_name))
            .unwrap_or_else(|| panic!("{file}: no port {port_name}"));
        let number = port["containerPort"].as_i64().unwrap().to_string();
        let annotations = &metadata["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{file}"
        );
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(number.as_str()),
            "{file}"
        );
        assert_eq!(
            annotations["prometheus.io/path"].as_str(),
            Some("/metrics"),
            "{file}"
        );
        let readiness = &container["readinessProbe"]["httpGet"];
        assert_eq!(readiness["path"].as_str(), Some("/readyz"), "{file}");
        assert_eq!(readiness["port"].as_str(), Some(port_name), "{file}");
        let security = &container["securityContext"];
        assert_eq!(
            security["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{file}"
        );
    }
}

/// Runs the image's HEALTHCHECK script against the admin address `admin`.
fn healthcheck(admin: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/docker/healthcheck.sh");
    Command::new("bash")
        .arg(script)
        .env("SHADOWTAP_HEALTHCHECK_ADDRESS", admin)
        .output()
        .expect("run bash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_healthcheck_follows_readyz() {
    let hanging = upstream().hang().start().await;
    let (listen, admin) = (
        closed_port().await.to_string(),
        closed_port().await.to_string(),
    );
    let nothing_there = healthcheck(&admin);
    assert!(
        !nothing_there.status.success(),
        "healthy before the proxy started"
    );

    let mut child = Spawned::run(&hanging.url(""), &listen, &admin, &[]);
    child.ready(&admin).await;
    let ready = healthcheck(&admin);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );

    // A request in flight keeps the proxy draining after SIGTERM; /readyz turns 503.
    let in_flight = tokio::spawn({
        let url = format!("http://{listen}/slow");
        async move {
            send(&http1_client(), get_request(&url))
                .await
                .map(|r| r.status)
        }
    });
    until("the request to reach the upstream", || hanging.count() >= 1).await;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let draining = within("the healthcheck to fail while draining", async {
        loop {
            let output = healthcheck(&admin);
            if !output.status.success() {
                break output;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let said = String::from_utf8_lossy(&draining.stderr);
    assert!(said.contains("503"), "unhealthy for another reason: {said}");
    in_flight.abort();
}
