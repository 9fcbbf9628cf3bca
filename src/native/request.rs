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
//! by the rulebook in [`crate::header_rules`], the one the hyper path's `HeaderMap` editor
//! applies too; the framing and Host rules of [`crate::headers`] decide what is
//! plain enough to serve here.

use crate::config::ViaName;
use crate::connection::ConnectionInfo;
use crate::context::Context;
use crate::h1::exchange::{parse_length, put};
use crate::header_rules::{self, classify, ConnectionOption, FieldClass};
use crate::headers::{self, ClientSubject, Via};
use crate::message::fields::{offset_in, FieldSpan};
use crate::router::{routing_host, strip_port};
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

/// How many fields' classes [`Seen::scan`] keeps for the writer: more than a request
/// usually has; past it the writer classifies the name itself.
const CLASSES_KEPT: usize = 32;

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
    /// A `Connection` option names other fields: the writer leaves those out.
    names_fields: bool,
    /// The class of each of the first [`CLASSES_KEPT`] fields, so the writer's pass over
    /// them does not classify their names again.
    classes: [FieldClass; CLASSES_KEPT],
    /// A field that only the hyper path handles (Transfer-Encoding, Expect, Upgrade, a
    /// `Connection` naming other fields), as the reason for the handover.
    unusual: Option<Handover>,
}

impl<'b> Seen<'b> {
    /// One pass over the head's fields. When a `Connection` option names other fields, a
    /// second pass leaves those out: by the rulebook they are gone before the proxy reads
    /// the rest (the native engine hands such heads over, so this is never the hot path).
    fn scan(fields: &[httparse::Header<'b>]) -> Seen<'b> {
        let mut seen = Seen::default();
        for (index, field) in fields.iter().enumerate() {
            let class = classify(field.name.as_bytes());
            if let Some(kept) = seen.classes.get_mut(index) {
                *kept = class;
            }
            seen.note(class, field.value);
        }
        if !seen.names_fields {
            return seen;
        }
        let mut kept = Seen::default();
        for field in fields {
            let name = field.name.as_bytes();
            if !named_by_connection(fields, name) {
                kept.note(classify(name), field.value);
            }
        }
        // The handover's reason is the first unusual field as sent, named or not.
        kept.unusual = seen.unusual;
        kept.classes = seen.classes;
        kept
    }

    /// The class of field `index` called `name`: kept by the scan, or found again.
    #[inline(always)]
    fn class(&self, index: usize, name: &[u8]) -> FieldClass {
        match self.classes.get(index) {
            Some(class) => *class,
            None => classify(name),
        }
    }

    // Inlined into the one pass over the head: a call per field costs more than the match.
    #[inline(always)]
    fn note(&mut self, class: FieldClass, value: &'b [u8]) {
        match class {
            FieldClass::Te => self.trailers |= header_rules::te_accepts_trailers(value),
            FieldClass::Host => {
                self.host = Some(value);
                self.hosts += 1;
            }
            FieldClass::Connection => {
                for option in header_rules::connection_options(value) {
                    match option {
                        ConnectionOption::Close => self.close = true,
                        ConnectionOption::KeepAlive => {}
                        ConnectionOption::Names(_) => {
                            self.names_fields = true;
                            self.unusual.get_or_insert(Handover::ConnectionOptions);
                        }
                    }
                }
            }
            FieldClass::RequestId => {
                self.request_id = Some(value);
                self.request_ids += 1;
            }
            FieldClass::ContentLength => {
                self.content_length = Some(value);
                self.content_lengths += 1;
            }
            FieldClass::XForwardedHost => self.forwarded_host = true,
            FieldClass::XForwardedProto => self.forwarded_proto = true,
            FieldClass::Expect => {
                self.unusual.get_or_insert(Handover::Expect);
            }
            FieldClass::Upgrade => {
                self.unusual.get_or_insert(Handover::ConnectionOptions);
            }
            FieldClass::TransferEncoding => {
                self.unusual.get_or_insert(Handover::TransferEncoding);
            }
            FieldClass::EndToEnd
            | FieldClass::HopByHop
            | FieldClass::XForwardedFor
            | FieldClass::Via => {}
        }
    }
}

/// Whether a `Connection` field of the head names the field `name` (the rulebook's
/// [`header_rules::named_by_connection`] over parsed fields).
fn named_by_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    header_rules::named_by_connection(
        fields
            .iter()
            .filter(|field| classify(field.name.as_bytes()) == FieldClass::Connection)
            .map(|field| field.value),
        name,
    )
}

/// A request head as the native engine frames it, before routing: the head's length, the
/// method and target, the body's length (by its one plain `Content-Length`, or 0), and the
/// one valid `Host`. Anything else was handed over before this exists.
struct Framed<'h, 'b> {
    head_len: usize,
    method: &'b str,
    target: &'b str,
    body_len: u64,
    host: &'b str,
    fields: &'h [httparse::Header<'b>],
    seen: Seen<'b>,
}

