//! Header rules of a forwarding proxy: hop-by-hop removal, `X-Forwarded-*`, request ids,
//! and the framing checks that stop request smuggling.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// `x-request-id`: propagated when the client sent a sane one, generated otherwise.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-forwarded-for`, `-proto`, `-host`: set on every forwarded request.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Longest client-supplied request id we propagate; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// Whether `name` (any case) is hop-by-hop by definition (RFC 9110 §7.6.1, plus the
/// non-standard `Proxy-Connection`): `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
/// `Transfer-Encoding`, `Upgrade`. The one list both engines use; over bytes, so the native
/// engine asks it of parsed field names without building a `HeaderName`.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let eq = |want: &[u8]| name.eq_ignore_ascii_case(want);
    match name.len() {
        2 => eq(b"te"),
        7 => eq(b"upgrade"),
        10 => eq(b"connection") || eq(b"keep-alive"),
        16 => eq(b"proxy-connection"),
        17 => eq(b"transfer-encoding"),
        _ => false,
    }
}

/// Hop-by-hop names one header map can hold (each distinct name is found once).
const HOP_BY_HOP_COUNT: usize = 6;

/// Removes hop-by-hop fields ([`is_hop_by_hop`]) and every field `Connection` names. They
/// describe one connection and must not be forwarded; hyper re-frames the body on the next
/// hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry one or none of them (upstreams often send `Connection:
    // keep-alive`): one pass over the names finds which, so only those are removed.
    let mut found: [Option<HeaderName>; HOP_BY_HOP_COUNT] = Default::default();
    let mut count = 0;
    for name in headers.keys() {
        if is_hop_by_hop(name.as_str().as_bytes()) {
            if let Some(slot) = found.get_mut(count) {
                *slot = Some(name.clone());
                count += 1;
            }
        }
    }
    if count == 0 {
        return;
    }
    if found
        .iter()
        .flatten()
        .any(|name| name == header::CONNECTION)
    {
        // Fields the `Connection` header names are hop-by-hop too. `keep-alive` and `close`
        // (the usual tokens) name no other field, so they allocate nothing.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|token| {
                !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close")
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(&name);
        }
    }
    for name in found.iter().flatten() {
        headers.remove(name);
    }
}

/// Whether the client's `TE` says it accepts trailers; read before hop-by-hop removal so
/// the upstream can be told the same (we pass trailers through).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

/// Why a request's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`: the classic CL.TE/TE.CL smuggling shape.
    #[error("request has both Content-Length and Transfer-Encoding")]
    ContentLengthAndTransferEncoding,
    /// More than one `Content-Length` value.
    #[error("request has more than one Content-Length")]
    MultipleContentLength,
    /// A `Transfer-Encoding` whose last coding is not exactly `chunked`.
    #[error("request has a Transfer-Encoding other than chunked")]
    BadTransferEncoding,
}

/// Refuses ambiguous request framing (RFC 9112 §6.1, §6.3). hyper already rejects most
/// malformed shapes while parsing; this is the proxy's own line: a request whose length two
/// parsers could read differently is never forwarded.
pub fn check_framing(headers: &HeaderMap) -> Result<(), FramingError> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let has_length = lengths.next().is_some();
    if lengths.next().is_some() {
        return Err(FramingError::MultipleContentLength);
    }
    let mut encodings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if encodings.peek().is_none() {
        return Ok(());
    }
    if has_length {
        return Err(FramingError::ContentLengthAndTransferEncoding);
    }
    let last = encodings
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .last();
    match last {
        Some(token) if token.eq_ignore_ascii_case("chunked") => Ok(()),
        _ => Err(FramingError::BadTransferEncoding),
    }
}

