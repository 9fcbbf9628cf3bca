//! Pooled upstream clients: one keep-alive pool per named upstream, with connect and
//! response timeouts, and errors classified into what a client should be told.
//!
//! Below both engines and the mirror: the hyper engine forwards through an
//! [`UpstreamClient`], the shadows reach HTTP/2 (h2c or h2 over TLS) and `auto` upstreams
//! with one, and every stage reports an upstream failure as the one [`ForwardError`].

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod client_body;
pub mod connector;

use crate::config::{UpstreamConfig, UpstreamProtocol};
use crate::h1::exchange::ExchangeError;
use crate::h1::pool::{socket_address, ConnectError, RawPool};
use crate::h1::upstream::{self as native, NativeBody};
use crate::tls::client::ALPN_H2;
use bytes::Bytes;
use client_body::ClientBodyFailure;
use connector::{TlsConnectError, TlsConnector};
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

pub use crate::h1::exchange::BoxError;

/// Why a forward failed, classified once here so the edge can map it to a status: 502 or
/// 504 when the upstream failed, 408 or 400 when the client's request body did.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made (refused, unreachable, connect timeout): 502.
    #[error("upstream {upstream} unreachable")]
    Unreachable {
        /// Upstream name.
        upstream: String,
        /// The connector's error.
        #[source]
        source: BoxError,
    },
    /// The TLS handshake with the upstream failed (certificate not trusted or not for the
    /// verification name, our client certificate refused): 502, `upstream_tls`.
    #[error("upstream {upstream}: TLS handshake failed")]
    Tls {
        /// Upstream name.
        upstream: String,
        /// The handshake's error, rustls' reason at the end of its chain.
        #[source]
        source: BoxError,
    },
    /// The response head did not arrive within the upstream's `response_timeout`: 504.
    #[error("upstream {upstream} sent no response within {after:?}")]
    Timeout {
        /// Upstream name.
        upstream: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The connection failed after it was made (closed early, protocol error): 502.
    #[error("upstream {upstream} failed")]
    Failed {
        /// Upstream name.
        upstream: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// The client sent nothing of its request body for the listener's
    /// `client_body_timeout`: 408.
    #[error("the client sent nothing of its request body for {after:?}")]
    ClientTimeout {
        /// The timeout that ran out.
        after: Duration,
    },
    /// The client's request body failed mid-upload (it closed or reset, or broke its
    /// framing): 400, though usually nobody is left to read it.
    #[error("the client's request body failed")]
    ClientAborted {
        /// What reading the body reported.
        #[source]
        source: BoxError,
    },
}

impl ForwardError {
    /// What an HTTP/1 upstream exchange's failure is for the client, on every path that
    /// answers one: unreachable (502), a TLS failure (502: the handshake, or a TLS alert
    /// after it, as a TLS 1.3 upstream refusing our client certificate sends), timed out
    /// (504), or failed (502).
    pub fn from_exchange(upstream: &str, error: ExchangeError) -> ForwardError {
        let upstream = upstream.to_string();
        match error {
            ExchangeError::Connect(source @ ConnectError::Handshake { .. }) => ForwardError::Tls {
                upstream,
                source: Box::new(source),
            },
            ExchangeError::Connect(source) => ForwardError::Unreachable {
                upstream,
                source: Box::new(source),
            },
            ExchangeError::TimedOut(after) => ForwardError::Timeout { upstream, after },
            source if is_tls_failure(&source) => ForwardError::Tls {
                upstream,
                source: Box::new(source),
            },
            source => ForwardError::Failed {
                upstream,
                source: Box::new(source),
            },
        }
    }

    /// What `error` becomes when the client's request body failed first ([`BodyWatch`]):
    /// the client's fault, with what the upstream client reported as its cause.
    ///
    /// [`BodyWatch`]: crate::forward::client_body::BodyWatch
    pub fn after_client_failure(failure: ClientBodyFailure, error: ForwardError) -> ForwardError {
        match failure {
            ClientBodyFailure::TimedOut { after } => ForwardError::ClientTimeout { after },
            ClientBodyFailure::Failed => ForwardError::ClientAborted {
                source: match error {
                    ForwardError::Failed { source, .. } => source,
                    other => Box::new(other),
                },
            },
        }
    }
}

/// How requests reach an upstream.
enum Transport<B> {
    /// HTTP/1.1: the native engine's sockets of this upstream ([`crate::h1::upstream`]).
    Http1(Arc<RawPool>),
    /// HTTP/2: hyper-util's client, which multiplexes streams over its pooled connection.
    Http2(Box<H2Client<B>>),
    /// `protocol = "auto"`: what the upstream chose by ALPN.
    Auto(Box<Auto<B>>),
}

/// hyper's HTTP/2 client: h2c (prior knowledge), or h2 over TLS.
enum H2Client<B> {
    Plain(Client<HttpConnector, B>),
    Tls(Client<TlsConnector, B>),
}

impl<B> H2Client<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// The client for `config`: over TLS when the upstream is `https://`.
    fn new(config: &UpstreamConfig) -> H2Client<B> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_idle_timeout(config.pool_idle_timeout)
            .http2_only(true);
        match &config.tls {
            None => {
                connector.enforce_http(true);
                H2Client::Plain(builder.build(connector))
            }
            Some(tls) => {
                connector.enforce_http(false);
                let connector =
                    TlsConnector::new(connector, tls.client.clone(), config.connect_timeout);
                H2Client::Tls(builder.build(connector))
            }
        }
    }

    fn request(&self, request: Request<B>) -> ResponseFuture {
        match self {
            H2Client::Plain(client) => client.request(request),
            H2Client::Tls(client) => client.request(request),
        }
    }
}

