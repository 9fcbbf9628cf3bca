//! Header rules of a forwarding proxy, applied to a `HeaderMap` (the hyper path): the
//! rulebook of [`crate::header_rules`] (hop-by-hop removal, `X-Forwarded-*`, `Via`, request
//! ids), and the framing and Host checks that stop request smuggling.
//!
//! Below both engines: the native engine and the HTTP/1 protocol layer share its framing,
//! Host and `Content-Length` rules, and the listener its raw-head scanner.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::config::ViaName;
use crate::header_rules::{self, ConnectionOption, FieldClass};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// `x-request-id`: propagated when the client sent a sane one, generated otherwise.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static(header_rules::REQUEST_ID);
/// `x-forwarded-for`, `-proto`, `-host`: set on every forwarded request.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub use crate::header_rules::{is_hop_by_hop, new_request_id, request_id_is_sane};

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
        // Fields the `Connection` header names are hop-by-hop too (but never `Host` or
        // `Content-Length`: the rulebook's exception). `keep-alive` and `close` (the usual
        // options) name no other field, so they allocate nothing.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| header_rules::connection_options(value.as_bytes()))
            .filter_map(|option| match option {
                ConnectionOption::Names(name) => Some(name),
                ConnectionOption::Close | ConnectionOption::KeepAlive => None,
            })
            .filter(|name| header_rules::classify(name).may_be_named_by_connection())
            .filter_map(|name| HeaderName::from_bytes(name).ok())
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
        .any(|value| header_rules::te_accepts_trailers(value.as_bytes()))
}

/// Why a message's framing is refused: a request gets 400 and its connection is closed, an
/// upstream's response gets 502 and its connection is not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`: the classic CL.TE/TE.CL smuggling shape.
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthAndTransferEncoding,
    /// More than one `Content-Length` field, equal or not.
    #[error("more than one Content-Length field")]
    MultipleContentLength,
    /// A `Content-Length` that is not one plain decimal number: a list, a sign, inner
    /// whitespace, a leading zero, or too large.
    #[error("a Content-Length that is not one plain decimal number")]
    BadContentLength,
    /// A `Transfer-Encoding` other than exactly one `chunked` coding.
    #[error("a Transfer-Encoding other than exactly one chunked")]
    BadTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message, which has no transfer codings.
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
}

/// How a message's body is delimited, once its framing fields were accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither field: no body for a request, until close for a response.
    Unframed,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// The framing fields of one message head, fed field by field; [`FramingFields::framing`]
/// then applies the one framing rule both engines use, in both directions:
///
/// - `Transfer-Encoding` is accepted only as exactly one field whose value is `chunked`
///   (any case, optional whitespace around it). A list, a repeated field, `identity`, an
///   unknown or extra coding, parameters, an empty value: refused. So is any
///   `Transfer-Encoding` in an HTTP/1.0 message, and any `Transfer-Encoding` beside a
///   `Content-Length`.
/// - `Content-Length` is accepted only as exactly one field of 1 to 19 digits with no
///   leading zero ([`parse_content_length`]). A list (`5, 5`), a repeated field, a sign or
///   inner whitespace: refused.
///
/// A shape two parsers could read two ways is the whole of request smuggling; refusing every
/// shape but the plain ones leaves nothing to read two ways, at the price of some messages
/// RFC 9112 would let a recipient repair (equal repeated lengths, codings before `chunked`),
/// which no ordinary client or server sends.
#[derive(Debug, Default, Clone, Copy)]
pub struct FramingFields {
    lengths: u32,
    length: Option<u64>,
    encodings: u32,
    chunked: bool,
}

impl FramingFields {
    /// Notes one `Content-Length` field.
    #[inline]
    pub fn content_length(&mut self, value: &[u8]) {
        self.lengths = self.lengths.saturating_add(1);
        self.length = parse_content_length(value);
    }

    /// Notes one `Transfer-Encoding` field.
    #[inline]
    pub fn transfer_encoding(&mut self, value: &[u8]) {
        self.encodings = self.encodings.saturating_add(1);
        self.chunked = trim_ows(value).eq_ignore_ascii_case(b"chunked");
    }

    /// Whether any `Transfer-Encoding` field was seen.
    pub fn has_transfer_encoding(&self) -> bool {
        self.encodings > 0
    }

