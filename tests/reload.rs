#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hot reload of the real binary (issue 22): `POST /api/v1/reload` and SIGHUP re-read the
//! file; a bad file changes nothing and every error comes back; routes, shadows' percent,
//! comparison rules and listeners change without a restart; and 20 reloads under a steady
//! load fail no client request while the mirror's books still balance.

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::compare::admin_text;
use support::metrics::metric_value;
use support::shadow::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(20);

/// The binary running from a config file that the test rewrites between reloads.
struct Running {
    process: Process,
    file: PathBuf,
    proxy: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(toml: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shadowtap.toml");
        std::fs::write(&file, toml).unwrap();
        let mut process = Process::start(
            &[
                "run",
                "--config",
                file.to_str().unwrap(),
                "--log-format",
                "json",
            ],
            &[("RUST_LOG", "info")],
        );
        let proxy = process.announced("listening", LIMIT).await;
        let admin = process.announced("admin listening", LIMIT).await;
        process.ready(&admin.to_string()).await;
        Running {
            process,
            file,
            proxy,
            admin,
            _dir: dir,
        }
    }

    fn write(&self, toml: &str) {
        write_atomically(&self.file, toml);
    }

    /// `POST /api/v1/reload`: the status and the JSON answer.
    async fn reload(&self) -> (u16, Value) {
        let request = http::Request::post(format!("http://{}/api/v1/reload", self.admin))
            .body(empty())
            .unwrap();
        let reply = send(&http1_client(), request).await.unwrap();
        let body = serde_json::from_str(&reply.text())
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", reply.text()));
        (reply.status.as_u16(), body)
    }

    async fn reload_ok(&self) -> Value {
        let (status, body) = self.reload().await;
        assert_eq!(status, 200, "{body}\n{}", self.process.stderr());
        assert_eq!(body["result"], "success", "{body}");
        body
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    async fn metrics(&self) -> String {
        admin_metrics(self.admin).await
    }
}

/// Replaces the file in one rename, as config management tools do: a reload never reads
/// half a file.
fn write_atomically(file: &Path, toml: &str) {
    let next = file.with_extension("next");
    std::fs::write(&next, toml).unwrap();
    std::fs::rename(&next, file).unwrap();
}

/// A primary that answers with its name, so a test sees which upstream served it.
async fn named(name: &'static str) -> Upstream {
    upstream().always(http::StatusCode::OK, name).start().await
}

fn two_routes(primary: SocketAddr, other: SocketAddr, extra_route: bool) -> String {
    let head = listener_and_admin("");
    let route = if extra_route {
        "[[routes]]\nname = \"other\"\npath_prefix = \"/other/\"\nprimary = \"other\"\n"
    } else {
        ""
    };
    format!(
        r#"{head}
[upstreams.app]
url = "http://{primary}"

[upstreams.other]
url = "http://{other}"

{route}
[[routes]]
name = "default"
primary = "app"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_route_and_a_bad_file_changes_nothing_and_returns_every_error() {
    let app = named("app").await;
    let other = named("other").await;
    let running = Running::start(&two_routes(app.addr, other.addr, false)).await;
    assert_eq!(get(&running.url("/other/x")).await.text(), "app");

    running.write(&two_routes(app.addr, other.addr, true));
    let body = running.reload_ok().await;
    assert_eq!(body["generation"], 2, "{body}");
    let changes = body["changes"].to_string();
    assert!(changes.contains("route added: other"), "{body}");
    assert_eq!(get(&running.url("/other/x")).await.text(), "other");
    assert_eq!(get(&running.url("/else")).await.text(), "app");

    // Two problems at once: both come back, and the running config stays in force.
    let bad = two_routes(app.addr, other.addr, true)
        .replace("primary = \"other\"", "primary = \"nowhere\"")
        .replace(
            "[upstreams.app]\nurl = \"http://",
            "[upstreams.app]\nurl = \"ftp://",
        );
    running.write(&bad);
    let (status, body) = running.reload().await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["result"], "failure", "{body}");
    let errors: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("nowhere")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.starts_with("upstreams.app")),
        "{errors:?}"
    );
    assert_eq!(get(&running.url("/other/x")).await.text(), "other");
    assert_eq!(get(&running.url("/else")).await.text(), "app");

