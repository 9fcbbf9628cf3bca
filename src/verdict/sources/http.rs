//! GETs to a source over `http://` or `https://`, through the command-line tools' one
//! client (`tls::endpoint`: `--cacert` or the system's roots, the admin token), with a
//! deadline on the whole exchange and a cap on the body read.

use super::SourceError;
use crate::telemetry::logging::ErrorChain;
use crate::tls::endpoint::Endpoint;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

/// Largest answer read from a source: a fleet's series for a few metrics fit many times over.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A GET client of one source, with one deadline per exchange.
#[derive(Debug, Clone)]
pub struct Getter {
    endpoint: Endpoint,
    timeout: Duration,
}

/// A source's answer: its status and body.
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// The body, as text (lossy: sources answer UTF-8).
    pub body: String,
}

impl Getter {
    /// A client of `endpoint` whose exchanges each end after `timeout`.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Getter {
        Getter { endpoint, timeout }
    }

    /// GETs `url` (a URL under the endpoint's, as the sources build them), whatever its
    /// status.
    pub async fn get(&self, url: &str) -> Result<Answer, SourceError> {
        let uri: http::Uri = url.parse().map_err(|_| SourceError::BadUrl {
            url: url.to_string(),
            reason: "not a valid URL".to_string(),
        })?;
        let target = uri.path_and_query().map_or("/", |target| target.as_str());
        let request = self
            .endpoint
            .request(http::Method::GET, target)
            .header(http::header::ACCEPT, "application/json, text/plain")
            .body(Full::new(Bytes::new()))
            .map_err(|_| SourceError::BadUrl {
                url: url.to_string(),
                reason: "cannot build a request for it".to_string(),
            })?;
        let unreachable = |reason: String| SourceError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let exchange = async {
            let response = self
                .endpoint
                .send(request, self.timeout)
                .await
                .map_err(|error| unreachable(ErrorChain(&error).to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|error| unreachable(format!("reading the answer: {error}")))?
                .to_bytes();
            Ok(Answer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `base` without a trailing slash, so `{base}/api/...` has one.
pub fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}
