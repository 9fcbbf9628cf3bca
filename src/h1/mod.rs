//! The native HTTP/1.1 engine: the live path for plain HTTP/1.1 requests, without hyper.
//!
//! Why: on the live path a proxy's cost is mostly framing — parsing and writing two heads
//! each way — and the machinery around it. Measured with callgrind, hyper's server and client
//! (HeaderMap building, encoding, a connection task and a channel per upstream connection)
//! were most of shadowtap's instructions per request, and even a minimal hyper proxy costs
//! more CPU per request than nginx. This engine does what nginx does: one task per client
//! connection parses the head in place, writes the upstream's head straight from the parsed
//! slices, reads the response head the same way and streams both bodies through fixed
//! buffers, on a pooled upstream socket it owns for the exchange.
//!
//! It serves only the plain shape (see [`request::prepare`]); from the first request it does
//! not serve, the connection is handed to the hyper path with the bytes read so far
//! ([`Ended::Fallback`]), so every other shape — smuggling attempts, chunked uploads,
//! `Expect`, HTTP/1.0, h2c — keeps exactly the behaviour it had. The hyper path, in turn,
//! reaches HTTP/1 upstreams through this module too ([`upstream`]), on the same pooled
//! sockets: hyper serves the client, shadowtap speaks to the upstream.
//!
//! Guarantees kept from the hyper path: exactly one response per request (a 502/504 written
//! by the proxy when the upstream fails before its head, a 408/400 when the client's body
//! stalls or breaks), bodies streamed in bounded memory, the header-read timeout (also while
//! a keep-alive connection idles between requests), the client-body timeout, the upstream's
//! response timeout, graceful shutdown after the in-flight exchange, and the same
//! metrics and `request failed` log event.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod chunked;
pub mod client;
mod mirror;
pub mod pool;
pub mod request;
pub mod response;
mod upload;
pub mod upstream;

use crate::config::ListenerConfig;
use crate::error::ProxyError;
use crate::proxy::forward::ForwardError;
use crate::proxy::{ConnectionInfo, NativeUpstream, Proxy, Unanswered};
use crate::shadow::pair::PrimarySink;
use crate::shadow::RequestTee;
use crate::tee::Tee;
use crate::telemetry::logging::ErrorChain;
use crate::telemetry::metrics::{Handover, OTHER_METHOD};
use crate::telemetry::ErrorReason;
use bytes::{Buf, BytesMut};
use chunked::Decoder;
use pool::UpstreamConn;
use request::{Prepared, Request};
use response::{Framing, Head, Parsed};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use upload::{Heard, WriteFailure, Wrote};

/// Client read buffer: a request head, or a slice of a request body.
const READ_BUFFER: usize = 16 * 1024;
/// Largest slice of a request body read (and sent on) at once: a body longer than
/// [`READ_BUFFER`] is read in slices up to this size, so a 64 KiB upload costs one read and
/// one write instead of four of each. The buffer shrinks back after the body.
const MAX_BODY_READ: usize = 64 * 1024;
/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// How long a connection closed before its request body was all read keeps reading (and
/// dropping) what the client still sends, so the answer is not lost to a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
use pool::MAX_STALE_RETRIES;

/// How a connection left the native engine.
pub enum Ended {
    /// Closed (by either side, a timeout, shutdown, or an aborted exchange).
    Closed,
    /// A request the native engine does not serve: the socket and every byte read from it
    /// and not consumed, for the hyper path.
    Fallback(TcpStream, BytesMut),
}

/// Whether the client connection carries on after an exchange.
enum Next {
    KeepAlive,
    Close,
    /// Close with the rest of the request body still coming: linger ([`close_unread`]).
    CloseUnread,
}

