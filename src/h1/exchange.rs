//! The HTTP/1 upstream exchange: the one place a request meets an HTTP/1 upstream.
//!
//! Why: the native live path, the hyper path and the shadow client all speak HTTP/1.1 to
//! an upstream over a pooled socket. What they share is the protocol — checking a connection
//! out (the pool's warmest idle socket, else a new one), deciding whether a request may go again on a stale one, writing a head, reading the
//! final response head (interim answers skipped, one size limit, one stale-connection test),
//! deciding the body's framing and reading more of it — and that lives here once, with the one
//! error type all three report. What differs is plugged in by each caller: the head it writes
//! (the client's bytes, a `HeaderMap`, captured fields), what it keeps of the response head
//! (a `HeadReader`) and where the body goes (the client's socket, a hyper body, a capped
//! copy). The policy is tabled in `docs/ARCHITECTURE.md` ("HTTP/1 upstream exchange: one
//! policy").
//!
//! The reads and writes here are generic over the byte stream (`AsyncRead`/`AsyncWrite`), so a
//! TLS stream plugs in without a copy; only the pool dials TCP.

use super::chunked::{prefix, ChunkError, Decoder};
use super::pool::ConnectError;
use super::response::{self, Framing, Head, HeadError, Parsed};
use crate::config::ViaName;
use crate::message::fields::Fields;
use bytes::{Buf, BytesMut};
use http::header::HeaderMap;
use http::StatusCode;
use std::future::Future;
use std::io::{self, IoSlice};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest upstream response head accepted, on every path: past it, a 502.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How often a request whose pooled connection turned out dead is sent again on another.
pub(crate) const MAX_STALE_RETRIES: usize = 3;

/// Read size while a response head or body is read.
pub(crate) const READ_SIZE: usize = 16 * 1024;

/// Type-erased error with its cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an HTTP/1 upstream exchange failed, on any of the three paths. Classified into what
/// the client is told in one place (`ForwardError::from_exchange`).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No connection could be made (502, `upstream_unreachable`).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection closed or reset before a byte of the answer: on a reused connection,
    /// one the upstream had closed while it sat idle.
    #[error("connection closed before any of the response")]
    ClosedBeforeResponse(#[source] io::Error),
    /// The connection failed while sending the request or reading the response.
    #[error("connection failed")]
    Io(#[source] io::Error),
    /// The upstream closed the connection inside the response head.
    #[error("connection closed before the response head was complete")]
    Closed,
    /// The response head was malformed, too large, or had an unusable status.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The client's request body failed (it went away mid-upload).
    #[error("request body failed")]
    RequestBody(#[source] BoxError),
    /// The request body was longer or shorter than its `Content-Length`.
    #[error("request body length does not match its Content-Length")]
    RequestLength,
    /// The upstream took no byte of the request, or sent no response head after it, for
    /// this long (504, `upstream_timeout`).
    #[error("the upstream took nothing of the request, or sent no answer, for {0:?}")]
    TimedOut(Duration),
    /// The upstream closed the connection before the end of the response body.
    #[error("upstream closed the connection before the end of the body")]
    BodyClosed,
    /// Reading the response body failed.
    #[error("reading the response body failed")]
    BodyIo(#[source] io::Error),
    /// The response body's chunked coding was malformed.
    #[error(transparent)]
    Chunked(#[from] ChunkError),
}

/// How far a request got on a connection that then turned out dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Not one byte of it was written: the upstream saw nothing.
    Nothing,
    /// Some or all of it was written (or that cannot be ruled out).
    Request,
}

/// The stale-connection retry rule (RFC 9110 §9.2.2), counted per request: a request may
/// go again on another connection only when the dead one was reused (a fresh connection
/// failing is the upstream's failure, not a stale socket), at most [`MAX_STALE_RETRIES`]
/// times, and either nothing of it was written (any method: the upstream saw nothing) or it
/// is [`replayable`] (the upstream may have seen it, but sending it again changes nothing).
#[derive(Debug, Default)]
pub(crate) struct Retries {
    tries: usize,
}

impl Retries {
    /// Whether the request goes again after its connection died with no byte of answer;
    /// counts the try when it does.
    pub(crate) fn again(&mut self, reused: bool, sent: Sent, replayable: bool) -> bool {
        let allowed =
            reused && self.tries < MAX_STALE_RETRIES && (sent == Sent::Nothing || replayable);
        if allowed {
            self.tries += 1;
        }
        allowed
    }
}

/// Whether a request may be sent again after the upstream may have received it: an
/// idempotent method (RFC 9110 §9.2.2) whose body can be replayed, which here means it has
/// none.
pub(crate) fn replayable(method: &[u8], bodiless: bool) -> bool {
    bodiless
        && matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
}

/// A write that failed, and how far the request had got.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// Whether any byte had been written.
    pub sent: Sent,
    /// The socket's error.
    pub source: io::Error,
}

/// Writes every slice, in as few calls as the stream allows.
pub(crate) async fn write_all<S>(
    stream: &mut S,
    mut slices: &mut [IoSlice<'_>],
) -> Result<(), WriteError>
where
    S: AsyncWrite + Unpin,
{
    IoSlice::advance_slices(&mut slices, 0);
    let mut sent = Sent::Nothing;
    while !slices.is_empty() {
        let written = match stream.write_vectored(slices).await {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => Ok(written),
            Err(source) => Err(source),
        }
        .map_err(|source| WriteError { sent, source })?;
        sent = Sent::Request;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// What a caller keeps of a final response head while it is parsed: the one thing the head
/// read differs in between the three paths.
pub(crate) trait HeadReader {
    /// Parses the head at the start of `buf` ([`response::parse`] and its kin).
    fn parse(&mut self, buf: &[u8]) -> Result<Parsed, HeadError>;
}

/// The native live path's reader: writes the head the client receives into `out`, and the
/// end-to-end fields into `keep` when the request is mirrored.
pub(crate) struct ClientHead<'a> {
    /// The request was HEAD (no body follows whatever the fields say).
    pub is_head: bool,
    /// The client's connection closes after this response.
    pub close: bool,
    /// The listener's `Via` pseudonym.
    pub via: Option<&'a ViaName>,
    /// The client's head, written from the upstream's.
    pub out: &'a mut Vec<u8>,
    /// The end-to-end fields, for the mirror's comparison.
    pub keep: Option<&'a mut Fields>,
}

impl HeadReader for ClientHead<'_> {
    fn parse(&mut self, buf: &[u8]) -> Result<Parsed, HeadError> {
        let keep = self.keep.as_deref_mut();
        response::parse(buf, self.is_head, self.close, self.via, self.out, keep)
    }
}

/// The shadow client's reader: the end-to-end fields, captured for comparison.
pub(crate) struct KeepFields<'a> {
    /// The request was HEAD.
    pub is_head: bool,
    /// Where the fields go.
    pub fields: &'a mut Fields,
}

impl HeadReader for KeepFields<'_> {
    fn parse(&mut self, buf: &[u8]) -> Result<Parsed, HeadError> {
        response::inspect(buf, self.is_head, self.fields)
    }
}

/// The hyper path's reader: the end-to-end fields as the `HeaderMap` hyper answers with.
pub(crate) struct KeepMap<'a> {
    /// The request was HEAD.
    pub is_head: bool,
    /// Where the fields go.
    pub map: &'a mut HeaderMap,
}

