//! Integration-test harness: real servers on loopback, nothing mocked.
//!
//! - **Upstreams** are real hyper servers (HTTP/1.1 and h2c) on `127.0.0.1:0`, built from
//!   closures with [`upstream`]: `route`, `fallback`, `with_latency`, `hang`. Every upstream
//!   records what it received (method, URI, version, headers in order, body, trailers), so
//!   tests can check what the proxy forwarded — or that it forwarded nothing.
//! - [`reset_mid_body`] is a raw TCP upstream that answers with a head and part of the
//!   promised body, then drops the socket.
//! - [`Shadowtap`] runs the real app in-process (`BoundApp::bind` + `serve`) on port 0 and
//!   stops it through a channel.
//! - Clients: hyper-util's legacy client (HTTP/1.1, or h2c with prior knowledge) and raw TCP
//!   for requests no well-behaved client would send.
//!
//! - Both HTTP/1.1 engines: [`ENGINES`], [`engine_line`], [`engine_toml`], [`shadowtap_on`].
//! - Waiting: [`until`] for a condition, [`until_metrics`] for the admin `/metrics`.
//!
//! The submodules: [`admin`] (the real binary with a token file, and its admin API),
//! [`raw`] (the one raw HTTP/1 client, and upstreams that misbehave at chosen
//! bytes), [`shadow`] (mirroring configs and accounting), [`compare`] (comparison configs and
//! the admin API), [`metrics`] (reading Prometheus text), [`fixtures`] (answers several files
//! use), [`process`] (the real binary as a child process), [`upstream_tls`] (a private CA and
//! real TLS upstreams), [`faults`] (a TCP relay that injects network faults before an
//! upstream).
//!
//! Every await that talks to a server goes through [`within`], so a bug fails a test
//! instead of hanging it.

// Each test binary uses its own subset of the harness.
#![allow(dead_code)]

pub mod admin;
pub mod compare;
pub mod faults;
pub mod fixtures;
pub mod metrics;
pub mod process;
pub mod raw;
pub mod shadow;
pub mod tls;
pub mod upstream_tls;

// Each test binary uses its own subset of the fixtures and process wrappers.
#[allow(unused_imports)]
pub use fixtures::*;
pub use metrics::{metric_sum, metric_value};
#[allow(unused_imports)]
pub use process::{Process, Spawned, BIN};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use shadowtap::config::{Config, Overrides};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Upper bound for any single step of a test; generous, only there to turn hangs into failures.
pub const STEP: Duration = Duration::from_secs(10);

/// Errors carried by test bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type used on both sides: requests from test clients, responses from upstreams.
pub type Body = BoxBody<Bytes, BoxError>;

