//! A small HTTP/1.1 client on the native engine's parts, for shadow requests.
//!
//! Why: a mirrored request's shadow copy is complete before it is sent (its body is the
//! capped copy the tee kept) and its answer is kept, capped, not streamed anywhere. hyper's
//! client runs a connection task per upstream connection and a channel between it and the
//! request; for a one-shot request with a known body that machinery was most of the shadow
//! side's cost (callgrind). This client writes the head and body in one call on a pooled
//! socket ([`RawPool`]), parses the response head in place and keeps at most the cap of the
//! body (past it, a digest of the whole), decoding chunked bodies strictly ([`Decoder`]). The
//! caller bounds the whole exchange with the mirror timeout.

use super::chunked::{self, ChunkError, Decoder};
use super::pool::{ConnectError, RawPool, UpstreamConn};
use super::request::put;
use super::response::{self, Framing, HeadError, Parsed};
use super::{write_all_vectored, MAX_STALE_RETRIES};
use crate::config::UpstreamConfig;
use crate::shadow::budget::{Keeper, KeptBody};
use crate::shadow::copy::HeaderEdits;
use crate::shadow::fields::Fields;
use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::io::{self, IoSlice};
use tokio::io::AsyncReadExt;

/// Largest response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a request through [`Client`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection failed while sending or receiving.
    #[error("connection failed")]
    Io(#[source] io::Error),
    /// The upstream closed the connection before a complete response.
    #[error("connection closed before the response was complete")]
    Closed,
    /// The response head was malformed.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The chunked body was malformed.
    #[error(transparent)]
    Chunked(#[from] ChunkError),
}

impl ClientError {
    /// The upstream could not be reached at all (as opposed to failing once reached).
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect(_))
    }
}

/// A response, its body kept up to a cap and within a byte budget.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The end-to-end fields.
    pub headers: Fields,
    /// The body as kept, or the digest of one too large to keep (of its beginning when the
    /// keeper's bound cut it short).
    pub body: KeptBody,
}

/// A client for one HTTP/1.1 upstream.
pub struct Client {
    authority: HeaderValue,
    pool: RawPool,
}

impl Client {
    /// A client with its own pool of at most `max_idle` idle connections.
    pub fn new(config: &UpstreamConfig, max_idle: usize) -> Client {
        let address = crate::proxy::forward::socket_address(&config.authority);
        Client {
            authority: HeaderValue::from_str(config.authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            pool: RawPool::new(
                address,
                config.connect_timeout,
                max_idle,
                config.pool_idle_timeout,
            ),
        }
    }

    /// Sends one request — `headers` as `edits` change them, `body`, then `trailers` when
    /// the original had a trailer section — and reads its answer, its body into `keeper` (a
    /// cap, and a budget the bytes are held against as they are read; past either, only a
    /// digest). The body is read to its end, so it can be compared by length and hash,
    /// unless the keeper's bound cuts it short (the connection is then dropped, not
    /// drained); the caller's deadline bounds how long reading may take.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &Fields,
        edits: &HeaderEdits,
        body: &Bytes,
        trailers: Option<&HeaderMap>,
        mut keeper: Keeper<'_>,
    ) -> Result<Answer, ClientError> {
        // Trailer fields only travel in a chunked body: the copy is then sent as one chunk
        // and the last chunk with the trailers, framed around the body without copying it.
        let (framing, before, after) = match trailers {
            Some(trailers) => {
                let mut before = Vec::new();
                let mut after = Vec::new();
                if !body.is_empty() {
                    chunked::push_size_line(&mut before, body.len());
                    after.extend_from_slice(b"\r\n");
                }
                super::upstream::last_chunk(&mut after, Some(trailers));
                (BodyFraming::Chunked, before, after)
            }
            None => (BodyFraming::Length(body.len()), Vec::new(), Vec::new()),
        };
        let head = self.request_head(method, path_and_query, headers, edits, framing);
        let retryable = body.is_empty() && matches!(*method, Method::GET | Method::HEAD);
        let is_head = *method == Method::HEAD;
        let mut tries = 0;
        loop {
            let mut conn = match self.pool.check_out() {
                Some(conn) => conn,
                None => self.pool.connect().await?,
            };
            let stale_retry = conn.reused && retryable && tries < MAX_STALE_RETRIES;
            if let Err(error) = write_all_vectored(
                &mut conn.stream,
                &mut [
                    IoSlice::new(&head),
                    IoSlice::new(&before),
                    IoSlice::new(body),
                    IoSlice::new(&after),
                ],
            )
            .await
            {
                if stale_retry {
                    tries += 1;
                    continue;
                }
                return Err(ClientError::Io(error));
            }
            // A retry comes only before any of the answer: the keeper is still empty.
            match read_answer(&mut conn, is_head, &mut keeper).await {
                Ok((answer, reusable)) => {
                    if reusable {
                        self.pool.check_in(conn);
                    }
                    return Ok(answer);
                }
                Err(ReadFailure::BeforeResponse(_)) if stale_retry => tries += 1,
                Err(ReadFailure::BeforeResponse(error)) => return Err(ClientError::Io(error)),
                Err(ReadFailure::After(error)) => return Err(error),
            }
        }
    }