/// Why [`frame`] found no head to serve.
enum Unframed {
    /// The head is not complete yet.
    Partial,
    /// The hyper path must handle it.
    Fallback(Handover),
}

/// The native engine's framing decision on the head at the start of `buf`: [`Framed`], or
/// why there is none (a partial head, or a handover to the hyper path).
/// The one place the native engine decides how a request is framed; [`framing`] exposes it.
#[inline(always)]
fn frame<'h, 'b>(
    buf: &'b [u8],
    fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
    max_headers: usize,
) -> Result<Framed<'h, 'b>, Unframed> {
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.starts_with(H2C_PREFACE_START) => {
            return Err(Unframed::Fallback(Handover::H2c))
        }
        Ok(httparse::Status::Partial) => return Err(Unframed::Partial),
        Err(_) if buf.starts_with(H2C_PREFACE_START) => {
            return Err(Unframed::Fallback(Handover::H2c))
        }
        Err(_) => return Err(Unframed::Fallback(Handover::Unparsable)),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Unframed::Fallback(Handover::Unparsable));
    };
    if version != 1 {
        return Err(Unframed::Fallback(Handover::Http10));
    }
    if parsed.headers.len() > max_headers {
        // The hyper path answers 431 with the listener's limit.
        return Err(Unframed::Fallback(Handover::Unparsable));
    }
    // Origin-form the hyper path reads as sent; anything stranger is the hyper path's call.
    if !target.starts_with('/') || !read_as_sent(target.as_bytes()) || method == "CONNECT" {
        return Err(Unframed::Fallback(Handover::Other));
    }
    let fields: &'h mut [httparse::Header<'b>] = std::mem::take(&mut parsed.headers);
    let fields: &'h [httparse::Header<'b>] = fields;
    let seen = Seen::scan(fields);
    let body_len = match (seen.content_lengths, seen.content_length) {
        (0, _) => 0,
        (1, Some(value)) => match parse_length(value) {
            Some(len) => len,
            None => return Err(Unframed::Fallback(Handover::Other)),
        },
        _ => return Err(Unframed::Fallback(Handover::Other)),
    };
    // Exactly one valid, non-empty Host; the hyper path answers every other shape (400,
    // or routing without a host for an empty one).
    let host = match (seen.hosts, seen.host) {
        (1, Some(host)) if !host.is_empty() && headers::host_is_valid(host) => {
            match std::str::from_utf8(host) {
                Ok(host) => host,
                Err(_) => return Err(Unframed::Fallback(Handover::Other)),
            }
        }
        _ => return Err(Unframed::Fallback(Handover::Other)),
    };
    if let Some(reason) = seen.unusual {
        return Err(Unframed::Fallback(reason));
    }
    Ok(Framed {
        head_len,
        method,
        target,
        body_len,
        host,
        fields,
        seen,
    })
}

/// Whether the hyper path takes `target` as sent: visible ASCII only, and none of the bytes
/// the `http` crate's URI parser refuses or cuts at (`#`, `<`, `>` anywhere, `` ` `` in the
/// path, `"` in the query). The native engine serves only such targets, so both engines
/// forward and route the same one; for the others hyper answers 400 or drops a fragment
/// (`#` has no place in a request target, RFC 9112 §3.2).
#[inline(always)]
fn read_as_sent(target: &[u8]) -> bool {
    let mut in_query = false;
    for &b in target {
        match b {
            b'?' => in_query = true,
            b'#' | b'<' | b'>' => return false,
            b'`' if !in_query => return false,
            b'"' if in_query => return false,
            _ if !b.is_ascii_graphic() => return false,
            _ => {}
        }
    }
    true
}

