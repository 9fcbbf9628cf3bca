//! The admin port: liveness, readiness, Prometheus metrics and the comparison results as JSON,
//! on its own listener so a flood of live traffic (or a closed live port during drain) never
//! hides the proxy's health.
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 while the process serves |
//! | `/readyz` | 200 once every listener is bound, 503 before and while draining |
//! | `/metrics` | Prometheus text format |
//! | `/api/v1/routes`, `/api/v1/endpoints` | comparison results per route and shadow, per endpoint |
//! | `/api/v1/samples` | redacted samples of divergent pairs |
//! | `/api/v1/noise` | per route: fields learned, pinned or seen by the secondary as noise, with their counts |
//! | `POST /api/v1/reload` | re-reads the config file (as SIGHUP does); 400 with every error when it is refused |

use crate::report::Reporter;
use crate::telemetry::Metrics;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// State the admin endpoints read.
pub struct AdminState {
    /// Set once all listeners are bound; cleared when draining starts.
    pub ready: AtomicBool,
    /// The proxy's metrics.
    pub metrics: Arc<Metrics>,
    /// The comparison engine's results (for `/api/v1/...`).
    pub report: Arc<Reporter>,
    /// Reloads the config (`POST /api/v1/reload`); `None` where nothing can be reloaded.
    pub reload: Option<Arc<crate::reload::ReloadControl>>,
}

/// Serves the admin endpoints until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(error = %error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::shutdown::flagged(&mut shutdown) => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move {
                if request.uri().path() == "/api/v1/reload" {
                    return Ok::<_, Infallible>(reload(&state, &request).await);
                }
                Ok::<_, Infallible>(respond(&state, &request))
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(error = %error, "admin connection error");
                },
                _ = crate::shutdown::flagged(&mut stop) => {}
            }
        });
    }
}

fn respond(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            state.metrics.collect_process();
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/api/v1/routes" => json(&state.report.routes()),
        "/api/v1/endpoints" => json(&state.report.endpoints()),
        "/api/v1/noise" => json(&state.report.noise()),
        "/api/v1/samples" => {
            let query = request.uri().query().unwrap_or("");
            let route = query_param(query, "route").filter(|route| !route.is_empty());
            let limit = query_param(query, "limit")
                .and_then(|limit| limit.parse::<usize>().ok())
                .unwrap_or(DEFAULT_SAMPLE_LIMIT);
            json(&state.report.samples(route.as_deref(), limit))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, /api/v1/routes, /api/v1/endpoints, /api/v1/samples, /api/v1/noise\n",
        ),
    }
}

/// `POST /api/v1/reload`: 200 with what changed, or 400 with every error (the previous
/// config stays in force).
async fn reload(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let Some(control) = &state.reload else {
        return text(StatusCode::NOT_FOUND, "nothing to reload\n");
    };
    match control.reload().await {
        Ok(reloaded) => json(&serde_json::json!({
            "result": "success",
            "generation": reloaded.generation,
            "changes": reloaded.changes,
        })),
        Err(refused) => {
            let mut response = json(&serde_json::json!({
                "result": "failure",
                "errors": refused.errors,
            }));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    }
}

/// Samples returned when `limit` is not given.
const DEFAULT_SAMPLE_LIMIT: usize = 20;

fn json<T: serde::Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render JSON\n"),
    }
}

/// The first value of a query parameter, percent-decoded (`+` is a space, as in forms).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' => text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .map(|byte| (byte, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let query = "limit=5&route=%2Fapi%2Fusers%2F%7Bid%7D&x=a+b";
        assert_eq!(
            query_param(query, "route").as_deref(),
            Some("/api/users/{id}")
        );
        assert_eq!(query_param(query, "limit").as_deref(), Some("5"));
        assert_eq!(query_param(query, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