    fn request_head(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &Fields,
        edits: &HeaderEdits,
        framing: BodyFraming,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // Framing is this hop's business (`keeps` leaves it out): the body is complete and
        // its length known.
        let mut has_host = false;
        let kept = headers.iter().filter(|(name, _)| edits.keeps(name));
        let added = edits
            .additions()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
        for (name, value) in kept.chain(added) {
            has_host |= name.eq_ignore_ascii_case(b"host");
            put(&mut out, name, value);
        }
        if !has_host {
            put(&mut out, b"host", self.authority.as_bytes());
        }
        let bodiless_method = matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
        );
        match framing {
            BodyFraming::Chunked => put(&mut out, b"transfer-encoding", b"chunked"),
            BodyFraming::Length(len) if len > 0 || !bodiless_method => put(
                &mut out,
                b"content-length",
                itoa::Buffer::new().format(len).as_bytes(),
            ),
            BodyFraming::Length(_) => {}
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// How the copy's body is framed on the wire.
#[derive(Debug, Clone, Copy)]
enum BodyFraming {
    /// `Content-Length` (left out for an empty body of a bodiless method).
    Length(usize),
    /// Chunked, because the copy carries trailer fields.
    Chunked,
}

/// Why reading an answer failed: before a byte of it (a stale pooled connection, when the
/// connection was reused) or after.
enum ReadFailure {
    BeforeResponse(io::Error),
    After(ClientError),
}

/// Reads more from the upstream; `Ok(false)` at its end.
async fn fill(conn: &mut UpstreamConn) -> io::Result<bool> {
    conn.buf.reserve(16 * 1024);
    Ok(conn.stream.read_buf(&mut conn.buf).await? > 0)
}

/// Reads one answer; the flag says whether the connection ended exactly at its end.
async fn read_answer(
    conn: &mut UpstreamConn,
    is_head: bool,
    keeper: &mut Keeper<'_>,
) -> Result<(Answer, bool), ReadFailure> {
    let mut received_any = false;
    let mut headers = Fields::default();
    let head = loop {
        if !conn.buf.is_empty() {
            received_any = true;
            match response::inspect(&conn.buf, is_head, &mut headers) {
                Ok(Parsed::Final(head)) => break head,
                Ok(Parsed::Interim(len)) => {
                    conn.buf.advance(len);
                    continue;
                }
                Ok(Parsed::Partial) if conn.buf.len() < MAX_RESPONSE_HEAD => {}
                Ok(Parsed::Partial) => {
                    return Err(ReadFailure::After(ClientError::Head(HeadError::Malformed(
                        "response head too large",
                    ))))
                }
                Err(error) => return Err(ReadFailure::After(ClientError::Head(error))),
            }
        }
        match fill(conn).await {
            Ok(true) => {}
            Ok(false) if !received_any => {
                return Err(ReadFailure::BeforeResponse(
                    io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(false) => return Err(ReadFailure::After(ClientError::Closed)),
            Err(error) if !received_any => return Err(ReadFailure::BeforeResponse(error)),
            Err(error) => return Err(ReadFailure::After(ClientError::Io(error))),
        }
    };
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    conn.buf.advance(head.len);
    let after = ReadFailure::After;
    let complete = match head.framing {
        Framing::Empty => true,
        Framing::Length(length) => {
            let mut left = length;
            loop {
                let piece = super::prefix(&conn.buf, left);
                let reading = keeper.keep(piece);
                left = left.saturating_sub(piece.len() as u64);
                conn.buf.advance(piece.len());
                if left == 0 || !reading {
                    break left == 0;
                }
                match fill(conn).await {
                    Ok(true) => {}
                    Ok(false) => return Err(after(ClientError::Closed)),
                    Err(error) => return Err(after(ClientError::Io(error))),
                }
            }
        }
        Framing::Chunked => {
            let mut decoder = Decoder::new(false);
            let mut scratch = Vec::new();
            loop {
                let used = decoder
                    .decode_with(&conn.buf, &mut scratch, |data| {
                        keeper.keep(data);
                    })
                    .map_err(|error| after(ClientError::Chunked(error)))?;
                scratch.clear();
                conn.buf.advance(used);
                if decoder.is_done() || keeper.cut_short() {
                    break decoder.is_done();
                }
                match fill(conn).await {
                    Ok(true) => {}
                    Ok(false) => return Err(after(ClientError::Closed)),
                    Err(error) => return Err(after(ClientError::Io(error))),
                }
            }
        }
        Framing::UntilClose => loop {
            if !keeper.keep(&conn.buf.split()) {
                break false;
            }
            match fill(conn).await {
                Ok(true) => {}
                // The end of the body; the connection is gone with it.
                Ok(false) => break false,
                Err(error) => return Err(after(ClientError::Io(error))),
            }
        },
    };
    let reusable = complete && head.keep_alive && conn.buf.is_empty();
    let answer = Answer {
        status,
        headers,
        body: keeper.finish(),
    };
    Ok((answer, reusable))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client() -> Client {
        let config = crate::config::Config::from_toml(
            "[upstreams.shadow]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprimary = \"shadow\"\n",
            &crate::config::Overrides::default(),
        )
        .unwrap();
        Client::new(&config.upstreams["shadow"], 4)
    }

    #[test]
    fn the_head_carries_host_and_this_hops_framing_only() {
        let fields = [
            ("x-one", "1"),
            ("X-One", "2"),
            ("Content-Length", "999"),
            ("transfer-encoding", "chunked"),
        ];
        let headers = Fields::from_pairs(fields);
        let edits = HeaderEdits::new(
            Vec::new(),
            Vec::new(),
            None,
            (
                http::HeaderName::from_static("x-shadowtap-shadow"),
                HeaderValue::from_static("1"),
            ),
        );
        let head = client().request_head(
            &Method::POST,
            "/a?b=c",
            &headers,
            &edits,
            BodyFraming::Length(5),
        );
        let text = String::from_utf8(head).unwrap();
        assert!(text.starts_with("POST /a?b=c HTTP/1.1\r\n"), "{text}");
        // The fields go as the primary got them, names in their case.
        assert!(text.contains("x-one: 1\r\nX-One: 2\r\n"), "{text}");
        assert!(text.contains("host: 127.0.0.1:9\r\n"), "{text}");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        assert!(text.contains("x-shadowtap-shadow: 1\r\n"), "{text}");
        assert!(!text.contains("999") && !text.contains("chunked"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));

        let headers = Fields::from_pairs(fields.into_iter().chain([("Host", "shadow.internal")]));
        let head =
            client().request_head(&Method::GET, "/", &headers, &edits, BodyFraming::Length(0));
        let text = String::from_utf8(head).unwrap();
        assert!(text.contains("Host: shadow.internal\r\n"), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert!(!text.contains("content-length"), "a bodiless GET: {text}");

        // A copy with trailers goes chunked: one framing field, this hop's.
        let head =
            client().request_head(&Method::POST, "/", &headers, &edits, BodyFraming::Chunked);
        let text = String::from_utf8(head).unwrap();
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(
            !text.contains("content-length") && !text.contains("999"),
            "{text}"
        );
    }
}
