//! Protocol upgrades (WebSocket and others) on the hyper path, which serves every upgrade:
//! the native engine hands a connection whose request carries `Upgrade` over to it.
//!
//! A request the header rulebook forwards as an upgrade ([`upgrade_ask`]), or an HTTP/2
//! extended CONNECT (RFC 8441, `:protocol`), goes to the primary on a connection of its
//! own (an upgraded connection never returns to the pool), as an HTTP/1.1 request with
//! `Connection: upgrade` and the client's `Upgrade`. The upstream's answer decides:
//! - `101 Switching Protocols` (with an `Upgrade` field): passed on to the client (an
//!   extended CONNECT is answered `200`), then both connections are spliced ([`splice`])
//!   until both ends close, one fails, or the route's `upgrade_idle_timeout` passes idle;
//! - anything else: an ordinary response, passed on as the upstream sent it.
//!
//! Never mirrored: a stateful stream cannot be replayed safely (the caller counts it).

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::context::NativeUpstream;
use crate::forward::{ForwardError, UpstreamBody};
use crate::h1::exchange::ExchangeError;
use crate::header_rules::{upgrade_ask, UpgradeAsk, UpgradeProtocol};
use crate::splice::{splice, Spliced};
use crate::splices::Splices;
use crate::telemetry::metrics::{Metrics, Task, UpgradeClosed, UpgradeMeter};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Empty;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// `Sec-WebSocket-Key`: an HTTP/1.1 WebSocket handshake needs one; an RFC 8441 one has none.
const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
/// `Sec-WebSocket-Accept`: the HTTP/1.1 handshake's proof, which HTTP/2 does not use.
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
/// `Sec-WebSocket-Version`: required upstream; an HTTP/2 client sends it too, but may not.
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// Why an upgrade's answer could not be passed on (a 502).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The upstream switched protocols without saying to which.
    #[error("101 Switching Protocols without an Upgrade field")]
    NoUpgradeField,
}

/// An upgrade a request asks for, read from its head before its fields are rewritten.
#[derive(Debug)]
pub(crate) struct Asked {
    /// The `protocol` label.
    pub protocol: UpgradeProtocol,
    /// The `Upgrade` value sent upstream: the client's, or HTTP/2's `:protocol`.
    upgrade: HeaderValue,
    /// It came as an HTTP/2 extended CONNECT: answered `200`, not `101`.
    extended_connect: bool,
}

/// The upgrade `request` asks for, if the rulebook forwards one. An ordinary request costs
/// one field lookup here (HTTP/1) or a method compare (HTTP/2).
#[inline]
pub(crate) fn asked<B>(request: &Request<B>) -> Option<Asked> {
    let headers = request.headers();
    if request.version() == Version::HTTP_2 {
        if request.method() != Method::CONNECT {
            return None;
        }
        let protocol = request.extensions().get::<hyper::ext::Protocol>()?;
        return Some(Asked {
            protocol: UpgradeProtocol::of(protocol.as_str().as_bytes()),
            upgrade: HeaderValue::from_str(protocol.as_str()).ok()?,
            extended_connect: true,
        });
    }
    let upgrade = headers.get(header::UPGRADE)?;
    let bodiless = !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .all(|length| length.as_bytes() == b"0");
    let ask = upgrade_ask(
        request.version() == Version::HTTP_11,
        bodiless,
        headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
        headers
            .get_all(header::UPGRADE)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let UpgradeAsk::Forward(protocol) = ask else {
        return None;
    };
    let upgrade = match headers.get_all(header::UPGRADE).iter().count() {
        1 => upgrade.clone(),
        _ => {
            let values: Vec<&[u8]> = headers
                .get_all(header::UPGRADE)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            HeaderValue::from_bytes(&values.join(&b", "[..])).ok()?
        }
    };
    Some(Asked {
        protocol,
        upgrade,
        extended_connect: false,
    })
}

/// Where an upgraded connection goes and how it is counted and bounded.
pub(crate) struct Target<'a> {
    /// The primary, an HTTP/1 upstream.
    pub upstream: &'a NativeUpstream,
    /// The route's `upgrade_idle_timeout`.
    pub idle: Duration,
    /// For the panic counter of the splice task.
    pub metrics: Arc<Metrics>,
    /// Where the splice task runs, so the shutdown drains it.
    pub splices: &'a Arc<Splices>,
}