/// An `https://` upstream with `protocol = "auto"`: both clients over the one TLS client
/// (which offers h2 and http/1.1), and which one the upstream chose. The first request
/// connects through the HTTP/1 pool, reads the ALPN answer and remembers it for the
/// upstream's lifetime (an upstream that changes its mind needs a restart); that connection
/// is kept for HTTP/1, or dropped for the h2 client's own.
struct Auto<B> {
    http1: Arc<RawPool>,
    h2: H2Client<B>,
    speaks_h2: OnceLock<bool>,
}

/// A response body from an upstream: read by this crate from an HTTP/1 socket, or by
/// hyper's h2 client.
pub enum UpstreamBody {
    /// From an HTTP/1 upstream.
    Native(NativeBody),
    /// From an h2c upstream.
    Hyper(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Native(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|error| Box::new(error) as BoxError),
            UpstreamBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|error| Box::new(error) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Native(body) => body.is_end_stream(),
            UpstreamBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Native(body) => body.size_hint(),
            UpstreamBody::Hyper(body) => body.size_hint(),
        }
    }
}

/// A client for one named upstream.
pub struct UpstreamClient<B> {
    name: String,
    authority: Authority,
    scheme: Scheme,
    response_timeout: Duration,
    transport: Transport<B>,
}

impl<B> UpstreamClient<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// Builds the pool for one upstream. Connections are reused (keep-alive), never one per request.
    pub fn new(name: &str, config: &UpstreamConfig) -> UpstreamClient<B> {
        let pool = || {
            Arc::new(RawPool::new(
                socket_address(&config.authority, config.tls.is_some()),
                config.tls.as_ref().map(|tls| tls.client.clone()),
                config.connect_timeout,
                config.pool_max_idle,
                config.pool_idle_timeout,
            ))
        };
        let transport = match config.protocol {
            UpstreamProtocol::Http1 => Transport::Http1(pool()),
            UpstreamProtocol::Http2 => Transport::Http2(Box::new(H2Client::new(config))),
            UpstreamProtocol::Auto => Transport::Auto(Box::new(Auto {
                http1: pool(),
                h2: H2Client::new(config),
                speaks_h2: OnceLock::new(),
            })),
        };
        UpstreamClient {
            name: name.to_string(),
            authority: config.authority.clone(),
            scheme: if config.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            response_timeout: config.response_timeout,
            transport,
        }
    }

    /// The upstream's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The idle sockets of an HTTP/1 upstream, which the native engine shares. None for an
    /// `auto` one: the protocol is known only once connected, so its requests take the
    /// hyper path, which asks [`Self::send`].
    pub fn native_pool(&self) -> Option<&Arc<RawPool>> {
        match &self.transport {
            Transport::Http1(pool) => Some(pool),
            Transport::Http2(_) | Transport::Auto(_) => None,
        }
    }

    /// The request target for a path on this upstream: origin-form (`/path?query`) on an
    /// HTTP/1 connection of our own, absolute for the h2 client, which routes by it (and
    /// for `auto`, whose HTTP/1 writer takes only the path from it).
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let path_and_query = path_and_query
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match self.transport {
            Transport::Http1(_) => Uri::builder().path_and_query(path_and_query).build(),
            Transport::Http2(_) | Transport::Auto(_) => Uri::builder()
                .scheme(self.scheme.clone())
                .authority(self.authority.clone())
                .path_and_query(path_and_query)
                .build(),
        }
    }

    /// Sends a request whose URI was built by [`Self::uri_for`]; waits at most
    /// `response_timeout` for the response head after the request's end (HTTP/1; over the
    /// whole exchange towards h2c upstreams). The body then streams without a deadline
    /// (a long download is not an error); an HTTP/1 connection goes back to the pool when
    /// the body has been read to its end. The response carries no hop-by-hop fields.
    pub async fn send(&self, request: Request<B>) -> Result<Response<UpstreamBody>, ForwardError> {
        self.send_within(request, None).await
    }

    /// [`Self::send`], waiting at most `deadline` (a gRPC call's `grpc-timeout`) when it is
    /// shorter than the upstream's `response_timeout`.
    pub async fn send_within(
        &self,
        mut request: Request<B>,
        deadline: Option<Duration>,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        let timeout = deadline.map_or(self.response_timeout, |deadline| {
            deadline.min(self.response_timeout)
        });
        if !request.headers().contains_key(header::HOST) {
            // HTTP/1.0 clients may send none; HTTP/1.1 requires one.
            if let Ok(host) = HeaderValue::from_str(self.authority.as_str()) {
                request.headers_mut().insert(header::HOST, host);
            }
        }
        match &self.transport {
            Transport::Http1(pool) => self.send_http1(pool, request, timeout).await,
            Transport::Http2(client) => self.send_h2(client, request, timeout).await,
            Transport::Auto(auto) => {
                let speaks_h2 = match auto.speaks_h2.get() {
                    Some(speaks_h2) => *speaks_h2,
                    None => self.negotiate(auto).await?,
                };
                if speaks_h2 {
                    self.send_h2(&auto.h2, request, timeout).await
                } else {
                    self.send_http1(&auto.http1, request, timeout).await
                }
            }
        }
    }

    /// Timed per phase inside: the client's pace of uploading is not the upstream's.
    async fn send_http1(
        &self,
        pool: &Arc<RawPool>,
        request: Request<B>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        match native::send(pool, request, timeout).await {
            Ok(response) => Ok(response.map(UpstreamBody::Native)),
            Err(error) => Err(ForwardError::from_exchange(&self.name, error)),
        }
    }

    /// hyper's client sends the body from its connection task: the response timeout runs
    /// over the whole exchange, upload included.
    async fn send_h2(
        &self,
        client: &H2Client<B>,
        mut request: Request<B>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        *request.version_mut() = http::Version::HTTP_2;
        let exchange = client.request(request);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(mut response)) => {
                crate::headers::remove_hop_by_hop(response.headers_mut());
                Ok(response.map(UpstreamBody::Hyper))
            }
            Ok(Err(source)) if is_tls_failure(&source) => Err(ForwardError::Tls {
                upstream: self.name.clone(),
                source: Box::new(source),
            }),
            Ok(Err(source)) if source.is_connect() => Err(ForwardError::Unreachable {
                upstream: self.name.clone(),
                source: Box::new(source),
            }),
            Ok(Err(source)) => Err(ForwardError::Failed {
                upstream: self.name.clone(),
                source: Box::new(source),
            }),
            Err(_) => Err(ForwardError::Timeout {
                upstream: self.name.clone(),
                after: timeout,
            }),
        }
    }

    /// `auto`'s first connection: which protocol the upstream chose by ALPN, remembered. An
    /// HTTP/1 connection goes to the pool for the request about to be sent.
    async fn negotiate(&self, auto: &Auto<B>) -> Result<bool, ForwardError> {
        let conn =
            auto.http1.connect().await.map_err(|error| {
                ForwardError::from_exchange(&self.name, ExchangeError::from(error))
            })?;
        let speaks_h2 = conn.stream.alpn() == Some(ALPN_H2);
        if !speaks_h2 {
            auto.http1.check_in(conn);
        }
        tracing::debug!(upstream = %self.name, h2 = speaks_h2, "protocol chosen by ALPN");
        Ok(*auto.speaks_h2.get_or_init(|| speaks_h2))
    }
}

/// Whether the TLS layer failed somewhere in `error`'s chain: a handshake that failed (our
/// connector's or the pool's), or an I/O error whose inner error is rustls' (an alert from
/// the upstream, a record that does not decrypt). Found by type, never by message.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if matches!(
            error.downcast_ref::<TlsConnectError>(),
            Some(TlsConnectError::Handshake(_))
        ) || matches!(
            error.downcast_ref::<ConnectError>(),
            Some(ConnectError::Handshake { .. })
        ) {
            return true;
        }
        // An io::Error's `source` skips its inner error: look at it directly.
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        next = error.source();
    }
    false
}
