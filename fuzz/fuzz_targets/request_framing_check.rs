//! The differential check of the native engine's request framing against hyper's, on the
//! same bytes: one file, used by the `request_framing` fuzz target and by
//! `tests/prop_request_framing.rs` (`#[path]`), so the fuzzer and CI hold the same invariant.
//!
//! The native engine's decision is to serve a head or hand the connection to the hyper path
//! (it never answers a malformed head itself). When it serves one, hyper — the engine that
//! would otherwise read those bytes — must accept them with the same framing: the same
//! method, the same target, a body of the same length, made of the same bytes. A head the
//! native engine serves and hyper would refuse or frame otherwise is a finding: two engines
//! reading one request two ways is how requests are smuggled. When the native engine hands
//! over, hyper's reading is the one that runs, so there is nothing to compare.
//!
//! Also the native head parser's own invariants: a served head lies within the bytes, and
//! every shorter prefix of it is partial, never served nor handed over.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shadowtap::native::request::{framing, Framing};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The listener's header-count limit in both readings (the config's default).
pub const MAX_HEADERS: usize = 100;

/// How hyper read the first request of the bytes.
#[derive(Debug, Default, Clone)]
pub struct HyperRead {
    /// The method.
    pub method: String,
    /// The request target.
    pub target: String,
    /// The body's length by its framing (`None`: chunked or unknown).
    pub body_len: Option<u64>,
    /// The body as read; `None` when it did not arrive whole.
    pub body: Option<Vec<u8>>,
}

/// Serves `bytes` (then the end of the stream) to hyper's HTTP/1 server, set up as the
/// hyper path's listener sets it up; returns its reading of the first request, or `None`
/// when it refused the bytes (or found no whole head in them).
pub async fn hyper_reads(bytes: &[u8]) -> Option<HyperRead> {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let seen: Arc<Mutex<Option<HyperRead>>> = Arc::default();
    let record = seen.clone();
    let service = service_fn(move |request: http::Request<Incoming>| {
        let record = record.clone();
        async move {
            let first = record.lock().map(|s| s.is_none()).unwrap_or(false);
            let read = HyperRead {
                method: request.method().to_string(),
                target: request.uri().to_string(),
                body_len: request.body().size_hint().exact(),
                body: None,
            };
            let body = request.into_body().collect().await.ok();
            if first {
                if let Ok(mut slot) = record.lock() {
                    *slot = Some(HyperRead {
                        body: body.map(|b| b.to_bytes().to_vec()),
                        ..read
                    });
                }
            }
            Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_headers(MAX_HEADERS).half_close(true);
    let connection = tokio::spawn(builder.serve_connection(TokioIo::new(server), service));
    let _ = client.write_all(bytes).await;
    let _ = client.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    let read = seen.lock().ok()?.take();
    read
}

/// The native head parser's own invariants on `bytes` (it never panics; a served head lies
/// within the bytes and every shorter prefix of it is partial); returns what it decided.
pub fn check_head(bytes: &[u8]) -> Framing {
    let native = framing(bytes, MAX_HEADERS);
    if let Framing::Framed { head_len, .. } = native {
        assert!(head_len <= bytes.len(), "a head longer than the bytes");
        for end in 0..head_len {
            let prefix = framing(&bytes[..end], MAX_HEADERS);
            assert_eq!(
                prefix,
                Framing::Partial,
                "the first {end} bytes of a served head are not partial"
            );
        }
    }
    native
}

/// Checks every invariant on `bytes`, hyper's reading included; panics naming the
/// disagreement.
pub async fn check(bytes: &[u8]) {
    let Framing::Framed {
        head_len,
        method,
        target,
        body_len,
    } = check_head(bytes)
    else {
        return;
    };
    let shown = String::from_utf8_lossy(bytes);
    let Some(hyper) = hyper_reads(bytes).await else {
        panic!("the native engine serves a head hyper refuses: {shown:?}");
    };
    assert_eq!(hyper.method, method, "methods differ: {shown:?}");
    assert_eq!(hyper.target, target, "targets differ: {shown:?}");
    assert_eq!(
        hyper.body_len,
        Some(body_len),
        "body lengths differ: {shown:?}"
    );
    let available = bytes.len() - head_len;
    let whole = usize::try_from(body_len)
        .ok()
        .filter(|len| *len <= available);
    match (whole, hyper.body) {
        (Some(len), Some(body)) => assert_eq!(
            body.as_slice(),
            &bytes[head_len..head_len + len],
            "bodies differ: {shown:?}"
        ),
        (None, None) => {}
        (Some(_), None) => panic!("hyper did not read a body that was all there: {shown:?}"),
        (None, Some(body)) => panic!(
            "hyper read a whole body of {} bytes where only {available} were sent: {shown:?}",
            body.len()
        ),
    }
}
