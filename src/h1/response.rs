//! Reading the upstream's response head and writing the head the client receives.
//!
//! The client gets the upstream's status line and end-to-end fields as sent, without the
//! hop-by-hop ones (RFC 9110 §7.6.1, including the fields `Connection` names), with a `Date`
//! when the upstream sent none (as hyper's server adds one), `transfer-encoding: chunked`
//! when the proxy re-frames the body, `via` with the listener's element appended, and
//! `connection: close` when the client connection ends after this exchange.
//!
//! A head whose framing fields break the rule of [`FramingFields`] (the one both engines
//! apply to requests too) is refused: the client gets 502 and the connection is dropped.

use crate::config::ViaName;
use crate::header_rules::{self, connection_options, is_hop_by_hop, ConnectionOption};
use crate::headers::{BodyFraming, FramingError, FramingFields};
use crate::message::fields::{offset_in, Fields};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::mem::MaybeUninit;
use std::time::SystemTime;

/// Header fields one response may have; more is a 502 (an upstream of ours never sends that).
const MAX_FIELDS: usize = 128;

/// How the response body is delimited on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed upstream response head.
#[derive(Debug)]
pub struct Head {
    /// Its length in the upstream buffer.
    pub len: usize,
    /// The status code.
    pub status: u16,
    /// How its body is delimited.
    pub framing: Framing,
    /// The upstream connection may be reused after the body.
    pub keep_alive: bool,
    /// The minor version the upstream answered with (HTTP/1.0 or 1.1), for `Via`.
    pub minor: u8,
}

/// What parsing the upstream buffer gave.
pub enum Parsed {
    /// A final response head; the client head was written.
    Final(Head),
    /// An interim (1xx) response of this length, to skip.
    Interim(usize),
    /// More bytes are needed.
    Partial,
}

/// Why a response head is refused (the client gets 502).
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x, or malformed.
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    /// Framing fields that could be read two ways (the rule of [`FramingFields`]).
    #[error("response framing refused: {0}")]
    Framing(#[source] FramingError),
}

/// Parses the response head at the start of `buf`; for a final one, writes the client's
/// head into `out` (cleared first), and when `keep` is given, stores the end-to-end fields
/// there too (a mirrored request keeps them for comparison: one parse serves both).
/// `is_head`: the request was HEAD; `close`: the client connection closes after this
/// response; `via`: the listener's `Via` pseudonym, appended to the client's head.
pub fn parse(
    buf: &[u8],
    is_head: bool,
    close: bool,
    via: Option<&ViaName>,
    out: &mut Vec<u8>,
    keep: Option<&mut Fields>,
) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, close, via, Some(out), keep, None)
}

/// Parses the response head at the start of `buf` for its status and framing, storing its
/// end-to-end fields in `keep` (a client that keeps the answer itself, such as the shadow
/// client).
pub fn inspect(buf: &[u8], is_head: bool, keep: &mut Fields) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, false, None, None, Some(keep), None)
}

/// Parses the response head at the start of `buf` for its status and framing, storing its
/// end-to-end fields in `map` (a response handed to hyper, which wants a `HeaderMap`; the
/// values share one copy of the head).
pub fn inspect_map(buf: &[u8], is_head: bool, map: &mut HeaderMap) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, false, None, None, None, Some(map))
}

/// Whether `buf` starts with a complete final answer (interim ones skipped), or with bytes
/// that can never become one (malformed, or a head over `max_head` bytes). Lets an upload
/// stop as soon as the upstream has answered; the head itself is then read by [`parse`].
pub fn answered(mut buf: &[u8], max_head: usize) -> bool {
    loop {
        match parse_head(buf, false, false, None, None, None, None) {
            Ok(Parsed::Interim(len)) => buf = buf.get(len..).unwrap_or_default(),
            Ok(Parsed::Final(_)) | Err(_) => return true,
            Ok(Parsed::Partial) => return buf.len() >= max_head,
        }
    }
}

