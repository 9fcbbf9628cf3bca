//! The header rulebook: which class each request field belongs to, and what forwarding does
//! with each class. Both engines apply it: the native engine's byte-level head writer
//! (`native/request.rs`) and the hyper path's `HeaderMap` editor (`headers.rs`); a
//! property test (`tests/prop_header_rules.rs`) runs both forms on the same generated heads
//! and requires the same fields.
//!
//! | class | fields | forwarding does |
//! |---|---|---|
//! | hop-by-hop | `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade` | removes them (RFC 9110 §7.6.1); `TE: trailers` is passed on as `te: trailers`; an upgrade [`upgrade_ask`] forwards is sent on with its own `Connection: upgrade` |
//! | named by `Connection` | any other field a `Connection` option names, except `Host` and `Content-Length` | removes them before the proxy reads the rest |
//! | framing | `Content-Length` (`Transfer-Encoding` above) | kept; the framing rule decides whether the head is forwarded at all |
//! | host | `Host` | kept, or replaced by the route's `host_rewrite` |
//! | forwarded | `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `Via` | `-For` joined into one field with the client's address last; `-Proto`/`-Host` kept only when the listener trusts the hop in front, else replaced; `Via` joined with this proxy's element when `via` is on, else kept |
//! | request id | `x-request-id` | the client's kept when it sent exactly one sane id, else a new one; always written |
//! | expect | `Expect` | kept (the hyper path answers `100-continue`; the native engine hands such requests over) |
//! | client subject | a TLS listener's `client_subject_header` (configured) | the client's removed; the verified subject written ([`is_client_subject`]) |
//! | end-to-end | everything else | kept as sent, in order |
//!
//! This module sits at the bottom of the house: it imports neither the engines nor the proxy,
//! so both may import it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// `x-request-id`, lowercase, as the proxy writes it.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-supplied request id we propagate; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// The class of a request field by its name (any case): what forwarding does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldClass {
    /// Not in the table: end-to-end, copied as sent.
    #[default]
    EndToEnd,
    /// `Connection`: hop-by-hop, and its options name more hop-by-hop fields.
    Connection,
    /// `TE`: hop-by-hop; its `trailers` token is passed on as `te: trailers`.
    Te,
    /// `Transfer-Encoding`: hop-by-hop framing (the next hop is framed afresh).
    TransferEncoding,
    /// `Upgrade`: hop-by-hop; a protocol switch is the hyper path's business.
    Upgrade,
    /// `Keep-Alive`, `Proxy-Connection`: hop-by-hop and nothing more.
    HopByHop,
    /// `Content-Length`: framing that travels with the message.
    ContentLength,
    /// `Host`: what the request was routed by.
    Host,
    /// `Expect`: end-to-end, but `100-continue` is answered by the hyper path.
    Expect,
    /// `X-Forwarded-For`: joined, the client's address appended.
    XForwardedFor,
    /// `X-Forwarded-Proto`: kept only from a trusted hop.
    XForwardedProto,
    /// `X-Forwarded-Host`: kept only from a trusted hop.
    XForwardedHost,
    /// `Via`: joined with this proxy's element when `via` is on.
    Via,
    /// `x-request-id`: the id the proxy logs, always written.
    RequestId,
}

impl FieldClass {
    /// Whether the field is hop-by-hop by definition (RFC 9110 §7.6.1, plus the
    /// non-standard `Proxy-Connection`).
    #[inline]
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            FieldClass::Connection
                | FieldClass::Te
                | FieldClass::TransferEncoding
                | FieldClass::Upgrade
                | FieldClass::HopByHop
        )
    }

    /// Whether a `Connection` option naming the field removes it: any end-to-end field but
    /// `Host` and `Content-Length`, which stay (the request was already routed by one and
    /// is framed by the other, so a client cannot make the next hop read it differently).
    /// Hop-by-hop fields go anyway, and are read before they go (`TE: trailers`, the
    /// `Connection` options themselves), so naming them changes nothing.
    #[inline]
    pub fn may_be_named_by_connection(self) -> bool {
        !(self.is_hop_by_hop() || matches!(self, FieldClass::Host | FieldClass::ContentLength))
    }
}