/// Watches the raw bytes of an HTTP/1 connection for a request head that carries both
/// `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1).
///
/// hyper resolves that shape while parsing: it drops `Content-Length`, reads the body as
/// chunked and closes the connection after the response. The header map the handler gets
/// then looks like an ordinary chunked request, so [`check_framing`] cannot see the
/// conflict. The listener feeds every byte it reads here, and a request on a connection
/// where the shape was seen is refused instead of forwarded.
///
/// Bodies are not tracked: a head is the run of lines after one ending in ` HTTP/1.0` or
/// ` HTTP/1.1`, up to the next empty line. Whatever a body holds can only add text in front
/// of a real head's request line, never split its header lines, so a real head is never
/// missed; a body that itself contains such a head can cause a false alarm (400 on that
/// connection), never a miss. An h2c connection (its first line is the HTTP/2 preface) is
/// not scanned: HTTP/2 frames its messages in binary.
#[derive(Debug, Default)]
pub struct HeadScanner {
    /// The first bytes of the current line: enough for a field name and its colon.
    start: Vec<u8>,
    /// The last bytes of the current line: enough for ` HTTP/1.1\r`.
    end: Vec<u8>,
    /// Length of the current line so far.
    len: usize,
    /// Lines seen so far (to recognise the h2c preface as the first one).
    lines: usize,
    in_head: bool,
    saw_length: bool,
    saw_encoding: bool,
    off: bool,
    found: bool,
}

impl HeadScanner {
    const START: usize = 32;
    const END: usize = 10;

    /// Scans the next bytes read from the connection; true once a head with both fields was seen.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !self.off && !self.found && !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(at) => {
                    let line = &bytes[..at];
                    if self.len == 0 {
                        // The common case: the whole line is in this read; look at it in place.
                        let start = &line[..line.len().min(Self::START)];
                        let end = &line[line.len().saturating_sub(Self::END)..];
                        self.classify(start, end, line.len());
                    } else {
                        self.extend(line);
                        let start = std::mem::take(&mut self.start);
                        let end = std::mem::take(&mut self.end);
                        self.classify(&start, &end, self.len);
                        // Keep the buffers' capacity for the next split line.
                        (self.start, self.end) = (start, end);
                        self.start.clear();
                        self.end.clear();
                    }
                    self.len = 0;
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.extend(bytes);
                    bytes = &[];
                }
            }
        }
        self.found
    }

    /// Buffers the start and end of a line split across reads.
    fn extend(&mut self, part: &[u8]) {
        let room = Self::START.saturating_sub(self.start.len());
        self.start.extend_from_slice(&part[..part.len().min(room)]);
        if part.len() >= Self::END {
            self.end.clear();
            self.end.extend_from_slice(&part[part.len() - Self::END..]);
        } else {
            self.end.extend_from_slice(part);
            let excess = self.end.len().saturating_sub(Self::END);
            self.end.drain(..excess);
        }
        self.len += part.len();
    }

    /// Classifies one complete line from its first bytes, last bytes and length.
    fn classify(&mut self, start: &[u8], end: &[u8], len: usize) {
        let trimmed_end = end.strip_suffix(b"\r").unwrap_or(end);
        let empty = len == 0 || (len == 1 && end == b"\r");
        if self.lines == 0 && start.starts_with(b"PRI * HTTP/2.0") {
            self.off = true;
        } else if empty {
            self.in_head = false;
        } else if trimmed_end.ends_with(b" HTTP/1.1") || trimmed_end.ends_with(b" HTTP/1.0") {
            self.in_head = true;
            self.saw_length = false;
            self.saw_encoding = false;
        } else if self.in_head {
            if let Some(colon) = memchr::memchr(b':', start) {
                // hyper refuses whitespace before the colon; matching it anyway costs nothing.
                let name = start[..colon].trim_ascii_end();
                self.saw_length |= name.eq_ignore_ascii_case(b"content-length");
                self.saw_encoding |= name.eq_ignore_ascii_case(b"transfer-encoding");
                self.found = self.saw_length && self.saw_encoding;
            }
        }
        self.lines += 1;
    }
}

/// Returns the request id to use: the client's when it is a reasonable token, else a new UUID.
/// The header is (re)written so the upstream always sees the id we log.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&X_REQUEST_ID) {
        if request_id_is_sane(value.as_bytes())
            && headers.get_all(&X_REQUEST_ID).iter().count() == 1
        {
            return value.clone();
        }
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    let value = HeaderValue::from_str(new_request_id(&mut buffer))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    headers.insert(X_REQUEST_ID.clone(), value.clone());
    value
}

/// Whether a client's request id (when it sent exactly one) is propagated as it is: a
/// non-empty run of visible ASCII, at most 200 bytes.
pub fn request_id_is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// A new request id, written into `buffer`: a version-4 UUID from the thread-local fast
/// generator. Ids must be unique, not unpredictable, and this skips the CSPRNG the uuid crate
/// would use.
pub fn new_request_id(buffer: &mut [u8; uuid::fmt::Urn::LENGTH]) -> &str {
    let random = fastrand::u128(..).to_le_bytes();
    let id = uuid::Builder::from_random_bytes(random).into_uuid();
    id.hyphenated().encode_lower(buffer)
}