/// The native engine's framing decision on `buf`, as [`framing`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// The native engine serves it: a head of `head_len` bytes, then a body of `body_len`.
    Framed {
        /// Length of the head.
        head_len: usize,
        /// The method as sent.
        method: String,
        /// The origin-form target (path and query) as sent.
        target: String,
        /// The body's length (`Content-Length`, or 0).
        body_len: u64,
    },
    /// The head is not complete yet.
    Partial,
    /// The hyper path must handle it, and why.
    Fallback(Handover),
}

/// How the native engine frames the request at the start of `buf` (listener limit
/// `max_headers`), by the same code [`prepare`] runs before routing: for the differential
/// fuzz target and property test that hold it to hyper's reading of the same bytes.
pub fn framing(buf: &[u8], max_headers: usize) -> Framing {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    match frame(buf, &mut fields, max_headers) {
        Ok(framed) => Framing::Framed {
            head_len: framed.head_len,
            method: framed.method.to_string(),
            target: framed.target.to_string(),
            body_len: framed.body_len,
        },
        Err(Unframed::Fallback(reason)) => Framing::Fallback(reason),
        Err(Unframed::Partial) => Framing::Partial,
    }
}

/// Parses the head at the start of `buf` and, when the native engine serves it, writes the
/// upstream's request head into `out` (cleared first).
pub fn prepare(
    buf: &[u8],
    context: &Context,
    connection: &ConnectionInfo,
    max_headers: usize,
    out: &mut Vec<u8>,
) -> Prepared {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let Framed {
        head_len,
        method,
        target,
        body_len,
        host,
        fields,
        seen,
    } = match frame(buf, &mut fields, max_headers) {
        Ok(framed) => framed,
        Err(Unframed::Partial) => return Prepared::Partial,
        Err(Unframed::Fallback(reason)) => return Prepared::Fallback(reason),
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let Some(found) = context
        .router()
        .find(Some(&routing_host(strip_port(host))), path)
    else {
        return Prepared::Fallback(Handover::NoRoute);
    };
    let Some((upstream, host_rewrite)) = context.native_target(found.route) else {
        return Prepared::Fallback(Handover::Other);
    };

    let mirrors = context.mirror().route_mirrors(found.route);
    let mut head = HeadWriter {
        out,
        fields: match mirrors {
            true => Vec::with_capacity(fields.len() + 6),
            false => Vec::new(),
        },
        record: mirrors,
        source: buf,
        run: 0..0,
    };
    head.out.clear();
    let method_text = 0..method.len();
    let target_range = method_text.end + 1..method_text.end + 1 + target.len();
    match canonical_request_line(buf, method, target) {
        Some(line) => head.out.extend_from_slice(line),
        None => {
            head.out.extend_from_slice(method.as_bytes());
            head.out.push(b' ');
            head.out.extend_from_slice(target.as_bytes());
            head.out.extend_from_slice(b" HTTP/1.1\r\n");
        }
    }
    let forwarding = Forwarding {
        client_address: connection.client_address.as_bytes(),
        proto: connection.proto,
        trust_forwarded_headers: connection.trust_forwarded_headers,
        via: connection.via.as_ref().map(Via::h1),
        host_rewrite,
        client_subject: connection.client_subject.as_deref(),
    };
    let request_id = head.forwarded_fields(fields, &seen, &forwarding);
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

/// What the proxy-owned fields of the upstream head are made of, besides the client's head.
pub struct Forwarding<'a> {
    /// The client's address, the last `X-Forwarded-For` element.
    pub client_address: &'a [u8],
    /// `X-Forwarded-Proto` (`http`, or `https` behind TLS).
    pub proto: &'a str,
    /// Keep the client's `X-Forwarded-Proto`/`-Host` (the listener trusts the hop in front).
    pub trust_forwarded_headers: bool,
    /// The listener's `Via` lines (`None`: `via = false`).
    pub via: Option<&'a ViaName>,
    /// The route's `host_rewrite`, replacing the client's `Host`.
    pub host_rewrite: Option<&'a [u8]>,
    /// On a TLS listener with `client_subject_header`: the field and the verified subject
    /// (the client's own field of that name is dropped).
    pub client_subject: Option<&'a ClientSubject>,
}

/// Writes the upstream head's field lines for the client's `fields`, parsed from `source`,
/// into `out` (appended; no request line, no final empty line) and returns where the
/// request id is in `out`: the byte-level form of [`crate::header_rules`], exactly what
/// [`prepare`] writes after the request line. Public so the property test can hold it
/// against the `HeaderMap` form.
pub fn write_fields(
    source: &[u8],
    fields: &[httparse::Header<'_>],
    forwarding: &Forwarding<'_>,
    out: &mut Vec<u8>,
) -> Range<usize> {
    let seen = Seen::scan(fields);
    let mut head = HeadWriter {
        out,
        fields: Vec::new(),
        record: false,
        source,
        run: 0..0,
    };
    head.forwarded_fields(fields, &seen, forwarding)
}

/// The client's request line when it is exactly what the upstream gets
/// (`METHOD SP target SP HTTP/1.1 CRLF`, nothing before it): copied as one piece.
fn canonical_request_line<'b>(source: &'b [u8], method: &str, target: &str) -> Option<&'b [u8]> {
    const VERSION: &[u8] = b" HTTP/1.1\r\n";
    let target_start = method.len() + 1;
    let line_end = target_start + target.len() + VERSION.len();
    let canonical = offset_in(source, method.as_bytes()) == Some(0)
        && source.get(method.len()) == Some(&b' ')
        && offset_in(source, target.as_bytes()) == Some(target_start)
        && source.get(line_end - VERSION.len()..line_end) == Some(VERSION);
    canonical.then(|| source.get(..line_end)).flatten()
}

