//! Pooled upstream clients: one keep-alive pool per named upstream, with connect and
//! response timeouts, and errors classified into what a client should be told.

use crate::config::{UpstreamConfig, UpstreamProtocol};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Why a forward failed, classified once here so the edge can map it to 502 or 504.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made (refused, unreachable, connect timeout): 502.
    #[error("upstream {upstream} unreachable")]
    Unreachable {
        /// Upstream name.
        upstream: String,
        /// The connector's error.
        #[source]
        source: hyper_util::client::legacy::Error,
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
        source: hyper_util::client::legacy::Error,
    },
}

/// A client for one named upstream.
pub struct UpstreamClient<B> {
    name: String,
    authority: Authority,
    version: http::Version,
    response_timeout: Duration,
    client: Client<HttpConnector, B>,
}

impl<B> UpstreamClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Builds the pool for one upstream. Connections are reused (keep-alive), never one per request.
    pub fn new(name: &str, config: &UpstreamConfig) -> UpstreamClient<B> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_idle_timeout(config.pool_idle_timeout);
        let version = match config.protocol {
            UpstreamProtocol::Http1 => http::Version::HTTP_11,
            UpstreamProtocol::Http2 => {
                builder.http2_only(true);
                http::Version::HTTP_2
            }
        };
        UpstreamClient {
            name: name.to_string(),
            authority: config.authority.clone(),
            version,
            response_timeout: config.response_timeout,
            client: builder.build(connector),
        }
    }

    /// The upstream's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URI for a request path on this upstream.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(
                path_and_query
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
            .build()
    }

    /// Sends a request whose URI was built by [`Self::uri_for`]; waits at most
    /// `response_timeout` for the response head. The body then streams without a deadline
    /// (a long download is not an error).
    pub async fn send(&self, mut request: Request<B>) -> Result<Response<Incoming>, ForwardError> {
        *request.version_mut() = self.version;
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) if source.is_connect() => Err(ForwardError::Unreachable {
                upstream: self.name.clone(),
                source,
            }),
            Ok(Err(source)) => Err(ForwardError::Failed {
                upstream: self.name.clone(),
                source,
            }),
            Err(_) => Err(ForwardError::Timeout {
                upstream: self.name.clone(),
                after: self.response_timeout,
            }),
        }
    }
}