/// Awaits `future` for at most [`STEP`]; panics naming `what` when it takes longer.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Waits (at most [`STEP`]) until `done` holds, checking every 20 ms; panics naming `what`
/// when it does not.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {STEP:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Scrapes `/metrics` on the admin port `admin` until `done` holds for the text; returns that
/// text. Panics after [`STEP`] naming `what`, with `explain` of the last scrape.
pub async fn until_metrics(
    admin: SocketAddr,
    what: &str,
    done: impl Fn(&str) -> bool,
    explain: impl Fn(&str) -> String,
) -> String {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let text = admin_metrics(admin).await;
        if done(&text) {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out after {STEP:?} waiting for {what}; {}",
                explain(&text)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `/metrics` text of the admin port `admin` (status 200 required).
pub async fn admin_metrics(admin: SocketAddr) -> String {
    let reply = send(
        &http1_client(),
        get_request(&format!("http://{admin}/metrics")),
    )
    .await
    .expect("admin /metrics answers");
    assert_eq!(reply.status, StatusCode::OK);
    reply.text()
}

/// A complete body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body whose frames are sent through a channel: no size is known in advance (so HTTP/1
/// frames it as chunked), data can be held back, and trailers can end it.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Frame<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChannelBody { rx }.boxed())
}

struct ChannelBody {
    rx: mpsc::Receiver<Frame<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: http::Method,
    pub uri: Uri,
    pub version: Version,
    /// Header fields in the order the map yields them (values of one name in wire order).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Received) -> BoxFuture<Response<Body>> + Send + Sync>;

/// Builds an upstream server; see [`upstream`].
pub struct UpstreamBuilder {
    routes: Vec<(String, Handler)>,
    fallback: Option<Handler>,
    latency: Duration,
}

/// Starts describing an upstream. Paths match exactly; unmatched paths get 404 (or the fallback).
pub fn upstream() -> UpstreamBuilder {
    UpstreamBuilder {
        routes: Vec::new(),
        fallback: None,
        latency: Duration::ZERO,
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |received| Box::pin(f(received)))
}

impl UpstreamBuilder {
    /// Answers requests for exactly `path` with `f`.
    pub fn route<F, Fut>(mut self, path: &str, f: F) -> Self
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        self.routes.push((path.to_string(), handler(f)));
        self
    }

    /// Answers every path no route matched.
    pub fn fallback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        self.fallback = Some(handler(f));
        self
    }

    /// Waits this long (after reading the request) before answering.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Answers every path no route matched with `status` and the text `body`.
    pub fn always(self, status_code: StatusCode, body: &'static str) -> Self {
        self.fallback(move |_| async move { status(status_code, body) })
    }

    /// Never answers any request (the request is still recorded).
    pub fn hang(self) -> Self {
        self.fallback(|_| std::future::pending())
    }

    /// Binds 127.0.0.1:0 and serves HTTP/1.1 and h2c until the [`Upstream`] is dropped.
    pub async fn start(self) -> Upstream {
        let listener = within("upstream bind", TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(self.routes);
        let fallback = self.fallback;
        let latency = self.latency;
        let log = received.clone();
        let task = tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let routes = routes.clone();
                let fallback = fallback.clone();
                let log = log.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let routes = routes.clone();
                    let fallback = fallback.clone();
                    let log = log.clone();
                    async move {
                        let received = record(request).await;
                        log.lock().expect("log lock").push(received.clone());
                        if !latency.is_zero() {
                            tokio::time::sleep(latency).await;
                        }
                        let found = routes
                            .iter()
                            .find(|(path, _)| path == received.uri.path())
                            .map(|(_, h)| h.clone())
                            .or(fallback);
                        let response = match found {
                            Some(handler) => handler(received).await,
                            None => status(StatusCode::NOT_FOUND, "upstream: no such path\n"),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                tokio::spawn(connection);
            }
        });
        Upstream {
            addr,
            received,
            task,
        }
    }
}

async fn record(request: Request<Incoming>) -> Received {
    let (parts, body) = request.into_parts();
    let collected = body.collect().await;
    let (body, trailers) = match collected {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(_) => (Bytes::from_static(b"<body error>"), None),
    };
    Received {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: header_pairs(&parts.headers),
        body,
        trailers,
    }
}

/// Header fields as (name, value) pairs in map order; non-UTF-8 values lossily.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A response with a status and a small text body.
pub fn status(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
}

/// A running upstream. Stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// `http://127.0.0.1:PORT` plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log lock").clone()
    }

    /// The last request received; panics when there was none.
    pub fn last(&self) -> Received {
        self.received().pop().expect("upstream received no request")
    }

    /// The path of every request received so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.uri.path().to_string())
            .collect()
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        self.received.lock().expect("log lock").len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw TCP upstream that reads a request head, answers `200` with `Content-Length:
/// declared` and only `sent` bytes of body, then drops the connection. Counts requests.
pub async fn reset_mid_body(declared: usize, sent: &'static [u8]) -> RawUpstream {
    let listener = within("raw upstream bind", TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind raw upstream");
    let addr = listener.local_addr().expect("raw upstream address");
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {declared}\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(sent).await;
                let _ = stream.flush().await;
                // Give the bytes a moment to leave, then drop the socket mid-body.
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
    });
    RawUpstream {
        addr,
        requests,
        task,
    }
}

