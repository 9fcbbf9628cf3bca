//! The admin API client `shadowtap ctl` speaks through: one HTTP/1.1 request per
//! connection to the admin port (over TLS for an `https://` admin port, with the rules
//! every command-line tool shares in `tls::endpoint`), with deadlines, so an unreachable or
//! stuck admin port is an answer (exit 3), not a hang.

use crate::telemetry::logging::ErrorChain;
use crate::tls::endpoint::{BearerToken, Endpoint, ExchangeError};
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use std::path::Path;
use std::time::Duration;

/// Time allowed to connect to the admin port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole exchange (a reload re-reads and validates the config).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the admin port is, and the token to show it.
#[derive(Debug, Clone)]
pub struct AdminClient {
    endpoint: Endpoint,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an `http(s)://host:port` admin address, or its TLS trust cannot be set up.
    #[error("{0}")]
    Url(String),
    /// No connection could be made, or it broke before the answer.
    #[error("cannot reach the admin port at {authority}")]
    Unreachable {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed after connecting (not HTTP, reset mid-answer).
    #[error("the admin port at {authority} did not answer in HTTP")]
    Protocol {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// No answer within the deadline.
    #[error("the admin port at {0} did not answer within {EXCHANGE_TIMEOUT:?}")]
    Timeout(String),
}

/// An answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl AdminClient {
    /// A client of the admin port at `url` (`http://host:port` or `https://host:port`, a
    /// path is ignored). An `https` port's certificate is verified against `cacert` (a PEM
    /// file), else the system's roots, for the URL's host.
    pub fn new(
        url: &str,
        token: Option<BearerToken>,
        cacert: Option<&Path>,
    ) -> Result<AdminClient, ClientError> {
        let endpoint = Endpoint::parse("--admin", url, cacert)
            .map_err(|error| ClientError::Url(ErrorChain(&error).to_string()))?;
        Ok(AdminClient {
            endpoint: endpoint.with_token(token),
        })
    }

    /// Sends one request (a JSON body when given) and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let authority = self.endpoint.authority().to_string();
        match tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Timeout(authority)),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let authority = || self.endpoint.authority().to_string();
        let protocol = |source| ClientError::Protocol {
            authority: authority(),
            source,
        };
        let request = self.request(method, path, body)?;
        let response =
            self.endpoint
                .send(request, CONNECT_TIMEOUT)
                .await
                .map_err(|error| match error {
                    ExchangeError::Connect { source, .. }
                    | ExchangeError::Handshake { source, .. } => ClientError::Unreachable {
                        authority: authority(),
                        source,
                    },
                    ExchangeError::Protocol { source, .. } => protocol(source),
                })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(protocol)?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// The request: its path, the Host, the token, the JSON body.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<http::Request<Full<Bytes>>, ClientError> {
        let mut request = self.endpoint.request(method, path);
        let payload = match &body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        request
            .body(Full::new(payload))
            .map_err(|error| ClientError::Url(format!("cannot build the request: {error}")))
    }
}
