//! The admin API client `shadowtap ctl` speaks through: one HTTP/1.1 request per
//! connection over hyper's client connection (over TLS for an `https://` admin port, with
//! the upstream side's rustls client), with deadlines, so an unreachable or stuck admin port
//! is an answer (exit 3), not a hang.

use crate::tls::client::{Offer, Trust, UpstreamTls};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Time allowed to connect to the admin port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole exchange (a reload re-reads and validates the config).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the admin port is, and the token to show it.
#[derive(Debug, Clone)]
pub struct AdminClient {
    authority: String,
    token: Option<String>,
    /// For an `https://` admin port: the TLS client, verifying its certificate.
    tls: Option<UpstreamTls>,
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
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<AdminClient, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ClientError::Url(format!("--admin {url:?} is not a URL")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(ClientError::Url(format!(
                    "--admin {url:?}: expected http://HOST:PORT or https://HOST:PORT"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::Url(format!("--admin {url:?} has no host")))?;
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            true => Some(tls_client(authority.host(), cacert)?),
            false => None,
        };
        Ok(AdminClient {
            authority: format!("{}:{port}", authority.host()),
            token,
            tls,
        })
    }

    /// Sends one request (a JSON body when given) and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let authority = self.authority.clone();
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
        let unreachable = |source| ClientError::Unreachable {
            authority: self.authority.clone(),
            source,
        };
        let protocol = |source| ClientError::Protocol {
            authority: self.authority.clone(),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        let request = self.request(method, path, body)?;
        let response = match &self.tls {
            None => over(stream, request).await,
            Some(tls) => {
                let stream = tls.handshake(stream).await.map_err(unreachable)?;
                over(stream, request).await
            }
        };
        response.map_err(protocol)
    }

    /// The request: its path, the Host, the token, the JSON body.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.authority.as_str());
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
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

/// One request and its whole answer over a connected stream (plain or TLS).
async fn over<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(Answer { status, body })
}

/// The TLS client of an `https://` admin port at `host`: trusting `cacert`, else the
/// system's roots.
fn tls_client(host: &str, cacert: Option<&Path>) -> Result<UpstreamTls, ClientError> {
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|error| {
            ClientError::Url(format!("--admin: {host:?} is no TLS server name: {error}"))
        })?;
    let trust = match cacert {
        Some(path) => Trust::Roots(crate::tls::pem::read_certificates(path).map_err(|error| {
            ClientError::Url(format!(
                "--cacert: {}",
                crate::telemetry::logging::ErrorChain(&error)
            ))
        })?),
        None => Trust::System,
    };
    UpstreamTls::new(name, trust, None, Offer::Http1).map_err(|error| {
        ClientError::Url(format!(
            "cannot set up TLS: {}",
            crate::telemetry::logging::ErrorChain(&error)
        ))
    })
}