/// Reads up to the end of a request head (`\r\n\r\n`); `None` on EOF or error.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A raw TCP upstream (see [`reset_mid_body`]).
pub struct RawUpstream {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    /// Request heads read so far.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address nothing listens on: bound once to learn a free port, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind probe");
    let addr = listener.local_addr().expect("probe address");
    drop(listener);
    addr
}

/// Parses config text; panics with every problem when it is invalid.
pub fn config(text: &str) -> Config {
    match Config::from_toml(text, &Overrides::default()) {
        Ok(config) => config,
        Err(error) => panic!("test config is invalid: {error}\n---\n{text}"),
    }
}

/// The start of every test config: one listener and the admin port, both on `127.0.0.1:0`,
/// with `listener_extra` lines in `[[listeners]]`.
pub fn listener_and_admin(listener_extra: &str) -> String {
    format!(
        "\n[[listeners]]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n\n[admin]\naddress = \"127.0.0.1:0\"\n"
    )
}

/// A config with listener and admin on port 0, one upstream `app` at `upstream` and one
/// catch-all route `default` to it. `listener_extra` lines go into `[[listeners]]`,
/// `upstream_extra` into `[upstreams.app]`.
pub fn simple_toml(upstream: SocketAddr, listener_extra: &str, upstream_extra: &str) -> String {
    let head = listener_and_admin(listener_extra);
    format!(
        r#"{head}
[upstreams.app]
url = "http://{upstream}"
{upstream_extra}

[[routes]]
name = "default"
primary = "app"

[shutdown]
grace_period = "5s"
"#
    )
}

/// shadowtap running in-process.
pub struct Shadowtap {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
}

