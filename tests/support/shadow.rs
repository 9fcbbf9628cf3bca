//! Mirroring helpers: configs with a shadow, shadows that misbehave on cue, the mirror
//! accounting read back from `/metrics`, and a small concurrent load driver.
//!
//! Every mirroring config built here has two routes to the same primary: `plain`
//! (`/plain/...`, never mirrored: the baseline a test compares against) and `default`
//! (everything else, mirrored to the upstream `shadow` with the policy the test gives).

use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

/// The harness's client type.
pub type TestClient = Client<HttpConnector, Body>;

/// Every `outcome` label of `shadowtap_mirror_requests_total`.
pub const OUTCOMES: [&str; 12] = [
    "completed",
    "error",
    "timeout",
    "dropped_queue_full",
    "dropped_body_too_large",
    "dropped_client_aborted",
    "dropped_primary_failed",
    "dropped_memory_budget",
    "skipped_method",
    "skipped_circuit_open",
    "skipped_paused",
    "skipped_upgrade",
];

/// The mirroring parts of a config; every field is raw TOML lines.
#[derive(Default, Clone)]
pub struct Policy {
    /// Lines for `[mirror]` (may end with a `[mirror.circuit_breaker]` table).
    pub global: &'static str,
    /// Lines for the `default` route's `[routes.mirror]`.
    pub route: &'static str,
    /// Lines for its one `[[routes.mirror.shadows]]` (upstream `shadow`).
    pub shadow: &'static str,
}

/// The config text: primary `app`, shadow upstream `shadow`, routes `plain` and `default`.
pub fn mirror_toml(primary: SocketAddr, shadow: SocketAddr, policy: &Policy) -> String {
    let Policy {
        global,
        route,
        shadow: shadow_lines,
    } = policy;
    let head = listener_and_admin("");
    format!(
        r#"{head}
[upstreams.app]
url = "http://{primary}"

[upstreams.shadow]
url = "http://{shadow}"
connect_timeout = "1s"

[mirror]
{global}

[[routes]]
name = "plain"
path_prefix = "/plain/"
primary = "app"

[[routes]]
name = "default"
primary = "app"

[routes.mirror]
{route}

[[routes.mirror.shadows]]
upstream = "shadow"
{shadow_lines}

[shutdown]
grace_period = "5s"
"#
    )
}

/// Starts shadowtap with [`mirror_toml`].
pub async fn mirrored(primary: SocketAddr, shadow: SocketAddr, policy: &Policy) -> Shadowtap {
    Shadowtap::start(config(&mirror_toml(primary, shadow, policy))).await
}

/// A primary that answers every request `200` with a body naming what it got.
pub async fn echo_primary() -> Upstream {
    upstream()
        .fallback(|r: Received| async move {
            let body = format!("primary: {} {} {} bytes", r.method, r.uri, r.body.len());
            Response::new(full(body))
        })
        .start()
        .await
}

/// A healthy shadow (`200`, a short body) after `latency`.
pub async fn healthy_shadow(latency: Duration) -> Upstream {
    upstream()
        .fallback(|_| async { status(StatusCode::OK, "shadow\n") })
        .with_latency(latency)
        .start()
        .await
}

/// A shadow answering `200` with a body of `total` bytes, generated as it is sent; the
/// counter tells how many bytes the server managed to hand to the connection.
pub async fn huge_body_shadow(total: u64) -> (Upstream, Arc<AtomicU64>) {
    const CHUNK: usize = 64 * 1024;
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let shadow = upstream()
        .fallback(move |_| {
            let counter = counter.clone();
            async move {
                let (tx, body) = channel_body(2);
                tokio::spawn(async move {
                    let chunk = Bytes::from(vec![b'x'; CHUNK]);
                    let mut sent = 0u64;
                    while sent < total {
                        let len = (total - sent).min(CHUNK as u64);
                        let data = chunk.slice(..len as usize);
                        if tx.send(Frame::data(data)).await.is_err() {
                            return;
                        }
                        sent += len;
                        counter.fetch_add(len, Ordering::SeqCst);
                    }
                });
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert("content-length", total.to_string().parse().expect("length"));
                response
            }
        })
        .start()
        .await;
    (shadow, produced)
}

/// A shadow that hangs (never answers) while the flag is set, and answers `200` otherwise.
pub async fn switchable_shadow() -> (Upstream, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let shadow = upstream()
        .fallback(move |_| {
            let failing = flag.load(Ordering::SeqCst);
            async move {
                if failing {
                    std::future::pending::<()>().await;
                }
                status(StatusCode::OK, "recovered\n")
            }
        })
        .start()
        .await;
    (shadow, failing)
}

/// The `default` route's mirror outcomes for `shadow`, every outcome present (0 if unseen).
pub fn outcomes(metrics: &str) -> BTreeMap<&'static str, u64> {
    OUTCOMES
        .iter()
        .map(|outcome| {
            let value = metric_sum(
                metrics,
                "shadowtap_mirror_requests_total",
                &[
                    ("route", "default"),
                    ("shadow", "shadow"),
                    ("outcome", outcome),
                ],
            );
            (*outcome, value as u64)
        })
        .collect()
}