/// Serves one client connection until it closes or needs the hyper path.
pub async fn serve(
    mut client: TcpStream,
    proxy: &Proxy,
    info: &ConnectionInfo,
    config: &ListenerConfig,
    shutdown: &watch::Receiver<bool>,
) -> Ended {
    let mut connection = Connection {
        proxy,
        buf: BytesMut::with_capacity(READ_BUFFER),
        request_head: Vec::with_capacity(1024),
        response_head: Vec::with_capacity(1024),
        config,
    };
    // One timer for the connection's life, moved forward per phase: extending a tokio
    // deadline is an atomic update, not a timer-wheel operation.
    let mut deadline = Box::pin(tokio::time::sleep(config.header_read_timeout));
    let mut stop_flag = shutdown.clone();
    let mut stop = Box::pin(async move { crate::shutdown::flagged(&mut stop_flag).await });
    let mut stopping = *shutdown.borrow();
    loop {
        deadline
            .as_mut()
            .reset((Instant::now() + config.header_read_timeout).into());
        let request = loop {
            if !connection.buf.is_empty() {
                match request::prepare(
                    &connection.buf,
                    proxy,
                    info,
                    config.max_headers,
                    &mut connection.request_head,
                ) {
                    Prepared::Native(request) => break request,
                    Prepared::Fallback(reason) => {
                        proxy.metrics().record_handover(reason);
                        return Ended::Fallback(client, connection.buf);
                    }
                    // The hyper path answers an oversized head (431).
                    Prepared::Partial if connection.buf.len() >= config.max_header_bytes => {
                        proxy.metrics().record_handover(Handover::HeadTooLarge);
                        return Ended::Fallback(client, connection.buf);
                    }
                    Prepared::Partial => {}
                }
            } else if stopping {
                return close(client).await;
            }
            connection.buf.reserve(READ_BUFFER / 2);
            tokio::select! {
                biased;
                read = client.read_buf(&mut connection.buf) => match read {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => {}
                },
                () = deadline.as_mut() => {
                    tracing::debug!("no complete request head within the header read timeout; closing");
                    return close(client).await;
                }
                () = stop.as_mut(), if !stopping => stopping = true,
            }
        };
        let close_after = request.close || stopping || *shutdown.borrow();
        match connection
            .exchange(&mut client, request, close_after, deadline.as_mut())
            .await
        {
            Next::KeepAlive if !close_after => {}
            Next::CloseUnread => return close_unread(client, connection.buf).await,
            _ => return close(client).await,
        }
    }
}

/// Ends a client connection with a FIN once everything written is sent.
async fn close(mut client: TcpStream) -> Ended {
    let _ = client.shutdown().await;
    Ended::Closed
}