impl Shadowtap {
    /// Binds and starts serving `config`.
    pub async fn start(config: Config) -> Shadowtap {
        let app = within("bind shadowtap", shadowtap::BoundApp::bind(config))
            .await
            .expect("shadowtap binds");
        let addr = app.listen_addrs()[0];
        let admin = app.admin_addr().expect("admin enabled in test configs");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        Shadowtap {
            addr,
            admin,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Starts with [`simple_toml`] in front of `upstream`.
    pub async fn in_front_of(upstream: SocketAddr) -> Shadowtap {
        Shadowtap::start(config(&simple_toml(upstream, "", ""))).await
    }

    /// `http://ADDR` plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Resolves the shutdown future; the server starts draining.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `serve` to return (after [`Self::begin_shutdown`]).
    pub async fn stopped(&mut self) {
        if let Some(served) = self.served.take() {
            within("shadowtap serve() to return", served)
                .await
                .expect("serve task");
        }
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        admin_metrics(self.admin).await
    }

    /// `shadowtap_proxy_errors_total{reason}`, every route.
    pub async fn proxy_errors(&self, reason: &str) -> f64 {
        metric_sum(
            &self.metrics().await,
            "shadowtap_proxy_errors_total",
            &[("reason", reason)],
        )
    }
}

/// A plain HTTP/1.1 client with its own pool.
pub fn http1_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// `GET url` with an empty body.
pub fn get_request(url: &str) -> Request<Body> {
    Request::get(url).body(empty()).expect("valid request")
}

/// A POST of `body` to `url`.
pub fn post_request(url: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(http::Method::POST)
        .uri(url)
        .body(full(body))
        .expect("valid request")
}

/// A POST to `url` whose body has sent its first piece and then stalls, open for as long as
/// the returned sender lives (a client that stopped mid-upload).
pub async fn stalled_upload(url: &str) -> (mpsc::Sender<Frame<Bytes>>, Request<Body>) {
    let (frames, body) = channel_body(4);
    frames
        .send(Frame::data(Bytes::from_static(b"first piece")))
        .await
        .expect("room for the first piece");
    let request = Request::post(url).body(body).expect("valid request");
    (frames, request)
}

/// A whole response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request and reads the whole response. `Err` when the exchange failed (including
/// a body cut short).
pub async fn send(
    client: &Client<HttpConnector, Body>,
    request: Request<Body>,
) -> Result<Reply, BoxError> {
    within("request", async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    })
    .await
}

/// `GET url` over a fresh HTTP/1.1 client; panics if the exchange fails.
pub async fn get(url: &str) -> Reply {
    send(&http1_client(), get_request(url))
        .await
        .unwrap_or_else(|error| panic!("GET {url} failed: {error}"))
}

/// Writes `bytes` on a new connection and reads until the server closes it (or 10 s pass);
/// returns everything read, lossily as text.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect_and_write(addr, bytes).await;
    let mut out = Vec::new();
    let _ = within(
        "server to close the connection",
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A new connection to `addr` with `bytes` written on it.
async fn connect_and_write(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = within("raw connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    within("raw write", stream.write_all(bytes))
        .await
        .expect("write");
    stream
}

/// An HTTP/2 connection (prior knowledge) to `addr` driven by its own task, for requests
/// whose `:authority` or framing a pooled client would choose itself.
pub async fn h2_connection(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Body> {
    let stream = within("h2 connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (sender, connection) = within(
        "h2 handshake",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

/// The status code of the first response in a raw HTTP/1 answer (`None` when there was none).
pub fn raw_status(answer: &str) -> Option<u16> {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// What a head-only upstream does once it has read a request head.
#[derive(Clone, Copy)]
pub enum OnHead {
    /// Answers 413 and reads no more; closes a moment later (a reset, with body unread).
    Answer413,
    /// Closes without answering.
    Close,
    /// Neither reads nor answers; keeps the connection open.
    Stall,
}

/// A raw upstream that reads request heads only and then does `on_head`.
pub async fn head_only_upstream(on_head: OnHead) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => seen.extend_from_slice(&buffer[..read]),
                    }
                }
                match on_head {
                    OnHead::Answer413 => {
                        let _ = stream
                            .write_all(
                                b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 9\r\n\r\ntoo large",
                            )
                            .await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    OnHead::Close => {}
                    OnHead::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (addr, task)
}

/// A raw HTTP/1 upstream that answers each request head with the bytes `answer` returns for
/// its request line (a response no well-behaved server library would write), keeping the
/// connection open for the next request. Records `(connection number, request line)` per
/// request, so a test can tell whether the proxy reused a connection.
pub async fn scripted_upstream(answer: fn(&str) -> Vec<u8>) -> ScriptedUpstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind scripted upstream");
    let addr = listener.local_addr().expect("scripted upstream address");
    let log: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let seen = log.clone();
    let task = tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            connections += 1;
            let number = connections;
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut stream).await {
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let reply = answer(&line);
                    seen.lock().expect("log lock").push((number, line));
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    ScriptedUpstream { addr, log, task }
}

/// A raw upstream (see [`scripted_upstream`]).
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<(usize, String)>>>,
    task: JoinHandle<()>,
}

impl ScriptedUpstream {
    /// `(connection number, request line)` of every request read so far, in order.
    pub fn requests(&self) -> Vec<(usize, String)> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Both HTTP/1.1 engines, for tests that must hold on each (`http1_engine`); `hyper` is
/// the reference behaviour.
pub const ENGINES: [&str; 2] = ["native", "hyper"];

/// The `[[listeners]]` line selecting `engine`.
pub fn engine_line(engine: &str) -> String {
    format!("http1_engine = \"{engine}\"")
}

/// `toml` (a config made here) with its listener on `engine`.
pub fn engine_toml(toml: &str, engine: &str) -> String {
    let listener = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";
    assert!(
        toml.contains(listener),
        "no listener to set the engine of in:\n{toml}"
    );
    toml.replacen(listener, &format!("{listener}{}\n", engine_line(engine)), 1)
}

/// [`Shadowtap::in_front_of`] with the given `http1_engine`.
pub async fn shadowtap_with_engine(upstream: SocketAddr, engine: &str) -> Shadowtap {
    shadowtap_on(upstream, engine, "", "").await
}

/// shadowtap with [`simple_toml`] in front of `upstream`, its listener on `engine` plus
/// `listener_extra` lines, and `upstream_extra` lines for the upstream.
pub async fn shadowtap_on(
    upstream: SocketAddr,
    engine: &str,
    listener_extra: &str,
    upstream_extra: &str,
) -> Shadowtap {
    let listener = format!("{}\n{listener_extra}", engine_line(engine));
    Shadowtap::start(config(&simple_toml(upstream, &listener, upstream_extra))).await
}

/// A config with two routes: `/broken/...` to upstream `broken` (with `broken_extra` lines),
/// everything else to `ok`; `listener_extra` lines go into `[[listeners]]`.
pub fn two_upstreams(
    listener_extra: &str,
    broken: SocketAddr,
    broken_extra: &str,
    ok: SocketAddr,
) -> String {
    let head = listener_and_admin(listener_extra);
    format!(
        r#"{head}
[upstreams.broken]
url = "http://{broken}"
{broken_extra}
[upstreams.ok]
url = "http://{ok}"
[[routes]]
name = "broken"
path_prefix = "/broken/"
primary = "broken"
[[routes]]
name = "ok"
primary = "ok"
"#
    )
}

/// Writes `bytes` on a new connection and reads for at most `wait`: everything read, lossily
/// as text, and whether the server closed the connection in that time (where
/// [`raw_exchange`] fails the test when it does not).
pub async fn raw_exchange_within(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = connect_and_write(addr, bytes).await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, stream.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// What a [`framing_upstream`] saw: every complete request (head bytes as received) and every
/// message whose framing it could not trust.
#[derive(Debug, Default, Clone)]
pub struct FramingLog {
    /// Heads of complete requests (head and whole body read), in arrival order.
    pub requests: Vec<String>,
    /// Why a received message was refused, with its bytes: malformed framing reached us.
    pub violations: Vec<String>,
}

/// A raw HTTP/1 upstream that holds every request it receives to [`strict_request`]. A
/// complete request is logged and answered `200 ok` on the same connection; anything else
/// is logged as a violation and the connection closed. Written by hand because a server
/// library would repair or refuse such bytes before a test could see them.
pub async fn framing_upstream() -> FramingUpstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind framing upstream");
    let addr = listener.local_addr().expect("framing upstream address");
    let log: Arc<Mutex<FramingLog>> = Arc::default();
    let seen = log.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_strictly(stream, seen.clone()));
        }
    });
    FramingUpstream { addr, log, task }
}

async fn serve_strictly(mut stream: TcpStream, log: Arc<Mutex<FramingLog>>) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match strict_request(&buffer) {
            Strict::Complete { head, len } => {
                log.lock().expect("log lock").requests.push(head);
                buffer.drain(..len);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                continue;
            }
            Strict::Invalid(why) => {
                let shown = String::from_utf8_lossy(&buffer).into_owned();
                let entry = format!("{why}: {shown:?}");
                log.lock().expect("log lock").violations.push(entry);
                return;
            }
            Strict::Incomplete => {}
        }
        match stream.read(&mut chunk).await {
            // A request cut short by the proxy is not a forwarded request.
            Ok(0) | Err(_) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// A strict raw upstream (see [`framing_upstream`]).
pub struct FramingUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<FramingLog>>,
    task: JoinHandle<()>,
}

impl FramingUpstream {
    /// Everything seen so far.
    pub fn log(&self) -> FramingLog {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for FramingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// [`strict_request`]'s reading of the bytes at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Strict {
    /// One whole request: its head (lossily as text) and its length in bytes, body included.
    Complete { head: String, len: usize },
    /// A prefix of a request that could still be valid.
    Incomplete,
    /// Bytes no strict reader would take, and why.
    Invalid(String),
}

/// Reads one HTTP/1 request at the start of `bytes` by the strictest reading of RFC 9112,
/// where nothing can be read two ways: `METHOD SP target SP HTTP/1.x` and `name: value`
/// lines ended by CRLF; no bare CR, LF or NUL in the head; no whitespace before a colon; no
/// obs-fold; at most one `Content-Length` of plain digits, or exactly one
/// `Transfer-Encoding: chunked` (HTTP/1.1 only), never both; a chunked body of plain hex
/// sizes (BWS after them), extensions without CR or LF, trailer fields of field bytes and
/// no framing field among them, CRLF everywhere.
pub fn strict_request(bytes: &[u8]) -> Strict {
    read_request(bytes, false)
}

/// [`strict_request`] with the two readings RFC 9112 and RFC 9110 leave to a recipient, the
/// reading a proxy may apply to what a client sends (what it forwards must be strict): a bare
/// LF ends a line of the head (§2.2), and a framing field in a trailer section is ignored,
/// never merged (RFC 9110 §6.5.1).
pub fn client_request(bytes: &[u8]) -> Strict {
    read_request(bytes, true)
}

/// Where the head ends (after its empty line), when it has ended.
fn head_end(bytes: &[u8], bare_lf: bool) -> Option<usize> {
    if !bare_lf {
        return find(bytes, b"\r\n\r\n").map(|at| at + 4);
    }
    let mut line_start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let line = &bytes[line_start..at];
            if line.is_empty() || line == b"\r" {
                return Some(at + 1);
            }
            line_start = at + 1;
        }
    }
    None
}

