//! Errors on the live path and the one place they become responses.
//!
//! Everything that can go wrong while serving a request ends up as a [`ProxyError`]; the
//! handler turns it into exactly one response with [`ProxyError::status`] and counts it
//! with [`ProxyError::reason`]. Causes are kept as `#[source]` so logs show the chain.

use crate::proxy::forward::ForwardError;
use crate::proxy::headers::FramingError;
use crate::telemetry::ErrorReason;
use http::StatusCode;

/// A request the proxy must answer itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Ambiguous or forbidden framing (smuggling shapes): 400, nothing forwarded.
    #[error("bad request framing")]
    Framing(#[from] FramingError),
    /// A request the proxy does not forward (CONNECT, a bad target): 400 or 405.
    #[error("unsupported request: {0}")]
    Unsupported(&'static str),
    /// No route matched host and path: 404.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream could not be reached, timed out, or failed: 502/504.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Framing(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Forward(ForwardError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Forward(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `reason` label it is counted under.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ProxyError::Framing(_) | ProxyError::Unsupported(_) => ErrorReason::BadRequest,
            ProxyError::NoRoute => ErrorReason::NoRoute,
            ProxyError::Forward(ForwardError::Unreachable { .. }) => {
                ErrorReason::UpstreamUnreachable
            }
            ProxyError::Forward(ForwardError::Timeout { .. }) => ErrorReason::UpstreamTimeout,
            ProxyError::Forward(ForwardError::Failed { .. }) => ErrorReason::UpstreamError,
        }
    }

    /// The short body sent with the status: what happened, never internal details.
    pub fn client_message(&self) -> &'static str {
        match self {
            ProxyError::Framing(_) => "bad request: ambiguous message framing\n",
            ProxyError::Unsupported(what) => what,
            ProxyError::NoRoute => "no route\n",
            ProxyError::Forward(ForwardError::Unreachable { .. }) => {
                "bad gateway: upstream unreachable\n"
            }
            ProxyError::Forward(ForwardError::Timeout { .. }) => {
                "gateway timeout: upstream did not answer in time\n"
            }
            ProxyError::Forward(ForwardError::Failed { .. }) => "bad gateway: upstream failed\n",
        }
    }
}