    /// The body's framing, or why the fields seen make it untrustworthy. `http10`: the
    /// message is HTTP/1.0.
    pub fn framing(&self, http10: bool) -> Result<BodyFraming, FramingError> {
        if self.encodings > 0 {
            return if http10 {
                Err(FramingError::TransferEncodingInHttp10)
            } else if self.lengths > 0 {
                Err(FramingError::ContentLengthAndTransferEncoding)
            } else if self.encodings > 1 || !self.chunked {
                Err(FramingError::BadTransferEncoding)
            } else {
                Ok(BodyFraming::Chunked)
            };
        }
        match (self.lengths, self.length) {
            (0, _) => Ok(BodyFraming::Unframed),
            (1, Some(length)) => Ok(BodyFraming::Length(length)),
            (1, None) => Err(FramingError::BadContentLength),
            _ => Err(FramingError::MultipleContentLength),
        }
    }
}

/// A field value without the optional whitespace (SP, HTAB) around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |at| at + 1);
    value.get(start..end).unwrap_or_default()
}

/// A `Content-Length` value: 1 to 19 ASCII digits, no leading zero (other than `0` itself),
/// nothing else (optional whitespace around it is the field parser's to trim).
///
/// Leading zeros are refused rather than repaired: RFC 9110 allows them, but no ordinary
/// sender writes them, and a parser that reads `010` as octal is exactly the disagreement
/// smuggling needs. Refusing costs one byte comparison; forwarding the value as received
/// would pass the ambiguity on.
#[inline]
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || (value.len() > 1 && value.first() == Some(&b'0')) {
        return None;
    }
    value.iter().try_fold(0u64, |n, digit| {
        let digit = digit.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Refuses ambiguous request framing (RFC 9112 §6.1, §6.3) by the rule of
/// [`FramingFields`]. hyper already rejects many malformed shapes while parsing; this is the
/// proxy's own line: a request whose length two parsers could read differently is never
/// forwarded.
pub fn check_framing(version: http::Version, headers: &HeaderMap) -> Result<(), FramingError> {
    let mut fields = FramingFields::default();
    for value in headers.get_all(header::CONTENT_LENGTH) {
        fields.content_length(value.as_bytes());
    }
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        fields.transfer_encoding(value.as_bytes());
    }
    fields
        .framing(version == http::Version::HTTP_10)
        .map(|_| ())
}

/// Why a request's `Host` is refused (RFC 9112 §3.2: 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 request without `Host`.
    #[error("an HTTP/1.1 request without Host")]
    Missing,
    /// More than one `Host` field.
    #[error("more than one Host field")]
    Multiple,
    /// A `Host` (or a target's authority) that is not `host[:port]`.
    #[error("a Host that is not host[:port]")]
    Invalid,
}