fn read_request(bytes: &[u8], client: bool) -> Strict {
    let bare_lf = client;
    let Some(head_len) = head_end(bytes, bare_lf) else {
        return match strict_head(bytes, false) {
            Err(why) if !bare_lf => Strict::Invalid(why),
            _ => Strict::Incomplete,
        };
    };
    let head = &bytes[..head_len];
    // Lines re-joined with CRLF, so one strict check serves both readings.
    let normalized: Vec<u8> = if bare_lf {
        let lines: Vec<&[u8]> = head
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .collect();
        lines.join(b"\r\n".as_slice())
    } else {
        head.to_vec()
    };
    let framing = match strict_head(&normalized, true) {
        Ok(framing) => framing,
        Err(why) => return Strict::Invalid(why),
    };
    let body = &bytes[head.len()..];
    let body_len = match framing {
        Some(length) if body.len() >= length => Ok(Some(length)),
        Some(_) => Ok(None),
        None => strict_chunked(body, client),
    };
    match body_len {
        Ok(Some(len)) => Strict::Complete {
            head: String::from_utf8_lossy(head).into_owned(),
            len: head.len() + len,
        },
        Ok(None) => Strict::Incomplete,
        Err(why) => Strict::Invalid(why),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field-value bytes RFC 9110 §5.5 allows: VCHAR, obs-text, SP, HTAB.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Splits at CRLF; the last piece is what follows the last CRLF.
fn split_crlf(text: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = find(rest, b"\r\n") {
        lines.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    lines.push(rest);
    lines
}

/// One field line (without CRLF): (lower-case name, value without surrounding whitespace).
fn strict_field(line: &[u8]) -> Result<(String, String), String> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| "a field line without a colon".to_string())?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("a field name that is not a token (whitespace, fold, odd byte)".into());
    }
    if !value.iter().all(|&b| is_field_byte(b)) {
        return Err("a field value with a control byte (bare CR or LF, NUL...)".into());
    }
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        String::from_utf8_lossy(value.trim_ascii()).into_owned(),
    ))
}

