//! Errors on the live path and the one place they become responses.
//!
//! Everything that can go wrong while serving a request ends up as a [`ProxyError`]; the
//! handler turns it into exactly one response with [`ProxyError::status`] and counts it
//! with [`ProxyError::reason`]. Causes are kept as `#[source]` so logs show the chain.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::forward::ForwardError;
use crate::headers::{FramingError, HostError};
use crate::telemetry::logging::ErrorChain;
use crate::telemetry::ErrorReason;
use http::StatusCode;

/// A request the proxy must answer itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Ambiguous or forbidden framing (smuggling shapes): 400, nothing forwarded.
    #[error("bad request framing")]
    Framing(#[from] FramingError),
    /// A missing, repeated or invalid `Host` (RFC 9112 §3.2): 400, nothing forwarded.
    #[error("bad Host")]
    Host(#[from] HostError),
    /// A request the proxy does not forward (CONNECT, a bad target): 400 or 405.
    #[error("unsupported request: {0}")]
    Unsupported(&'static str),
    /// No route matched host and path: 404.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream could not be reached, timed out, or failed: 502/504; or the client's
    /// request body stopped on the way: 408/400.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl ProxyError {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Framing(_) | ProxyError::Host(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Forward(ForwardError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Forward(ForwardError::ClientTimeout { .. }) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Forward(ForwardError::ClientAborted { .. }) => StatusCode::BAD_REQUEST,
            ProxyError::Forward(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `reason` label it is counted under.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ProxyError::Framing(_) | ProxyError::Host(_) | ProxyError::Unsupported(_) => {
                ErrorReason::BadRequest
            }
            ProxyError::NoRoute => ErrorReason::NoRoute,
            ProxyError::Forward(ForwardError::Unreachable { .. }) => {
                ErrorReason::UpstreamUnreachable
            }
            ProxyError::Forward(ForwardError::Tls { .. }) => ErrorReason::UpstreamTls,
            ProxyError::Forward(ForwardError::Timeout { .. }) => ErrorReason::UpstreamTimeout,
            ProxyError::Forward(ForwardError::Failed { .. }) => ErrorReason::UpstreamError,
            ProxyError::Forward(ForwardError::ClientTimeout { .. }) => ErrorReason::ClientTimeout,
            ProxyError::Forward(ForwardError::ClientAborted { .. }) => ErrorReason::ClientAborted,
        }
    }

    /// Logs the one `request failed` event of a request, with the fields both engines give
    /// it. At `warn`, except when the client caused it (a stalled or broken upload): that is
    /// routine for a proxy and not the operator's to fix, so `info`.
    pub fn log_failed(&self, method: &str, route: &str, request_id: &str) {
        let status = self.status().as_u16();
        let reason = self.reason().as_str();
        if matches!(
            self,
            ProxyError::Forward(
                ForwardError::ClientTimeout { .. } | ForwardError::ClientAborted { .. }
            )
        ) {
            tracing::info!(method, route, request_id, status, reason, error = %ErrorChain(self), "request failed");
        } else {
            tracing::warn!(method, route, request_id, status, reason, error = %ErrorChain(self), "request failed");
        }
    }

    /// The short body sent with the status: what happened, never internal details.
    pub fn client_message(&self) -> &'static str {
        match self {
            ProxyError::Framing(_) => "bad request: ambiguous message framing\n",
            ProxyError::Host(_) => "bad request: missing, repeated or invalid Host\n",
            ProxyError::Unsupported(what) => what,
            ProxyError::NoRoute => "no route\n",
            ProxyError::Forward(ForwardError::Unreachable { .. }) => {
                "bad gateway: upstream unreachable\n"
            }
            ProxyError::Forward(ForwardError::Tls { .. }) => {
                "bad gateway: TLS handshake with the upstream failed\n"
            }
            ProxyError::Forward(ForwardError::Timeout { .. }) => {
                "gateway timeout: upstream did not answer in time\n"
            }
            ProxyError::Forward(ForwardError::Failed { .. }) => "bad gateway: upstream failed\n",
            ProxyError::Forward(ForwardError::ClientTimeout { .. }) => {
                "request timeout: the request body stopped arriving\n"
            }
            ProxyError::Forward(ForwardError::ClientAborted { .. }) => {
                "bad request: the request body did not arrive\n"
            }
        }
    }
}

/// Logs the one event of a request whose client closed its connection (or reset its
/// stream) before the response head, at `info`: routine for a proxy, and not the
/// upstream's failure. The upstream request was abandoned at that moment; `waited` is how
/// long the request had been under way.
pub fn log_client_closed(method: &str, route: &str, request_id: &str, waited: std::time::Duration) {
    tracing::info!(
        method,
        route,
        request_id,
        reason = ErrorReason::ClientClosed.as_str(),
        waited = ?waited,
        "client closed the connection before the response; upstream request abandoned"
    );
}
