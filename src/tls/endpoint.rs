//! An `http://` or `https://` endpoint an operator names on the command line (`ctl --admin`,
//! `verdict --admin`, `verdict --prometheus`), and one request to it on a new connection.
//!
//! Why one module: the command-line tools must agree on the rules an operator learns once.
//! An `https://` endpoint's certificate is verified for the URL's host against `--cacert` (a
//! PEM file of the CA that signed it), else the system's roots; `--cacert` is read only for
//! an `https://` URL. The admin bearer token is `--token-file FILE`, else the
//! `SHADOWTAP_ADMIN_TOKEN` environment variable, and is sent only where a caller asks. Every
//! error says which flag to fix. One connection per request: the tools ask a few times and
//! exit, so a pool would only keep sockets open.

// A URL and a file given on the command line are untrusted input.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::client::{ClientConfigError, Offer, Trust, UpstreamTls};
use super::pem::PemError;
use bytes::Bytes;
use http::{header, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{InvalidDnsNameError, ServerName};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The environment variable a tool reads the admin token from when no `--token-file` is given.
pub const TOKEN_ENV: &str = "SHADOWTAP_ADMIN_TOKEN";

/// Where to send requests: `host:port`, the TLS client for an `https://` URL, and the bearer
/// token when one is to be shown.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port`, the port filled in from the scheme: where to connect.
    authority: String,
    /// The `Host` field: the URL's host and port as written (RFC 9110 §7.2), so a virtual
    /// host behind an ingress matches on `name`, not `name:443`.
    host: String,
    tls: Option<UpstreamTls>,
    token: Option<BearerToken>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field("host", &self.host)
            .field("https", &self.tls.is_some())
            .field("token", &self.token)
            .finish()
    }
}

/// An admin bearer token. Its `Debug` form hides it, so no log line or panic carries it.
#[derive(Clone)]
pub struct BearerToken(String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Why an endpoint cannot be used: each names the flag that gave the bad value.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The value does not parse as a URL.
    #[error("{flag} {url:?} is not a URL")]
    NotAUrl {
        /// The flag (`--admin`).
        flag: &'static str,
        /// Its value.
        url: String,
    },
    /// A scheme other than `http` or `https` (or none).
    #[error("{flag} {url:?}: expected http://HOST:PORT or https://HOST:PORT")]
    Scheme {
        /// The flag.
        flag: &'static str,
        /// Its value.
        url: String,
    },
    /// No host in the URL.
    #[error("{flag} {url:?} has no host")]
    NoHost {
        /// The flag.
        flag: &'static str,
        /// Its value.
        url: String,
    },
    /// The host cannot be a certificate's name (for `https://`).
    #[error("{flag}: {host:?} is no TLS server name")]
    ServerName {
        /// The flag.
        flag: &'static str,
        /// The URL's host.
        host: String,
        /// rustls' reason.
        #[source]
        source: InvalidDnsNameError,
    },
    /// `--cacert` cannot be read or holds no certificate.
    #[error("--cacert")]
    Cacert(#[source] PemError),
    /// The TLS client cannot be built (a CA rustls refuses, no system roots at all).
    #[error("cannot set up TLS")]
    Setup(#[source] ClientConfigError),
    /// `--token-file` cannot be read.
    #[error("--token-file {path}")]
    TokenUnreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// `--token-file` holds nothing but whitespace.
    #[error("--token-file {path}: the file is empty")]
    TokenEmpty {
        /// The file.
        path: PathBuf,
    },
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No TCP connection (refused, unresolvable, or not within the connect timeout).
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed: most often a certificate not signed by a trusted CA.
    #[error(
        "TLS handshake with {authority} failed (its certificate must be signed by the CA \
         given with --cacert FILE, else by one of the system's roots, for the URL's host)"
    )]
    Handshake {
        /// `host:port`.
        authority: String,
        /// rustls' reason, inside an `io::Error`.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed after connecting (not HTTP, reset mid-answer).
    #[error("{authority} did not answer in HTTP")]
    Protocol {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
}

impl Endpoint {
    /// The endpoint `url` (`http://host:port` or `https://host:port`; the path is the
    /// caller's) that `flag` gave. An `https` endpoint's certificate is verified for the URL's
    /// host against `cacert`, else the system's roots; `cacert` is not read for `http`.
    pub fn parse(
        flag: &'static str,
        url: &str,
        cacert: Option<&Path>,
    ) -> Result<Endpoint, EndpointError> {
        let uri: Uri = url.parse().map_err(|_| EndpointError::NotAUrl {
            flag,
            url: url.to_string(),
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(EndpointError::Scheme {
                    flag,
                    url: url.to_string(),
                })
            }
        };
        let authority = uri.authority().ok_or_else(|| EndpointError::NoHost {
            flag,
            url: url.to_string(),
        })?;
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            true => Some(tls_client(flag, authority.host(), cacert)?),
            false => None,
        };
        let host = match authority.port() {
            Some(written) => format!("{}:{written}", authority.host()),
            None => authority.host().to_string(),
        };
        Ok(Endpoint {
            authority: format!("{}:{port}", authority.host()),
            host,
            tls,
            token: None,
        })
    }

    /// The same endpoint, showing `token` with every request.
    pub fn with_token(mut self, token: Option<BearerToken>) -> Endpoint {
        self.token = token;
        self
    }

    /// `host:port`, for messages.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A request for `path_and_query` with its `Host` and, when there is one, the token.
    pub fn request(&self, method: Method, path_and_query: &str) -> http::request::Builder {
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, self.host.as_str());
        if let Some(BearerToken(token)) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request
    }

    /// Sends `request` on a new connection (TLS for `https`), the connect given
    /// `connect_timeout`; the answer's body is the caller's to read (and to bound in time).
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, ExchangeError> {
        let connect = |source| ExchangeError::Connect {
            authority: self.authority.clone(),
            source,
        };
        let protocol = |source| ExchangeError::Protocol {
            authority: self.authority.clone(),
            source,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect)?;
        match &self.tls {
            None => over(stream, request).await.map_err(protocol),
            Some(tls) => {
                let stream =
                    tls.handshake(stream)
                        .await
                        .map_err(|source| ExchangeError::Handshake {
                            authority: self.authority.clone(),
                            source,
                        })?;
                over(stream, request).await.map_err(protocol)
            }
        }
    }
}