/// The class of the field `name` (any case). Most fields are none of the table's: their
/// length and first letter alone tell, so this costs a compare or two per field on the
/// native engine, and a table name is confirmed by one branch-free compare.
#[inline]
pub fn classify(name: &[u8]) -> FieldClass {
    let Some(first) = name.first() else {
        return FieldClass::EndToEnd;
    };
    let eq = |want: &[u8]| same_name(name, want);
    match (name.len(), first.to_ascii_lowercase()) {
        (2, b't') if eq(b"te") => FieldClass::Te,
        (3, b'v') if eq(b"via") => FieldClass::Via,
        (4, b'h') if eq(b"host") => FieldClass::Host,
        (6, b'e') if eq(b"expect") => FieldClass::Expect,
        (7, b'u') if eq(b"upgrade") => FieldClass::Upgrade,
        (10, b'c') if eq(b"connection") => FieldClass::Connection,
        (10, b'k') if eq(b"keep-alive") => FieldClass::HopByHop,
        (12, b'x') if eq(b"x-request-id") => FieldClass::RequestId,
        (14, b'c') if eq(b"content-length") => FieldClass::ContentLength,
        (15, b'x') if eq(b"x-forwarded-for") => FieldClass::XForwardedFor,
        (16, b'p') if eq(b"proxy-connection") => FieldClass::HopByHop,
        (16, b'x') if eq(b"x-forwarded-host") => FieldClass::XForwardedHost,
        (17, b'x') if eq(b"x-forwarded-proto") => FieldClass::XForwardedProto,
        (17, b't') if eq(b"transfer-encoding") => FieldClass::TransferEncoding,
        _ => FieldClass::EndToEnd,
    }
}

/// Whether the client's field `name` (any case) is the listener's `client_subject_header`
/// (`header`, lowercase as `http::HeaderName` keeps it): only the proxy sets that field, to
/// the verified client certificate's subject, so a client-sent one is always removed, on
/// both engines. The name is configured, so it is no row of [`classify`]'s table; the
/// config refuses the table's names for it, so it is always an end-to-end field's.
#[inline]
pub fn is_client_subject(name: &[u8], header: &str) -> bool {
    same_name(name, header.as_bytes())
}

/// `name` equals the lowercase `want` in any case. Without an early exit, so the compiler
/// unrolls it over the fixed-length names of the table instead of looping byte by byte.
#[inline(always)]
fn same_name(name: &[u8], want: &[u8]) -> bool {
    name.len() == want.len()
        && name
            .iter()
            .zip(want)
            .fold(0u8, |differ, (a, b)| differ | (a.to_ascii_lowercase() ^ b))
            == 0
}

/// Whether `name` (any case) is hop-by-hop by definition ([`FieldClass::is_hop_by_hop`]).
/// Its own dispatch over the hop-by-hop rows only: a field of another class (every
/// `Content-Length`, `Host`) is told apart by length and first letter, with no compare.
#[inline]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let Some(first) = name.first() else {
        return false;
    };
    let eq = |want: &[u8]| same_name(name, want);
    match (name.len(), first.to_ascii_lowercase()) {
        (2, b't') => eq(b"te"),
        (7, b'u') => eq(b"upgrade"),
        (10, b'c') => eq(b"connection"),
        (10, b'k') => eq(b"keep-alive"),
        (16, b'p') => eq(b"proxy-connection"),
        (17, b't') => eq(b"transfer-encoding"),
        _ => false,
    }
}

/// One option of a `Connection` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionOption<'v> {
    /// `close`: the connection ends after this message.
    Close,
    /// `keep-alive`: the connection persists (HTTP/1.0's opt-in).
    KeepAlive,
    /// Any other token: the name of a field that is hop-by-hop on this connection.
    Names(&'v [u8]),
}

/// The options of one `Connection` field value: the one place its tokens are parsed
/// (comma-separated, whitespace around each trimmed, empty ones skipped, any case).
#[inline]
pub fn connection_options(value: &[u8]) -> impl Iterator<Item = ConnectionOption<'_>> {
    tokens(value).map(|token| {
        if token.eq_ignore_ascii_case(b"close") {
            ConnectionOption::Close
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionOption::KeepAlive
        } else {
            ConnectionOption::Names(token)
        }
    })
}

/// Whether a field called `name` is removed because one of the `Connection` values names
/// it ([`FieldClass::may_be_named_by_connection`]).
pub fn named_by_connection<'v>(
    connection_values: impl IntoIterator<Item = &'v [u8]>,
    name: &[u8],
) -> bool {
    classify(name).may_be_named_by_connection()
        && connection_values.into_iter().any(|value| {
            connection_options(value).any(|option| {
                matches!(option, ConnectionOption::Names(named) if named.eq_ignore_ascii_case(name))
            })
        })
}

/// The protocol an upgrade switches to, as the `protocol` metric label knows it: a fixed
/// set, so a client's `Upgrade` value cannot grow the label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeProtocol {
    /// `websocket` (RFC 6455; RFC 8441 over HTTP/2).
    WebSocket,
    /// Any other protocol.
    Other,
}

impl UpgradeProtocol {
    /// The protocol a token of `Upgrade` (or HTTP/2's `:protocol`) names: its name before
    /// any `/version`, in any case.
    pub fn of(token: &[u8]) -> UpgradeProtocol {
        if protocol_name(token.trim_ascii()).eq_ignore_ascii_case(b"websocket") {
            UpgradeProtocol::WebSocket
        } else {
            UpgradeProtocol::Other
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeProtocol::WebSocket => "websocket",
            UpgradeProtocol::Other => "other",
        }
    }
}

/// A protocol token's name: what comes before its `/version`.
fn protocol_name(token: &[u8]) -> &[u8] {
    token.split(|b| *b == b'/').next().unwrap_or_default()
}