/// Where the field line of `name` and `value` is in `source`, when it is written exactly as
/// the upstream gets it (`name: value CRLF`): such lines are copied as they stand.
fn canonical_field_line(source: &[u8], name: &[u8], value: &[u8]) -> Option<Range<usize>> {
    let start = offset_in(source, name)?;
    let end = start + name.len() + 2 + value.len() + 2;
    let line = source.get(start..end)?;
    // The value is the part of this line after `name: ` (compared as addresses: httparse
    // gave both as slices of `source`), and the line ends right after it.
    let after_name = line.get(name.len()..)?;
    let canonical = after_name.starts_with(b": ")
        && std::ptr::eq(value.as_ptr(), after_name.as_ptr().wrapping_add(2))
        && line.ends_with(b"\r\n");
    canonical.then_some(start..end)
}

/// The upstream head being written, and (when `record`) where each field line went.
struct HeadWriter<'o, 's> {
    out: &'o mut Vec<u8>,
    fields: Vec<FieldSpan>,
    record: bool,
    /// The client's head the fields were parsed from.
    source: &'s [u8],
    /// Field lines of `source` kept as they stand and not yet copied into `out`: adjacent
    /// ones go in one copy, not one per line.
    run: Range<usize>,
}

impl HeadWriter<'_, '_> {
    /// The field lines of the upstream head by the rulebook ([`crate::header_rules`]): the
    /// client's end-to-end fields in order (names keep their case), then the fields the
    /// proxy owns. Returns where the request id went.
    // Inlined: the whole of the head's fields, on every request.
    #[inline(always)]
    fn forwarded_fields(
        &mut self,
        fields: &[httparse::Header<'_>],
        seen: &Seen<'_>,
        forwarding: &Forwarding<'_>,
    ) -> Range<usize> {
        let trust = forwarding.trust_forwarded_headers;
        let via = forwarding.via;
        // Fields a `Connection` option names are gone before anything else is decided.
        let named_away = |name: &[u8]| seen.names_fields && named_by_connection(fields, name);
        let mut forwarded_for = false;
        let mut client_via = false;
        for (index, field) in fields.iter().enumerate() {
            let name = field.name.as_bytes();
            let value = field.value;
            let class = seen.class(index, name);
            if named_away(name) {
                continue;
            }
            match class {
                // Only the proxy sets the verified client's subject.
                FieldClass::EndToEnd
                    if forwarding
                        .client_subject
                        .is_some_and(|subject| subject.names(name)) => {}
                FieldClass::EndToEnd | FieldClass::ContentLength | FieldClass::Expect => {
                    self.keep(name, value);
                }
                FieldClass::Host => match forwarding.host_rewrite {
                    Some(rewritten) => self.put(name, rewritten),
                    None => self.keep(name, value),
                },
                FieldClass::XForwardedProto | FieldClass::XForwardedHost if trust => {
                    self.keep(name, value);
                }
                FieldClass::XForwardedProto | FieldClass::XForwardedHost => {}
                FieldClass::XForwardedFor => forwarded_for = true,
                FieldClass::Via if via.is_some() => client_via = true,
                FieldClass::Via => self.keep(name, value),
                FieldClass::Connection
                | FieldClass::Te
                | FieldClass::TransferEncoding
                | FieldClass::Upgrade
                | FieldClass::HopByHop
                | FieldClass::RequestId => {}
            }
        }
        self.copy_run();
        // Every `X-Forwarded-For` line joined into one, the client's address appended.
        let line_start = self.out.len();
        self.out.extend_from_slice(b"x-forwarded-for: ");
        if forwarded_for {
            self.join(fields, FieldClass::XForwardedFor, &named_away);
        }
        self.out.extend_from_slice(forwarding.client_address);
        self.out.extend_from_slice(b"\r\n");
        self.recorded(line_start, b"x-forwarded-for".len());
        if !(trust && seen.forwarded_proto) {
            match forwarding.proto {
                // The two values there are, each as one whole line.
                "http" => self.put_line(b"x-forwarded-proto: http\r\n", b"x-forwarded-proto"),
                "https" => self.put_line(b"x-forwarded-proto: https\r\n", b"x-forwarded-proto"),
                proto => self.put(b"x-forwarded-proto", proto.as_bytes()),
            }
        }
        if !(trust && seen.forwarded_host) {
            self.put(b"x-forwarded-host", seen.host.unwrap_or_default());
        }
        if seen.trailers {
            self.put(b"te", b"trailers");
        }
        if let Some(subject) = forwarding.client_subject {
            self.client_subject(subject);
        }
        if let Some(via) = via {
            let line_start = self.out.len();
            if client_via {
                // Earlier hops' elements first, in order, then ours: one field.
                self.out.extend_from_slice(b"via: ");
                self.join(fields, FieldClass::Via, &named_away);
                self.out.extend_from_slice(via.element(1));
                self.out.extend_from_slice(b"\r\n");
            } else {
                self.out.extend_from_slice(via.line(1));
            }
            self.recorded(line_start, b"via".len());
        }
        let line_start = self.out.len();
        self.out.extend_from_slice(b"x-request-id: ");
        let id_start = self.out.len();
        match seen.request_id {
            Some(id) if seen.request_ids == 1 && header_rules::request_id_is_sane(id) => {
                self.out.extend_from_slice(id);
            }
            _ => {
                self.out
                    .extend_from_slice(&header_rules::new_request_id_bytes());
            }
        }
        let request_id = id_start..self.out.len();
        self.out.extend_from_slice(b"\r\n");
        self.recorded(line_start, b"x-request-id".len());
        request_id
    }

    /// Appends the values of every kept field of `class`, each followed by `, `.
    fn join(
        &mut self,
        fields: &[httparse::Header<'_>],
        class: FieldClass,
        named_away: &impl Fn(&[u8]) -> bool,
    ) {
        for field in fields {
            let name = field.name.as_bytes();
            if classify(name) == class && !named_away(name) {
                self.out.extend_from_slice(field.value);
                self.out.extend_from_slice(b", ");
            }
        }
    }

    /// Keeps the client's field line unchanged: copied with its neighbours when it is
    /// written as the upstream gets it, else written anew.
    // Inlined: called per field on every request, mirrored or not.
    #[inline(always)]
    fn keep(&mut self, name: &[u8], value: &[u8]) {
        let Some(line) = canonical_field_line(self.source, name, value) else {
            return self.put(name, value);
        };
        if self.run.end != line.start {
            self.copy_run();
            self.run.start = line.start;
        }
        if self.record {
            // Where the line lands in `out` once the run is copied.
            let line_start = self.out.len() + (line.start - self.run.start);
            self.fields.extend(FieldSpan::of_line(
                line_start,
                name.len(),
                line_start + line.len(),
            ));
        }
        self.run.end = line.end;
    }

    /// Copies the pending run of kept lines into `out`.
    #[inline(always)]
    fn copy_run(&mut self) {
        if self.run.is_empty() {
            return;
        }
        if let Some(lines) = self.source.get(self.run.clone()) {
            self.out.extend_from_slice(lines);
        }
        self.run = 0..0;
    }

    /// Appends one whole field `line` of the field `name` (after the lines kept so far).
    #[inline(always)]
    fn put_line(&mut self, line: &[u8], name: &[u8]) {
        self.copy_run();
        let line_start = self.out.len();
        self.out.extend_from_slice(line);
        self.recorded(line_start, name.len());
    }

    /// Writes the verified client's subject, when there is one. Out of line: only a TLS
    /// listener with `client_subject_header` gets here, and the plaintext head writer stays
    /// as small as it was.
    #[cold]
    #[inline(never)]
    fn client_subject(&mut self, subject: &ClientSubject) {
        if let Some(value) = &subject.value {
            self.put(subject.header.as_str().as_bytes(), value.as_bytes());
        }
    }

    /// Appends one `name: value` field line (after the lines kept so far).
    // Inlined: called per field on every request, mirrored or not.
    #[inline(always)]
    fn put(&mut self, name: &[u8], value: &[u8]) {
        self.copy_run();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens() {
        let mut seen = Seen::default();
        seen.note(FieldClass::Connection, b"keep-alive, Close");
        assert!(seen.close && seen.unusual.is_none());
        let mut seen = Seen::default();
        seen.note(FieldClass::Connection, b"keep-alive, x-secret");
        assert_eq!(seen.unusual, Some(Handover::ConnectionOptions));
    }

    /// Lines copied as they stand (runs of canonical lines) and lines written anew (padded
    /// values, no space after the colon, a rewritten Host) are recorded where they landed:
    /// the recorded fields are the written head's fields, in order.
    #[test]
    fn recorded_spans_match_the_written_lines_whichever_way_they_were_written() {
        let heads: [&[u8]; 4] = [
            b"GET /a?b HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\nX-One: 1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost:app.test\r\nAccept:  */*  \r\nX-One: 1\r\nX-Two: 2\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX-One: 1\r\nConnection: x-two\r\nX-Two: 2\r\nHost: app.test\r\nX-Three:\t3\r\n\r\n",
            b"GET /a HTTP/1.1\nHost: app.test\nX-One: 1\n\n",
        ];
        for (case, source) in heads.iter().enumerate() {
            for host_rewrite in [None, Some(&b"internal.test"[..])] {
                let mut fields = [httparse::EMPTY_HEADER; 16];
                let mut parsed = httparse::Request::new(&mut fields);
                assert!(parsed.parse(source).unwrap().is_complete(), "case {case}");
                let seen = Seen::scan(parsed.headers);
                let mut out = b"GET /a HTTP/1.1\r\n".to_vec();
                let mut head = HeadWriter {
                    out: &mut out,
                    fields: Vec::new(),
                    record: true,
                    source,
                    run: 0..0,
                };
                let forwarding = Forwarding {
                    client_address: b"192.0.2.1",
                    proto: "http",
                    trust_forwarded_headers: false,
                    via: None,
                    host_rewrite,
                    client_subject: None,
                };
                head.forwarded_fields(parsed.headers, &seen, &forwarding);
                let spans = std::mem::take(&mut head.fields);
                out.extend_from_slice(b"\r\n");
                let recorded: Vec<(Vec<u8>, Vec<u8>)> = crate::message::fields::Fields::from_spans(
                    bytes::Bytes::from(out.clone()),
                    spans,
                )
                .iter()
                .map(|(name, value)| (name.to_vec(), value.to_vec()))
                .collect();
                let mut fields = [httparse::EMPTY_HEADER; 16];
                let mut written = httparse::Request::new(&mut fields);
                assert!(written.parse(&out).unwrap().is_complete(), "case {case}");
                let written: Vec<(Vec<u8>, Vec<u8>)> = written
                    .headers
                    .iter()
                    .map(|field| (field.name.as_bytes().to_vec(), field.value.to_vec()))
                    .collect();
                assert_eq!(recorded, written, "case {case}, rewrite {host_rewrite:?}");
            }
        }
    }
}
