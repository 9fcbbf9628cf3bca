#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TCP-level faults between the real binary and its upstreams (issue 25), injected by
//! [`FaultRelay`]: latency, a bandwidth limit, a reset mid-stream, a half-open peer and a
//! black hole, switched while the binary runs.
//!
//! - Before a shadow, no fault reaches the live path: every client gets the primary's
//!   answer, whole and in time, and every sampled request ends in exactly one counted
//!   outcome (the accounting closes), with the queue, in-flight and budget gauges back to 0.
//! - Before the primary, each fault gives the client the right answer with the reason
//!   counted: a reset before the answer is a 502 (`upstream_error`), a reset mid-body a cut
//!   body (`upstream_body_error`), a silent peer a 504 (`upstream_timeout`) within the
//!   configured timeout, never a hang; slowness within the timeouts is no error at all.

mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::faults::{Fault, FaultRelay};
use support::shadow::*;
use support::*;

/// The real binary running one config file, on ports picked for it.
struct Binary {
    process: Process,
    listen: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts `shadowtap run --config` with `body` after the `[[listeners]]` and `[admin]`
    /// tables (its listener on `engine`), and waits until it is ready.
    async fn start(engine: &str, body: &str) -> Binary {
        // The binary cannot report a port it picked, so pick free ones for it.
        let (listen, admin) = (closed_port().await, closed_port().await);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faults.toml");
        let toml = format!(
            "[[listeners]]\naddress = \"{listen}\"\n{}\n[admin]\naddress = \"{admin}\"\n{body}",
            engine_line(engine)
        );
        std::fs::write(&file, toml).unwrap();
        let mut process = Process::start(
            &["run", "--config", file.to_str().unwrap()],
            &[("RUST_LOG", "warn")],
        );
        process.ready(&admin.to_string()).await;
        Binary {
            process,
            listen,
            admin,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }
}

/// How long the mirror waits for a shadow (queue wait included).
const MIRROR_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a live request may take while the shadow misbehaves: far below
/// [`MIRROR_TIMEOUT`] plus the shadow's own delays, so a live request that waited on the
/// shadow shows, yet generous for a loaded machine.
const LIVE_BOUND: Duration = Duration::from_millis(900);

/// The primary's answer to each request of a phase, as [`echo_primary`] words it.
fn echoed(method: &str, path: &str, body_len: usize) -> String {
    format!("primary: {method} {path} {body_len} bytes")
}

/// Sends `n` requests at once (GETs, and every third a POST with a body) under `phase`;
/// every answer must be the primary's, whole, within [`LIVE_BOUND`].
async fn live_requests_intact(proxy: &Binary, phase: &str, n: usize) {
    let client = http1_client();
    let base = proxy.url("");
    let results = run_concurrently(n, n, move |i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let path = format!("/{i}");
            let post = i % 3 == 2;
            let body = format!("posted body {i} ").repeat(40);
            let request = if post {
                post_request(&format!("{base}{path}"), body.clone())
            } else {
                get_request(&format!("{base}{path}"))
            };
            let started = Instant::now();
            let reply = send(&client, request).await;
            let expected = if post {
                echoed("POST", &path, body.len())
            } else {
                echoed("GET", &path, 0)
            };
            (reply, started.elapsed(), expected)
        }
    })
    .await;
    for (reply, took, expected) in results {
        let reply = reply.unwrap_or_else(|error| panic!("{phase}: a live request failed: {error}"));
        assert_eq!(reply.status, StatusCode::OK, "{phase}: {}", reply.text());
        assert_eq!(reply.text(), expected, "{phase}: the live answer changed");
        assert!(
            took < LIVE_BOUND,
            "{phase}: a live request took {took:?}: it waited on the shadow"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shadow_fault_reaches_the_live_path_and_every_copy_is_accounted_for() {
    let primary = echo_primary().await;
    // An answer long enough to be cut mid-body.
    let shadow = upstream()
        .fallback(|_| async { Response::new(full(Bytes::from(vec![b's'; 8192]))) })
        .start()
        .await;
    let relay = FaultRelay::start(shadow.addr).await;
    // The breaker is kept shut (it needs more requests than the test sends) so each
    // fault's own outcome shows; the breaker has tests of its own.
    let proxy = Binary::start(
        "native",
        &format!(
            r#"
[mirror]
timeout = "{}ms"
[mirror.circuit_breaker]
min_requests = 100000

[upstreams.app]
url = "http://{}"
[upstreams.shadow]
url = "http://{}"
connect_timeout = "1s"

[[routes]]
name = "default"
primary = "app"
[routes.mirror]
[[routes.mirror.shadows]]
upstream = "shadow"
methods = ["GET", "POST"]
"#,
            MIRROR_TIMEOUT.as_millis(),
            primary.addr,
            relay.addr
        ),
    )
    .await;

    // Each fault, and the outcome every copy sent under it must end in.
    let phases = [
        (Fault::Pass, "completed"),
        (Fault::Latency(Duration::from_millis(150)), "completed"),
        (Fault::Bandwidth(64 * 1024), "completed"),
        (Fault::ResetAfter(10), "error"),
        (Fault::HalfOpen, "timeout"),
        (Fault::BlackHole, "timeout"),
        (Fault::ResetAfter(1000), "error"),
        (Fault::Pass, "completed"),
    ];
    const PER_PHASE: usize = 9;
    let mut sent = 0u64;
    for (fault, outcome) in phases {
        relay.set(fault);
        let phase = format!("{fault:?}");
        let before = outcomes(&admin_metrics(proxy.admin).await);
        live_requests_intact(&proxy, &phase, PER_PHASE).await;
        sent += PER_PHASE as u64;

        let metrics = settled_at(proxy.admin).await;
        let after = outcomes(&metrics);
        assert_eq!(
            sampled(&metrics),
            sent,
            "{phase}: every copy ends in exactly one outcome: {after:?}"
        );
        let added = after[outcome] - before[outcome];
        assert_eq!(
            added, PER_PHASE as u64,
            "{phase}: every copy should end as {outcome}: {before:?} -> {after:?}"
        );
        assert_eq!(
            metric_value(&metrics, "shadowtap_mirror_buffered_bytes", &[]),
            Some(0.0),
            "{phase}: the mirror's memory budget is given back"
        );
    }
    assert!(relay.resets() > 0, "the relay did reset connections");
    relay.set(Fault::Pass);
    drop(relay);
    let mut process = proxy.process;
    assert!(process.terminate().await.success());
}

/// A primary that answers `/big` with [`BIG`] bytes and anything else as [`echo_primary`].
async fn primary_with_a_big_answer() -> Upstream {
    upstream()
        .route("/big", |_| async {
            Response::new(full(Bytes::from(vec![b'b'; BIG])))
        })
        .fallback(|r: Received| async move {
            let body = echoed(r.method.as_str(), r.uri.path(), r.body.len());
            Response::new(full(body))
        })
        .start()
        .await
}

const BIG: usize = 64 * 1024;

/// The primary's `response_timeout`: a silent primary is a 504 after this long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How much later than the configured timeout an answer may come on a loaded machine; a
/// hang is far beyond it.
const SLACK: Duration = Duration::from_secs(4);

fn proxy_errors(metrics: &str, reason: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_proxy_errors_total",
        &[("route", "default"), ("reason", reason)],
    )
}

/// Sends `GET path` and a POST to `path` under the fault in force; each must be answered
/// `status` by the proxy itself, in time, and counted once under `reason`.
async fn answered_by_the_proxy(proxy: &Binary, phase: &str, status: StatusCode, reason: &str) {
    let before = proxy_errors(&admin_metrics(proxy.admin).await, reason);
    for request in [
        get_request(&proxy.url("/fault")),
        post_request(
            &proxy.url("/fault"),
            "a body the primary never sees answered",
        ),
    ] {
        let started = Instant::now();
        let reply = send(&http1_client(), request)
            .await
            .unwrap_or_else(|error| panic!("{phase}: no answer from the proxy: {error}"));
        let took = started.elapsed();
        assert_eq!(reply.status, status, "{phase}: {}", reply.text());
        assert!(
            took < RESPONSE_TIMEOUT + SLACK,
            "{phase}: answered after {took:?}, beyond the configured timeout"
        );
    }
    let after = proxy_errors(&admin_metrics(proxy.admin).await, reason);
    assert_eq!(
        after - before,
        2.0,
        "{phase}: each answer counted as {reason}"
    );
}

/// The whole answer of `GET path`, checked against what the primary sends.
async fn intact(proxy: &Binary, phase: &str, path: &str) {
    let reply = send(&http1_client(), get_request(&proxy.url(path)))
        .await
        .unwrap_or_else(|error| panic!("{phase}: {path} failed: {error}"));
    assert_eq!(reply.status, StatusCode::OK, "{phase}");
    let expected = if path == "/big" {
        vec![b'b'; BIG]
    } else {
        echoed("GET", path, 0).into_bytes()
    };
    assert!(reply.body == expected, "{phase}: {path} came back changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_primary_fault_is_the_right_counted_answer_never_a_hang() {
    for engine in ENGINES {
        let primary = primary_with_a_big_answer().await;
        let relay = FaultRelay::start(primary.addr).await;
        let proxy = Binary::start(
            engine,
            &format!(
                r#"
[upstreams.app]
url = "http://{}"
connect_timeout = "1s"
response_timeout = "{}ms"

[[routes]]
name = "default"
primary = "app"
"#,
                relay.addr,
                RESPONSE_TIMEOUT.as_millis()
            ),
        )
        .await;
        let phase = |name: &str| format!("{engine}: {name}");

        intact(&proxy, &phase("pass"), "/x").await;
        relay.set(Fault::Latency(Duration::from_millis(100)));
        intact(&proxy, &phase("latency"), "/x").await;
        intact(&proxy, &phase("latency"), "/big").await;
        relay.set(Fault::Bandwidth(256 * 1024));
        intact(&proxy, &phase("bandwidth"), "/big").await;

        relay.set(Fault::ResetAfter(0));
        let reset = phase("reset before the answer");
        answered_by_the_proxy(&proxy, &reset, StatusCode::BAD_GATEWAY, "upstream_error").await;

        relay.set(Fault::ResetAfter(4096));
        let cut = phase("reset mid-body");
        let before = proxy_errors(&admin_metrics(proxy.admin).await, "upstream_body_error");
        let started = Instant::now();
        match send(&http1_client(), get_request(&proxy.url("/big"))).await {
            Err(_) => {}
            Ok(reply) => panic!(
                "{cut}: a cut body was passed off as whole: {} with {} bytes",
                reply.status,
                reply.body.len()
            ),
        }
        assert!(started.elapsed() < RESPONSE_TIMEOUT + SLACK, "{cut}");
        let metrics = until_metrics(
            proxy.admin,
            "the cut body to be counted",
            |metrics| proxy_errors(metrics, "upstream_body_error") > before,
            |metrics| metrics.to_string(),
        )
        .await;
        assert_eq!(
            proxy_errors(&metrics, "upstream_body_error") - before,
            1.0,
            "{cut}"
        );

        relay.set(Fault::HalfOpen);
        let half_open = phase("half-open");
        answered_by_the_proxy(
            &proxy,
            &half_open,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        )
        .await;
        relay.set(Fault::BlackHole);
        let black_hole = phase("black hole");
        answered_by_the_proxy(
            &proxy,
            &black_hole,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        )
        .await;

        relay.set(Fault::Pass);
        intact(&proxy, &phase("healthy again"), "/x").await;
        intact(&proxy, &phase("healthy again"), "/big").await;
        assert!(
            relay.resets() >= 3,
            "{engine}: the relay did reset connections"
        );
        let mut process = proxy.process;
        assert!(process.terminate().await.success(), "{engine}");
    }
}

/// Found by the soak (issue 25): the native engine's pool closed an idle connection only
/// when the next request came, so a quiet upstream kept its sockets open past
/// `pool_idle_timeout` for good. Now every idle connection, the primary's on both engines
/// and the shadow's, is closed soon after the timeout without another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_close_after_the_idle_timeout_without_more_requests() {
    for engine in ENGINES {
        let primary = echo_primary().await;
        let shadow = healthy_shadow(Duration::ZERO).await;
        let (primary_relay, shadow_relay) = (
            FaultRelay::start(primary.addr).await,
            FaultRelay::start(shadow.addr).await,
        );
        let idle = "pool_idle_timeout = \"300ms\"";
        let toml = format!(
            r#"
[upstreams.app]
url = "http://{}"
{idle}
[upstreams.shadow]
url = "http://{}"
{idle}

[[routes]]
name = "default"
primary = "app"
[routes.mirror]
[[routes.mirror.shadows]]
upstream = "shadow"
"#,
            primary_relay.addr, shadow_relay.addr
        );
        let proxy = Binary::start(engine, &toml).await;
        intact(&proxy, engine, "/x").await;
        settled_at(proxy.admin).await;
        assert_eq!(primary_relay.connections(), 1, "{engine}");
        assert_eq!(shadow_relay.connections(), 1, "{engine}");
        until(&format!("{engine}: the idle connections to close"), || {
            primary_relay.open() == 0 && shadow_relay.open() == 0
        })
        .await;
        let mut process = proxy.process;
        assert!(process.terminate().await.success(), "{engine}");
    }
}
