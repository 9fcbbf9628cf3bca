//! HTTP/1.1 to an upstream for the requests hyper serves (h2c clients, and the HTTP/1
//! shapes the native engine hands over), on the native engine's pooled sockets.
//!
//! Why: hyper's HTTP/1 client runs a connection task per upstream socket and passes every
//! request and response through a channel to it, a large share of an h2c request's cost
//! (see docs/PERFORMANCE.md, "What bought what", e686b60). Here the
//! request's own task writes the head and body on a socket checked out of the upstream's
//! [`RawPool`] (the one the native engine uses), parses the response head in place
//! ([`response::inspect`]) and hands hyper a [`NativeBody`] that reads the rest from the
//! socket as hyper's server polls it, then checks the socket back in.
//!
//! The request body goes with the length it announced, as a `Content-Length` of the size it
//! is known to have, or chunked (with its trailers) when neither is known. While it goes up,
//! the upstream is listened to: an answer that comes before the body is all sent (a size
//! limit, a refused credential) ends the upload and is the client's answer.
//!
//! The upstream's `response_timeout` is timed per phase, as on the native engine: the first
//! write, each pause of the upstream in taking the body, and the wait for the response head
//! after the body's end. How long the *client* takes to send its body is not the upstream's
//! to answer for (the listener's `client_body_timeout` bounds its pauses).

use super::chunked::{push_size_line, Decoder};
pub use super::exchange::BoxError;
use super::exchange::{self, ExchangeError, KeepMap, Retries, Sent, WriteError, READ_SIZE};
use super::pool::{RawPool, UpstreamConn};
use super::response::{self, Framing};
use super::upload::{self, Heard, WriteFailure, Wrote};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Trailer fields taken from a chunked response.
const MAX_TRAILER_FIELDS: usize = 64;

/// A final response head, parsed, and its status.
type Answer = (HeaderMap, response::Head, StatusCode);

/// How the request body is delimited on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// No body.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// Chunked, trailers passed on.
    Chunked,
}

/// Sends `request` (origin-form target, `Host` set, hop-by-hop fields removed) on a pooled
/// connection of `pool` and returns the response once its head has arrived; the body streams
/// from the socket as it is polled. A request without a body is tried again on another
/// connection when a pooled one turns out closed before any of its answer. Each wait on the
/// upstream (the first write, a pause in taking the body, the response head after the body)
/// is bounded by `response_timeout`.
pub async fn send<B>(
    pool: &Arc<RawPool>,
    request: Request<B>,
    response_timeout: Duration,
) -> Result<Response<NativeBody>, ExchangeError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let (parts, mut body) = request.into_parts();
    let outgoing = outgoing_framing(&parts.headers, &body);
    let head = encode_head(&parts, outgoing);
    let is_head = parts.method == Method::HEAD;
    // The first frame, when it is already there, goes in the head's write.
    let mut first = None;
    let mut ended = outgoing == Outgoing::Empty;
    if !ended {
        first = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
        .map(|frame| frame.map(|frame| frame.map_err(Into::into)));
        if let Some(None) = first {
            ended = true;
        }
    }
    let first: Option<Frame<Bytes>> = match first {
        Some(Some(Ok(frame))) => Some(frame),
        Some(Some(Err(error))) => return Err(ExchangeError::RequestBody(error)),
        _ => None,
    };
    // A trailers frame is the body's last.
    ended |= body.is_end_stream() || first.as_ref().is_some_and(Frame::is_trailers);
    let first_len = first
        .as_ref()
        .and_then(Frame::data_ref)
        .map_or(0, |data| data.len() as u64);
    match outgoing {
        // Never send a request that contradicts its own framing.
        Outgoing::Length(length) if first_len > length || (ended && first_len != length) => {
            return Err(ExchangeError::RequestLength)
        }
        _ => {}
    }
    let replayable =
        exchange::replayable(parts.method.as_str().as_bytes(), ended && first_len == 0);
    let mut retries = Retries::default();
    let mut early = false;
    // Registered in the timer wheel only when a phase actually waits.
    let mut deadline = std::pin::pin!(tokio::time::sleep(response_timeout));
    let (mut conn, (mut headers, response_head, status)) = loop {
        let mut conn = match pool.check_out() {
            Some(conn) => conn,
            None => pool.connect().await?,
        };
        let mut sent = 0;
        // The head and what is already at hand of the body go in one write; the first frame
        // is kept, so a request of which nothing was written may go again whatever it is.
        let start = write_start(&mut conn, &head, first.as_ref(), outgoing, ended, &mut sent);
        // The timer was set when the exchange began (a retry keeps what is left of it).
        if let Err(error) = bounded(start, deadline.as_mut(), response_timeout, false).await? {
            if retries.again(conn.reused, error.sent, replayable) {
                continue;
            }
            return Err(ExchangeError::Io(error.source));
        }
        if !ended {
            if let Some(answer) = send_rest(
                &mut conn,
                &mut body,
                outgoing,
                sent,
                is_head,
                response_timeout,
            )
            .await?
            {
                // Answered before the body was all sent: this connection is done.
                early = true;
                break (conn, answer);
            }
        }
        let head_read = read_head(&mut conn, is_head);
        match bounded(head_read, deadline.as_mut(), response_timeout, true).await? {
            Ok(answer) => break (conn, answer),
            Err(ExchangeError::ClosedBeforeResponse(_))
                if retries.again(conn.reused, Sent::Request, replayable) => {}
            Err(error) => return Err(error),
        }
    };
    conn.buf.advance(response_head.len);
    if matches!(
        response_head.framing,
        Framing::Chunked | Framing::UntilClose
    ) {
        // hyper frames the body again for the client; a length sent beside a transfer
        // coding is not the body's.
        headers.remove(header::CONTENT_LENGTH);
    }
    let body = NativeBody::new(
        conn,
        pool.clone(),
        response_head.framing,
        response_head.keep_alive && !early,
    );
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if response_head.minor == 0 {
        // For the Via element the proxy appends (the response's own version is what hyper
        // answers the client with, so it stays HTTP/1.1).
        response
            .extensions_mut()
            .insert(crate::headers::ReceivedAsHttp10);
    }
    Ok(response)
}

