//! gRPC at the live edge: which requests are gRPC calls, the deadline a call carries
//! (`grpc-timeout`), and the gRPC-shaped answer for a call shadowtap itself fails.
//!
//! A gRPC client understands failures only as a `grpc-status`: a bare 502 or 504 reaches its
//! application as "protocol error" or UNKNOWN. So, as Envoy does, a call shadowtap cannot
//! forward is answered `200 OK` with `content-type: application/grpc` and the status in the
//! headers of an empty response (gRPC's "Trailers-Only" form): UNAVAILABLE (14) when the
//! upstream could not be reached or failed, DEADLINE_EXCEEDED (4) when it did not answer in
//! time, and the code the gRPC spec gives for the HTTP status otherwise.
//!
//! Everything else of a call (streamed bodies both ways, trailers, `grpc-*` headers) passes
//! through the hyper engine untouched, as any HTTP/2 exchange does.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::ProxyError;
use crate::forward::ForwardError;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use std::time::Duration;

/// The `grpc-status` codes shadowtap answers with itself (the gRPC spec's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// The request could not be judged a valid call (a framing or Host error).
    Internal = 13,
    /// No route, or a method the proxy does not forward.
    Unimplemented = 12,
    /// The upstream could not be reached, or failed: a client may retry.
    Unavailable = 14,
    /// The upstream did not answer within the call's deadline or the route's timeout.
    DeadlineExceeded = 4,
    /// The client's own request stream stopped: its call is cancelled.
    Cancelled = 1,
}

impl Code {
    /// The header value.
    pub fn as_header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Code::Internal => "13",
            Code::Unimplemented => "12",
            Code::Unavailable => "14",
            Code::DeadlineExceeded => "4",
            Code::Cancelled => "1",
        })
    }
}

/// Whether a request is a gRPC call: its `content-type` is `application/grpc` or one of its
/// `+proto`, `+json`, `-web` forms. One header lookup and a prefix test.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| starts_with_ignore_case(value.as_bytes(), b"application/grpc"))
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The deadline a call carries in `grpc-timeout` (the gRPC spec's `TimeoutValue TimeoutUnit`:
/// at most 8 ASCII digits, then one of `H M S m u n`). A malformed value is ignored, as the
/// spec leaves it to the server: the route's own timeout still applies.
pub fn deadline(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get("grpc-timeout")?.as_bytes())
}

/// Parses a `grpc-timeout` value (see [`deadline`]).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The `grpc-status` for a call that failed in shadowtap: by cause for upstream failures
/// (timeouts are DEADLINE_EXCEEDED, as Envoy answers them), else by the gRPC spec's table
/// from the HTTP status the same failure would have had.
pub fn code_for(error: &ProxyError) -> Code {
    match error {
        ProxyError::Forward(ForwardError::Timeout { .. }) => Code::DeadlineExceeded,
        ProxyError::Forward(
            ForwardError::Unreachable { .. }
            | ForwardError::Tls { .. }
            | ForwardError::Failed { .. },
        ) => Code::Unavailable,
        ProxyError::Forward(
            ForwardError::ClientTimeout { .. } | ForwardError::ClientAborted { .. },
        ) => Code::Cancelled,
        ProxyError::NoRoute | ProxyError::Unsupported(_) => Code::Unimplemented,
        ProxyError::Framing(_) | ProxyError::Host(_) => Code::Internal,
    }
}

/// The head of the gRPC-shaped answer to a failed call: `200`, `content-type:
/// application/grpc`, `grpc-status` and `grpc-message` (the plain-text message the HTTP
/// answer would carry, percent-encoded as the spec asks). Its body is empty.
pub fn error_head(error: &ProxyError, headers: &mut HeaderMap) -> StatusCode {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", code_for(error).as_header());
    if let Ok(message) = HeaderValue::from_str(&percent_encode(error.client_message().trim_end())) {
        headers.insert("grpc-message", message);
    }
    StatusCode::OK
}

/// The gRPC spec's `grpc-message` encoding: printable ASCII but `%` as is, the rest as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_by_unit_and_refuse_malformed_values() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        for bad in [
            &b""[..],
            b"m",
            b"123",
            b"123456789m",
            b"12x",
            b"-1S",
            b"1 S",
            b"\xff",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn grpc_content_types_are_recognised_in_any_case() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_grpc(&headers)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("Application/GRPC-web"));
        assert!(!with("application/json"));
        assert!(!with("application/grp"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%c\né"), "a b%25c%0A%C3%A9");
    }
}
