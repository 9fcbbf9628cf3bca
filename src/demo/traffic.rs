//! The demo's traffic generator and its client-side view of each route.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the generator saw per route template.
#[derive(Clone)]
pub struct Stats {
    routes: Arc<Vec<(String, Mutex<RouteStats>)>>,
}

struct RouteStats {
    requests: u64,
    errors: u64,
    latency_us: Option<Histogram<u64>>,
}

impl Stats {
    /// One entry per template.
    pub fn new(templates: &[&str]) -> Stats {
        let routes = templates
            .iter()
            .map(|template| {
                let stats = RouteStats {
                    requests: 0,
                    errors: 0,
                    latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
                };
                (template.to_string(), Mutex::new(stats))
            })
            .collect();
        Stats {
            routes: Arc::new(routes),
        }
    }

    fn record(&self, route: usize, ok: bool, latency: Duration) {
        let Some((_, stats)) = self.routes.get(route) else {
            return;
        };
        let Ok(mut stats) = stats.lock() else { return };
        stats.requests += 1;
        if !ok {
            stats.errors += 1;
        }
        if let Some(histogram) = stats.latency_us.as_mut() {
            let _ = histogram.record((latency.as_micros() as u64).max(1));
        }
    }

    /// A table of the routes: requests, non-2xx answers, client-side p50/p99.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>8} {:>10} {:>10}",
            "route", "requests", "errors", "p50", "p99"
        );
        for (template, stats) in self.routes.iter() {
            let Ok(stats) = stats.lock() else { continue };
            let (p50, p99) = stats
                .latency_us
                .as_ref()
                .filter(|h| !h.is_empty())
                .map_or((0, 0), |h| {
                    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
                });
            let _ = writeln!(
                out,
                "{template:<20} {:>9} {:>8} {:>10} {:>10}",
                stats.requests,
                stats.errors,
                format_us(p50),
                format_us(p99)
            );
        }
        out.push('\n');
        out
    }
}

fn format_us(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

/// The path sent for a route template, with a varying id.
fn path_for(template: &str, serial: u64) -> String {
    template.replace("{id}", &(serial % 50).to_string())
}

/// Sends `rate` requests per second, spread over the templates, until `stop` turns true.
pub async fn generate(proxy: SocketAddr, rate: u32, stats: Stats, mut stop: watch::Receiver<bool>) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serial: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::shutdown::flagged(&mut stop) => break,
        }
        serial += 1;
        let route = (serial as usize) % stats.routes.len();
        let template = &stats.routes[route].0;
        let uri = format!("http://{proxy}{}", path_for(template, serial));
        let client = client.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let Ok(request) = http::Request::get(uri)
                .header("host", "demo.local")
                .body(Empty::new())
            else {
                return;
            };
            let ok = match client.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    response.into_body().collect().await.is_ok() && status.is_success()
                }
                Err(_) => false,
            };
            stats.record(route, ok, started.elapsed());
        });
    }
}
