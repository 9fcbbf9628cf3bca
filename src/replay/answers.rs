//! The recorded primary: a loopback server that answers each replayed request with the
//! answer recorded for it, so a replay without `--primary` compares the shadow against what
//! production answered. The replayer names the entry in [`ENTRY_HEADER`]; the shadow's copy
//! has that field removed by its mirror policy.

use crate::record::Entry;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The request field naming the recorded entry (its index in the replay).
pub const ENTRY_HEADER: &str = "x-shadowtap-replay-entry";

/// Whether a recorded field is never served: the connection's own (the rulebook's
/// hop-by-hop set), and the framing the server recomputes for the body it sends.
pub(super) fn not_served(name: &str) -> bool {
    crate::header_rules::is_hop_by_hop(name.as_bytes())
        || matches!(name, "content-length" | "trailer")
}

/// Starts the server on loopback; it stops when `stop` turns true.
pub async fn start(
    entries: Arc<Vec<Entry>>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut stop_accepting = stop.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = crate::shutdown::flagged(&mut stop_accepting) => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let entries = entries.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let entries = entries.clone();
                    async move { Ok::<_, Infallible>(answer(&entries, request.headers())) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The recorded answer for the entry the request names (404 when it names none: a request
/// that did not come from this replay).
fn answer(entries: &[Entry], headers: &http::HeaderMap) -> Response<Full<Bytes>> {
    let entry = headers
        .get(ENTRY_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|index| index.parse::<usize>().ok())
        .and_then(|index| entries.get(index));
    let Some(entry) = entry else {
        let mut response =
            Response::new(Full::new(Bytes::from_static(b"not a replayed request\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    recorded(entry)
}

/// An entry's recorded answer as a response. A browser's export holds bodies decoded, so its
/// `content-encoding` is not served with them; shadowtap's recordings keep bodies as sent.
pub fn recorded(entry: &Entry) -> Response<Full<Bytes>> {
    let decoded = entry.shadowtap.is_none();
    let mut response = Response::new(Full::new(Bytes::from(entry.response_body())));
    *response.status_mut() =
        StatusCode::from_u16(entry.response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for header in &entry.response.headers {
        let name = header.name.to_ascii_lowercase();
        if name.starts_with(':') || not_served(&name) || (decoded && name == "content-encoding") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
