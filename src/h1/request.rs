//! Reading a client's request head and writing the head the upstream receives.
//!
//! [`prepare`] parses the head in place (httparse, no allocation) and decides whether the
//! native engine may serve it. It serves only the plain shape: HTTP/1.1, an origin-form
//! target, one `Host`, a body framed by at most one plain `Content-Length`, no `Expect`, no
//! `Upgrade`, `Connection` naming only `keep-alive`/`close`, a matched route and an HTTP/1
//! upstream. Anything else returns [`Prepared::Fallback`] before a byte is consumed, and the
//! connection goes to the hyper path, which has the answer for every other shape (400 for
//! smuggling shapes, 431 for huge heads, chunked uploads, HTTP/1.0, h2c).
//!
//! The upstream head is written straight from the parsed slices: the request line and the
//! end-to-end fields as the client sent them (names keep their case), then the fields the
//! proxy owns — `x-request-id`, `x-forwarded-for/-proto/-host`, `te: trailers` and `via` —
//! by the same rules as [`crate::proxy::headers`], whose framing and Host rules also decide
//! what is plain enough to serve here.

use crate::proxy::headers::{self, Via};
use crate::proxy::{routing_host, strip_port, ConnectionInfo, Proxy};
use crate::shadow::fields::FieldSpan;
use crate::telemetry::metrics::{Handover, METHODS};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Header fields one request may have on the native path; a request with more goes to the
/// hyper path, which applies the listener's own `max_headers`.
const MAX_FIELDS: usize = 128;

/// The start of the HTTP/2 connection preface (`PRI * HTTP/2.0`).
const H2C_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// A request head the native engine will serve, reduced to what the exchange needs.
pub struct Request {
    /// Length of the head in the client buffer (the body, if any, follows).
    pub head_len: usize,
    /// `Content-Length` (0 without one).
    pub body_len: u64,
    /// Index into [`METHODS`].
    pub method: usize,
    /// `HEAD`: the response has no body whatever its framing says.
    pub is_head: bool,
    /// Safe to send again on another connection when a pooled one turns out closed.
    pub retryable: bool,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    /// The client sent `TE: trailers`: response trailers are passed on.
    pub trailers: bool,
    /// `(route, label)` for metrics.
    pub route: (usize, usize),
    /// The route's upstream.
    pub upstream: usize,
    /// The route mirrors (the mirror's plan decides whether this request is sampled).
    pub mirrors: bool,
    /// Where the method is in the upstream head (for logs).
    pub method_text: Range<usize>,
    /// Where the request id is in the upstream head (for logs).
    pub request_id: Range<usize>,
    /// Where the target (path and query) is in the upstream head.
    pub target: Range<usize>,
    /// Where each field is in the upstream head, recorded as it was written — only when
    /// the route mirrors (a sampled request keeps its fields without parsing them again).
    pub fields: Vec<FieldSpan>,
}

/// What [`prepare`] found in the buffer.
pub enum Prepared {
    /// A complete head the native engine serves; the upstream head was written out.
    Native(Request),
    /// The head is not complete yet.
    Partial,
    /// A head (or bytes) the hyper path must handle, and why.
    Fallback(Handover),
}

/// Fields the proxy looks at or owns, found in one pass over the head.
#[derive(Default)]
struct Seen<'b> {
    host: Option<&'b [u8]>,
    hosts: usize,
    content_length: Option<&'b [u8]>,
    content_lengths: usize,
    request_id: Option<&'b [u8]>,
    request_ids: usize,
    forwarded_proto: bool,
    forwarded_host: bool,
    close: bool,
    trailers: bool,
    /// A field that only the hyper path handles (Transfer-Encoding, Expect, Upgrade, a
    /// `Connection` naming other fields), as the reason for the handover.
    unusual: Option<Handover>,
}

/// How the upstream head treats a client field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Copied as sent.
    Keep,
    /// Hop-by-hop or owned by the proxy: not copied (the proxy may write its own).
    Drop,
    Host,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    /// Joined with this proxy's element when `Via` is on, else kept.
    Via,
}

fn classify(name: &[u8]) -> (Field, Option<Special>) {
    // Most fields are none of these: their length alone tells.
    let eq = |want: &[u8]| name.eq_ignore_ascii_case(want);
    match name.len() {
        2 if eq(b"te") => (Field::Drop, Some(Special::Te)),
        4 if eq(b"host") => (Field::Host, Some(Special::Host)),
        6 if eq(b"expect") => (Field::Drop, Some(Special::Unusual(Handover::Expect))),
        7 if eq(b"upgrade") => (
            Field::Drop,
            Some(Special::Unusual(Handover::ConnectionOptions)),
        ),
        10 if eq(b"connection") => (Field::Drop, Some(Special::Connection)),
        10 if eq(b"keep-alive") => (Field::Drop, None),
        12 if eq(b"x-request-id") => (Field::Drop, Some(Special::RequestId)),
        14 if eq(b"content-length") => (Field::Keep, Some(Special::ContentLength)),
        15 if eq(b"x-forwarded-for") => (Field::XForwardedFor, None),
        16 if eq(b"proxy-connection") => (Field::Drop, None),
        16 if eq(b"x-forwarded-host") => (Field::XForwardedHost, Some(Special::ForwardedHost)),
        17 if eq(b"x-forwarded-proto") => (Field::XForwardedProto, Some(Special::ForwardedProto)),
        3 if eq(b"via") => (Field::Via, None),
        17 if eq(b"transfer-encoding") => (
            Field::Drop,
            Some(Special::Unusual(Handover::TransferEncoding)),
        ),
        _ => (Field::Keep, None),
    }
}