/// Checks a head (`complete`: it ends with CRLF CRLF; otherwise only the whole lines seen so
/// far are checked) and returns its framing: `Some(length)`, or `None` for chunked.
fn strict_head(head: &[u8], complete: bool) -> Result<Option<usize>, String> {
    let text = if complete {
        head.get(..head.len() - 4).unwrap_or_default()
    } else {
        head
    };
    let mut lines = split_crlf(text);
    if !complete {
        lines.pop(); // the line still being received
    }
    if lines
        .iter()
        .any(|l| l.contains(&b'\r') || l.contains(&b'\n'))
    {
        return Err("a bare CR or LF in the head".into());
    }
    let Some((request_line, field_lines)) = lines.split_first() else {
        return Ok(Some(0));
    };
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err("a request line that is not three words".into());
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err("a method that is not a token".into());
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err("a target with odd bytes".into());
    }
    if *version != b"HTTP/1.1" && *version != b"HTTP/1.0" {
        return Err("a version other than HTTP/1.0 or HTTP/1.1".into());
    }
    let fields = field_lines
        .iter()
        .map(|line| strict_field(line))
        .collect::<Result<Vec<_>, _>>()?;
    if !complete {
        return Ok(Some(0));
    }
    let values = |want: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(name, _)| name == want)
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let (lengths, encodings) = (values("content-length"), values("transfer-encoding"));
    match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Ok(Some(0)),
        ([length], []) if !length.is_empty() && length.bytes().all(|b| b.is_ascii_digit()) => {
            length
                .parse()
                .map(Some)
                .map_err(|_| "a Content-Length too large".to_string())
        }
        ([], [coding]) if coding.eq_ignore_ascii_case("chunked") && *version == b"HTTP/1.1" => {
            Ok(None)
        }
        _ => Err(format!(
            "ambiguous framing: Content-Length {lengths:?}, Transfer-Encoding {encodings:?}"
        )),
    }
}