/// Ends a client connection whose request body was not all read (the answer came first):
/// a FIN, then what the client still sends is read and dropped until it closes, for at most
/// [`LINGER`]. Closing at once with unread bytes would send a reset, and a reset can make
/// the client's system drop the answer before the client reads it (RFC 9112 §9.6).
async fn close_unread(mut client: TcpStream, mut scratch: BytesMut) -> Ended {
    if client.shutdown().await.is_err() {
        return Ended::Closed;
    }
    let drain = async {
        loop {
            scratch.clear();
            scratch.reserve(READ_BUFFER);
            match client.read_buf(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ended::Closed
}

/// A client connection's state on the native path.
struct Connection<'a> {
    proxy: &'a Proxy,
    /// Bytes read from the client and not yet consumed.
    buf: BytesMut,
    /// The head sent upstream (kept until the response head arrives, for a retry).
    request_head: Vec<u8>,
    /// The head (and small re-framed bodies) written to the client.
    response_head: Vec<u8>,
    /// The listener's settings: `client_body_timeout` (the longest pause a request body may
    /// make) and `client_send_timeout` (the longest a client may take no byte of its
    /// response).
    config: &'a ListenerConfig,
}

/// Why no response head came from the upstream.
enum HeadFailure {
    /// The connection closed or reset before a byte of the response: a pooled connection the
    /// upstream had closed, when the connection was reused.
    ClosedBeforeResponse(io::Error),
    /// The client closed its connection (or reset it) while the request waited.
    ClientClosed,
    /// The response timeout ran out.
    TimedOut,
    /// Anything else: a broken or malformed response.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl Connection<'_> {
    /// One request and its response. The request head is in `self.request_head`; its bytes
    /// are at the start of `self.buf`.
    async fn exchange(
        &mut self,
        client: &mut TcpStream,
        mut request: Request,
        close_after: bool,
        mut deadline: Pin<&mut Sleep>,
    ) -> Next {
        let proxy = self.proxy;
        let Some(upstream) = proxy.native_upstream(request.upstream) else {
            // prepare() only accepts routes whose upstream has a native pool.
            return Next::Close;
        };
        // Counted once, whichever way the exchange ends (see `Unanswered`).
        let mut unanswered = Unanswered::new(
            proxy.metrics(),
            Some(request.route),
            request.method,
            Instant::now(),
        );
        // The request leaves the client's buffer here, once: its head (the upstream gets
        // `self.request_head`, written from it) and the body bytes read with it, which are
        // kept apart for as long as the request may be sent again. Every attempt writes from
        // these, never from the buffer, which from now on holds only what follows.
        self.buf.advance(request.head_len.min(self.buf.len()));
        let in_buffer = usize::try_from(request.body_len)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        // No body, no split: a split makes the buffer's storage shared.
        let mut body_start = match in_buffer {
            0 => BytesMut::new(),
            _ => self.buf.split_to(in_buffer),
        };
        // The whole request is at hand (head and body): only such a request can go again.
        let whole = request.body_len == in_buffer as u64;
        let mut body_consumed = whole;
        let (mut request_copy, primary_slot) = match request.mirrors {
            true => match mirror::plan(self.proxy, &mut request, &self.request_head) {
                Some((copy, slot)) => (Some(copy), Some(slot)),
                None => (None, None),
            },
            false => (None, None),
        };
        // The primary's end-to-end fields, kept while its head is parsed when mirrored.
        let mut primary_fields = crate::shadow::fields::Fields::default();
        let mut tries = 0;
        // Each failure breaks out of the loop with its error; success leaves the block.
        let (mut conn, head, sent_at) = 'sent: {
            let error = loop {
                let mut conn = match upstream.pool.check_out() {
                    Some(conn) => conn,
                    None => match upstream.pool.connect().await {
                        Ok(conn) => conn,
                        Err(source) => {
                            break ForwardError::Unreachable {
                                upstream: upstream.name.clone(),
                                source: Box::new(source),
                            };
                        }
                    },
                };
                let sent = upload::write_request(
                    &mut conn,
                    &mut [IoSlice::new(&self.request_head), IoSlice::new(&body_start)],
                    Some(upstream.response_timeout),
                    heard,
                )
                .await;
                let answered = match sent {
                    Ok(wrote) => matches!(wrote, Wrote::Answered(())),
                    Err(failure) => {
                        let stale = !matches!(failure, WriteFailure::Stalled);
                        let again = whole && request.retryable && tries < MAX_STALE_RETRIES;
                        if stale && conn.reused && again {
                            tries += 1;
                            continue;
                        }
                        break upload_error(upstream, failure);
                    }
                };
                if let (false, Some(copy)) = (answered, request_copy.as_mut()) {
                    copy.push_slice(&body_start);
                }
                let sent_at = Instant::now();
                // The response timeout runs from the request's end: a body streamed for
                // longer than it is the client's pace, not the upstream's delay.
                let mut head_from = sent_at;
                if answered {
                    // The upstream answered before the body was all sent: the client's
                    // connection closes after the answer (the rest of its body unread).
                } else if !whole {
                    // A request whose body must still be read is never sent again: its first
                    // bytes are let go, so the buffer's storage is the buffer's alone again.
                    body_start = BytesMut::new();
                    let left = request.body_len.saturating_sub(in_buffer as u64);
                    let streamed = self
                        .stream_request_body(
                            client,
                            &mut conn,
                            left,
                            request_copy.as_mut(),
                            upstream.response_timeout,
                            deadline.as_mut(),
                        )
                        .await;
                    head_from = Instant::now();
                    match streamed {
                        Ok(Wrote::All) => body_consumed = true,
                        // Answered first: `body_consumed` stays false, so the client's
                        // connection closes after the answer.
                        Ok(Wrote::Answered(())) => {}
                        // The client left mid-body: counted as the hyper path counts it; the
                        // 400 is written in case it only stopped sending.
                        Err(UploadFailure::Client(error)) => {
                            break ForwardError::ClientAborted {
                                source: Box::new(error),
                            };
                        }
                        Err(UploadFailure::Upstream(failure)) => {
                            break upload_error(upstream, failure);
                        }
                        Err(UploadFailure::ClientPaused) => {
                            break ForwardError::ClientTimeout {
                                after: self.config.client_body_timeout,
                            };
                        }
                    }
                } else {
                    body_consumed = true;
                }
                // The whole body went to the primary: the shadows' copy is complete. (Not
                // when the upstream answered first: dropped, the copy is abandoned.)
                if let (true, Some(mut copy)) = (body_consumed, request_copy.take()) {
                    copy.complete();
                }
                deadline
                    .as_mut()
                    .reset((head_from + upstream.response_timeout).into());
                let keep = primary_slot.is_some().then_some(&mut primary_fields);
                match self
                    .read_response_head(
                        client,
                        &mut conn,
                        &request,
                        close_after || !body_consumed,
                        deadline.as_mut(),
                        keep,
                    )
                    .await
                {
                    Ok(head) => break 'sent (conn, head, sent_at),
                    Err(HeadFailure::ClientClosed) => {
                        // Abandoned at once: the upstream socket, mid-exchange, is closed
                        // (never pooled), and the request counted as the client's leaving.
                        drop(conn);
                        let id = self.request_head.get(request.request_id.clone());
                        let id = id.and_then(|id| std::str::from_utf8(id).ok());
                        unanswered.abandoned(id.unwrap_or("-"));
                        return Next::Close;
                    }
                    Err(HeadFailure::ClosedBeforeResponse(_))
                        if conn.reused
                            && whole
                            && request.retryable
                            && tries < MAX_STALE_RETRIES =>
                    {
                        tries += 1;
                    }
                    Err(HeadFailure::TimedOut) => {
                        break ForwardError::Timeout {
                            upstream: upstream.name.clone(),
                            after: upstream.response_timeout,
                        };
                    }
                    Err(HeadFailure::ClosedBeforeResponse(source)) => {
                        break ForwardError::Failed {
                            upstream: upstream.name.clone(),
                            source: Box::new(source),
                        };
                    }
                    Err(HeadFailure::Failed(source)) => {
                        break ForwardError::Failed {
                            upstream: upstream.name.clone(),
                            source,
                        };
                    }
                }
            };
            // A body that failed on its way up was not consumed (`body_consumed` is still
            // false then): the client connection cannot be reused.
            return self
                .fail(
                    client,
                    &request,
                    error,
                    unanswered,
                    body_consumed,
                    close_after,
                )
                .await;
        };

        let metrics = self.proxy.metrics();
        let route = metrics.route(Some(request.route));
        let status = http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::OK);
        unanswered.settle();
        metrics.record_request(route, request.method, status);
        let mut capture = primary_slot
            .map(|slot| mirror::capture(self.proxy, slot, status, primary_fields, sent_at));
        let outcome = self
            .stream_response_body(client, &mut conn, &head, &request, capture.as_mut())
            .await;
        if let (Ok(_), Some(capture)) = (&outcome, capture.as_mut()) {
            capture.complete();
        }
        let started = unanswered.started();
        metrics.record_primary_duration(route, started.elapsed().as_secs_f64());
        match outcome {
            Ok(_) if !body_consumed => {
                // Answered before the upload ended: the upstream socket holds a partial
                // request, and the client's the rest of its body.
                tracing::debug!(
                    upstream = %upstream.name,
                    status = head.status,
                    "primary answered before the request body was all sent"
                );
                Next::CloseUnread
            }
            Ok(reusable) => {
                if reusable && head.keep_alive {
                    upstream.pool.check_in(conn);
                }
                tracing::debug!(
                    upstream = %upstream.name,
                    status = head.status,
                    "primary answered"
                );
                Next::KeepAlive
            }
            Err(BodyFailure::Client(error)) if error.kind() == io::ErrorKind::TimedOut => {
                tracing::info!(
                    route = route.label(),
                    after = ?self.config.client_send_timeout,
                    "client stopped reading its response; closing"
                );
                Next::Close
            }
            Err(BodyFailure::Client(error)) => {
                tracing::debug!(error = %error, "client went away during the response");
                Next::Close
            }
            Err(BodyFailure::Upstream(error)) => {
                metrics.record_error(route, ErrorReason::UpstreamBodyError);
                tracing::warn!(
                    route = route.label(),
                    error = %ErrorChain(&error),
                    "upstream body failed mid-stream"
                );
                Next::Close
            }
        }
    }

    /// Copies the rest of a `Content-Length` request body from the client to the upstream,
    /// listening to the upstream all the while: its answer ends the upload
    /// ([`Wrote::Answered`]), and so does its closing or failing without one (an error at
    /// once, not when the client next sends something). An upstream that takes no byte for
    /// `stall` (its response timeout) fails it, and so does a client that sends none for
    /// the listener's `client_body_timeout` (timed on `pause`, the connection's deadline
    /// timer).
    async fn stream_request_body(
        &mut self,
        client: &mut TcpStream,
        conn: &mut UpstreamConn,
        mut left: u64,
        mut copy: Option<&mut Tee<RequestTee>>,
        stall: std::time::Duration,
        mut pause: Pin<&mut Sleep>,
    ) -> Result<Wrote<()>, UploadFailure> {
        while left > 0 {
            if self.buf.is_empty() {
                let slice = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .clamp(READ_BUFFER, MAX_BODY_READ);
                self.buf.reserve(slice);
                // The client's next bytes, or the upstream speaking first, or neither for
                // too long.
                pause
                    .as_mut()
                    .reset((Instant::now() + self.config.client_body_timeout).into());
                let read = tokio::select! {
                    biased;
                    _ = conn.stream.readable() => None,
                    read = client.read_buf(&mut self.buf) => Some(read),
                    () = pause.as_mut() => return Err(UploadFailure::ClientPaused),
                };
                match read {
                    None => match heard(conn) {
                        Ok(Some(())) => return Ok(Wrote::Answered(())),
                        Ok(None) => continue,
                        Err(error) => {
                            return Err(UploadFailure::Upstream(WriteFailure::Heard(error)))
                        }
                    },
                    Some(Ok(0)) => {
                        return Err(UploadFailure::Client(io::ErrorKind::UnexpectedEof.into()))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(UploadFailure::Client(error)),
                }
            }
            let piece = prefix(&self.buf, left);
            let wrote =
                upload::write_listening(conn, &mut [IoSlice::new(piece)], Some(stall), heard)
                    .await
                    .map_err(UploadFailure::Upstream)?;
            if let Wrote::Answered(()) = wrote {
                return Ok(wrote);
            }
            let piece = prefix(&self.buf, left);
            if let Some(copy) = copy.as_deref_mut() {
                copy.push_slice(piece);
            }
            let taken = piece.len();
            self.buf.advance(taken);
            left = left.saturating_sub(taken as u64);
        }
        if self.buf.is_empty() && self.buf.capacity() > 2 * READ_BUFFER {
            // An idle keep-alive connection holds READ_BUFFER, not a large body's slice.
            self.buf = BytesMut::with_capacity(READ_BUFFER);
        }
        Ok(Wrote::All)
    }

    /// Reads the upstream's final response head (skipping 1xx), writing the client's head
    /// into `self.response_head` (and its end-to-end fields into `keep`, when given).
    ///
    /// Meanwhile the client is watched: its closing the connection (EOF) or resetting it
    /// is [`HeadFailure::ClientClosed`]. A pipelining client's next request is no hang-up:
    /// its bytes are kept in `self.buf`, up to the listener's `max_header_bytes` (past that
    /// the watch stops for this request).
    async fn read_response_head(
        &mut self,
        client: &TcpStream,
        conn: &mut UpstreamConn,
        request: &Request,
        close_after: bool,
        mut deadline: Pin<&mut Sleep>,
        mut keep: Option<&mut crate::shadow::fields::Fields>,
    ) -> Result<Head, HeadFailure> {
        let mut received_any = false;
        let mut watching = true;
        loop {
            if !conn.buf.is_empty() {
                received_any = true;
                match response::parse(
                    &conn.buf,
                    request.is_head,
                    close_after,
                    self.config.via.pseudonym(),
                    &mut self.response_head,
                    keep.as_deref_mut(),
                ) {
                    Ok(Parsed::Final(head)) => return Ok(head),
                    Ok(Parsed::Interim(len)) => {
                        conn.buf.advance(len);
                        continue;
                    }
                    Ok(Parsed::Partial) if conn.buf.len() >= MAX_RESPONSE_HEAD => {
                        return Err(HeadFailure::Failed("response head too large".into()))
                    }
                    Ok(Parsed::Partial) => {}
                    Err(error) => return Err(HeadFailure::Failed(Box::new(error))),
                }
            }
            conn.buf.reserve(READ_BUFFER);
            tokio::select! {
                biased;
                read = conn.stream.read_buf(&mut conn.buf) => match read {
                    Ok(0) if !received_any => {
                        return Err(HeadFailure::ClosedBeforeResponse(
                            io::ErrorKind::UnexpectedEof.into(),
                        ))
                    }
                    Ok(0) => {
                        return Err(HeadFailure::Failed(
                            "connection closed inside the response head".into(),
                        ))
                    }
                    Ok(_) => {}
                    Err(error) if !received_any => {
                        return Err(HeadFailure::ClosedBeforeResponse(error))
                    }
                    Err(error) => return Err(HeadFailure::Failed(Box::new(error))),
                },
                ready = std::future::poll_fn(|cx| client.poll_read_ready(cx)), if watching => {
                    let limit = self.config.max_header_bytes;
                    match ready.map(|()| hear_client(&mut self.buf, client, limit)) {
                        Ok(ClientHeard::Open) => {}
                        Ok(ClientHeard::Full) => watching = false,
                        Ok(ClientHeard::Closed) | Err(_) => return Err(HeadFailure::ClientClosed),
                    }
                }
                () = deadline.as_mut() => return Err(HeadFailure::TimedOut),
            }
        }
    }

    /// Writes the client head and streams the body by its framing. `Ok(true)` when the
    /// upstream connection ended exactly at the end of the body (reusable).
    async fn stream_response_body(
        &mut self,
        client: &mut TcpStream,
        conn: &mut UpstreamConn,
        head: &Head,
        request: &Request,
        mut capture: Option<&mut Tee<PrimarySink>>,
    ) -> Result<bool, BodyFailure> {
        conn.buf.advance(head.len);
        let mut keep = |data: &[u8]| {
            if let Some(capture) = capture.as_deref_mut() {
                capture.push_slice(data);
            }
        };
        match head.framing {
            Framing::Empty => {
                write_client(
                    client,
                    &self.response_head,
                    &self.config.client_send_timeout,
                )
                .await?;
                Ok(conn.buf.is_empty())
            }
            Framing::Length(length) => {
                let now = prefix(&conn.buf, length);
                write_to_client(
                    client,
                    &mut [IoSlice::new(&self.response_head), IoSlice::new(now)],
                    &self.config.client_send_timeout,
                )
                .await
                .map_err(BodyFailure::Client)?;
                keep(now);
                let mut left = length.saturating_sub(now.len() as u64);
                conn.buf.advance(now.len());
                while left > 0 {
                    conn.buf.clear();
                    read_upstream(conn).await?;
                    let piece = prefix(&conn.buf, left);
                    write_client(client, piece, &self.config.client_send_timeout).await?;
                    keep(piece);
                    left = left.saturating_sub(piece.len() as u64);
                    conn.buf.advance(piece.len());
                }
                Ok(conn.buf.is_empty())
            }
            Framing::Chunked => {
                let mut decoder = Decoder::new(request.trailers);
                loop {
                    let used = decoder
                        .decode_with(&conn.buf, &mut self.response_head, &mut keep)
                        .map_err(|error| BodyFailure::Upstream(io::Error::other(error)))?;
                    conn.buf.advance(used);
                    if !self.response_head.is_empty() {
                        write_client(
                            client,
                            &self.response_head,
                            &self.config.client_send_timeout,
                        )
                        .await?;
                        self.response_head.clear();
                    }
                    if decoder.is_done() {
                        return Ok(conn.buf.is_empty());
                    }
                    read_upstream(conn).await?;
                }
            }
            Framing::UntilClose => {
                loop {
                    chunked::push_chunk(&mut self.response_head, &conn.buf);
                    keep(&conn.buf);
                    conn.buf.clear();
                    if !self.response_head.is_empty() {
                        write_client(
                            client,
                            &self.response_head,
                            &self.config.client_send_timeout,
                        )
                        .await?;
                        self.response_head.clear();
                    }
                    conn.buf.reserve(READ_BUFFER);
                    match conn.stream.read_buf(&mut conn.buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(error) => return Err(BodyFailure::Upstream(error)),
                    }
                }
                write_client(
                    client,
                    chunked::LAST_CHUNK,
                    &self.config.client_send_timeout,
                )
                .await?;
                Ok(false)
            }
        }
    }

    /// Answers a request that failed before the upstream's head (502/504 for the upstream,
    /// 408/400 for the client's body), counted and logged once like the hyper path does.
    /// The connection stays open only when the request body was consumed.
    async fn fail(
        &mut self,
        client: &mut TcpStream,
        request: &Request,
        error: ForwardError,
        mut unanswered: Unanswered<'_>,
        body_consumed: bool,
        close_after: bool,
    ) -> Next {
        let started = unanswered.started();
        unanswered.settle();
        let error = ProxyError::Forward(error);
        let status = error.status();
        let metrics = self.proxy.metrics();
        let route = metrics.route(Some(request.route));
        metrics.record_request(route, request.method, status);
        metrics.record_error(route, error.reason());
        let text = |range: std::ops::Range<usize>| {
            let bytes = self.request_head.get(range)?;
            std::str::from_utf8(bytes).ok()
        };
        let method = text(request.method_text.clone()).unwrap_or(OTHER_METHOD);
        let request_id = text(request.request_id.clone()).unwrap_or("-");
        error.log_failed(method, route.label(), request_id);
        let close = close_after || !body_consumed;
        let message = error.client_message();
        let out = &mut self.response_head;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(message.len()).as_bytes());
        out.extend_from_slice(b"\r\ndate: ");
        response::push_date(out);
        if close {
            out.extend_from_slice(b"\r\nconnection: close");
        }
        out.extend_from_slice(b"\r\n\r\n");
        if !request.is_head {
            out.extend_from_slice(message.as_bytes());
        }
        let written = write_to_client(
            client,
            &mut [IoSlice::new(out)],
            &self.config.client_send_timeout,
        )
        .await;
        metrics.record_primary_duration(route, started.elapsed().as_secs_f64());
        match written {
            Ok(()) if !close => Next::KeepAlive,
            Ok(()) if !body_consumed => Next::CloseUnread,
            _ => Next::Close,
        }
    }
}