impl HeadReader for KeepMap<'_> {
    fn parse(&mut self, buf: &[u8]) -> Result<Parsed, HeadError> {
        response::inspect_map(buf, self.is_head, self.map)
    }
}

/// Parses what is at the start of `buf`: the final answer's head and status once complete,
/// interim (1xx) answers skipped and consumed, `None` while more is needed. A head past
/// [`MAX_RESPONSE_HEAD`], or one whose status is outside 100–999, is refused.
// Inlined: once per response on the live path, which the native engine compiles once per
// kind of client stream (so it has more than one caller).
#[inline(always)]
pub(crate) fn parse_final<H: HeadReader>(
    buf: &mut BytesMut,
    reader: &mut H,
) -> Result<Option<(Head, StatusCode)>, ExchangeError> {
    while !buf.is_empty() {
        match reader.parse(buf)? {
            Parsed::Final(head) => {
                let status = StatusCode::from_u16(head.status)
                    .map_err(|_| HeadError::Malformed("bad status code"))?;
                return Ok(Some((head, status)));
            }
            Parsed::Interim(len) => buf.advance(len),
            Parsed::Partial if buf.len() < MAX_RESPONSE_HEAD => break,
            Parsed::Partial => return Err(HeadError::Malformed("response head too large").into()),
        }
    }
    Ok(None)
}

/// Why [`read_head`] stopped without a head.
pub(crate) enum HeadStop<W> {
    /// The upstream failed: nothing of the answer came ([`ExchangeError::ClosedBeforeResponse`],
    /// the stale-connection case) or a broken one did.
    Upstream(ExchangeError),
    /// The caller's watch ended the wait first (a client gone, a deadline).
    Watch(W),
}

