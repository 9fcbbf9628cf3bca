//! The demo's built-in services: small, real HTTP servers on loopback that behave like a
//! typical JSON API, so `shadowtap demo` shows real traffic without any setup.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The routes the demo service answers, as templates (they double as the proxy's route templates).
pub const TEMPLATES: &[&str] = &[
    "/api/users/{id}",
    "/api/search",
    "/api/orders/{id}",
    "/api/report",
];

/// How a demo service behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Extra delay on `/api/report`.
    pub report_delay: Duration,
}

/// Starts a demo service on `127.0.0.1:0`; it stops when `stop` turns true.
pub async fn start(
    behaviour: Behaviour,
    stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let counter = Arc::new(AtomicU64::new(0));
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
            let counter = counter.clone();
            let service = service_fn(move |request| {
                let counter = counter.clone();
                async move { Ok::<_, Infallible>(answer(behaviour, &counter, request).await) }
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

async fn answer(
    behaviour: Behaviour,
    counter: &AtomicU64,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let serial = counter.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = match segments.as_slice() {
        ["api", "users", id] => format!(
            r#"{{"id":"{id}","name":"user {id}","plan":"pro","served_at":{now},"trace":"{serial:016x}"}}"#
        ),
        ["api", "search"] => format!(
            r#"{{"results":["alpha","beta","gamma"],"took_ms":{}}}"#,
            serial % 7
        ),
        ["api", "orders", id] => {
            format!(r#"{{"order":"{id}","items":3,"total":"42.00","served_at":{now}}}"#)
        }
        ["api", "report"] => {
            tokio::time::sleep(behaviour.report_delay).await;
            format!(r#"{{"report":"daily","rows":128,"served_at":{now}}}"#)
        }
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