/// Sends the upgrade request (`parts`, its fields already rewritten by the rulebook, which
/// removed `Connection` and `Upgrade`) to the primary and answers with what it said; on a
/// switch, splices the client's connection (`client`, resolved once hyper has sent the
/// answer) with the upstream's. `meter` opens the connection's metrics when it switches.
pub(crate) async fn forward(
    asked: Asked,
    mut parts: http::request::Parts,
    client: OnUpgrade,
    target: Target<'_>,
    meter: impl FnOnce(UpgradeProtocol) -> UpgradeMeter,
) -> Result<Response<UpstreamBody>, ForwardError> {
    let upstream = target.upstream;
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| ForwardError::Failed {
        upstream: upstream.name.clone(),
        source,
    };
    let headers = &mut parts.headers;
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, asked.upgrade.clone());
    if asked.extended_connect {
        // Bridged to an HTTP/1.1 handshake: the GET it is there, with the key and version
        // the HTTP/2 form leaves out.
        parts.method = Method::GET;
        if asked.protocol == UpgradeProtocol::WebSocket {
            headers.insert(SEC_WEBSOCKET_KEY, websocket_key());
            if !headers.contains_key(SEC_WEBSOCKET_VERSION) {
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
        }
    }
    parts.version = Version::HTTP_11;
    if let Some(path) = parts.uri.path_and_query().cloned() {
        parts.uri = http::Uri::from(path);
    }
    let request = Request::from_parts(parts, Empty::<Bytes>::new());

    let conn =
        upstream.pool.connect().await.map_err(|error| {
            ForwardError::from_exchange(&upstream.name, ExchangeError::from(error))
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn.stream))
        .await
        .map_err(|error| failed(Box::new(error)))?;
    // Runs the exchange, and on a switch gives the socket to `hyper::upgrade::on`.
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(error = %error, "upgrade: upstream connection ended");
        }
    });
    let mut response =
        match tokio::time::timeout(upstream.response_timeout, sender.send_request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(failed(Box::new(error))),
            Err(_) => {
                return Err(ForwardError::Timeout {
                    upstream: upstream.name.clone(),
                    after: upstream.response_timeout,
                })
            }
        };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused: an ordinary answer, and the connection ends with it.
        crate::headers::remove_hop_by_hop(response.headers_mut());
        return Ok(response.map(UpstreamBody::Hyper));
    }
    let Some(switched_to) = response.headers().get(header::UPGRADE).cloned() else {
        return Err(failed(Box::new(UpgradeError::NoUpgradeField)));
    };
    let upstream_side = hyper::upgrade::on(&mut response);
    crate::headers::remove_hop_by_hop(response.headers_mut());
    if asked.extended_connect {
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().remove(SEC_WEBSOCKET_ACCEPT);
    } else {
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, switched_to);
    }
    let mut meter = meter(asked.protocol);
    let idle = target.idle;
    let splices = target.splices.clone();
    // Dropped where it is if the shutdown's grace period ends first: its meter then counts
    // it as `shutdown`.
    let spliced = async move {
        let (client, upstream_side) = match tokio::join!(client, upstream_side) {
            (Ok(client), Ok(upstream_side)) => (client, upstream_side),
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(error = %error, "upgrade: a side never switched");
                meter.closed(UpgradeClosed::Error);
                return;
            }
        };
        let ended = splice(
            TokioIo::new(client),
            TokioIo::new(upstream_side),
            idle,
            &meter.to_upstream,
            &meter.to_client,
        )
        .await;
        let reason = match ended {
            Ok(Spliced::Closed) => {
                tracing::debug!("upgraded connection closed");
                UpgradeClosed::Ended
            }
            Ok(Spliced::Idle) => {
                tracing::debug!(?idle, "upgraded connection idle: closed");
                UpgradeClosed::Idle
            }
            // Its HTTP/2 connection, closed at the end of the grace period.
            Err(error) if splices.cut_off() => {
                tracing::debug!(error = %error, "upgraded connection cut by the shutdown");
                UpgradeClosed::Shutdown
            }
            Err(error) => {
                tracing::debug!(error = %error, "upgraded connection failed");
                UpgradeClosed::Error
            }
        };
        meter.closed(reason);
    };
    target.splices.spawn(
        crate::supervise::task(spliced, target.metrics, Task::Connection)
            .instrument(tracing::Span::current()),
    );
    Ok(response.map(UpstreamBody::Hyper))
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1). Unpredictable
/// enough for its purpose, which is to prove the upstream read the handshake, not secrecy.
fn websocket_key() -> HeaderValue {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = fastrand::u128(..);
    let mut out = [b'='; 24];
    // 128 bits: 21 whole sextets and 2 bits left, padded to 22 digits and `==`.
    for (i, digit) in out.iter_mut().take(22).enumerate() {
        let shift = 128i32 - 6 * (i as i32 + 1);
        let sextet = if shift >= 0 {
            (value >> shift) & 0x3f
        } else {
            (value << -shift) & 0x3f
        };
        *digit = ALPHABET.get(sextet as usize).copied().unwrap_or(b'A');
    }
    HeaderValue::from_bytes(&out)
        .unwrap_or_else(|_| HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_key_is_16_bytes_of_base64() {
        let key = websocket_key();
        let text = key.to_str().unwrap();
        assert_eq!(text.len(), 24);
        assert!(text.ends_with("=="));
        assert_ne!(websocket_key(), websocket_key());
    }

    #[test]
    fn what_a_head_asks_for() {
        let request = |version, fields: &[(&str, &str)]| {
            let mut builder = Request::builder().version(version).uri("/chat");
            for (name, value) in fields {
                builder = builder.header(*name, *value);
            }
            builder.body(()).unwrap()
        };
        let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
        let asked = asked(&request(Version::HTTP_11, &ws)).unwrap();
        assert_eq!(asked.protocol, UpgradeProtocol::WebSocket);
        assert_eq!(asked.upgrade, "websocket");
        assert!(!asked.extended_connect);
        assert!(super::asked(&request(Version::HTTP_10, &ws)).is_none());
        let h2c = [
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ];
        assert!(super::asked(&request(Version::HTTP_11, &h2c)).is_none());
        let body = [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("content-length", "5"),
        ];
        assert!(super::asked(&request(Version::HTTP_11, &body)).is_none());
        let two = [
            ("connection", "upgrade"),
            ("upgrade", "foo/1"),
            ("upgrade", "bar"),
        ];
        let asked = super::asked(&request(Version::HTTP_11, &two)).unwrap();
        assert_eq!(asked.protocol, UpgradeProtocol::Other);
        assert_eq!(asked.upgrade, "foo/1, bar");
        assert!(super::asked(&request(Version::HTTP_11, &[])).is_none());
    }
}