/// Whether a `Host` value (or an authority) is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC
/// 3986 §3.2.2): a bracketed IP literal or a reg-name, then optional digits after a colon.
/// Empty is valid (a request whose target has no authority sends an empty `Host`). Stricter
/// than the grammar in one way: no `,`, so no value can be read as a list of hosts; and no
/// userinfo (`@`), which RFC 9110 §4.2.4 forbids senders to generate.
#[inline]
pub fn host_is_valid(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    let (host_ok, port) = match value.first() {
        Some(b'[') => match memchr::memchr(b']', value) {
            Some(end) => {
                let literal = value.get(1..end).unwrap_or_default();
                let ok =
                    !literal.is_empty() && literal.iter().all(|b| is_host_byte(*b) || *b == b':');
                (ok, value.get(end + 1..).unwrap_or_default())
            }
            None => return false,
        },
        _ => {
            // One pass: the name's bytes are checked up to the colon (Hosts are short, a
            // plain loop beats a memchr call).
            let mut name_len = 0;
            for b in value {
                if *b == b':' {
                    break;
                }
                if !is_host_byte(*b) {
                    return false;
                }
                name_len += 1;
            }
            (name_len > 0, value.get(name_len..).unwrap_or_default())
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

/// unreserved / pct-encoded / sub-delims (RFC 3986), less `,` (see [`host_is_valid`]): a
/// table, since the Host of every request on the native path is checked byte by byte.
#[inline]
fn is_host_byte(b: u8) -> bool {
    HOST_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

// Evaluated at compile time: an index out of range fails the build, never a request.
#[allow(clippy::indexing_slicing)]
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// The host a request is for, by RFC 9112 §3.2: exactly one valid `Host` field on HTTP/1.1
/// (at most one elsewhere), and when the target carries an authority (absolute-form, or
/// HTTP/2's `:authority`), that authority, which wins over the field (§3.2.2). Returns the
/// host and whether it came from the target (and so differs from the field, if any).
pub fn forwarded_host(
    version: http::Version,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(Option<HeaderValue>, bool), HostError> {
    let mut fields = headers.get_all(header::HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err(HostError::Multiple);
    }
    match field {
        Some(value) if !host_is_valid(value.as_bytes()) => return Err(HostError::Invalid),
        None if version == http::Version::HTTP_11 => return Err(HostError::Missing),
        _ => {}
    }
    match uri.authority() {
        Some(authority) => {
            if !host_is_valid(authority.as_str().as_bytes()) {
                return Err(HostError::Invalid);
            }
            let from_target =
                field.is_none_or(|field| field.as_bytes() != authority.as_str().as_bytes());
            HeaderValue::from_str(authority.as_str())
                .map(|value| (Some(value), from_target))
                .map_err(|_| HostError::Invalid)
        }
        None => Ok((field.cloned(), false)),
    }
}

/// `Via`, the field a proxy adds to the messages it forwards (RFC 9110 §7.6.3): one element
/// per received protocol version, made once per listener from its pseudonym, so a request
/// pays a copy of a few bytes (native engine) or a reference count (hyper path).
#[derive(Debug, Clone)]
pub struct Via {
    http10: HeaderValue,
    http11: HeaderValue,
    http2: HeaderValue,
    /// The same as HTTP/1 field lines, for the native engine.
    lines: ViaName,
}

impl Via {
    /// The elements for `pseudonym` (a token, checked by config validation); `None` when it
    /// cannot be a field value.
    pub fn new(pseudonym: &ViaName) -> Option<Via> {
        let name = pseudonym.name();
        let element = |version: &str| HeaderValue::from_str(&format!("{version} {name}")).ok();
        Some(Via {
            http10: element("1.0")?,
            http11: element("1.1")?,
            http2: element("2")?,
            lines: pseudonym.clone(),
        })
    }

    /// The element for a message received as `version`.
    pub fn element(&self, version: http::Version) -> &HeaderValue {
        match version {
            http::Version::HTTP_09 | http::Version::HTTP_10 => &self.http10,
            http::Version::HTTP_2 | http::Version::HTTP_3 => &self.http2,
            _ => &self.http11,
        }
    }

    /// The HTTP/1 field lines and elements.
    pub fn h1(&self) -> &ViaName {
        &self.lines
    }
}

/// Marks an upstream answer received as HTTP/1.0, so its `Via` element says `1.0`.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedAsHttp10;

/// Appends `element` to a message's `Via` (the earlier hops' elements kept first, joined
/// into one field).
pub fn append_via(headers: &mut HeaderMap, element: &HeaderValue) {
    match headers.entry(header::VIA) {
        http::header::Entry::Vacant(entry) => {
            entry.insert(element.clone());
        }
        http::header::Entry::Occupied(mut entry) => {
            let mut joined = Vec::new();
            for value in entry.iter() {
                joined.extend_from_slice(value.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(element.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
                entry.insert(value);
            }
        }
    }
}

/// Watches the raw bytes of an HTTP/1 connection for a request head with framing fields
/// that hyper's parser resolves before the handler can see them (RFC 9112 §6.1, §6.3): both
/// `Content-Length` and `Transfer-Encoding`, or `Content-Length` more than once.
///
/// hyper resolves those shapes while parsing: with both fields it drops `Content-Length`
/// and reads the body as chunked; a repeated equal `Content-Length` it keeps once. The
/// header map the handler gets then looks ordinary, so [`check_framing`] cannot see the
/// conflict. The listener feeds every byte it reads here, and a request on a connection
/// where such a shape was seen is refused instead of forwarded.
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
    lengths: u8,
    saw_encoding: bool,
    off: bool,
    found: Option<FramingError>,
}

impl HeadScanner {
    const START: usize = 32;
    const END: usize = 10;

    /// Scans the next bytes read from the connection; the shape found, once one was seen.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<FramingError> {
        while !self.off && self.found.is_none() && !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(at) => {
                    let (line, rest) = bytes.split_at_checked(at).unwrap_or((bytes, &[]));
                    if self.len == 0 {
                        // The common case: the whole line is in this read; look at it in place.
                        let start = line.get(..Self::START).unwrap_or(line);
                        let end = line
                            .get(line.len().saturating_sub(Self::END)..)
                            .unwrap_or(line);
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
                    // `rest` starts with the '\n' memchr found.
                    bytes = rest.get(1..).unwrap_or_default();
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
        self.start
            .extend_from_slice(part.get(..room).unwrap_or(part));
        if let Some(tail) = part
            .len()
            .checked_sub(Self::END)
            .and_then(|at| part.get(at..))
        {
            self.end.clear();
            self.end.extend_from_slice(tail);
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
            self.lengths = 0;
            self.saw_encoding = false;
        } else if self.in_head {
            if let Some(colon) = memchr::memchr(b':', start) {
                // hyper refuses whitespace before the colon; matching it anyway costs nothing.
                let name = start.get(..colon).unwrap_or(start).trim_ascii_end();
                match header_rules::classify(name) {
                    FieldClass::ContentLength => self.lengths = self.lengths.saturating_add(1),
                    FieldClass::TransferEncoding => self.saw_encoding = true,
                    _ => {}
                }
                self.found = match (self.lengths, self.saw_encoding) {
                    (1.., true) => Some(FramingError::ContentLengthAndTransferEncoding),
                    (2.., false) => Some(FramingError::MultipleContentLength),
                    _ => None,
                };
            }
        }
        self.lines += 1;
    }
}

/// What the proxy-owned fields of a forwarded request are made of, besides its own fields:
/// the `HeaderMap` counterpart of [`crate::native::request::Forwarding`].
pub struct Forwarding<'a> {
    /// The client's address, the last `X-Forwarded-For` element.
    pub client_address: &'a HeaderValue,
    /// `X-Forwarded-Proto` (`http`, or `https` behind TLS).
    pub proto: &'static str,
    /// Keep the client's `X-Forwarded-Proto`/`-Host` (the listener trusts the hop in front).
    pub trust_forwarded_headers: bool,
    /// This proxy's `Via` element for the request's version (`None`: `via = false`).
    pub via: Option<&'a HeaderValue>,
    /// The host the request is for ([`forwarded_host`]), and whether it came from the
    /// target rather than the `Host` field.
    pub host: Option<HeaderValue>,
    /// See [`Forwarding::host`].
    pub host_from_target: bool,
    /// The route's `host_rewrite`, replacing the request's `Host`.
    pub host_rewrite: Option<&'a HeaderValue>,
    /// On a TLS listener with `client_subject_header`: the field and the verified subject.
    pub client_subject: Option<&'a ClientSubject>,
}

/// `[listeners.tls] client_subject_header` on one TLS connection: the field that tells the
/// upstream who the verified client is, and this client's subject (`None`: no certificate
/// was sent). A client-sent field of that name is always removed, so only the proxy can set it.
#[derive(Debug, Clone)]
pub struct ClientSubject {
    /// The configured field name.
    pub header: http::HeaderName,
    /// The verified certificate's subject (RFC 4514), when the client presented one.
    pub value: Option<HeaderValue>,
}

impl ClientSubject {
    /// Whether the client's field `name` (any case) is this one, which only the proxy sets
    /// ([`crate::header_rules::is_client_subject`]). Out of line: the native head writer
    /// asks it per field only on a listener that has the field, and stays small without.
    #[inline(never)]
    pub fn names(&self, name: &[u8]) -> bool {
        crate::header_rules::is_client_subject(name, self.header.as_str())
    }

    /// Removes the client's copies of the field and sets the verified subject, if any.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.remove(&self.header);
        if let Some(value) = &self.value {
            headers.insert(self.header.clone(), value.clone());
        }
    }
}

/// Edits a request's fields for the upstream by the rulebook ([`crate::header_rules`]),
/// the `HeaderMap` form of what the native engine writes as bytes: hop-by-hop fields and
/// those `Connection` names go first, then the proxy's own fields are made from what is
/// left — the request id (returned: the one to log), `te: trailers`, `X-Forwarded-*`,
/// `Host`, `Via`.
pub fn forward_request_headers(headers: &mut HeaderMap, forwarding: Forwarding<'_>) -> HeaderValue {
    let trailers = accepts_trailers(headers);
    remove_hop_by_hop(headers);
    let request_id = ensure_request_id(headers);
    if let Some(subject) = forwarding.client_subject {
        subject.apply(headers);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    set_forwarded(
        headers,
        forwarding.client_address,
        forwarding.proto,
        forwarding.host.as_ref(),
        forwarding.trust_forwarded_headers,
    );
    match (forwarding.host_rewrite, forwarding.host) {
        (Some(rewrite), _) => {
            headers.insert(header::HOST, rewrite.clone());
        }
        // The client's Host field is already in place; a host taken from the target
        // (HTTP/2's :authority, an absolute-form target) replaces or supplies it.
        (None, Some(host)) if forwarding.host_from_target => {
            headers.insert(header::HOST, host);
        }
        (None, _) => {}
    }
    if let Some(via) = forwarding.via {
        append_via(headers, via);
    }
    request_id
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
            // As bytes, like the native engine: a value with non-ASCII bytes is kept too.
            let mut joined = Vec::new();
            for value in entry.iter() {
                joined.extend_from_slice(value.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(client.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
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
#[path = "headers_tests.rs"]
mod tests;