/// The length of a strict chunked body at the start of `body`; `Ok(None)` when more bytes
/// are needed. `client`: a framing field in the trailers is let pass (a recipient ignores it).
fn strict_chunked(body: &[u8], client: bool) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let rest = &body[at..];
        let Some(end) = find(rest, b"\r\n") else {
            return if rest.contains(&b'\n') || rest.contains(&b'\r') && !rest.ends_with(b"\r") {
                Err("a bare CR or LF in a chunk line".into())
            } else {
                Ok(None)
            };
        };
        let line = &rest[..end];
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err("a bare CR or LF in a chunk line".into());
        }
        let size_end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
        let size = line.get(..size_end).unwrap_or_default();
        // BWS may precede an extension's `;`; a parser that reads `5 ` as 5 reads no other way.
        let size = size.trim_ascii_end();
        let significant = size.iter().skip_while(|&&b| b == b'0').count();
        if size.is_empty() || significant > 15 || !size.iter().all(|b| b.is_ascii_hexdigit()) {
            let shown = String::from_utf8_lossy(line);
            return Err(format!("a chunk size that is not plain hex: {shown:?}"));
        }
        // Extensions are dropped when the body is re-chunked; a control byte in one cannot
        // move where the line ends (a bare CR or LF, refused above, can).
        let size = usize::from_str_radix(&String::from_utf8_lossy(size), 16)
            .map_err(|_| "a chunk size too large".to_string())?;
        at += end + 2;
        if size == 0 {
            loop {
                let rest = &body[at..];
                let Some(end) = find(rest, b"\r\n") else {
                    return Ok(None);
                };
                let line = &rest[..end];
                at += end + 2;
                if line.is_empty() {
                    return Ok(Some(at));
                }
                if line.contains(&b'\r') || line.contains(&b'\n') {
                    return Err("a bare CR or LF in a trailer".into());
                }
                let (name, _) = strict_field(line)?;
                // RFC 9110 §6.5.1: framing is never a trailer's business.
                if !client && ["content-length", "transfer-encoding"].contains(&name.as_str()) {
                    return Err(format!("{name} in a trailer section"));
                }
            }
        }
        let Some(data_end) = at.checked_add(size) else {
            return Err("a chunk size too large".into());
        };
        match body.get(data_end..data_end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => at = data_end + 2,
            Some(_) => return Err("chunk data not followed by CRLF".into()),
        }
    }
}