/// Reads the final response head from `stream` into `buf` (what follows it stays in `buf`),
/// parsed by `reader`. Meanwhile `watch` runs; its ending first stops the read
/// ([`HeadStop::Watch`]). The upstream is read first whenever both are ready.
pub(crate) async fn read_head<S, H, W>(
    stream: &mut S,
    buf: &mut BytesMut,
    reader: &mut H,
    watch: W,
) -> Result<(Head, StatusCode), HeadStop<W::Output>>
where
    S: AsyncRead + Unpin,
    H: HeadReader,
    W: Future,
{
    let mut watch = std::pin::pin!(watch);
    let mut received_any = false;
    loop {
        if !buf.is_empty() {
            received_any = true;
            if let Some(head) = parse_final(buf, reader).map_err(HeadStop::Upstream)? {
                return Ok(head);
            }
        }
        buf.reserve(READ_SIZE);
        let read = tokio::select! {
            biased;
            read = stream.read_buf(buf) => read,
            stop = &mut watch => return Err(HeadStop::Watch(stop)),
        };
        match read {
            Ok(0) if !received_any => {
                let eof = io::ErrorKind::UnexpectedEof.into();
                return Err(HeadStop::Upstream(ExchangeError::ClosedBeforeResponse(eof)));
            }
            Ok(0) => return Err(HeadStop::Upstream(ExchangeError::Closed)),
            Ok(_) => {}
            Err(error) if !received_any => {
                return Err(HeadStop::Upstream(ExchangeError::ClosedBeforeResponse(
                    error,
                )))
            }
            Err(error) => return Err(HeadStop::Upstream(ExchangeError::Io(error))),
        }
    }
}

/// [`read_head`] with nothing watched beside the upstream.
pub(crate) async fn read_head_only<S, H>(
    stream: &mut S,
    buf: &mut BytesMut,
    reader: &mut H,
) -> Result<(Head, StatusCode), ExchangeError>
where
    S: AsyncRead + Unpin,
    H: HeadReader,
{
    let never = std::future::pending::<std::convert::Infallible>();
    match read_head(stream, buf, reader, never).await {
        Ok(head) => Ok(head),
        Err(HeadStop::Upstream(error)) => Err(error),
        Err(HeadStop::Watch(never)) => match never {},
    }
}

/// Reads more of a response body into `buf`; the upstream closing here is a truncated body
/// ([`ExchangeError::BodyClosed`]).
pub(crate) async fn read_body<S>(stream: &mut S, buf: &mut BytesMut) -> Result<(), ExchangeError>
where
    S: AsyncRead + Unpin,
{
    match read_more(stream, buf).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ExchangeError::BodyClosed),
        Err(error) => Err(error),
    }
}

/// Reads more of a response body into `buf`; `Ok(false)` when the upstream closed (the end
/// of a body delimited by the close).
pub(crate) async fn read_more<S>(stream: &mut S, buf: &mut BytesMut) -> Result<bool, ExchangeError>
where
    S: AsyncRead + Unpin,
{
    buf.reserve(READ_SIZE);
    match stream.read_buf(buf).await {
        Ok(read) => Ok(read > 0),
        Err(error) => Err(ExchangeError::BodyIo(error)),
    }
}

/// Where a response body goes: the one thing reading a body differs in between the native
/// live path (the client's socket, the body re-framed when its framing is not a length) and
/// the shadows (a capped copy). The hyper path's body is polled by hyper instead
/// (`NativeBody`), over the same framing decisions.
pub(crate) trait BodySink {
    /// Why delivering failed; an upstream failure converts into it.
    type Error: From<ExchangeError>;
    /// Takes a piece of a body delimited by its length, or (`rechunk`) by the connection's
    /// close, which a sink passing it on frames as a chunk. `false`: no more is wanted.
    fn data(&mut self, data: &[u8], rechunk: bool) -> bool;
    /// Decodes chunked `input` with `decoder`, taking its data; returns the bytes used.
    fn chunked(&mut self, decoder: &mut Decoder, input: &[u8]) -> Result<usize, ChunkError>;
    /// Whether no more of the body is wanted (a cap or bound reached).
    fn cut_short(&self) -> bool;
    /// Sends on what was taken since the last call, then `raw` (a piece of a body delimited
    /// by its length, passed on unchanged), in one write where it can.
    async fn flush(&mut self, raw: &[u8]) -> Result<(), Self::Error>;
    /// The body ended with the connection: a sink that re-framed it sends the last chunk.
    async fn closed(&mut self) -> Result<(), Self::Error>;
}

