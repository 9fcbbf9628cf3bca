//! The demo's built-in services: small, real HTTP servers on loopback that behave like a
//! typical JSON API. The same code runs as the primary build (`Build::Stable`) and as the
//! build under test (`Build::Canary`), which carries deliberate regressions. Both carry
//! noise: timestamps, random ids, and a list in random order.
//!
//! | path | stable | canary (regressions) |
//! |---|---|---|
//! | `/api/users/{id}` | `plan: "pro"`, `cache-control: max-age=60` | `plan: "basic"`, `cache-control: no-cache` |
//! | `/api/orders/{id}` | has `items` | `items` removed |
//! | `/api/search` | results in random order | same, but 1 in 20 answers 500 |
//! | `/api/report` | 20 ms | 60 ms (slower, same answer) |
//! | `/api/catalog` | fixed data | same (clean) |

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The routes the demo service answers, as templates (they double as the proxy's route templates).
pub const TEMPLATES: &[&str] = &[
    "/api/users/{id}",
    "/api/orders/{id}",
    "/api/search",
    "/api/report",
    "/api/catalog",
];

/// Which build a demo service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The primary's build.
    Stable,
    /// The build under test, with regressions.
    Canary,
}

/// Starts a demo service on `127.0.0.1:0`; it stops when `stop` turns true.
pub async fn start(build: Build, stop: watch::Receiver<bool>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut stop = stop;
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = crate::shutdown::flagged(&mut stop) => break,
            };
            let service = service_fn(move |request| async move {
                Ok::<_, Infallible>(answer(build, request).await)
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = connection => {}
                    _ = crate::shutdown::flagged(&mut stop) => {}
                }
            });
        }
    });
    Ok(address)
}

async fn answer(build: Build, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Nanoseconds: the primary and the secondary answer the same request at nearly the same
    // moment (for /api/report both wake on the same timer tick), and in microseconds they
    // printed the same value in about 1 pair in 100 — on a route's first pair that made the
    // secondary miss the field and a clean route show a divergence.
    let nanos = now.as_nanos();
    let trace = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let canary = build == Build::Canary;
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut cache_control = None;
    let body = match segments.as_slice() {
        ["api", "users", id] => {
            cache_control = Some(if canary { "no-cache" } else { "max-age=60" });
            let plan = if canary { "basic" } else { "pro" };
            format!(
                r#"{{"id":"{id}","name":"user {id}","plan":"{plan}","served_at":{nanos},"trace":"{trace}"}}"#
            )
        }
        ["api", "orders", id] => {
            let items = if canary {
                String::new()
            } else {
                r#""items":3,"#.to_string()
            };
            format!(r#"{{"order":"{id}",{items}"total":"42.00","served_at":{nanos}}}"#)
        }
        ["api", "search"] => {
            if canary && fastrand::u8(..20) == 0 {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"error":"internal"}"#.to_string(),
                    None,
                );
            }
            let mut results = ["alpha", "beta", "gamma", "delta"];
            fastrand::shuffle(&mut results);
            let quoted: Vec<String> = results.iter().map(|r| format!("{r:?}")).collect();
            format!(
                r#"{{"results":[{}],"request_trace":"{trace}"}}"#,
                quoted.join(",")
            )
        }
        ["api", "report"] => {
            tokio::time::sleep(Duration::from_millis(if canary { 60 } else { 20 })).await;
            let generated = humantime::format_rfc3339_nanos(SystemTime::now());
            format!(r#"{{"report":"daily","rows":128,"generated_at":"{generated}"}}"#)
        }
        ["api", "catalog"] => {
            format!(
                r#"{{"items":[{{"sku":"a1","price":10}},{{"sku":"b2","price":20}}],"as_of":{nanos}}}"#
            )
        }
        _ => {
            return json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not found"}"#.to_string(),
                None,
            )
        }
    };
    json(StatusCode::OK, body, cache_control)
}

fn json(
    status: StatusCode,
    body: String,
    cache_control: Option<&'static str>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}