fn parse_head(
    buf: &[u8],
    is_head: bool,
    close: bool,
    via: Option<&ViaName>,
    out: Option<&mut Vec<u8>>,
    keep: Option<&mut Fields>,
    map: Option<&mut HeaderMap>,
) -> Result<Parsed, HeadError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(error) => {
            return Err(HeadError::Malformed(match error {
                httparse::Error::TooManyHeaders => "too many header fields",
                httparse::Error::Version => "not HTTP/1.x",
                httparse::Error::Status => "bad status code",
                _ => "unparsable",
            }))
        }
    };
    let (Some(version), Some(status)) = (parsed.version, parsed.code) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    // httparse reads any three digits; a code under 100 is no status (hyper refuses it too).
    if status < 100 {
        return Err(HeadError::Malformed("bad status code"));
    }
    if (100..200).contains(&status) {
        if status == 101 {
            // Nothing asked for a protocol switch.
            return Err(HeadError::Malformed("unexpected 101 Switching Protocols"));
        }
        return Ok(Parsed::Interim(len));
    }

    // Framing (RFC 9112 §6.3) and connection options, in one pass.
    let mut framing_fields = FramingFields::default();
    let mut connection_close = version == 0;
    let mut connection_keep_alive = false;
    let mut has_date = false;
    let mut named_by_connection = false;
    let mut has_via = false;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            framing_fields.content_length(field.value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing_fields.transfer_encoding(field.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in connection_options(field.value) {
                match option {
                    ConnectionOption::Close => connection_close = true,
                    ConnectionOption::KeepAlive => connection_keep_alive = true,
                    ConnectionOption::Names(_) => named_by_connection = true,
                }
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        } else if name.eq_ignore_ascii_case(b"via") {
            has_via = true;
        }
    }
    // The same rule as for requests, whatever the status: a head whose framing fields two
    // parsers could read differently is refused (502), its connection never reused, even
    // where this status has no body to frame.
    let body_framing = framing_fields
        .framing(version == 0)
        .map_err(HeadError::Framing)?;
    let framing = if is_head || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match body_framing {
            BodyFraming::Chunked => Framing::Chunked,
            BodyFraming::Length(0) => Framing::Empty,
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Unframed => Framing::UntilClose,
        }
    };
    // HTTP/1.0 upstreams keep a connection only when they say so; a response that ends at
    // close leaves the connection unusable.
    let keep_alive = !connection_close
        && (version == 1 || connection_keep_alive)
        && framing != Framing::UntilClose;
    let rechunk = matches!(framing, Framing::Chunked | Framing::UntilClose);
    let head = Head {
        len,
        status,
        framing,
        keep_alive,
        minor: version,
    };
    // httparse's length is within `buf`; `get` keeps that an argument, not a panic.
    let head_bytes = buf.get(..len).unwrap_or(buf);
    if let Some(keep) = keep {
        *keep = end_to_end_fields(head_bytes, parsed.headers, named_by_connection);
    }
    if let Some(map) = map {
        end_to_end_map(head_bytes, parsed.headers, named_by_connection, map);
    }
    let Some(out) = out else {
        return Ok(Parsed::Final(head));
    };

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(parsed.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if !is_end_to_end(parsed.headers, name, named_by_connection) {
            continue;
        }
        // A body re-framed as chunked must not also announce a length; Via is written
        // joined with ours below.
        if (rechunk && name.eq_ignore_ascii_case(b"content-length"))
            || (via.is_some() && name.eq_ignore_ascii_case(b"via"))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    if rechunk {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if let Some(via) = via {
        if has_via {
            // Earlier hops' elements first, then ours (received as HTTP/1.`version`): one
            // field.
            out.extend_from_slice(b"via: ");
            for field in parsed.headers.iter() {
                if field.name.eq_ignore_ascii_case("via") {
                    out.extend_from_slice(field.value);
                    out.extend_from_slice(b", ");
                }
            }
            out.extend_from_slice(via.element(version));
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(via.line(version));
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Parsed::Final(head))
}

/// The end-to-end fields of a parsed head (hop-by-hop ones, and those `Connection` names,
/// removed), as the hyper path's capture and shadow client keep them.
fn end_to_end_fields(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    named_by_connection: bool,
) -> Fields {
    Fields::from_parsed(
        head,
        Bytes::copy_from_slice(head),
        fields.len(),
        fields
            .iter()
            .filter(|field| is_end_to_end(fields, field.name.as_bytes(), named_by_connection))
            .map(|field| (field.name.as_bytes(), field.value)),
    )
}

/// The end-to-end fields of a parsed head into `map` (cleared first), values sharing one
/// copy of the head.
fn end_to_end_map(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    named_by_connection: bool,
    map: &mut HeaderMap,
) {
    map.clear();
    map.reserve(fields.len());
    let shared = Bytes::copy_from_slice(head);
    for field in fields {
        let name = field.name.as_bytes();
        if !is_end_to_end(fields, name, named_by_connection) {
            continue;
        }
        // An empty value needs no bytes, wherever httparse points it; any other is a slice
        // of `head` (one that is not is skipped, not trusted).
        let value = match field.value.is_empty() {
            true => Some(HeaderValue::from_static("")),
            false => offset_in(head, field.value).and_then(|start| {
                HeaderValue::from_maybe_shared(shared.slice(start..start + field.value.len())).ok()
            }),
        };
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name), value) {
            map.append(name, value);
        }
    }
}

/// Whether a field of a parsed head is end-to-end: not hop-by-hop by definition, nor named
/// by its `Connection` field (looked up only when `named_by_connection`, i.e. it names any).
#[inline]
fn is_end_to_end(fields: &[httparse::Header<'_>], name: &[u8], named_by_connection: bool) -> bool {
    !(is_hop_by_hop(name) || (named_by_connection && named_in_connection(fields, name)))
}

pub(crate) fn named_in_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    header_rules::named_by_connection(
        fields
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case("connection"))
            .map(|field| field.value),
        name,
    )
}

/// Appends the current time as an IMF-fixdate, formatted at most once a second per thread.
pub fn push_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != second {
            *cache = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cache.1.as_bytes());
    });
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