/// What a client sent while its request waited on the upstream ([`hear_client`]).
enum ClientHeard {
    /// Nothing more, or the start of its next request (kept).
    Open,
    /// Its next request filled the buffer to the limit: no more is read now.
    Full,
    /// It closed the connection or reset it.
    Closed,
}

/// Reads, without waiting, what the client sent while its request waits on the upstream,
/// into `buf` (where the next request is parsed from), until the socket has no more or
/// `buf` holds `limit` bytes.
fn hear_client(buf: &mut BytesMut, client: &TcpStream, limit: usize) -> ClientHeard {
    loop {
        if buf.len() >= limit {
            return ClientHeard::Full;
        }
        buf.reserve(READ_BUFFER / 2);
        match client.try_read_buf(buf) {
            Ok(0) => return ClientHeard::Closed,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return ClientHeard::Open,
            Err(_) => return ClientHeard::Closed,
        }
    }
}

/// Why a request body's upload failed, by side.
enum UploadFailure {
    /// Reading from the client failed: it went away mid-body.
    Client(io::Error),
    /// The upstream failed, closed or took nothing for too long.
    Upstream(WriteFailure<io::Error>),
    /// The client sent nothing of its body for the listener's `client_body_timeout`.
    ClientPaused,
}

/// What an upstream that fails during an upload is, for the client: 504 when it stalled,
/// 502 otherwise.
fn upload_error(upstream: &NativeUpstream, failure: WriteFailure<io::Error>) -> ForwardError {
    match failure {
        WriteFailure::Stalled => ForwardError::Timeout {
            upstream: upstream.name.clone(),
            after: upstream.response_timeout,
        },
        WriteFailure::Heard(source) | WriteFailure::Io(source) => ForwardError::Failed {
            upstream: upstream.name.clone(),
            source: Box::new(source),
        },
    }
}

