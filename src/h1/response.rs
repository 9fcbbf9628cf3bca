//! Reading the upstream's response head and writing the head the client receives.
//!
//! The client gets the upstream's status line and end-to-end fields as sent, without the
//! hop-by-hop ones (RFC 9110 §7.6.1, including the fields `Connection` names), with a `Date`
//! when the upstream sent none (as hyper's server adds one), `transfer-encoding: chunked`
//! when the proxy re-frames the body, and `connection: close` when the client connection
//! ends after this exchange.

use super::request::parse_length;
use crate::proxy::headers::is_hop_by_hop;
use crate::shadow::fields::{offset_in, Fields};
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
}

/// Parses the response head at the start of `buf`; for a final one, writes the client's
/// head into `out` (cleared first), and when `keep` is given, stores the end-to-end fields
/// there too (a mirrored request keeps them for comparison: one parse serves both).
/// `is_head`: the request was HEAD; `close`: the client connection closes after this
/// response.
pub fn parse(
    buf: &[u8],
    is_head: bool,
    close: bool,
    out: &mut Vec<u8>,
    keep: Option<&mut Fields>,
) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, close, Some(out), keep, None)
}

/// Parses the response head at the start of `buf` for its status and framing, storing its
/// end-to-end fields in `keep` (a client that keeps the answer itself, such as the shadow
/// client).
pub fn inspect(buf: &[u8], is_head: bool, keep: &mut Fields) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, false, None, Some(keep), None)
}

/// Parses the response head at the start of `buf` for its status and framing, storing its
/// end-to-end fields in `map` (a response handed to hyper, which wants a `HeaderMap`; the
/// values share one copy of the head).
pub fn inspect_map(buf: &[u8], is_head: bool, map: &mut HeaderMap) -> Result<Parsed, HeadError> {
    parse_head(buf, is_head, false, None, None, Some(map))
}

/// Whether `buf` starts with a complete final answer (interim ones skipped), or with bytes
/// that can never become one (malformed, or a head over `max_head` bytes). Lets an upload
/// stop as soon as the upstream has answered; the head itself is then read by [`parse`].
pub fn answered(mut buf: &[u8], max_head: usize) -> bool {
    loop {
        match parse_head(buf, false, false, None, None, None) {
            Ok(Parsed::Interim(len)) => buf = &buf[len..],
            Ok(Parsed::Final(_)) | Err(_) => return true,
            Ok(Parsed::Partial) => return buf.len() >= max_head,
        }
    }
}

