//! `shadowtap demo`: the whole product on one machine with no setup.
//!
//! It starts a built-in demo service on loopback, the real proxy in front of it (same code
//! path as `shadowtap run`), and a steady traffic generator; every few seconds it prints a
//! per-route summary of what went through the proxy, with the admin URL to scrape.

pub mod backends;
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

/// The proxy config the demo runs: one route over the demo service with its templates.
pub fn demo_config(primary: std::net::SocketAddr) -> Result<Config, crate::config::ConfigError> {
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

[[routes]]
name = "api"
path_prefix = "/api/"
primary = "primary"
template = [{templates}]
"#,
        templates = templates.join(", ")
    );
    Config::from_toml(&text, &Overrides::default())
}

/// Runs the demo until `stop` resolves, printing a live report to stdout.
pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let primary = backends::start(
        backends::Behaviour {
            report_delay: Duration::from_millis(20),
        },
        stop_rx.clone(),
    )
    .await
    .map_err(DemoError::Backend)?;
    let config = demo_config(primary).map_err(DemoError::Config)?;
    let app = crate::BoundApp::bind(config)
        .await
        .map_err(DemoError::Start)?;
    let proxy =
        app.listen_addrs().first().copied().ok_or_else(|| {
            DemoError::Backend(std::io::Error::other("the proxy has no listener"))
        })?;
    println!("shadowtap demo");
    println!("  demo service (primary): http://{primary}");
    println!("  proxy:                  http://{proxy}");
    if let Some(admin) = app.admin_addr() {
        println!("  admin:                  http://{admin}/metrics");
    }
    println!("  traffic: {} req/s; Ctrl-C to stop", options.rate);
    println!();

    let mut proxy_stop = stop_rx.clone();
    let server =
        tokio::spawn(app.serve(async move { crate::shutdown::flagged(&mut proxy_stop).await }));
    let stats = traffic::Stats::new(backends::TEMPLATES);
    let generator = tokio::spawn(traffic::generate(
        proxy,
        options.rate,
        stats.clone(),
        stop_rx.clone(),
    ));
    let reporter = {
        let stats = stats.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(2));
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => print!("{}", stats.report()),
                    _ = crate::shutdown::flagged(&mut stop) => break,
                }
            }
        })
    };

    stop.await;
    let _ = stop_tx.send(true);
    let _ = generator.await;
    let _ = reporter.await;
    let _ = server.await;
    println!("final:");
    print!("{}", stats.report());
    Ok(())
}
