//! A small HTTP/1.1 client on the native engine's parts, for shadow requests.
//!
//! Why: a mirrored request's shadow copy is complete before it is sent (its body is the
//! capped copy the tee kept) and its answer is kept, capped, not streamed anywhere. hyper's
//! client runs a connection task per upstream connection and a channel between it and the
//! request; for a one-shot request with a known body that machinery was most of the shadow
//! side's cost (see docs/PERFORMANCE.md, "What bought what", 4c61d9c). This client writes the head and body in one call on a pooled
//! socket ([`RawPool`]), parses the response head in place and keeps at most the cap of the
//! body (past it, a digest of the whole), decoding chunked bodies strictly ([`Decoder`]). The
//! caller bounds the whole exchange with the mirror timeout.

use super::chunked::{self, ChunkError, Decoder};
use super::exchange::{self, put, ExchangeError, KeepFields, Retries, Sent};
use super::pool::{RawPool, UpstreamConn};
use crate::config::UpstreamConfig;
use crate::message::budget::{Keeper, KeptBody};
use crate::message::copy::HeaderEdits;
use crate::message::fields::Fields;
use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::io::IoSlice;

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
        let tls = config.tls.as_ref().map(|tls| tls.client.clone());
        let address = super::pool::socket_address(&config.authority, tls.is_some());
        Client {
            authority: HeaderValue::from_str(config.authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            pool: RawPool::new(
                address,
                tls,
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
    ) -> Result<Answer, ExchangeError> {
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
        let replayable = exchange::replayable(method.as_str().as_bytes(), body.is_empty());
        let is_head = *method == Method::HEAD;
        let mut retries = Retries::default();
        loop {
            let mut conn = match self.pool.check_out() {
                Some(conn) => conn,
                None => self.pool.connect().await?,
            };
            let written = exchange::write_all(
                &mut conn.stream,
                &mut [
                    IoSlice::new(&head),
                    IoSlice::new(&before),
                    IoSlice::new(body),
                    IoSlice::new(&after),
                ],
            )
            .await;
            if let Err(error) = written {
                if retries.again(conn.reused, error.sent, replayable) {
                    continue;
                }
                return Err(ExchangeError::Io(error.source));
            }
            // A retry comes only before any of the answer: the keeper is still empty.
            match read_answer(&mut conn, is_head, &mut keeper).await {
                Ok((answer, reusable)) => {
                    if reusable {
                        self.pool.check_in(conn);
                    }
                    return Ok(answer);
                }
                Err(ExchangeError::ClosedBeforeResponse(_))
                    if retries.again(conn.reused, Sent::Request, replayable) => {}
                Err(error) => return Err(error),
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
        headers.write_lines(&mut out, |name| {
            let kept = edits.keeps(name);
            has_host |= kept && name.eq_ignore_ascii_case(b"host");
            kept
        });
        for (name, value) in edits.additions() {
            let name = name.as_str().as_bytes();
            has_host |= name.eq_ignore_ascii_case(b"host");
            put(&mut out, name, value.as_bytes());
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

/// Reads one answer; the flag says whether the connection ended exactly at its end.
async fn read_answer(
    conn: &mut UpstreamConn,
    is_head: bool,
    keeper: &mut Keeper<'_>,
) -> Result<(Answer, bool), ExchangeError> {
    let mut headers = Fields::default();
    let mut reader = KeepFields {
        is_head,
        fields: &mut headers,
    };
    let (head, status) =
        exchange::read_head_only(&mut conn.stream, &mut conn.buf, &mut reader).await?;
    conn.buf.advance(head.len);
    let mut sink = ToKeeper {
        keeper,
        scratch: Vec::new(),
    };
    let complete = exchange::read_body_into(
        &mut conn.stream,
        &mut conn.buf,
        head.framing,
        false,
        &mut sink,
    )
    .await?;
    let reusable = complete && head.keep_alive;
    let answer = Answer {
        status,
        headers,
        body: keeper.finish(),
    };
    Ok((answer, reusable))
}

/// The shadow client's body sink: the keeper (a cap and a byte budget; past either, a
/// digest), the body decoded.
struct ToKeeper<'k, 'b> {
    keeper: &'k mut Keeper<'b>,
    /// The decoder's re-framed output, which nobody reads here.
    scratch: Vec<u8>,
}

impl exchange::BodySink for ToKeeper<'_, '_> {
    type Error = ExchangeError;

    fn data(&mut self, data: &[u8], _rechunk: bool) -> bool {
        self.keeper.keep(data)
    }

    fn chunked(&mut self, decoder: &mut Decoder, input: &[u8]) -> Result<usize, ChunkError> {
        let keeper = &mut *self.keeper;
        decoder.decode_with(input, &mut self.scratch, |data| {
            keeper.keep(data);
        })
    }

    fn cut_short(&self) -> bool {
        self.keeper.cut_short()
    }

    async fn flush(&mut self, _raw: &[u8]) -> Result<(), ExchangeError> {
        self.scratch.clear();
        Ok(())
    }

    async fn closed(&mut self) -> Result<(), ExchangeError> {
        Ok(())
    }
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