/// The admin token a tool shows: `--token-file` (trimmed), else [`TOKEN_ENV`], else none.
pub fn admin_token(token_file: Option<&Path>) -> Result<Option<BearerToken>, EndpointError> {
    if let Some(path) = token_file {
        let text =
            std::fs::read_to_string(path).map_err(|source| EndpointError::TokenUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(EndpointError::TokenEmpty {
                path: path.to_path_buf(),
            });
        }
        return Ok(Some(BearerToken(token.to_string())));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .map(BearerToken))
}

/// One request over a connected stream (plain or TLS). The connection is driven by its own
/// task, which ends when the answer has been read and the sender is gone.
async fn over<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    sender.send_request(request).await
}

/// The TLS client of an `https://` endpoint at `host`: trusting `cacert`, else the system's
/// roots; HTTP/1.1 by ALPN.
fn tls_client(
    flag: &'static str,
    host: &str,
    cacert: Option<&Path>,
) -> Result<UpstreamTls, EndpointError> {
    let host = host.trim_matches(['[', ']']).to_string();
    let name = ServerName::try_from(host.clone()).map_err(|source| EndpointError::ServerName {
        flag,
        host,
        source,
    })?;
    let trust = match cacert {
        Some(path) => {
            Trust::Roots(super::pem::read_certificates(path).map_err(EndpointError::Cacert)?)
        }
        None => Trust::System,
    };
    UpstreamTls::new(name, trust, None, Offer::Http1).map_err(EndpointError::Setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_names_its_flag() {
        for (url, expected) in [
            ("ftp://127.0.0.1:1", "--prometheus \"ftp://127.0.0.1:1\": expected http://HOST:PORT or https://HOST:PORT"),
            ("127.0.0.1:1", "--prometheus \"127.0.0.1:1\": expected http://HOST:PORT or https://HOST:PORT"),
            ("http://", "--prometheus \"http://\" is not a URL"),
        ] {
            let error = Endpoint::parse("--prometheus", url, None).unwrap_err();
            assert_eq!(error.to_string(), expected, "{url}");
        }
    }

    #[test]
    fn cacert_is_read_for_https_only() {
        let missing = Path::new("/nonexistent/ca.pem");
        let plain = Endpoint::parse("--admin", "http://127.0.0.1:9", Some(missing)).unwrap();
        assert_eq!(plain.authority(), "127.0.0.1:9");
        let error = Endpoint::parse("--admin", "https://127.0.0.1:9", Some(missing)).unwrap_err();
        assert!(
            matches!(error, EndpointError::Cacert(PemError::Read { .. })),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "--cacert");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        let plain = Endpoint::parse("--admin", "http://localhost/x", None).unwrap();
        assert_eq!(plain.authority(), "localhost:80");
        let host = |endpoint: &Endpoint| {
            let request = endpoint.request(Method::GET, "/").body(()).unwrap();
            request.headers()[header::HOST]
                .to_str()
                .unwrap()
                .to_string()
        };
        // Host says what the URL says; the connection goes to the scheme's port.
        assert_eq!(host(&plain), "localhost");
        let given = Endpoint::parse("--admin", "http://localhost:8080", None).unwrap();
        assert_eq!(
            (given.authority(), host(&given).as_str()),
            ("localhost:8080", "localhost:8080")
        );
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca.cert.pem()).unwrap();
        let tls = Endpoint::parse("--admin", "https://localhost", Some(&file)).unwrap();
        assert_eq!(tls.authority(), "localhost:443");
        assert_eq!(host(&tls), "localhost");
    }

    #[test]
    fn the_token_is_shown_but_never_printed() {
        let endpoint = Endpoint::parse("--admin", "http://127.0.0.1:9", None)
            .unwrap()
            .with_token(Some(BearerToken("s3cret".to_string())));
        let request = endpoint
            .request(Method::GET, "/metrics")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(request.headers()[header::AUTHORIZATION], "Bearer s3cret");
        assert_eq!(request.headers()[header::HOST], "127.0.0.1:9");
        assert!(!format!("{endpoint:?}").contains("s3cret"));
    }
}