    let metrics = running.metrics().await;
    let value = |name: &str, labels: &[(&str, &str)]| metric_value(&metrics, name, labels);
    assert_eq!(
        value("shadowtap_config_reloads_total", &[("result", "success")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value("shadowtap_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );
    assert_eq!(
        value("shadowtap_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(
        value(
            "shadowtap_config_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap()
            > 1.0e9
    );
    // The refusal is logged with its errors.
    assert!(running.process.stderr().contains("config reload refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_real_binary() {
    let app = named("app").await;
    let other = named("other").await;
    let running = Running::start(&two_routes(app.addr, other.addr, false)).await;
    running.write(&two_routes(app.addr, other.addr, true));
    running.process.signal("HUP");
    until("SIGHUP's reload to route /other/ to `other`", || {
        running.process.stderr().contains("config reloaded")
    })
    .await;
    assert_eq!(get(&running.url("/other/x")).await.text(), "other");
    let metrics = running.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "shadowtap_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "shadowtap_config_last_reload_successful", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_added_by_a_reload_serves_and_a_removed_one_drains() {
    let app = named("app").await;
    let other = named("other").await;
    let one = two_routes(app.addr, other.addr, false);
    let two = one.replace(
        "\n[admin]",
        "\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[admin]",
    );
    assert_ne!(one, two);
    let running = Running::start(&one).await;

    running.write(&two);
    let body = running.reload_ok().await;
    let added: SocketAddr = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|line| {
            line.as_str()?
                .strip_prefix("listener added: ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no listener added in {body}"));
    assert_ne!(added, running.proxy);
    assert_eq!(get(&format!("http://{added}/x")).await.text(), "app");

    // A connection open on the listener when it is removed is served to its end.
    let mut open = support::raw::RawClient::connect(added).await;
    open.send(b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(open.complete_response(false).await.status, 200);

    running.write(&one);
    let body = running.reload_ok().await;
    assert!(
        body["changes"]
            .to_string()
            .contains(&format!("listener removed (draining): {added}")),
        "{body}"
    );
    // New connections are refused; the first listener was never touched.
    until("the removed listener to close", || {
        std::net::TcpStream::connect(added).is_err()
    })
    .await;
    open.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(open.complete_response(false).await.status, 200);
    assert_eq!(get(&running.url("/x")).await.text(), "app");
}

/// The mirrored config of `support::shadow` with the shadow at `percent` and the route's
/// comparison ignoring `ignore` (a TOML list's items).
fn mirrored(primary: SocketAddr, shadow: SocketAddr, percent: u32, ignore: &str) -> String {
    let toml = mirror_toml(primary, shadow, &Policy::default());
    assert!(toml.contains("\n[shutdown]"), "{toml}");
    toml.replace(
        "upstream = \"shadow\"\n",
        &format!("upstream = \"shadow\"\npercent = {percent}\n"),
    )
    .replace(
        "\n[shutdown]",
        &format!("\n[routes.compare]\nignore = [{ignore}]\n\n[shutdown]"),
    )
}

/// A JSON upstream whose `/stamp` differs per side.
async fn json_upstream(stamp: &'static str) -> Upstream {
    upstream()
        .fallback(
            move |_| async move { json_response(&format!("{{\"id\":1,\"stamp\":\"{stamp}\"}}")) },
        )
        .start()
        .await
}

fn json_response(body: &str) -> http::Response<Body> {
    let mut response = http::Response::new(full(body.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_a_shadows_percent_and_the_comparison_ignores() {
    let primary = json_upstream("primary").await;
    let shadow = json_upstream("shadow").await;
    let running = Running::start(&mirrored(primary.addr, shadow.addr, 100, "")).await;
    let client = http1_client();
    for i in 0..20 {
        let reply = send(&client, get_request(&running.url(&format!("/a/{i}"))))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    settled_at(running.admin).await;
    let diverged = |metrics: &str| {
        support::metrics::metric_sum(
            metrics,
            "shadowtap_comparisons_total",
            &[("route", "default"), ("result", "diverged")],
        )
    };
    let matched = |metrics: &str| {
        support::metrics::metric_sum(
            metrics,
            "shadowtap_comparisons_total",
            &[("route", "default"), ("result", "match")],
        )
    };
    let metrics = eventually_at(running.admin, "20 divergent pairs", |m| diverged(m) >= 20.0).await;
    assert_eq!(matched(&metrics), 0.0);
    let before = shadow.count();
    assert_eq!(before, 20);

    // 20 %, and `/stamp` ignored: pairs now match, and about a fifth is mirrored.
    running.write(&mirrored(primary.addr, shadow.addr, 20, "\"/stamp\""));
    let body = running.reload_ok().await;
    assert!(
        body["changes"]
            .to_string()
            .contains("route changed: default"),
        "{body}"
    );
    const N: u64 = 1000;
    let sent = Arc::new(AtomicU64::new(0));
    let client = Arc::new(client);
    let base = running.url("");
    run_concurrently(N as usize, 16, {
        let sent = sent.clone();
        move |i| {
            let client = client.clone();
            let sent = sent.clone();
            let url = format!("{base}/b/{i}");
            async move {
                let reply = send(&client, get_request(&url)).await.unwrap();
                assert_eq!(reply.status, 200);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    assert_eq!(sent.load(Ordering::Relaxed), N);
    settled_at(running.admin).await;
    let mirrored = (shadow.count() - before) as f64;
    // Binomial(1000, 0.2): mean 200, standard deviation 12.6; five of them either side.
    assert!(
        (137.0..=263.0).contains(&mirrored),
        "{mirrored} of {N} mirrored"
    );
    let metrics = eventually_at(running.admin, "the new pairs compared", |m| {
        matched(m) + diverged(m) >= 20.0 + mirrored
    })
    .await;
    let samples = admin_text(running.admin, "/api/v1/samples?limit=3").await.0;
    assert_eq!(
        diverged(&metrics),
        20.0,
        "no pair diverges once /stamp is ignored: {samples}"
    );
    assert_eq!(matched(&metrics), mirrored);
    // The learned statistics of the route survived the reload.
    let routes = admin_text(running.admin, "/api/v1/routes")
        .await
        .parse_json();
    let default = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "default")
        .unwrap();
    assert_eq!(default["comparisons"]["diverged"], 20, "{routes}");
    // And so did its divergent samples: the 20 from before the reload, none after.
    let samples = admin_text(running.admin, "/api/v1/samples?route=default&limit=100")
        .await
        .parse_json();
    let paths: Vec<&str> = samples
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| sample["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 20, "{paths:?}");
    assert!(
        paths.iter().all(|path| path.starts_with("/a/")),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_steady_load_fail_no_request_and_the_books_balance() {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::from_millis(1)).await;
    let configs = [
        mirrored(primary.addr, shadow.addr, 100, ""),
        mirrored(primary.addr, shadow.addr, 100, "\"/x\""),
    ];
    let running = Running::start(&configs[0]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    // Three keep-alive HTTP/1.1 clients (the native engine), one that opens a connection
    // per request, and one h2c client (the hyper engine).
    let mut clients = Vec::new();
    for worker in 0..5 {
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        let base = running.url("");
        clients.push(tokio::spawn(async move {
            let mut client = if worker == 3 {
                h2_client()
            } else {
                http1_client()
            };
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if worker == 4 {
                    client = http1_client();
                }
                let request = if i % 3 == 0 {
                    post_request(&format!("{base}/w{worker}/{i}"), vec![b'x'; 2048])
                } else {
                    get_request(&format!("{base}/w{worker}/{i}"))
                };
                match send(&client, request).await {
                    Ok(reply) if reply.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                    Ok(reply) => {
                        eprintln!("status {} for request {i}", reply.status);
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(error) => {
                        eprintln!("request {i} failed: {error}");
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
                i += 1;
            }
        }));
    }
    for reload in 0..20 {
        running.write(&configs[(reload + 1) % 2]);
        let body = running.reload_ok().await;
        assert_eq!(body["generation"], reload as u64 + 2, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let served = served.load(Ordering::Relaxed);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {served} served");
    assert!(served > 100, "the load ran: {served} requests");
    let metrics = settled_at(running.admin).await;
    // Every request was sampled (100 %), and every sampled one ended in one outcome.
    let requests = support::metrics::metric_sum(&metrics, "shadowtap_requests_total", &[]);
    assert_eq!(requests as u64, served, "{metrics}");
    assert_eq!(sampled(&metrics), served, "{:?}", outcomes(&metrics));
    assert_eq!(
        metric_value(
            &metrics,
            "shadowtap_config_reloads_total",
            &[("result", "success")]
        ),
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let slow = upstream()
        .always(http::StatusCode::OK, "old")
        .with_latency(Duration::from_millis(600))
        .start()
        .await;
    let other = named("new").await;
    let old = two_routes(slow.addr, other.addr, false);
    let new = old.replace(
        "name = \"default\"\nprimary = \"app\"",
        "name = \"default\"\nprimary = \"other\"",
    );
    assert_ne!(old, new);
    let running = Running::start(&old).await;
    let url = running.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url).await.text() });
    until("the request to reach the primary", || slow.count() == 1).await;
    running.write(&new);
    running.reload_ok().await;
    assert_eq!(get(&running.url("/next")).await.text(), "new");
    assert_eq!(in_flight.await.unwrap(), "old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowtap_ctl_reload_prints_the_changes_or_every_error() {
    let app = named("app").await;
    let other = named("other").await;
    let running = Running::start(&two_routes(app.addr, other.addr, false)).await;
    let admin = format!("http://{}", running.admin);
    let ctl = |format: &'static str| {
        let admin = admin.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(BIN)
                    .args(["ctl", "--admin", &admin, "--format", format, "reload"])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    running.write(&two_routes(app.addr, other.addr, true));
    let done = ctl("human").await;
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(done.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("route added: other"), "{stdout}");

    running.write(
        &two_routes(app.addr, other.addr, true)
            .replace("primary = \"other\"", "primary = \"nowhere\""),
    );
    let refused = ctl("json").await;
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout}");
    let answer: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(answer["result"], "failure", "{answer}");
    assert!(answer["errors"].to_string().contains("nowhere"), "{answer}");
    // Still the config of the first reload.
    assert_eq!(get(&running.url("/other/x")).await.text(), "other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_idle_connections_of_an_unchanged_upstream() {
    let kept = support::raw::flaky_upstream(support::raw::OnReuse::Answer).await;
    let other = named("other").await;
    let running = Running::start(&two_routes(kept.addr, other.addr, false)).await;
    let client = http1_client();
    for path in ["/one", "/two"] {
        let reply = send(&client, get_request(&running.url(path)))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    assert_eq!(kept.accepted(), 1, "one pooled connection to the upstream");

    // A route added, the upstream `app` untouched: its pool goes on with the new config.
    running.write(&two_routes(kept.addr, other.addr, true));
    running.reload_ok().await;
    let reply = send(&client, get_request(&running.url("/three")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(kept.answered(), 3);
    assert_eq!(kept.accepted(), 1, "the reload kept the idle connection");

    // The upstream's own settings changed: a new client, a new connection.
    running.write(&two_routes(kept.addr, other.addr, true).replace(
        &format!("url = \"http://{}\"\n", kept.addr),
        &format!("url = \"http://{}\"\npool_max_idle = 7\n", kept.addr),
    ));
    let body = running.reload_ok().await;
    assert!(
        body["changes"]
            .to_string()
            .contains("upstream changed: app"),
        "{body}"
    );
    let reply = send(&client, get_request(&running.url("/four")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(kept.accepted(), 2);
}
