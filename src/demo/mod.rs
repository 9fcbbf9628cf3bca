//! `shadowtap demo`: the whole product on one machine with no setup.
//!
//! It starts built-in demo services on loopback — the stable build as primary and as
//! secondary, the canary build (with deliberate regressions) as shadow — the real proxy in
//! front of them (same code path as `shadowtap run`), and a steady traffic generator; every
//! few seconds it prints, per route, the requests, the divergence rate, the top diverging
//! fields and primary vs shadow latency, with the admin URLs to explore. It ends with the
//! canary's verdict per route, asked through the admin port as `shadowtap verdict` would.

pub mod backends;
mod summary;
mod traffic;

use crate::config::{Config, Overrides};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Demo settings from the command line.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Requests per second sent through the proxy.
    pub rate: u32,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A built-in service could not bind a loopback port.
    #[error("cannot start the demo service")]
    Backend(#[source] std::io::Error),
    /// The generated proxy config was refused (a bug: it is built here).
    #[error("demo config is invalid")]
    Config(#[source] crate::config::ConfigError),
    /// The proxy could not bind.
    #[error("cannot start the proxy")]
    Start(#[source] crate::app::StartError),
}

/// The proxy config the demo runs: one route over the demo service with its templates,
/// mirrored in full to the canary, with a second stable instance as the secondary so noise
/// is recognised from the first pair (and learned noise kicks in after 20 pairs).
pub fn demo_config(
    primary: std::net::SocketAddr,
    secondary: std::net::SocketAddr,
    shadow: std::net::SocketAddr,
) -> Result<Config, crate::config::ConfigError> {
    let templates: Vec<String> = backends::TEMPLATES
        .iter()
        .map(|t| format!("{t:?}"))
        .collect();
    let text = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"

[upstreams.primary]
url = "http://{primary}"
response_timeout = "5s"

[upstreams.primary-b]
url = "http://{secondary}"

[upstreams.canary]
url = "http://{shadow}"

[compare]
learn_after = 20

[[routes]]
name = "api"
path_prefix = "/api/"
primary = "primary"
template = [{templates}]

[routes.mirror]
secondary = "primary-b"

[[routes.mirror.shadows]]
upstream = "canary"
percent = 100

[routes.compare]
unordered_paths = ["/results"]

# The verdict printed at the end: the defaults (divergence and shadow errors under 5 % with
# 95 % confidence, over at least 100 pairs), and search held to 0.1 %: its canary answers
# 500 now and then, too rarely for 5 % to catch in a few seconds.
[verdict.routes."/api/search"]
max_divergence_ratio = 0.001

# And report held to a p99 latency delta of 20 ms: its canary answers the same, 40 ms slower.
[verdict.routes."/api/report"]
max_latency_delta = "20ms"
"#,
        templates = templates.join(", ")
    );
    Config::from_toml(&text, &Overrides::default())
}

/// Runs the demo until `stop` resolves, printing a live report to stdout.
pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = |build| backends::start(build, stop_rx.clone());
    let primary = start(backends::Build::Stable)
        .await
        .map_err(DemoError::Backend)?;
    let secondary = start(backends::Build::Stable)
        .await
        .map_err(DemoError::Backend)?;
    let shadow = start(backends::Build::Canary)
        .await
        .map_err(DemoError::Backend)?;
    let config = demo_config(primary, secondary, shadow).map_err(DemoError::Config)?;
    let thresholds = config.verdict.clone();
    let app = crate::BoundApp::bind(config)
        .await
        .map_err(DemoError::Start)?;
    let proxy =
        app.listen_addrs().first().copied().ok_or_else(|| {
            DemoError::Backend(std::io::Error::other("the proxy has no listener"))
        })?;
    let report = app.report();
    let admin = app.admin_addr();
    // The web page first: it is where a person starts.
    match admin {
        Some(admin) => println!("shadowtap demo: open http://{admin}/ui/ in a browser"),
        None => println!("shadowtap demo"),
    }
    println!("  primary (stable build):   http://{primary}");
    println!("  secondary (stable build): http://{secondary}");
    println!("  shadow (canary build):    http://{shadow}");
    println!("  proxy:                    http://{proxy}");
    let admin_text = admin.map(|admin| admin.to_string()).unwrap_or_default();
    if let Some(admin) = admin {
        println!("  admin:                    http://{admin}/metrics  /api/v1/routes  /api/v1/samples  /api/v1/noise");
    }
    println!("  traffic: {} req/s; Ctrl-C to stop", options.rate);
    println!();

    let mut proxy_stop = stop_rx.clone();
    let server =
        tokio::spawn(app.serve(async move { crate::shutdown::flagged(&mut proxy_stop).await }));
    let stats = traffic::Stats::new(backends::TEMPLATES);
    // The generator stops first, so requests in flight finish before the proxy drains.
    let (traffic_stop_tx, traffic_stop_rx) = watch::channel(false);
    let generator = tokio::spawn(traffic::generate(
        proxy,
        options.rate,
        stats.clone(),
        traffic_stop_rx,
    ));
    let reporter = {
        let stats = stats.clone();
        let report = report.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(2));
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => print!("{}", summary::render(&stats, &report.routes())),
                    _ = crate::shutdown::flagged(&mut stop) => break,
                }
            }
        })
    };

    stop.await;
    let _ = traffic_stop_tx.send(true);
    let _ = generator.await;
    // Let in-flight requests, shadow requests and comparisons settle before the final table.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Asked through the admin port, as `shadowtap verdict --admin` would, before it closes.
    let verdict = match admin {
        Some(admin) => Some(
            crate::verdict::Request {
                source: crate::verdict::Source::Admin(format!("http://{admin}")),
                config: thresholds,
                timeout: Duration::from_secs(5),
                access: crate::verdict::Access::default(),
            }
            .evaluate()
            .await,
        ),
        None => None,
    };
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    println!("final:");
    print!("{}", summary::render(&stats, &report.routes()));
    match verdict {
        Some(Ok(verdict)) => {
            println!("verdict (shadowtap verdict --admin http://{}):", admin_text);
            print!("{}", crate::verdict::output::table(&verdict));
        }
        Some(Err(error)) => println!("verdict: cannot ask the admin port: {error}"),
        None => {}
    }
    let _ = server.await;
    Ok(())
}