/// Runs `phase` until `deadline` (moved to `limit` from now first when `restart`): past
/// it, [`ExchangeError::TimedOut`].
async fn bounded<T>(
    phase: impl std::future::Future<Output = T>,
    mut deadline: Pin<&mut Sleep>,
    limit: Duration,
    restart: bool,
) -> Result<T, ExchangeError> {
    if restart {
        deadline.as_mut().reset(Instant::now() + limit);
    }
    tokio::select! {
        biased;
        done = phase => Ok(done),
        () = deadline => Err(ExchangeError::TimedOut(limit)),
    }
}

/// The request body's framing on this hop (hyper's client rules, except that a body of
/// unknown length is sent chunked whatever the method, so nothing a client sent is lost).
fn outgoing_framing<B: Body>(headers: &HeaderMap, body: &B) -> Outgoing {
    if body.is_end_stream() {
        return Outgoing::Empty;
    }
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| exchange::parse_length(value.as_bytes()))
    {
        return Outgoing::Length(length);
    }
    match body.size_hint().exact() {
        Some(length) => Outgoing::Length(length),
        None => Outgoing::Chunked,
    }
}

/// The request head: the request line, the fields as the map holds them, and this hop's
/// framing.
fn encode_head(parts: &http::request::Parts, outgoing: Outgoing) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + parts.headers.len() * 32);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        // Framing is this hop's: what the map says about it is replaced below.
        if *name == header::TRANSFER_ENCODING
            || (*name == header::CONTENT_LENGTH && outgoing != Outgoing::Empty)
        {
            continue;
        }
        exchange::put(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    match outgoing {
        Outgoing::Empty => {}
        Outgoing::Length(length) => exchange::put(
            &mut out,
            b"content-length",
            itoa::Buffer::new().format(length).as_bytes(),
        ),
        Outgoing::Chunked => exchange::put(&mut out, b"transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes the head with the first frame's data (and the body's end, when it is the last).
async fn write_start(
    conn: &mut UpstreamConn,
    head: &[u8],
    first: Option<&Frame<Bytes>>,
    outgoing: Outgoing,
    ended: bool,
    sent: &mut u64,
) -> Result<(), WriteError> {
    let data = first
        .and_then(Frame::data_ref)
        .map_or(&[][..], |data| &data[..]);
    let trailers = first.and_then(Frame::trailers_ref);
    let (mut before, mut after) = (Vec::new(), Vec::new());
    chunk_framing(
        outgoing,
        data.len(),
        trailers,
        ended,
        &mut before,
        &mut after,
    );
    *sent += data.len() as u64;
    exchange::write_all(
        &mut conn.stream,
        &mut [
            IoSlice::new(head),
            IoSlice::new(&before),
            IoSlice::new(data),
            IoSlice::new(&after),
        ],
    )
    .await
}

/// This hop's framing around one piece of a chunked body: the size line `before` the data,
/// and `after` it the CRLF that ends the chunk and, at the body's end (`last`, or trailers),
/// the last chunk with the trailers. Nothing for other framings.
fn chunk_framing(
    outgoing: Outgoing,
    data_len: usize,
    trailers: Option<&HeaderMap>,
    last: bool,
    before: &mut Vec<u8>,
    after: &mut Vec<u8>,
) {
    before.clear();
    after.clear();
    if outgoing != Outgoing::Chunked {
        return;
    }
    if data_len > 0 {
        push_size_line(before, data_len);
        after.extend_from_slice(b"\r\n");
    }
    if last || trailers.is_some() {
        last_chunk(after, trailers);
    }
}

/// Streams the rest of the request body after [`write_start`], listening to the upstream
/// meanwhile: an upstream may answer before it has read the whole body (a size limit, a
/// refused credential) and stop reading. Its final answer, once complete, ends the upload
/// (`Ok(Some(..))`, the connection not to be reused); interim answers are skipped. An
/// upstream that takes no byte for `stall` fails it.
async fn send_rest<B>(
    conn: &mut UpstreamConn,
    body: &mut B,
    outgoing: Outgoing,
    mut sent: u64,
    is_head: bool,
    stall: Duration,
) -> Result<Option<Answer>, ExchangeError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut headers = HeaderMap::new();
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                return Poll::Ready(Some(frame));
            }
            match conn.stream.poll_read_ready(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let frame = match next {
            // The upstream may have spoken.
            None => match hear(conn, is_head, &mut headers)? {
                Some((head, status)) => return Ok(Some((headers, head, status))),
                None => continue,
            },
            Some(None) => break,
            Some(Some(Ok(frame))) => frame,
            Some(Some(Err(error))) => return Err(ExchangeError::RequestBody(error.into())),
        };
        let at_end = body.is_end_stream();
        let (data, trailers) = match frame.into_data() {
            Ok(data) => (data, None),
            Err(frame) => (Bytes::new(), frame.into_trailers().ok()),
        };
        sent += data.len() as u64;
        if matches!(outgoing, Outgoing::Length(length) if sent > length) {
            return Err(ExchangeError::RequestLength);
        }
        let last = at_end || trailers.is_some();
        chunk_framing(
            outgoing,
            data.len(),
            trailers.as_ref(),
            last,
            &mut before,
            &mut after,
        );
        let mut slices = [
            IoSlice::new(&before),
            IoSlice::new(&data),
            IoSlice::new(&after),
        ];
        if let Some((head, status)) =
            write_listening(conn, &mut slices, is_head, &mut headers, stall).await?
        {
            return Ok(Some((headers, head, status)));
        }
        if last {
            return check_length(outgoing, sent).map(|()| None);
        }
    }
    // The body ended without saying so beforehand: the last chunk still has to go.
    if outgoing == Outgoing::Chunked {
        chunk_framing(outgoing, 0, None, true, &mut before, &mut after);
        if let Some((head, status)) = write_listening(
            conn,
            &mut [IoSlice::new(&after)],
            is_head,
            &mut headers,
            stall,
        )
        .await?
        {
            return Ok(Some((headers, head, status)));
        }
    }
    check_length(outgoing, sent).map(|()| None)
}

/// Writes every slice while listening to the upstream ([`upload::write_listening`]); returns
/// its final answer's head when one has come instead. An upstream that takes no byte for
/// `stall` is [`ExchangeError::TimedOut`].
async fn write_listening(
    conn: &mut UpstreamConn,
    slices: &mut [IoSlice<'_>],
    is_head: bool,
    headers: &mut HeaderMap,
    stall: Duration,
) -> Result<Option<(response::Head, StatusCode)>, ExchangeError> {
    let heard = |conn: &mut UpstreamConn| hear(conn, is_head, headers);
    match upload::write_listening(conn, slices, Some(stall), heard).await {
        Ok(Wrote::All) => Ok(None),
        Ok(Wrote::Answered(head)) => Ok(Some(head)),
        Err(WriteFailure::Heard(error)) => Err(error),
        Err(WriteFailure::Io(error)) => Err(ExchangeError::Io(error)),
        Err(WriteFailure::Stalled) => Err(ExchangeError::TimedOut(stall)),
    }
}

/// Reads what the upstream has sent so far, without waiting, and parses it: its final
/// answer's head when complete (interim answers skipped), `None` while there is none yet.
/// An upstream that closed or failed without a complete answer is an error (its socket
/// would otherwise stay readable and be asked again and again).
fn hear(
    conn: &mut UpstreamConn,
    is_head: bool,
    headers: &mut HeaderMap,
) -> Result<Option<(response::Head, StatusCode)>, ExchangeError> {
    let heard = upload::read_available(conn, exchange::MAX_RESPONSE_HEAD);
    let mut reader = KeepMap {
        is_head,
        map: headers,
    };
    match (exchange::parse_final(&mut conn.buf, &mut reader)?, heard) {
        (Some(head), _) => Ok(Some(head)),
        (None, Heard::Open) => Ok(None),
        (None, Heard::Closed) => Err(ExchangeError::Closed),
        (None, Heard::Failed(error)) => Err(ExchangeError::Io(error)),
    }
}

fn check_length(outgoing: Outgoing, sent: u64) -> Result<(), ExchangeError> {
    match outgoing {
        Outgoing::Length(length) if sent != length => Err(ExchangeError::RequestLength),
        _ => Ok(()),
    }
}

/// The last chunk, the trailer fields (framing ones left out) and the final CRLF.
pub(crate) fn last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if forbidden_trailer(name) {
            continue;
        }
        exchange::put(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Fields a trailer section must not carry (they frame or route the message).
pub(crate) fn forbidden_trailer(name: &HeaderName) -> bool {
    *name == header::CONTENT_LENGTH
        || *name == header::HOST
        || crate::headers::is_hop_by_hop(name.as_str().as_bytes())
}

/// Reads the final response head (1xx skipped), its end-to-end fields kept.
async fn read_head(conn: &mut UpstreamConn, is_head: bool) -> Result<Answer, ExchangeError> {
    let mut headers = HeaderMap::new();
    let mut reader = KeepMap {
        is_head,
        map: &mut headers,
    };
    let (head, status) =
        exchange::read_head_only(&mut conn.stream, &mut conn.buf, &mut reader).await?;
    Ok((headers, head, status))
}

/// Where a response body is.
enum BodyState {
    /// This many bytes still to come.
    Length(u64),
    /// Chunked.
    Chunked(Decoder),
    /// Until the upstream closes.
    UntilClose,
    /// Read to its end (the socket handled as at `Done`); these trailers are still to be
    /// handed out, after the last data.
    Trailers(HeaderMap),
    /// Finished (the connection went back to the pool or was dropped).
    Done,
}

/// A response body read from an upstream socket as it is polled. At its end the socket goes
/// back to the pool when the response allows it and nothing followed it; dropped before its
/// end, it closes the socket.
pub struct NativeBody {
    conn: Option<UpstreamConn>,
    pool: Arc<RawPool>,
    state: BodyState,
    keep_alive: bool,
}

impl NativeBody {
    fn new(
        conn: UpstreamConn,
        pool: Arc<RawPool>,
        framing: Framing,
        keep_alive: bool,
    ) -> NativeBody {
        let mut body = NativeBody {
            conn: Some(conn),
            pool,
            state: match framing {
                Framing::Empty => BodyState::Length(0),
                Framing::Length(length) => BodyState::Length(length),
                Framing::Chunked => BodyState::Chunked(Decoder::new(true)),
                Framing::UntilClose => BodyState::UntilClose,
            },
            keep_alive,
        };
        if matches!(body.state, BodyState::Length(0)) {
            body.finish();
        }
        body
    }

    /// The body was read exactly to its end.
    fn finish(&mut self) {
        self.state = BodyState::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.check_in(conn);
            }
        }
    }

    /// The body broke: the socket is dropped, the error handed out once.
    fn abandon(
        &mut self,
        error: ExchangeError,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.conn = None;
        self.state = BodyState::Done;
        Poll::Ready(Some(Err(error)))
    }

    /// Reads more from the socket; `Ok(false)` when the upstream closed it.
    fn poll_fill(conn: &mut UpstreamConn, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            conn.buf.reserve(READ_SIZE);
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(read) => return Poll::Ready(Ok(read > 0)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(conn.stream.poll_read_ready(cx))?;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        loop {
            if let BodyState::Trailers(map) = &mut this.state {
                let map = std::mem::take(map);
                this.state = BodyState::Done;
                return Poll::Ready(Some(Ok(Frame::trailers(map))));
            }
            // Done, or the socket closed at the end of an until-close body.
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if !conn.buf.is_empty() {
                match &mut this.state {
                    BodyState::Length(left) => {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    BodyState::Chunked(decoder) => {
                        let mut data = BytesMut::new();
                        let mut trailers = Vec::new();
                        let used = match decoder.decode_data(&conn.buf, &mut data, &mut trailers) {
                            Ok(used) => used,
                            Err(error) => return this.abandon(error.into()),
                        };
                        conn.buf.advance(used);
                        let done = decoder.is_done();
                        if done {
                            let trailers = parse_trailers(&trailers);
                            this.finish();
                            if let Some(map) = trailers {
                                this.state = BodyState::Trailers(map);
                            }
                        }
                        if !data.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(data.freeze()))));
                        }
                        if done {
                            // The trailers, if any, are next.
                            continue;
                        }
                        // Only part of a size line or trailer section: read on.
                    }
                    BodyState::UntilClose => {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    BodyState::Trailers(_) | BodyState::Done => return Poll::Ready(None),
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                continue;
            };
            match ready!(Self::poll_fill(conn, cx)) {
                Ok(true) => {}
                Ok(false) if matches!(this.state, BodyState::UntilClose) => {
                    this.conn = None;
                    this.state = BodyState::Done;
                    return Poll::Ready(None);
                }
                Ok(false) => return this.abandon(ExchangeError::BodyClosed),
                Err(error) => return this.abandon(ExchangeError::BodyIo(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            BodyState::Length(left) => SizeHint::with_exact(*left),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A trailer section (field lines and the final CRLF) as a map; `None` when it is empty.
fn parse_trailers(raw: &[u8]) -> Option<HeaderMap> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(raw, &mut fields)
    else {
        return None;
    };
    let mut map = HeaderMap::new();
    for field in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head_for(headers: &[(&str, &str)], outgoing: Outgoing) -> String {
        let mut request = Request::post("/up?x=1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        String::from_utf8(encode_head(&parts, outgoing)).unwrap()
    }

    #[test]
    fn the_head_states_this_hops_framing_once() {
        let fields = [("host", "a"), ("content-length", "99"), ("x-two", "1")];
        let text = head_for(&fields, Outgoing::Length(5));
        assert!(
            text.starts_with("POST /up?x=1 HTTP/1.1\r\nhost: a\r\n"),
            "{text}"
        );
        assert!(
            text.contains("content-length: 5\r\n") && !text.contains("99"),
            "{text}"
        );
        assert!(
            text.ends_with("x-two: 1\r\ncontent-length: 5\r\n\r\n"),
            "{text}"
        );

        let text = head_for(&fields, Outgoing::Chunked);
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(!text.contains("content-length"), "{text}");

        // No body: what the client said about it stands; nothing is added.
        let text = head_for(&[("host", "a"), ("content-length", "0")], Outgoing::Empty);
        assert!(text.contains("content-length: 0\r\n"), "{text}");
        let text = head_for(&[("host", "a")], Outgoing::Empty);
        assert!(!text.contains("content-length") && !text.contains("transfer-encoding"));
    }

    #[test]
    fn chunk_framing_wraps_data_and_ends_with_the_trailers() {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        chunk_framing(Outgoing::Chunked, 26, None, false, &mut before, &mut after);
        assert_eq!((&before[..], &after[..]), (&b"1a\r\n"[..], &b"\r\n"[..]));

        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        trailers.insert("content-length", HeaderValue::from_static("3"));
        chunk_framing(
            Outgoing::Chunked,
            0,
            Some(&trailers),
            false,
            &mut before,
            &mut after,
        );
        assert_eq!(before, b"");
        assert_eq!(
            after, b"0\r\nx-sum: 1\r\n\r\n",
            "framing fields never go as trailers"
        );

        chunk_framing(Outgoing::Length(3), 3, None, true, &mut before, &mut after);
        assert!(before.is_empty() && after.is_empty());
    }

    #[test]
    fn trailer_sections_become_maps() {
        let map = parse_trailers(b"x-checksum: abc\r\nx-more: 1\r\n\r\n").unwrap();
        assert_eq!(map["x-checksum"], "abc");
        assert_eq!(map.len(), 2);
        assert!(parse_trailers(b"\r\n").is_none());
    }
}
