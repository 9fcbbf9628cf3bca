//! The demo's traffic generator and its client-side count of each route.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the generator sent and got back, per route template.
#[derive(Clone)]
pub struct Stats {
    routes: Arc<Vec<RouteCounts>>,
}

struct RouteCounts {
    template: String,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// One route's client-side counts.
pub struct Counts {
    /// The template.
    pub template: String,
    /// Requests answered.
    pub requests: u64,
    /// Answers that were not 2xx, or failed.
    pub errors: u64,
}

impl Stats {
    /// One entry per template.
    pub fn new(templates: &[&str]) -> Stats {
        let routes = templates
            .iter()
            .map(|template| RouteCounts {
                template: template.to_string(),
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            })
            .collect();
        Stats {
            routes: Arc::new(routes),
        }
    }

    fn record(&self, route: usize, ok: bool) {
        if let Some(counts) = self.routes.get(route) {
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts.errors.fetch_add(u64::from(!ok), Ordering::Relaxed);
        }
    }

    /// A snapshot of every route.
    pub fn counts(&self) -> Vec<Counts> {
        self.routes
            .iter()
            .map(|route| Counts {
                template: route.template.clone(),
                requests: route.requests.load(Ordering::Relaxed),
                errors: route.errors.load(Ordering::Relaxed),
            })
            .collect()
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
        let uri = format!(
            "http://{proxy}{}",
            path_for(&stats.routes[route].template, serial / 5)
        );
        let client = client.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
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
            stats.record(route, ok);
        });
    }
}