#[derive(Clone, Copy)]
enum Special {
    Te,
    Host,
    Connection,
    RequestId,
    ContentLength,
    ForwardedHost,
    ForwardedProto,
    Unusual(Handover),
}

impl<'b> Seen<'b> {
    fn note(&mut self, special: Special, value: &'b [u8]) {
        match special {
            Special::Te => self.trailers |= has_token(value, b"trailers"),
            Special::Host => {
                self.host = Some(value);
                self.hosts += 1;
            }
            Special::Connection => {
                for token in tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                        self.unusual.get_or_insert(Handover::ConnectionOptions);
                    }
                }
            }
            Special::RequestId => {
                self.request_id = Some(value);
                self.request_ids += 1;
            }
            Special::ContentLength => {
                self.content_length = Some(value);
                self.content_lengths += 1;
            }
            Special::ForwardedHost => self.forwarded_host = true,
            Special::ForwardedProto => self.forwarded_proto = true,
            Special::Unusual(reason) => {
                self.unusual.get_or_insert(reason);
            }
        }
    }
}

/// The comma-separated tokens of a field value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

fn has_token(value: &[u8], want: &[u8]) -> bool {
    tokens(value).any(|token| token.eq_ignore_ascii_case(want))
}

/// A `Content-Length` value by the one rule both engines use
/// ([`headers::parse_content_length`]).
pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    headers::parse_content_length(value)
}