/// Appends the client address to `X-Forwarded-For` (as nginx's `$proxy_add_x_forwarded_for`
/// and Envoy do) and sets `X-Forwarded-Proto`/`-Host`, which are kept as sent only when the
/// listener trusts the hop in front of it.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    proto: &'static str,
    host: Option<&HeaderValue>,
    trust: bool,
) {
    match headers.entry(&X_FORWARDED_FOR) {
        // The common case: no proxy in front, the client's address as it is (computed once
        // per connection), no formatting.
        http::header::Entry::Vacant(entry) => {
            entry.insert(client.clone());
        }
        http::header::Entry::Occupied(mut entry) => {
            let mut joined = entry
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            joined.push_str(", ");
            joined.push_str(client.to_str().unwrap_or_default());
            if let Ok(value) = HeaderValue::from_str(&joined) {
                entry.insert(value);
            }
        }
    }
    if !(trust && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trust && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// The `X-Forwarded-For` element for a client address, made once per connection.
pub fn client_address_value(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "close"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-end-to-end", "kept"),
            ("trailer", "x-checksum"),
        ]);
        assert!(accepts_trailers(&headers));
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["trailer", "x-end-to-end"]);
    }

    #[test]
    fn framing_shapes() {
        assert_eq!(check_framing(&map(&[("content-length", "5")])), Ok(()));
        assert_eq!(
            check_framing(&map(&[("transfer-encoding", "gzip, chunked")])),
            Ok(())
        );
        assert_eq!(
            check_framing(&map(&[
                ("content-length", "5"),
                ("transfer-encoding", "chunked")
            ])),
            Err(FramingError::ContentLengthAndTransferEncoding)
        );
        assert_eq!(
            check_framing(&map(&[("content-length", "5"), ("content-length", "6")])),
            Err(FramingError::MultipleContentLength)
        );
        assert_eq!(
            check_framing(&map(&[("transfer-encoding", "chunked, identity")])),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            check_framing(&map(&[("transfer-encoding", "xchunked")])),
            Err(FramingError::BadTransferEncoding)
        );
    }

    #[test]
    fn head_scanner_finds_length_with_encoding_in_any_order_and_split_anywhere() {
        let heads: [&[u8]; 3] = [
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            // After a body that does not end in a line break: the request line is merged with it.
            b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\nTransfer-Encoding:\tchunked\nContent-Length: 1\n\n",
        ];
        for head in heads {
            for split in 0..head.len() {
                let mut scanner = HeadScanner::default();
                scanner.feed(&head[..split]);
                assert!(
                    scanner.feed(&head[split..]),
                    "missed at split {split}: {:?}",
                    String::from_utf8_lossy(head)
                );
            }
        }
    }

    #[test]
    fn head_scanner_passes_ordinary_heads_bodies_and_h2c() {
        let ordinary: [&[u8]; 4] = [
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            // Both names, but in a body line block that follows no request line.
            b"POST / HTTP/1.1\r\nContent-Length: 58\r\n\r\nnotes\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n",
            b"GET / HTTP/1.1\r\nX-Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for bytes in ordinary {
            let mut scanner = HeadScanner::default();
            assert!(!scanner.feed(bytes), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn request_id_is_kept_when_sane_and_generated_otherwise() {
        let mut headers = map(&[("x-request-id", "abc-123")]);
        assert_eq!(ensure_request_id(&mut headers), "abc-123");
        let mut headers = map(&[("x-request-id", "has space")]);
        let id = ensure_request_id(&mut headers);
        assert_eq!(id.len(), 36);
        let parsed = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(headers.get(&X_REQUEST_ID), Some(&id));
        let mut headers = HeaderMap::new();
        assert_ne!(
            ensure_request_id(&mut headers),
            ensure_request_id(&mut HeaderMap::new())
        );
    }

    #[test]
    fn forwarded_headers_overwrite_unless_trusted() {
        let host = HeaderValue::from_static("app.test");
        let mut headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut headers,
            &client_address_value("127.0.0.1".parse().unwrap()),
            "http",
            Some(&host),
            false,
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "app.test");

        let mut headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut headers,
            &client_address_value("127.0.0.1".parse().unwrap()),
            "http",
            Some(&host),
            true,
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
    }
}
