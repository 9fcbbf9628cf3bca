#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/metrics` of the real binary carries what every Prometheus user expects besides the
//! proxy's own series: `shadowtap_build_info` and the standard `process_*` metrics, read on
//! the scrape itself (the first scrape already has them; no timer feeds them).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

/// The value of the unlabelled series `name`.
fn value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            let (series, value) = line.split_once(' ')?;
            (series == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_build_info_and_plausible_process_metrics_from_the_first_scrape() {
    let upstream = upstream()
        .always(http::StatusCode::OK, "ok\n")
        .start()
        .await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let primary = upstream.url("");
    let spawned_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut child = Spawned::run(&primary, &listen, &admin, &[]);
    child.ready(&admin).await;
    // Before any /metrics request: readiness polls do not scrape.
    let scrape = || async {
        let reply = get(&format!("http://{admin}/metrics")).await;
        assert_eq!(reply.status, 200);
        reply.text()
    };
    let metrics = scrape().await;

    let build = metrics
        .lines()
        .find(|line| line.starts_with("shadowtap_build_info{"))
        .unwrap_or_else(|| panic!("no shadowtap_build_info:\n{metrics}"));
    assert!(build.ends_with(" 1"), "{build}");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    let label = |name: &str| {
        let start = build.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        build[start..].split('"').next().unwrap().to_string()
    };
    let rustc = label("rustc_version");
    assert!(
        rustc.split('.').count() >= 3 && rustc.split('.').all(|p| !p.is_empty()),
        "{build}"
    );
    assert!(!label("git_commit").is_empty(), "{build}");

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start = value(&metrics, "process_start_time_seconds");
    // The clock ticks /proc reports start times in are 10 ms apart.
    assert!(
        start >= spawned_at.as_secs_f64() - 2.0 && start <= now.as_secs_f64() + 1.0,
        "start {start}, spawned {spawned_at:?}, now {now:?}"
    );
    let resident = value(&metrics, "process_resident_memory_bytes");
    let virtual_memory = value(&metrics, "process_virtual_memory_bytes");
    assert!(
        resident > 1024.0 * 1024.0 && resident < 4.0 * 1024.0 * 1024.0 * 1024.0,
        "{resident}"
    );
    assert!(virtual_memory >= resident, "{virtual_memory} < {resident}");
    let open = value(&metrics, "process_open_fds");
    let max = value(&metrics, "process_max_fds");
    // stdin/out/err, the two listeners, the scrape's connection.
    assert!(open >= 5.0 && open <= max, "open {open}, max {max}");
    assert!(value(&metrics, "process_threads") >= 1.0);
    assert!(value(&metrics, "process_cpu_seconds_total") >= 0.0);

    // Collected per scrape: the open descriptors follow connections opened in between.
    let held: Vec<tokio::net::TcpStream> = {
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(tokio::net::TcpStream::connect(&listen).await.unwrap());
        }
        held
    };
    let later = within("the held connections to be accepted", async {
        loop {
            let metrics = scrape().await;
            // 20 more, less the first scrape's own connection, closed since.
            if value(&metrics, "process_open_fds") >= open + 18.0 {
                break metrics;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(value(&later, "process_open_fds") <= max);
    drop(held);
}