/// Parses the head at the start of `buf` and, when the native engine serves it, writes the
/// upstream's request head into `out` (cleared first).
pub fn prepare(
    buf: &[u8],
    proxy: &Proxy,
    connection: &ConnectionInfo,
    max_headers: usize,
    out: &mut Vec<u8>,
) -> Prepared {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.starts_with(H2C_PREFACE_START) => {
            return Prepared::Fallback(Handover::H2c)
        }
        Ok(httparse::Status::Partial) => return Prepared::Partial,
        Err(_) if buf.starts_with(H2C_PREFACE_START) => return Prepared::Fallback(Handover::H2c),
        Err(_) => return Prepared::Fallback(Handover::Unparsable),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Prepared::Fallback(Handover::Unparsable);
    };
    if version != 1 {
        return Prepared::Fallback(Handover::Http10);
    }
    if parsed.headers.len() > max_headers {
        // The hyper path answers 431 with the listener's limit.
        return Prepared::Fallback(Handover::Unparsable);
    }
    // Origin-form with plain visible ASCII only; anything stranger is the hyper path's call.
    if !target.starts_with('/')
        || !target.bytes().all(|b| b.is_ascii_graphic())
        || method == "CONNECT"
    {
        return Prepared::Fallback(Handover::Other);
    }
    let mut seen = Seen::default();
    for field in parsed.headers.iter() {
        if let (_, Some(special)) = classify(field.name.as_bytes()) {
            seen.note(special, field.value);
        }
    }
    let body_len = match (seen.content_lengths, seen.content_length) {
        (0, _) => 0,
        (1, Some(value)) => match parse_length(value) {
            Some(len) => len,
            None => return Prepared::Fallback(Handover::Other),
        },
        _ => return Prepared::Fallback(Handover::Other),
    };
    // Exactly one valid, non-empty Host; the hyper path answers every other shape (400,
    // or routing without a host for an empty one).
    let host = match (seen.hosts, seen.host) {
        (1, Some(host)) if !host.is_empty() && headers::host_is_valid(host) => {
            match std::str::from_utf8(host) {
                Ok(host) => host,
                Err(_) => return Prepared::Fallback(Handover::Other),
            }
        }
        _ => return Prepared::Fallback(Handover::Other),
    };
    if let Some(reason) = seen.unusual {
        return Prepared::Fallback(reason);
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let Some(found) = proxy
        .router()
        .find(Some(&routing_host(strip_port(host))), path)
    else {
        return Prepared::Fallback(Handover::NoRoute);
    };
    let Some((upstream, host_rewrite)) = proxy.native_target(found.route) else {
        return Prepared::Fallback(Handover::Other);
    };

    let mirrors = proxy.mirror().route_mirrors(found.route);
    let mut head = HeadWriter {
        out,
        fields: match mirrors {
            true => Vec::with_capacity(parsed.headers.len() + 6),
            false => Vec::new(),
        },
        record: mirrors,
    };
    head.out.clear();
    head.out.extend_from_slice(method.as_bytes());
    let method_text = 0..method.len();
    head.out.push(b' ');
    head.out.extend_from_slice(target.as_bytes());
    let target_range = method_text.end + 1..head.out.len();
    head.out.extend_from_slice(b" HTTP/1.1\r\n");
    let trust = connection.trust_forwarded_headers;
    let mut forwarded_for = false;
    let via = connection.via.as_ref().map(Via::h1);
    let mut client_via = false;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        let value = field.value;
        match classify(name).0 {
            Field::Keep => head.put(name, value),
            Field::Drop => {}
            Field::Host => head.put(name, host_rewrite.unwrap_or(value)),
            Field::XForwardedProto | Field::XForwardedHost if trust => head.put(name, value),
            Field::XForwardedProto | Field::XForwardedHost => {}
            Field::XForwardedFor => forwarded_for = true,
            Field::Via if via.is_some() => client_via = true,
            Field::Via => head.put(name, value),
        }
    }
    // Every `X-Forwarded-For` line joined into one, the client's address appended.
    let line_start = head.out.len();
    head.out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for {
        for field in parsed.headers.iter() {
            if classify(field.name.as_bytes()).0 == Field::XForwardedFor {
                head.out.extend_from_slice(field.value);
                head.out.extend_from_slice(b", ");
            }
        }
    }
    head.out
        .extend_from_slice(connection.client_address.as_bytes());
    head.out.extend_from_slice(b"\r\n");
    head.recorded(line_start, b"x-forwarded-for".len());
    if !(trust && seen.forwarded_proto) {
        head.put(b"x-forwarded-proto", connection.proto.as_bytes());
    }
    if !(trust && seen.forwarded_host) {
        head.put(b"x-forwarded-host", host.as_bytes());
    }
    if seen.trailers {
        head.put(b"te", b"trailers");
    }
    if let Some(via) = via {
        let line_start = head.out.len();
        if client_via {
            // Earlier hops' elements first, in order, then ours: one field.
            head.out.extend_from_slice(b"via: ");
            for field in parsed.headers.iter() {
                if classify(field.name.as_bytes()).0 == Field::Via {
                    head.out.extend_from_slice(field.value);
                    head.out.extend_from_slice(b", ");
                }
            }
            head.out.extend_from_slice(via.element(1));
            head.out.extend_from_slice(b"\r\n");
        } else {
            head.out.extend_from_slice(via.line(1));
        }
        head.recorded(line_start, b"via".len());
    }
    let line_start = head.out.len();
    head.out.extend_from_slice(b"x-request-id: ");
    let id_start = head.out.len();
    match seen.request_id {
        Some(id) if seen.request_ids == 1 && headers::request_id_is_sane(id) => {
            head.out.extend_from_slice(id);
        }
        _ => {
            let mut buffer = uuid::Uuid::encode_buffer();
            head.out
                .extend_from_slice(headers::new_request_id(&mut buffer).as_bytes());
        }
    }
    let request_id = id_start..head.out.len();
    head.out.extend_from_slice(b"\r\n");
    head.recorded(line_start, b"x-request-id".len());
    head.out.extend_from_slice(b"\r\n");

    // The last entry is "other": a method not among the known ones.
    let method_index = METHODS
        .iter()
        .take(METHODS.len() - 1)
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1);
    Prepared::Native(Request {
        head_len,
        body_len,
        method: method_index,
        is_head: method == "HEAD",
        retryable: body_len == 0 && matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE"),
        close: seen.close,
        trailers: seen.trailers,
        route: (found.route, found.label),
        upstream,
        mirrors,
        method_text,
        request_id,
        target: target_range,
        fields: head.fields,
    })
}

/// The upstream head being written, and (when `record`) where each field line went.
struct HeadWriter<'o> {
    out: &'o mut Vec<u8>,
    fields: Vec<FieldSpan>,
    record: bool,
}

impl HeadWriter<'_> {
    /// Appends one `name: value` field line.
    // Inlined: called per field on every request, mirrored or not.
    #[inline(always)]
    fn put(&mut self, name: &[u8], value: &[u8]) {
        let line_start = self.out.len();
        put(self.out, name, value);
        self.recorded(line_start, name.len());
    }

    /// Notes the field line written from `line_start` to the end of the head.
    #[inline(always)]
    fn recorded(&mut self, line_start: usize, name_len: usize) {
        if self.record {
            self.fields
                .extend(FieldSpan::of_line(line_start, name_len, self.out.len()));
        }
    }
}

/// Appends one `name: value` field line.
#[inline]
pub(super) fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens() {
        let mut seen = Seen::default();
        seen.note(Special::Connection, b"keep-alive, Close");
        assert!(seen.close && seen.unusual.is_none());
        let mut seen = Seen::default();
        seen.note(Special::Connection, b"keep-alive, x-secret");
        assert_eq!(seen.unusual, Some(Handover::ConnectionOptions));
    }
}
