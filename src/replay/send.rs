//! Sending the selected entries through the replay's proxy: paced (recorded gaps scaled by
//! `--speed`, or `--rate` per second, or as fast as `--concurrency` allows), each request
//! rebuilt from its entry without the fields a proxy adds or a recording hides.

use super::answers::ENTRY_HEADER;
use crate::record::Entry;
use crate::report::samples::REDACTED;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Whether a recorded request field is not replayed: what a recorded answer is not served
/// with (the connection's own, the framing: the body is sent whole), and what the
/// recording proxy added (its `via` would look like a loop).
fn not_replayed(name: &str) -> bool {
    super::answers::not_served(name)
        || matches!(
            name,
            "via" | "forwarded" | "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        )
        || name == ENTRY_HEADER
}

/// How requests are spaced.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// The recorded gaps divided by this factor (1.0: as recorded).
    Speed(f64),
    /// This many requests per second.
    Rate(f64),
    /// As fast as the concurrency allows.
    Flat,
}

/// What was sent and what came back (the proxy's answers: the primary's).
#[derive(Debug, Default)]
pub struct Sent {
    /// Requests answered by the proxy.
    pub answered: AtomicU64,
    /// Requests the proxy did not answer (a connection error).
    pub failed: AtomicU64,
}

/// When entry `index` is due, from the replay's start.
pub fn due(pacing: Pacing, index: usize, first: Option<SystemTime>, entry: &Entry) -> Duration {
    match pacing {
        Pacing::Flat => Duration::ZERO,
        Pacing::Rate(rate) => Duration::from_secs_f64(index as f64 / rate),
        Pacing::Speed(speed) => {
            let gap = match (first, entry.started()) {
                (Some(first), Some(started)) => {
                    started.duration_since(first).unwrap_or(Duration::ZERO)
                }
                _ => Duration::ZERO,
            };
            gap.div_f64(speed)
        }
    }
}

/// Sends every entry through the proxy at `proxy`; `recorded` adds the field naming the
/// entry, for the recorded answers' server.
pub async fn send_all(
    entries: Arc<Vec<Entry>>,
    proxy: SocketAddr,
    pacing: Pacing,
    concurrency: usize,
    recorded: bool,
    sent: Arc<Sent>,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let first = entries.iter().filter_map(Entry::started).min();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..entries.len() {
        let Some(entry) = entries.get(index) else {
            continue;
        };
        tokio::time::sleep_until(start + due(pacing, index, first, entry)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let request = build(entry, index, proxy, recorded);
        let client = client.clone();
        let sent = sent.clone();
        tasks.spawn(async move {
            let outcome = match request {
                Some(request) => match client.request(request).await {
                    Ok(response) => response.into_body().collect().await.is_ok(),
                    Err(_) => false,
                },
                None => false,
            };
            let counter = if outcome {
                &sent.answered
            } else {
                &sent.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        // Reap finished tasks as we go, so a long replay does not hold them all.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The request an entry describes, aimed at the proxy; `None` when its method or target is
/// not valid HTTP.
fn build(
    entry: &Entry,
    index: usize,
    proxy: SocketAddr,
    recorded: bool,
) -> Option<Request<Full<Bytes>>> {
    let method = Method::from_bytes(entry.request.method.as_bytes()).ok()?;
    let uri = format!("http://{proxy}{}", entry.path_and_query());
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(entry.request_body())))
        .ok()?;
    let headers = request.headers_mut();
    for header in &entry.request.headers {
        let name = header.name.to_ascii_lowercase();
        // HTTP/2 pseudo-fields (a browser's export), and values the recording redacted.
        if name.starts_with(':') || not_replayed(&name) || header.value == REDACTED {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) {
            headers.append(name, value);
        }
    }
    if recorded {
        headers.insert(
            HeaderName::from_static(ENTRY_HEADER),
            HeaderValue::from(index),
        );
    }
    Some(request)
}