/// Requests sampled for the shadow: every one ends in exactly one outcome.
pub fn sampled(metrics: &str) -> u64 {
    outcomes(metrics).values().sum()
}

/// A gauge of the `shadow` upstream (`queue_depth`, `in_flight`, `circuit_state`).
pub fn shadow_gauge(metrics: &str, which: &str) -> f64 {
    metric_value(
        metrics,
        &format!("shadowtap_mirror_{which}"),
        &[("shadow", "shadow")],
    )
    .unwrap_or_else(|| panic!("no shadowtap_mirror_{which}{{shadow=\"shadow\"}} in:\n{metrics}"))
}

/// Polls `/metrics` until `done` holds; panics with the last scrape after [`STEP`].
pub async fn eventually(proxy: &Shadowtap, what: &str, done: impl Fn(&str) -> bool) -> String {
    eventually_at(proxy.admin, what, done).await
}

/// [`eventually`] for any admin address (the real binary's, too).
pub async fn eventually_at(admin: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    until_metrics(admin, what, done, explain_outcomes).await
}

/// The outcomes, then the whole scrape: what a test that timed out waiting shows.
fn explain_outcomes(metrics: &str) -> String {
    format!("outcomes {:?}\n{metrics}", outcomes(metrics))
}

/// Waits until the shadow side is idle: queue and in-flight at 0 and the outcome counts
/// unchanged over two scrapes 100 ms apart (a job between dequeue and send shows as
/// neither queued nor in flight, so one idle-looking scrape is not enough).
pub async fn settled(proxy: &Shadowtap) -> String {
    settled_at(proxy.admin).await
}

/// [`settled`] for any admin address (the real binary's, too).
pub async fn settled_at(admin: SocketAddr) -> String {
    let idle = |metrics: &str| {
        shadow_gauge(metrics, "queue_depth") == 0.0 && shadow_gauge(metrics, "in_flight") == 0.0
    };
    let idle_at = || until_metrics(admin, "the shadow side to go idle", idle, explain_outcomes);
    let mut last = idle_at().await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = idle_at().await;
        if outcomes(&now) == outcomes(&last) {
            return now;
        }
        last = now;
    }
}

/// Runs `make(i)` for `i in 0..n`, at most `concurrency` at a time (each on its own task);
/// returns the results in `i` order. The whole run is bounded by [`STEP`] times 3.
pub async fn run_concurrently<T, F, Fut>(n: usize, concurrency: usize, make: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let mut workers = Vec::new();
    for _ in 0..concurrency.min(n) {
        let next = next.clone();
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return done;
                }
                done.push((i, make(i).await));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    let joined = tokio::time::timeout(STEP * 3, async {
        for worker in workers {
            all.extend(worker.await.expect("load worker"));
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "{n} requests did not finish in {:?}",
        STEP * 3
    );
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, result)| result).collect()
}

/// `GET url` over `client`, with the time it took; panics if the exchange fails.
pub async fn timed_get(client: &TestClient, url: &str) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = send(client, get_request(url))
        .await
        .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
    (reply, started.elapsed())
}

/// Sends a POST head promising `declared` body bytes, then only `sent`, then closes the
/// connection: a client that gave up mid-body.
pub async fn abort_mid_body(addr: SocketAddr, path: &str, declared: usize, sent: &[u8]) {
    let mut stream = within("raw connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/plain\r\ncontent-length: {declared}\r\n\r\n"
    );
    within("raw write", async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(sent).await?;
        stream.flush().await
    })
    .await
    .expect("write the partial request");
    // Let the proxy start forwarding before the connection goes away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
}

/// Waits until `upstream` has received `n` requests; panics after [`STEP`].
pub async fn received_at_least(upstream: &Upstream, n: usize) -> Vec<Received> {
    let what = format!("the upstream to receive {n} requests");
    until(&what, || upstream.count() >= n).await;
    upstream.received()
}

/// A shadow that, while the flag is set, drops each connection on its next request without
/// answering (a transport failure, at once: a crashed or restarting build), and answers
/// `200` otherwise. Returns its address, the flag (set at start) and the count of answers.
pub async fn crashing_shadow() -> (
    SocketAddr,
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    JoinHandle<()>,
) {
    let listener = within("shadow bind", TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind shadow");
    let addr = listener.local_addr().expect("shadow address");
    let down = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicUsize::new(0));
    let (flag, count) = (down.clone(), answered.clone());
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let (flag, count) = (flag.clone(), count.clone());
            let service = service_fn(move |request: Request<Incoming>| {
                let (flag, count) = (flag.clone(), count.clone());
                async move {
                    let _ = request.into_body().collect().await;
                    if flag.load(Ordering::SeqCst) {
                        // A service error makes hyper close the connection unanswered.
                        return Err("down");
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(status(StatusCode::OK, "shadow\n"))
                }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::spawn(connection);
        }
    });
    (addr, down, answered, task)
}