/// Listens to the upstream mid-upload ([`upload::write_listening`]): `Some` once its final
/// answer's head is complete in the connection's buffer (or what it sent can never become
/// one, which reading the head then reports), an error when it closed or failed first.
fn heard(conn: &mut UpstreamConn) -> io::Result<Option<()>> {
    let state = upload::read_available(conn, MAX_RESPONSE_HEAD);
    if response::answered(&conn.buf, MAX_RESPONSE_HEAD) {
        return Ok(Some(()));
    }
    match state {
        Heard::Open => Ok(None),
        Heard::Closed => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed the connection before answering",
        )),
        Heard::Failed(error) => Err(error),
    }
}

/// A body copy that failed, by side.
enum BodyFailure {
    /// Writing to (or reading from) the client failed: it went away.
    Client(io::Error),
    /// Reading from (or writing to) the upstream failed, or its framing was broken.
    Upstream(io::Error),
}

/// Reads more of the response body; the upstream closing here is a truncated body.
async fn read_upstream(conn: &mut UpstreamConn) -> Result<(), BodyFailure> {
    conn.buf.reserve(READ_BUFFER);
    match conn.stream.read_buf(&mut conn.buf).await {
        Ok(0) => Err(BodyFailure::Upstream(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed the connection before the end of the body",
        ))),
        Ok(_) => Ok(()),
        Err(error) => Err(BodyFailure::Upstream(error)),
    }
}