fn parse_head(
    buf: &[u8],
    is_head: bool,
    close: bool,
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
    let mut lengths: Option<u64> = None;
    let mut length_conflict = false;
    let mut chunked = false;
    let mut other_coding = false;
    let mut connection_close = version == 0;
    let mut connection_keep_alive = false;
    let mut has_date = false;
    let mut named_by_connection = false;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match (parse_length(field.value), lengths) {
                (Some(n), None) => lengths = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => length_conflict = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = field
                .value
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|token| !token.is_empty());
            chunked = matches!(last, Some(token) if token.eq_ignore_ascii_case(b"chunked"));
            other_coding |= !chunked;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    connection_keep_alive = true;
                } else if !token.is_empty() {
                    named_by_connection = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        }
    }
    let transfer_encoding = chunked || other_coding;
    let framing = if is_head || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        if chunked && !other_coding {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if length_conflict {
        return Err(HeadError::Malformed("conflicting Content-Length"));
    } else {
        match lengths {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    // HTTP/1.0 upstreams keep a connection only when they say so; a response that carried
    // both framings, or ends at close, leaves the connection unusable.
    let keep_alive = !connection_close
        && (version == 1 || connection_keep_alive)
        && framing != Framing::UntilClose
        && !(transfer_encoding && lengths.is_some());
    let rechunk = matches!(framing, Framing::Chunked | Framing::UntilClose);
    let head = Head {
        len,
        status,
        framing,
        keep_alive,
    };
    if let Some(keep) = keep {
        *keep = end_to_end_fields(&buf[..len], parsed.headers, named_by_connection);
    }
    if let Some(map) = map {
        end_to_end_map(&buf[..len], parsed.headers, named_by_connection, map);
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
        // A body re-framed as chunked must not also announce a length.
        if rechunk && name.eq_ignore_ascii_case(b"content-length") {
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
fn is_end_to_end(fields: &[httparse::Header<'_>], name: &[u8], named_by_connection: bool) -> bool {
    !(is_hop_by_hop(name) || (named_by_connection && named_in_connection(fields, name)))
}

pub(crate) fn named_in_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    fields
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("connection"))
        .flat_map(|field| field.value.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|token| token.eq_ignore_ascii_case(name))
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
mod tests {
    use super::*;

    fn head(raw: &[u8], is_head: bool) -> (Head, String) {
        let mut out = Vec::new();
        match parse(raw, is_head, false, &mut out, None) {
            Ok(Parsed::Final(head)) => (head, String::from_utf8(out).unwrap()),
            _ => panic!("not a final head"),
        }
    }

    #[test]
    fn kept_fields_are_the_end_to_end_ones_as_sent() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
            Content-Type: text/plain\r\nVary: a\r\nVary: b\r\nX-Empty:\r\n\
            Content-Length: 2\r\n\r\nhi";
        let mut kept = Fields::default();
        assert!(matches!(
            inspect(raw, false, &mut kept),
            Ok(Parsed::Final(Head { len, .. })) if len == raw.len() - 2
        ));
        let names: Vec<&[u8]> = kept.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                &b"Content-Type"[..],
                b"Vary",
                b"Vary",
                b"X-Empty",
                b"Content-Length"
            ]
        );
        let vary: Vec<&[u8]> = kept.get_all("vary").collect();
        assert_eq!(vary, [b"a", b"b"]);
        assert_eq!(kept.get("x-empty"), Some(&b""[..]));
        assert_eq!(kept.get("content-length"), Some(&b"2"[..]));

        // The client's head and the kept fields come from one parse.
        let mut out = Vec::new();
        let mut kept = Fields::default();
        assert!(parse(raw, false, false, &mut out, Some(&mut kept)).is_ok());
        assert_eq!(kept.len(), 5);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("Content-Type: text/plain\r\n"));
    }

    #[test]
    fn a_map_holds_the_same_end_to_end_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
            Content-Type: text/plain\r\nVary: a\r\nVary: b\r\nX-Empty:\r\n\
            Content-Length: 2\r\n\r\nhi";
        let mut map = HeaderMap::new();
        map.insert("x-stale", HeaderValue::from_static("from before"));
        assert!(matches!(
            inspect_map(raw, false, &mut map),
            Ok(Parsed::Final(Head { len, .. })) if len == raw.len() - 2
        ));
        let mut kept = Fields::default();
        assert!(inspect(raw, false, &mut kept).is_ok());
        assert_eq!(map, kept.to_map());
        assert_eq!(map.len(), 5);
        assert!(map.get("x-stale").is_none() && map.get("x-hop").is_none());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (h, _) = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false);
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let (h, _) = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true);
        assert_eq!(h.framing, Framing::Empty);
        let (h, out) = head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(out.contains("transfer-encoding: chunked\r\n"));
        let (h, out) = head(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert!(out.contains("transfer-encoding: chunked\r\n"));
        let (h, _) = head(
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, Framing::Empty);
        let (h, _) = head(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false);
        assert!(!h.keep_alive);
        let (h, out) = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(!out.contains("content-length"));
        let mut out = Vec::new();
        assert!(parse(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            false,
            false,
            &mut out,
            None
        )
        .is_err());
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_date_added() {
        let (_, out) = head(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(out.contains("X-End: 2\r\n"));
        assert!(!out.to_ascii_lowercase().contains("x-hop"));
        assert!(!out.to_ascii_lowercase().contains("keep-alive"));
        assert!(out.contains("date: "));
    }

    #[test]
    fn interim_responses_are_skipped_and_101_refused() {
        let mut out = Vec::new();
        let raw = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert!(matches!(
            parse(raw, false, false, &mut out, None),
            Ok(Parsed::Interim(n)) if n == raw.len() - b"HTTP/1.1 200 OK\r\n".len()
        ));
        assert!(parse(
            b"HTTP/1.1 101 Switching\r\n\r\n",
            false,
            false,
            &mut out,
            None
        )
        .is_err());
    }
}