/// Reads a response body, delimited by `framing`, from `stream` into `sink`; what came with
/// the head is at the start of `buf`. `Ok(true)` when it was read exactly to its end and
/// nothing followed it (the connection may go back to the pool, if the head allows);
/// `Ok(false)` when the close delimited it or the sink wanted no more.
pub(crate) async fn read_body_into<S, K>(
    stream: &mut S,
    buf: &mut BytesMut,
    framing: Framing,
    pass_trailers: bool,
    sink: &mut K,
) -> Result<bool, K::Error>
where
    S: AsyncRead + Unpin,
    K: BodySink,
{
    match framing {
        Framing::Empty => {
            sink.flush(&[]).await?;
            Ok(buf.is_empty())
        }
        Framing::Length(length) => {
            let mut left = length;
            loop {
                let piece = prefix(buf, left);
                sink.flush(piece).await?;
                let wanted = sink.data(piece, false);
                left = left.saturating_sub(piece.len() as u64);
                buf.advance(piece.len());
                if left == 0 {
                    return Ok(buf.is_empty());
                }
                if !wanted {
                    return Ok(false);
                }
                read_body(stream, buf).await?;
            }
        }
        Framing::Chunked => {
            let mut decoder = Decoder::new(pass_trailers);
            loop {
                let used = sink
                    .chunked(&mut decoder, buf)
                    .map_err(ExchangeError::from)?;
                buf.advance(used);
                sink.flush(&[]).await?;
                if decoder.is_done() {
                    return Ok(buf.is_empty());
                }
                if sink.cut_short() {
                    return Ok(false);
                }
                read_body(stream, buf).await?;
            }
        }
        Framing::UntilClose => {
            loop {
                let wanted = sink.data(buf, true);
                buf.clear();
                sink.flush(&[]).await?;
                if !wanted {
                    return Ok(false);
                }
                if !read_more(stream, buf).await? {
                    break;
                }
            }
            sink.closed().await?;
            Ok(false)
        }
    }
}

/// A `Content-Length` value by the one rule both engines use
/// ([`crate::headers::parse_content_length`]).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    crate::headers::parse_content_length(value)
}

/// Appends one `name: value` field line.
#[inline]
pub(crate) fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_rule_as_tabled() {
        // (reused, sent, replayable) -> may go again
        let table = [
            (true, Sent::Nothing, false, true),
            (true, Sent::Nothing, true, true),
            (true, Sent::Request, true, true),
            (true, Sent::Request, false, false),
            (false, Sent::Nothing, true, false),
            (false, Sent::Request, true, false),
        ];
        for (reused, sent, replay, expected) in table {
            let mut retries = Retries::default();
            assert_eq!(
                retries.again(reused, sent, replay),
                expected,
                "{reused} {sent:?} {replay}"
            );
        }
        let mut retries = Retries::default();
        for _ in 0..MAX_STALE_RETRIES {
            assert!(retries.again(true, Sent::Nothing, true));
        }
        assert!(!retries.again(true, Sent::Nothing, true), "bounded");
    }

    #[test]
    fn replayable_means_idempotent_and_bodiless() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(replayable(method.as_bytes(), true), "{method}");
            assert!(
                !replayable(method.as_bytes(), false),
                "{method} with a body"
            );
        }
        for method in ["POST", "PATCH", "CONNECT", "get", "PROPFIND"] {
            assert!(!replayable(method.as_bytes(), true), "{method}");
        }
    }

    #[tokio::test]
    async fn one_head_read_for_every_path() {
        // An interim answer skipped, the final head parsed, the body left in the buffer.
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok";
        let mut stream = &raw[..];
        let mut buf = BytesMut::new();
        let mut fields = Fields::default();
        let mut reader = KeepFields {
            is_head: false,
            fields: &mut fields,
        };
        let (head, status) = read_head_only(&mut stream, &mut buf, &mut reader)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(head.framing, response::Framing::Length(2));
        assert_eq!(buf.get(head.len..).unwrap(), b"ok");

        // Nothing at all: the stale-connection case.
        let mut empty: &[u8] = b"";
        let mut map = HeaderMap::new();
        let mut reader = KeepMap {
            is_head: false,
            map: &mut map,
        };
        let error = read_head_only(&mut empty, &mut BytesMut::new(), &mut reader).await;
        assert!(matches!(error, Err(ExchangeError::ClosedBeforeResponse(_))));

        // Part of a head, then the close: not stale, a broken answer.
        let mut cut: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-";
        let error = read_head_only(&mut cut, &mut BytesMut::new(), &mut reader).await;
        assert!(matches!(error, Err(ExchangeError::Closed)));

        // A head past the limit.
        let mut long = b"HTTP/1.1 200 OK\r\nx-filler: ".to_vec();
        long.resize(MAX_RESPONSE_HEAD + 1, b'a');
        let mut stream = &long[..];
        let error = read_head_only(&mut stream, &mut BytesMut::new(), &mut reader).await;
        assert!(matches!(error, Err(ExchangeError::Head(_))), "{error:?}");
    }

    #[tokio::test]
    async fn a_watch_that_ends_first_stops_the_read() {
        let (mut near, _far) = tokio::io::duplex(64);
        let mut map = HeaderMap::new();
        let mut reader = KeepMap {
            is_head: false,
            map: &mut map,
        };
        let stopped = read_head(&mut near, &mut BytesMut::new(), &mut reader, async { 7 }).await;
        assert!(matches!(stopped, Err(HeadStop::Watch(7))));
    }
}