/// What a request's `Upgrade` field (RFC 9110 §7.8) makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAsk {
    /// No upgrade: an ordinary request (an `Upgrade` field goes as hop-by-hop).
    None,
    /// `Upgrade: h2c` (RFC 7540 §3.2, removed by RFC 9113): never forwarded, the request is
    /// served as HTTP/1.1. HTTP/2 reaches this proxy by prior knowledge or ALPN instead.
    H2c,
    /// Forwarded to the primary with `Connection: upgrade`; on its `101` the connection is
    /// spliced through.
    Forward(UpgradeProtocol),
}

/// The upgrade rule, one decision over a request head's fields: an upgrade is forwarded
/// only on an HTTP/1.1 request (`http11`) without a body (`bodiless`: what follows the head
/// is the new protocol's), whose `Connection` names `upgrade` (a sender must, RFC 9110 §7.8,
/// so an `Upgrade` alone is a stray hop-by-hop field) and whose `Upgrade` names no `h2c`
/// (any `h2c` makes it [`UpgradeAsk::H2c`], whatever else it names). The protocol label is
/// the first token's.
pub fn upgrade_ask<'c, 'u>(
    http11: bool,
    bodiless: bool,
    connection_values: impl IntoIterator<Item = &'c [u8]>,
    upgrade_values: impl IntoIterator<Item = &'u [u8]>,
) -> UpgradeAsk {
    let mut first = None;
    for token in upgrade_values.into_iter().flat_map(tokens) {
        if protocol_name(token).eq_ignore_ascii_case(b"h2c") {
            return UpgradeAsk::H2c;
        }
        first.get_or_insert(token);
    }
    let Some(first) = first else {
        return UpgradeAsk::None;
    };
    let names_upgrade = connection_values.into_iter().any(|value| {
        connection_options(value).any(|option| {
            matches!(option, ConnectionOption::Names(named) if named.eq_ignore_ascii_case(b"upgrade"))
        })
    });
    if http11 && bodiless && names_upgrade {
        UpgradeAsk::Forward(UpgradeProtocol::of(first))
    } else {
        UpgradeAsk::None
    }
}

/// Whether a `TE` value accepts trailers: the client is told the same by the upstream
/// request's `te: trailers`, since trailers are passed through.
#[inline]
pub fn te_accepts_trailers(value: &[u8]) -> bool {
    tokens(value).any(|token| token.eq_ignore_ascii_case(b"trailers"))
}

/// The comma-separated tokens of a field value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Whether a client's request id (when it sent exactly one) is propagated as it is: a
/// non-empty run of visible ASCII, at most 200 bytes.
#[inline]
pub fn request_id_is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// A new request id, written into `buffer`: a version-4 UUID from the thread-local fast
/// generator. Ids must be unique, not unpredictable, and this skips the CSPRNG the uuid crate
/// would use.
pub fn new_request_id(buffer: &mut [u8; uuid::fmt::Urn::LENGTH]) -> &str {
    let Some(out) = buffer.first_chunk_mut::<36>() else {
        return "";
    };
    *out = new_request_id_bytes();
    std::str::from_utf8(out).unwrap_or_default()
}

/// A new request id as its 36 bytes (lowercase, hyphenated version-4 UUID), for a writer of
/// bytes: the native engine writes one into every request head that came without one.
/// Encoded eight hex digits at a time in a word, which costs a third of a digit-by-digit
/// encoder on the live path.
#[inline]
pub fn new_request_id_bytes() -> [u8; 36] {
    let mut value = fastrand::u128(..);
    // Version 4 (byte 6's high nibble) and the RFC 9562 variant (byte 8's top bits `10`).
    value = (value & !(0xf << 76)) | (0x4 << 76);
    value = (value & !(0x3 << 62)) | (0x2 << 62);
    let words = [
        (value >> 96) as u32,
        (value >> 64) as u32,
        (value >> 32) as u32,
        value as u32,
    ];
    let [a, b, c, d] = words.map(hex_digits);
    let [a0, a1, a2, a3, a4, a5, a6, a7] = a;
    let [b0, b1, b2, b3, b4, b5, b6, b7] = b;
    let [c0, c1, c2, c3, c4, c5, c6, c7] = c;
    let [d0, d1, d2, d3, d4, d5, d6, d7] = d;
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b'-', b0, b1, b2, b3, b'-', b4, b5, b6, b7, b'-', c0, c1,
        c2, c3, b'-', c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7,
    ]
}

/// The eight lowercase hex digits of `word`, most significant first: each nibble spread
/// into a byte of a `u64`, then turned into `0`-`9` or `a`-`f` for all eight at once.
#[inline]
fn hex_digits(word: u32) -> [u8; 8] {
    let mut x = u64::from(word);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 0x01 in each byte whose nibble is 10 or more.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(test)]
#[path = "header_rules_tests.rs"]
mod tests;