/// The first `at_most` bytes of `bytes`, or all of them when there are fewer: a body's next
/// piece, its length derived from the slice rather than computed beside it.
pub(crate) fn prefix(bytes: &[u8], at_most: u64) -> &[u8] {
    let at_most = usize::try_from(at_most).unwrap_or(usize::MAX);
    bytes.get(..at_most).unwrap_or(bytes)
}

/// Writes `bytes` to the client ([`write_to_client`] for one buffer, kept apart because the
/// state of this future sits in every connection's task).
async fn write_client(
    client: &mut TcpStream,
    mut bytes: &[u8],
    send_timeout: &std::time::Duration,
) -> Result<(), BodyFailure> {
    while !bytes.is_empty() {
        match client.try_write(bytes) {
            Ok(0) => return Err(BodyFailure::Client(io::ErrorKind::WriteZero.into())),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(client, send_timeout)
                    .await
                    .map_err(BodyFailure::Client)?;
            }
            Err(error) => return Err(BodyFailure::Client(error)),
        }
    }
    Ok(())
}

/// Writes every slice to the client; a client that takes no byte for `send_timeout` (the
/// listener's `client_send_timeout`) is an error of kind `TimedOut`. A write the socket
/// takes at once costs one system call and no timer: the timer exists only while the
/// client's window is full.
async fn write_to_client(
    client: &mut TcpStream,
    mut slices: &mut [IoSlice<'_>],
    send_timeout: &std::time::Duration,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match client.try_write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(client, send_timeout).await?;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Waits until the client can take more, for at most `send_timeout`. Boxed: the wait is
/// rare, and its timer would otherwise sit in the state of every connection's task
/// (measured: it pushed an idle connection from 8.8 to 9.4 KiB).
fn wait_writable<'a>(
    client: &'a TcpStream,
    send_timeout: &std::time::Duration,
) -> Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + 'a>> {
    let waiting = tokio::time::timeout(*send_timeout, client.writable());
    Box::pin(async move {
        match waiting.await {
            Ok(ready) => ready,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of its response for client_send_timeout",
            )),
        }
    })
}

/// Writes every slice, in as few system calls as the socket allows.
pub(super) async fn write_all_vectored(
    stream: &mut TcpStream,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = stream.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// For the upstream config that the engine reads per request.
impl NativeUpstream {
    /// The native engine's view of an HTTP/1 upstream whose idle sockets are `pool`.
    pub fn new(
        name: &str,
        config: &crate::config::UpstreamConfig,
        pool: std::sync::Arc<pool::RawPool>,
    ) -> NativeUpstream {
        NativeUpstream {
            name: name.to_string(),
            response_timeout: config.response_timeout,
            pool,
        }
    }
}
